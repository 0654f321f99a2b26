"""Building blocks of the neural backend that exist for speed: a sparse-input first layer, a cheaper CPU dropout
and a per-state memo.

* :class:`SparseInputLinear` is ``nn.Linear`` (same parameters, same state dict) that also accepts
  :class:`~humanpower.learn.encoding.SparseRows`: on a row that is a constant row plus a few active entries,
  ``W x + b = (b + W c) + sum_k v_k W[:, i_k]``, an embedding-bag sum of weight columns with the constant row
  folded into the bias, at a cost that grows with the active entries, not with the input width.

* :class:`FastDropout` is ``nn.Dropout`` (same distribution, same module state) with a mask that costs a
  fraction of torch's CPU Bernoulli kernel.
* :class:`StateMemo` remembers a frozen network's per-state values by interned state id. A target network's
  weights change only at its (infrequent) hard updates, and a state's feature row is a pure function of its id
  (:class:`~humanpower.learn.encoding.Featurizer`), so between two updates every distinct state needs its trunk
  evaluated once; later queries are table lookups. The memo notices any change of the weights by itself (it
  fingerprints every parameter and buffer by storage and in-place version counter), so it can never serve a
  value computed with other weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from humanpower.learn import device as devices
from humanpower.learn.encoding import SparseRows, StateBatch

DEFAULT_MEMO_CAPACITY = 1 << 16
DEFAULT_MEMO_REFILL = 4096
MEMO_ROW_MULTIPLE = 32


def dropout_mask(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Inverted-dropout mask: independent entries, ``1 / (1 - p)`` with probability ``1 - p``, else 0.

    Drawn from torch's default generator (so ``torch.manual_seed`` and a checkpointed ``torch.get_rng_state()``
    reproduce it). The distribution of ``nn.Dropout``'s mask; on the CPU it is several times cheaper than torch's
    Bernoulli kernel: for ``p == 0.5`` each entry is one bit of a stream of uniform random bytes, otherwise
    ``uniform[0, 1) >= p``.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout_mask: p must be in [0, 1), got {p}")
    scale = 1.0 / (1.0 - p)
    if p == 0.5 and device.type == "cpu":
        n = math.prod(shape)
        packed = torch.empty((n + 7) // 8, dtype=torch.uint8).random_()  # each byte uniform on 0..255
        bits = np.unpackbits(packed.numpy(), count=n).astype(np.float32)
        bits *= np.float32(scale)
        return torch.from_numpy(bits).view(shape).to(dtype)
    return (torch.rand(shape, device=device) >= p).to(dtype) * scale


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the mask of :func:`dropout_mask` on the CPU (torch's own kernel on accelerators)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if devices.accelerated(x.device) or self.inplace:
            return F.dropout(x, self.p, True, self.inplace)
        return x * dropout_mask(x.shape, self.p, x.dtype, x.device)


class _RowGather(torch.autograd.Function):
    """``weight.index_select(0, rows)`` for distinct sorted ``rows``, whose gradient is a coalesced sparse COO
    tensor holding just those rows (what a row-sparse optimizer reads) instead of a dense zero-filled one."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.rows = rows
        ctx.shape = weight.shape
        return weight.index_select(0, rows)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        index = ctx.rows.unsqueeze(0)
        return torch.sparse_coo_tensor(index, grad, ctx.shape, is_coalesced=True, check_invariants=False), None


class SparseInputLinear(nn.Module):
    """``nn.Linear(in_features, out_features)`` that also computes :class:`SparseRows` inputs sparsely.

    The function, the initial values (drawn exactly as ``nn.Linear`` draws them) and the state dict (``weight``
    of shape (out, in), ``bias``) are the Linear's. The weight is held transposed, as the parameter ``weight_t``
    of shape (in, out), so that the weight columns an input entry selects are contiguous rows: the sparse
    forward is one embedding-bag sum over them and its gradient a few row additions, and the optimizer steps a
    contiguous tensor. :attr:`weight` is the (out, in) view.

    :attr:`sparse_grad` (default False): the sparse forward's gradient of ``weight_t`` is a coalesced sparse COO
    tensor of the rows it read (for a row-sparse optimizer, :class:`~humanpower.learn.optim.LazyAdam`) instead of
    a dense tensor that is zero outside them. The values are the same.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        linear = nn.Linear(in_features, out_features)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.sparse_grad = False
        self.weight_t = nn.Parameter(linear.weight.detach().t().contiguous())
        self.bias = nn.Parameter(linear.bias.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The Linear's (out, in) weight (a view of ``weight_t``)."""
        return self.weight_t.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense rows ``(N, in)`` -> ``(N, out)``."""
        return torch.addmm(self.bias, x, self.weight_t)

    def forward_sparse(self, rows: SparseRows) -> torch.Tensor:
        """``forward(rows.dense())``, computed as sums of weight columns: ``(N, out)``.

        One embedding bag holds every row's active entries plus one last bag of the constant row, whose sum
        folds into the bias.
        """
        if rows.dim != self.in_features:
            raise ValueError(f"SparseInputLinear: expected rows of width {self.in_features}, got {rows.dim}")
        n = len(rows)
        index, weight, offsets = rows.bags
        if self.sparse_grad and self.weight_t.requires_grad and torch.is_grad_enabled():
            # The bags over the distinct rows read (gathered once); their gradient is one coalesced row block.
            cols, local = rows.bag_columns
            gathered = _RowGather.apply(self.weight_t, cols)
            sums = F.embedding_bag(local, gathered, offsets, mode="sum", per_sample_weights=weight)
        else:
            sums = F.embedding_bag(index, self.weight_t, offsets, mode="sum", per_sample_weights=weight)
        return sums[:n] + (self.bias + sums[n])

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        weight_t = self.weight_t if keep_vars else self.weight_t.detach()
        destination[prefix + "weight"] = weight_t.t()
        destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        key = prefix + "weight"
        if key in state_dict:  # the Linear's (out, in) weight -> weight_t
            state_dict = dict(state_dict)
            weight = state_dict.pop(key)
            if isinstance(weight, torch.Tensor) and weight.dim() == 2:
                weight = weight.t()
            state_dict[prefix + "weight_t"] = weight
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        missing_keys[:] = [prefix + "weight" if k == prefix + "weight_t" else k for k in missing_keys]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def weights_fingerprint(module: nn.Module) -> tuple[tuple[int, int, int], ...]:
    """(identity, storage address, in-place version) of every parameter and buffer of ``module`` and its
    submodules: changes whenever any weight is replaced, moved or modified in place (optimizer steps,
    ``load_state_dict`` and ``copy_`` all bump the version counter)."""
    out: list[tuple[int, int, int]] = []
    stack = [module]
    while stack:  # a plain walk: ~5x cheaper than module.parameters() + module.buffers()
        m = stack.pop()
        for t in (*m._parameters.values(), *m._buffers.values()):
            if t is not None:
                out.append((id(t), t.data_ptr(), t._version))
        stack.extend(c for c in m._modules.values() if c is not None)
    return tuple(out)


def composition_free(compute: Callable[[StateBatch], torch.Tensor], states: StateBatch) -> torch.Tensor:
    """``compute(states)``, evaluated on ``states`` padded (:meth:`StateBatch.padded`) to a multiple of
    ``MEMO_ROW_MULTIPLE`` rows.

    Makes each row's result independent of which other rows share the call: CPU kernels pick different code
    paths for very few rows (BLAS) and for the last ``n mod vector width`` elements (elementwise math), which
    can change the last bit. With padded, row-wise computations a state's remembered value is bitwise the same
    whatever batch computed it, so training stays exactly reproducible (and resumable) with a memo whose
    contents depend on history.
    """
    n = len(states)
    pad = (-n) % MEMO_ROW_MULTIPLE
    if pad == 0:
        return compute(states)
    return compute(states.padded(pad))[:n]


def padded_rows(rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """``rows`` followed by repeats of its first entry, to a multiple of ``MEMO_ROW_MULTIPLE`` entries: selecting
    these rows gives a batch that :func:`composition_free` would compute as it is (the repeated rows are
    computed and dropped; each row's value depends on its own features and the row count only)."""
    pad = (-len(rows)) % MEMO_ROW_MULTIPLE
    return rows if pad == 0 or len(rows) == 0 else np.concatenate([rows, np.full(pad, rows[0], dtype=np.int64)])


class StateMemo:
    """Per-state values of one network, keyed by interned state id, valid for one set of weights.

    Args:
        capacity: most states remembered; when full the memo is emptied at once and refilled.
        features_of: optional feature source, interned state ids ``(N,)`` -> their :class:`StateBatch` (e.g.
            :meth:`~humanpower.learn.encoding.Featurizer.batch_of_ids`). With it, a change of weights
            recomputes the ``refill`` most recently added states in one batch right away instead of one small
            batch per later lookup that meets them (a target network sees the same states again after its
            update, so this turns many small evaluations into one large one).
        refill: most states recomputed at a change of weights (0 = none).

    :meth:`lookup` returns ``compute(batch of the distinct uncached states)`` for every row of a batch, from
    the memo where possible. ``compute`` must be a pure function of the features given the weights (eval mode,
    no dropout); the memo is emptied whenever the weights' fingerprint differs from the one it was filled with.

    The bookkeeping (which id sits in which row of :attr:`values`) is kept in numpy arrays on the host: the memo
    serves CPU training, where a lookup's few small index operations cost less in numpy than as torch ops.
    """

    def __init__(
        self,
        capacity: int = DEFAULT_MEMO_CAPACITY,
        features_of: Callable[[torch.Tensor], StateBatch] | None = None,
        refill: int = DEFAULT_MEMO_REFILL,
    ) -> None:
        if capacity < 1 or refill < 0:
            raise ValueError(f"StateMemo: need capacity >= 1 and refill >= 0, got {capacity}, {refill}")
        self.capacity = int(capacity)
        self.features_of = features_of
        self.refill = min(int(refill), self.capacity)
        self.key: tuple[tuple[int, int, int], ...] | None = None
        self.slot: NDArray[np.int64] = np.full(1024, -1, dtype=np.int64)
        """Row of :attr:`values` of every state id (-1: not remembered)."""
        self.values: torch.Tensor | None = None
        self.row_ids: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        """The state id of every filled row of :attr:`values`, in order of addition."""
        self.fill = 0
        self.hits = 0
        self.misses = 0
        self.refilled = 0
        self.computed = 0
        """Batches of new states computed by :meth:`lookup` (refills not counted)."""
        self._extras: dict[str, torch.Tensor] = {}

    def clear(self) -> None:
        """Forget every value (the storage is kept)."""
        self.slot.fill(-1)
        self.fill = 0
        self._extras.clear()

    def extra(self, name: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A state-independent value (e.g. goal codes) remembered under ``name`` for the same weights.

        Valid for the weights seen by the latest :meth:`lookup`: call it after a lookup in the same forward.
        """
        value = self._extras.get(name)
        if value is None:
            value = self._extras[name] = compute()
        return value

    def _new_weights(
        self, key: tuple[tuple[int, int, int], ...], compute: Callable[[StateBatch], torch.Tensor]
    ) -> None:
        """Forget the values of the old weights; recompute the most recent states if a feature source is set."""
        recent = None
        if self.features_of is not None and self.refill and self.fill and self.key is not None:
            recent = self.row_ids[max(0, self.fill - self.refill) : self.fill].copy()
        self.clear()
        self.key = key
        if recent is not None:
            assert self.features_of is not None
            self._store(recent, composition_free(compute, self.features_of(torch.from_numpy(recent))))
            self.refilled += len(recent)

    def _index(self, rows: NDArray[np.int64], like: torch.Tensor) -> torch.Tensor:
        """Host row indices as an index tensor on ``like``'s device."""
        index = torch.from_numpy(rows)
        return index if like.device.type == "cpu" else index.to(like.device)

    def _grow_slots(self, top: int) -> None:
        if top > self.slot.shape[0]:
            grown = np.full(max(top, 2 * self.slot.shape[0]), -1, dtype=np.int64)
            grown[: self.slot.shape[0]] = self.slot
            self.slot = grown

    def lookup(
        self, module: nn.Module, batch: StateBatch, compute: Callable[[StateBatch], torch.Tensor]
    ) -> torch.Tensor:
        """Per-row values ``(B, ...)`` of ``batch`` under ``module``'s current weights."""
        ids_t = batch.ids
        ids = ids_t.cpu().numpy()
        key = weights_fingerprint(module)
        if key != self.key:
            self._new_weights(key, compute)
        if ids.size == 0:
            return composition_free(compute, batch.select(ids_t[:0]))
        self._grow_slots(int(ids.max()) + 1)
        slots = self.slot[ids]
        missing = slots < 0
        if not missing.any():
            self.hits += int(ids.size)
            assert self.values is not None
            return self.values.index_select(0, self._index(slots, self.values))
        miss_rows = np.flatnonzero(missing)
        uniq, first, inverse = np.unique(ids[miss_rows], return_index=True, return_inverse=True)
        n = len(uniq)
        # One representative row per missing id, padded with repeats (see composition_free).
        new = compute(batch.select(self._index(padded_rows(miss_rows[first]), ids_t), lazy=False))[:n]
        self.computed += 1
        self.misses += n
        self.hits += int(ids.size) - len(miss_rows)
        if n > self.capacity:  # cannot be remembered at once: answer directly
            out = new.new_empty((ids.shape[0], *new.shape[1:]))
            out[self._index(miss_rows, new)] = new[self._index(inverse.reshape(-1), new)]
            hit_rows = np.flatnonzero(~missing)
            if hit_rows.size:
                assert self.values is not None
                out[self._index(hit_rows, new)] = self.values[self._index(slots[hit_rows], new)]
            return out
        if self.fill + n > self.capacity:
            self.clear()
        self._store(uniq, new)
        assert self.values is not None
        return self.values.index_select(0, self._index(self.slot[ids], self.values))

    def _store(self, ids: NDArray[np.int64], rows: torch.Tensor) -> None:
        """Append ``rows`` (values of the distinct, uncached ``ids``); fill + len(ids) <= capacity."""
        if len(ids):
            self._grow_slots(int(ids.max()) + 1)
        values = self.values
        if (
            values is None
            or values.shape[1:] != rows.shape[1:]
            or values.dtype != rows.dtype
            or values.device != rows.device
        ):
            self.clear()
            values = rows.new_empty((min(self.capacity, max(rows.shape[0], 1024)), *rows.shape[1:]))
            self.row_ids = np.empty(values.shape[0], dtype=np.int64)
        need = self.fill + rows.shape[0]
        if need > values.shape[0]:
            size = min(self.capacity, max(need, 2 * values.shape[0]))
            grown_values = values.new_empty((size, *values.shape[1:]))
            grown_values[: self.fill] = values[: self.fill]
            values = grown_values
            grown_ids = np.empty(size, dtype=np.int64)
            grown_ids[: self.fill] = self.row_ids[: self.fill]
            self.row_ids = grown_ids
        values[self.fill : need] = rows
        self.row_ids[self.fill : need] = ids
        self.slot[ids] = np.arange(self.fill, need)
        self.values = values
        self.fill = need


__all__ = [
    "DEFAULT_MEMO_CAPACITY",
    "DEFAULT_MEMO_REFILL",
    "MEMO_ROW_MULTIPLE",
    "FastDropout",
    "SparseInputLinear",
    "StateMemo",
    "composition_free",
    "dropout_mask",
    "padded_rows",
    "weights_fingerprint",
]
