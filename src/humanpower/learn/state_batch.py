"""What the networks see of a batch of states: :class:`StateBatch` (ids, dedup info, rows) and :class:`SparseRows`.

Rows are dense float32 feature rows or, for a sparse state encoder, :class:`SparseRows` (a constant row plus a
few active entries per state). Environment-agnostic; built by :class:`~humanpower.learn.encoding.Featurizer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from humanpower.learn import device


@dataclass(frozen=True)
class SparseRows:
    """Feature rows as a constant row plus a few active entries each (see :class:`SparseStateEncoder`).

    Row n is ``constant + sum_k value[n, k] * e_{index[n, k]}``, where the constant row has ``constant_value``
    at ``constant_index``. Padding entries have value 0.
    """

    index: torch.Tensor
    """(N, K) int64 active columns."""
    value: torch.Tensor
    """(N, K) float32 their values."""
    constant_index: torch.Tensor
    """(C,) int64 columns of the constant row."""
    constant_value: torch.Tensor
    """(C,) float32 its values."""
    dim: int

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @cached_property
    def bags(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows as embedding bags ``(index, per-entry weight, offsets)``: one bag of K entries per row, then
        one last bag holding the constant row (what :class:`~humanpower.learn.layers.SparseInputLinear` sums).

        Computed once per object: the networks that read the same rows share it.
        """
        n, k = self.index.shape
        index = torch.cat([self.index.reshape(-1), self.constant_index])
        weight = torch.cat([self.value.reshape(-1), self.constant_value])
        offsets = torch.arange(0, n * k + 1, k, device=index.device) if k else index.new_zeros(n + 1)
        return index, weight, offsets

    @cached_property
    def bag_columns(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(columns, local)``: the distinct columns the bags read (sorted) and each bag entry's position among
        them (``torch.unique`` of the bag index; once per object)."""
        cols, local = torch.unique(self.bags[0], sorted=True, return_inverse=True)
        return cols, local

    def select(self, rows: torch.Tensor) -> SparseRows:
        """Rows ``rows`` (int64 index tensor, may repeat)."""
        return SparseRows(
            self.index.index_select(0, rows),
            self.value.index_select(0, rows),
            self.constant_index,
            self.constant_value,
            self.dim,
        )

    def padded(self, n: int) -> SparseRows:
        """``n`` more rows holding the constant row alone (no active entry)."""
        k = self.index.shape[1]
        return SparseRows(
            torch.cat([self.index, self.index.new_zeros((n, k))]),
            torch.cat([self.value, self.value.new_zeros((n, k))]),
            self.constant_index,
            self.constant_value,
            self.dim,
        )

    def dense(self) -> torch.Tensor:
        """The (N, dim) float32 rows."""
        out = self.value.new_zeros((len(self), self.dim))
        out[:, self.constant_index] = self.constant_value
        return out.scatter_add_(1, self.index, self.value)

    def to(self, device: torch.device | str) -> SparseRows:
        return SparseRows(
            self.index.to(device),
            self.value.to(device),
            self.constant_index.to(device),
            self.constant_value.to(device),
            self.dim,
        )


class StateBatch:
    """A batch of B states as the networks see them.

    Attributes:
        features: (B, dim) float32 feature rows (materialised on first use when the batch holds sparse rows).
        sparse: the same rows as :class:`SparseRows` (None for a dense encoder or the reference step).
        ids: (B,) int64 interned state ids (equal ids <=> equal states <=> equal feature rows).
        unique_rows: optional (U,) rows holding one representative of each distinct id, and
        inverse: optional (B,) position in ``unique_rows`` of every row's id. The :class:`Featurizer`
            fills both (it deduplicates anyway); otherwise :meth:`dedup` computes them with
            ``torch.unique`` on first use. Networks evaluate their state trunk on the U distinct states only
            and gather back.

    :meth:`select` with ``lazy=True`` records the row index instead of gathering the rows: the rows of the
    result are only gathered for its distinct states (:meth:`distinct_states`), so a network gathers trunk
    outputs (embeddings), not raw features, for repeated queries. ``lazy_select`` makes that the default of
    :meth:`select` for this batch and every batch selected from it (the fast training step).
    """

    def __init__(
        self,
        features: torch.Tensor | None,
        ids: torch.Tensor,
        unique_rows: torch.Tensor | None = None,
        inverse: torch.Tensor | None = None,
        sparse: SparseRows | None = None,
        *,
        source: tuple[StateBatch, torch.Tensor] | None = None,
        lazy_select: bool = False,
    ) -> None:
        if features is None and sparse is None and source is None:
            raise ValueError("StateBatch: needs dense features, sparse rows or a source batch")
        self._features = features
        self._sparse = sparse
        self._source = source
        self.ids = ids
        self.unique_rows = unique_rows
        self.inverse = inverse
        self.lazy_select = lazy_select
        self._distinct: tuple[StateBatch, torch.Tensor | None] | None = None  # distinct_states(), once computed

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def dim(self) -> int:
        """Feature dimension."""
        if self._source is not None:
            return self._source[0].dim
        if self._features is not None:
            return int(self._features.shape[1])
        assert self._sparse is not None
        return self._sparse.dim

    @property
    def device(self) -> torch.device:
        return self.ids.device

    @property
    def is_sparse(self) -> bool:
        """Whether the rows are held as :class:`SparseRows`."""
        if self._source is not None:
            return self._source[0].is_sparse
        return self._sparse is not None

    def _materialise(self) -> None:
        if self._source is not None:
            src, rows = self._source
            sel = src.select(rows, lazy=False)
            self._features, self._sparse, self._source = sel._features, sel._sparse, None

    @property
    def features(self) -> torch.Tensor:
        self._materialise()
        if self._features is None:
            assert self._sparse is not None
            self._features = self._sparse.dense()
        return self._features

    @property
    def sparse(self) -> SparseRows | None:
        self._materialise()
        return self._sparse

    def dedup(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(unique_rows (U,), inverse (B,))`` with ``ids[unique_rows][inverse] == ids``."""
        if self.unique_rows is None or self.inverse is None:
            _, inverse = torch.unique(self.ids, return_inverse=True)
            n_unique = int(inverse.max()) + 1 if inverse.numel() else 0
            rows = torch.empty(n_unique, dtype=torch.long, device=self.ids.device)
            # Any row of a given id is a valid representative (equal ids have equal features).
            rows.scatter_(0, inverse, torch.arange(len(self), device=self.ids.device))
            self.unique_rows, self.inverse = rows, inverse
        return self.unique_rows, self.inverse

    def distinct_states(self) -> tuple[StateBatch, torch.Tensor | None]:
        """The batch of the distinct states (rows gathered for those only) and the row index into it ``(B,)``;
        the index is None when every row is distinct (then the batch itself, in row order).

        On an accelerator (:func:`~humanpower.learn.device.accelerated`) a batch without known dedup info is
        not deduplicated (its distinct count is data-dependent: finding it would be a host sync); the rows are
        then all evaluated, with the same values.
        """
        if self._distinct is None:
            if self.unique_rows is None and device.accelerated(self.device):
                self._distinct = self.select(torch.arange(len(self), device=self.device), lazy=False), None
            else:
                rows, inverse = self.dedup()
                self._distinct = (
                    (self, None) if rows.shape[0] == len(self) else (self.select(rows, lazy=False), inverse)
                )
        return self._distinct

    def select(self, rows: torch.Tensor, lazy: bool | None = None) -> StateBatch:
        """The sub-batch (or re-indexed batch, rows may repeat) ``self[rows]``.

        ``lazy`` (default: :attr:`lazy_select`): gather only the ids now; the rows are gathered when used (for
        the distinct states only when the result is used through :meth:`distinct_states`).
        """
        if rows.dim() != 1 or rows.dtype not in (torch.long, torch.int):
            rows = torch.arange(len(self), device=self.ids.device)[rows]
        ids = self.ids.index_select(0, rows)
        flag = self.lazy_select
        if self.lazy_select if lazy is None else lazy:
            if self._source is not None:
                src, base = self._source
                return StateBatch(None, ids, source=(src, base.index_select(0, rows)), lazy_select=flag)
            return StateBatch(None, ids, source=(self, rows), lazy_select=flag)
        self._materialise()
        # index_select is several times faster than advanced indexing for row gathers on the CPU.
        feats = None if self._features is None else self._features.index_select(0, rows)
        sparse = None if self._sparse is None else self._sparse.select(rows)
        return StateBatch(feats, ids, sparse=sparse, lazy_select=flag)

    def padded(self, n: int) -> StateBatch:
        """``n`` more rows of zeros (dense) or of the constant row (sparse), with id -1."""
        ids = torch.cat([self.ids, self.ids.new_full((n,), -1)])
        sparse = self.sparse
        if sparse is not None:
            return StateBatch(None, ids, sparse=sparse.padded(n), lazy_select=self.lazy_select)
        feats = self.features
        return StateBatch(torch.cat([feats, feats.new_zeros((n, feats.shape[1]))]), ids, lazy_select=self.lazy_select)

    def repeat_interleave(self, repeats: int) -> StateBatch:
        """Every row repeated ``repeats`` times in place (row i -> rows i*r .. i*r+r-1); keeps dedup info."""
        rows = torch.arange(len(self), device=self.ids.device).repeat_interleave(repeats)
        out = self.select(rows)
        if self.unique_rows is not None and self.inverse is not None:
            out.unique_rows = self.unique_rows * repeats
            out.inverse = self.inverse.repeat_interleave(repeats, dim=0)
        return out

    @staticmethod
    def cat(batches: Sequence[StateBatch]) -> StateBatch:
        """Concatenation of several batches (dedup info is recomputed lazily)."""
        ids = torch.cat([b.ids for b in batches], dim=0)
        sparse = [b.sparse for b in batches]
        if all(sp is not None for sp in sparse) and sparse:
            first = sparse[0]
            assert first is not None
            return StateBatch(
                None,
                ids,
                sparse=SparseRows(
                    torch.cat([sp.index for sp in sparse if sp is not None]),
                    torch.cat([sp.value for sp in sparse if sp is not None]),
                    first.constant_index,
                    first.constant_value,
                    first.dim,
                ),
            )
        return StateBatch(torch.cat([b.features for b in batches], dim=0), ids)

    def to(self, device: torch.device | str) -> StateBatch:
        self._materialise()
        return StateBatch(
            None if self._features is None else self._features.to(device),
            self.ids.to(device),
            None if self.unique_rows is None else self.unique_rows.to(device),
            None if self.inverse is None else self.inverse.to(device),
            None if self._sparse is None else self._sparse.to(device),
            lazy_select=self.lazy_select,
        )


__all__ = ["SparseRows", "StateBatch"]
