"""State and goal encoders and the feature cache (:class:`Featurizer`), which builds :class:`StateBatch` es
(defined in :mod:`humanpower.learn.state_batch`, re-exported here).

Environment-agnostic: a world-specific encoder (e.g. :mod:`humanpower.encoders.grid`) implements
:class:`StateEncoder` / :class:`GoalEncoder` (and :class:`SparseStateEncoder` when its rows are a constant row
plus a few active entries); the learner only ever sees float32 feature rows (dense or as :class:`SparseRows`) and
interned integer state ids.

The :class:`Featurizer` interns every state it sees to a stable integer id (0, 1, 2, ... in order of first
sight) and caches its feature row, so a state is encoded once however often replay samples it. The ids key the
tabular backend's tables and are saved with checkpoints, so they stay stable across resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import NDArray

from humanpower.errors import CheckpointError
from humanpower.goals import Goal
from humanpower.learn.device import to_device
from humanpower.learn.state_batch import SparseRows, StateBatch
from humanpower.worlds.protocol import State

Features = NDArray[np.float32]


@runtime_checkable
class StateEncoder(Protocol):
    """Maps states to fixed-size float32 feature rows; must be a pure function of the state."""

    @property
    def dim(self) -> int:
        """Feature dimension."""
        ...

    def encode(self, states: Sequence[State]) -> Features:
        """Feature matrix of shape (len(states), dim), dtype float32."""
        ...


@runtime_checkable
class SparseStateEncoder(StateEncoder, Protocol):
    """A state encoder whose rows are a constant row plus a few active entries (e.g. one-hot object planes over
    a static layout): ``encode(states)[n] == constant + sum_k values[n, k] * e_{columns[n, k]}``.

    The learner then computes the first layer of a state trunk as a sum of weight rows
    (:class:`~humanpower.learn.layers.SparseInputLinear`), at a cost that grows with the active entries of a
    state, not with ``dim``. Padding entries have value 0 (any column).
    """

    @property
    def max_active(self) -> int:
        """Entries per row of :meth:`encode_active` (the most active entries any state has)."""
        ...

    def constant(self) -> tuple[NDArray[np.int64], Features]:
        """The row shared by every state, as (columns (C,), values (C,))."""
        ...

    def encode_active(self, states: Sequence[State]) -> tuple[NDArray[np.int64], Features]:
        """(columns, values), both of shape (len(states), max_active): each state's entries on top of the constant."""
        ...


@runtime_checkable
class GoalEncoder(Protocol):
    """Maps goals to fixed-size float32 feature rows."""

    @property
    def dim(self) -> int:
        """Feature dimension."""
        ...

    def encode(self, goals: Sequence[Goal]) -> Features:
        """Feature matrix of shape (len(goals), dim), dtype float32."""
        ...


class StepCounter(Protocol):
    """The part of a world model the remaining-time feature needs."""

    max_steps: int

    def step_count(self, state: State) -> int: ...


def remaining_time(world: StepCounter, states: Sequence[State]) -> Features:
    """``(max_steps - step_count(s)) / max_steps`` per state: 1 at the start, 0 at the horizon. Shape (B,)."""
    steps = np.fromiter((world.step_count(s) for s in states), dtype=np.float32, count=len(states))
    out: Features = (np.float32(world.max_steps) - steps) / np.float32(max(world.max_steps, 1))
    return out


# ------------------------------------------------------------------------------------------------------------
# Featurizer


class Featurizer:
    """Interns states to stable integer ids and caches their feature rows.

    Args:
        encoder: the state encoder (called once per batch, for the states not in the cache only).
        device: where :meth:`batch` puts its tensors.
        cache_size: most feature rows kept. The cache is a preallocated numpy matrix (grown by doubling up to
            ``cache_size`` rows); when it is full, it is emptied at once and refilled (ids are never dropped,
            only cached features; a feature row is a pure function of the state, so this is safe). ``0``
            disables caching.
        fast: the fast training step's batches: rows as :class:`SparseRows` when the encoder is a
            :class:`SparseStateEncoder` (cached as active entries only; dense rows are materialised on demand;
            :attr:`sparse` tells whether that mode is on), and :attr:`StateBatch.lazy_select` set (selections
            gather trunk outputs of the distinct states, not raw rows). Off: dense rows, eager selections (the
            reference step).

    Ids: 0, 1, 2, ... in order of first sight; never reused or changed; saved by :meth:`state_dict`.
    """

    def __init__(
        self,
        encoder: StateEncoder,
        device: torch.device | str = "cpu",
        cache_size: int = 1 << 18,
        fast: bool = False,
    ):
        if cache_size < 0:
            raise ValueError(f"Featurizer: cache_size must be >= 0, got {cache_size}")
        self.encoder = encoder
        self.dim = int(encoder.dim)
        self.device = torch.device(device)
        self.cache_size = int(cache_size)
        self.fast = bool(fast)
        self.sparse = self.fast and isinstance(encoder, SparseStateEncoder)
        self._ids: dict[State, int] = {}
        self._states: list[State] = []
        self._slot = np.full(1024, -1, dtype=np.int64)  # id -> cache row, -1 = not cached
        rows = min(self.cache_size, 1024)
        self._constant: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.sparse:
            assert isinstance(encoder, SparseStateEncoder)
            k = int(encoder.max_active)
            cols, vals = encoder.constant()
            self._constant = (
                torch.as_tensor(np.asarray(cols, dtype=np.int64), device=self.device),
                torch.as_tensor(np.asarray(vals, dtype=np.float32), device=self.device),
            )
            # Cache blocks: active columns and their values, (rows, K) each.
            self._cache: list[np.ndarray] = [np.zeros((rows, k), dtype=np.int64), np.zeros((rows, k), np.float32)]
        else:
            self._cache = [np.zeros((rows, self.dim), dtype=np.float32)]
        self._fill = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    # -- ids -------------------------------------------------------------------------------------------------
    @property
    def num_ids(self) -> int:
        """Number of distinct states interned so far (= the next id)."""
        return len(self._states)

    def state_of(self, state_id: int) -> State:
        """The state with id ``state_id``."""
        return self._states[state_id]

    def _new_id(self, state: State) -> int:
        sid = len(self._states)
        self._ids[state] = sid
        self._states.append(state)
        if sid >= self._slot.shape[0]:
            grown = np.full(2 * self._slot.shape[0], -1, dtype=np.int64)
            grown[: self._slot.shape[0]] = self._slot
            self._slot = grown
        return sid

    def intern(self, states: Sequence[State]) -> NDArray[np.int64]:
        """Ids of ``states`` (new states get new ids). Shape (B,)."""
        get = self._ids.get
        out = np.empty(len(states), dtype=np.int64)
        for i, s in enumerate(states):
            sid = get(s)
            out[i] = self._new_id(s) if sid is None else sid
        return out

    # -- features --------------------------------------------------------------------------------------------
    def _store(self, ids: NDArray[np.int64], blocks: list[np.ndarray]) -> None:
        """Cache ``blocks`` (rows of ``ids``, all uncached), emptying the cache first if they do not fit."""
        n = len(ids)
        if n == 0 or n > self.cache_size:
            return
        if self._fill + n > self.cache_size:
            self._slot[:] = -1
            self._fill = 0
            self.evictions += 1
        need = self._fill + n
        if need > self._cache[0].shape[0]:
            capacity = min(self.cache_size, max(need, 2 * self._cache[0].shape[0]))
            grown = []
            for c in self._cache:
                g = np.zeros((capacity, c.shape[1]), dtype=c.dtype)
                g[: self._fill] = c[: self._fill]
                grown.append(g)
            self._cache = grown
        for c, rows in zip(self._cache, blocks, strict=True):
            c[self._fill : need] = rows
        self._slot[ids] = np.arange(self._fill, need)
        self._fill = need

    def _encode(self, states: list[State]) -> list[np.ndarray]:
        """The encoder's rows for ``states`` as cache blocks (checked shapes)."""
        n = len(states)
        blocks: list[np.ndarray]
        if self.sparse:
            assert isinstance(self.encoder, SparseStateEncoder)
            cols, vals = self.encoder.encode_active(states)
            blocks = [np.asarray(cols, dtype=np.int64), np.asarray(vals, dtype=np.float32)]
        else:
            blocks = [np.asarray(self.encoder.encode(states), dtype=np.float32)]
        for block, cache in zip(blocks, self._cache, strict=True):
            if block.shape != (n, cache.shape[1]):
                raise ValueError(f"Featurizer: encoder returned shape {block.shape}, expected {(n, cache.shape[1])}")
        return blocks

    def _unique_features(self, unique_ids: NDArray[np.int64]) -> list[np.ndarray]:
        """Cache blocks of distinct ids, from the cache or from one encoder call for the missing ones."""
        slots = self._slot[unique_ids]
        missing = slots < 0
        out = [np.empty((len(unique_ids), c.shape[1]), dtype=c.dtype) for c in self._cache]
        hit = ~missing
        n_missing = int(missing.sum())
        self.hits += len(unique_ids) - n_missing
        self.misses += n_missing
        if n_missing < len(unique_ids):
            for o, c in zip(out, self._cache, strict=True):
                o[hit] = c[slots[hit]]
        if n_missing:
            new_ids = unique_ids[missing]
            blocks = self._encode([self._states[i] for i in new_ids])
            for o, rows in zip(out, blocks, strict=True):
                o[missing] = rows
            self._store(new_ids, blocks)
        return out

    def batch_from_ids(self, ids: NDArray[np.int64] | Sequence[int], *, distinct: bool = False) -> StateBatch:
        """A :class:`StateBatch` for already interned ids (e.g. stored by a replay buffer).

        ``distinct=True`` promises that no id repeats (e.g. the output of ``np.unique``): the ids are then not
        deduplicated again (the batch is the same).
        """
        ids_arr = np.asarray(ids, dtype=np.int64)
        if ids_arr.size and (ids_arr.min() < 0 or ids_arr.max() >= self.num_ids):
            raise IndexError(f"Featurizer.batch_from_ids: ids must lie in 0..{self.num_ids - 1}")
        if distinct:
            rows = np.arange(len(ids_arr), dtype=np.int64)
            return self._make_batch(ids_arr, ids_arr, rows, rows, in_order=True)
        unique_ids, unique_rows, inverse = np.unique(ids_arr, return_index=True, return_inverse=True)
        return self._make_batch(ids_arr, unique_ids, unique_rows, inverse.reshape(-1), in_order=False)

    def features_of_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Feature rows ``(N, dim)`` on :attr:`device` of already interned ids (any order, may repeat)."""
        return self.batch_from_ids(ids.cpu().numpy()).features

    def batch_of_ids(self, ids: torch.Tensor) -> StateBatch:
        """:meth:`batch_from_ids` for an id tensor of distinct ids (a feature source for the target networks'
        state memos, whose refills ask for distinct states)."""
        return self.batch_from_ids(ids.cpu().numpy(), distinct=True)

    def batch(self, states: Sequence[State]) -> StateBatch:
        """Intern ``states`` and return their :class:`StateBatch` (deduplicated: each distinct state is looked
        up once, and encoded once, only if not cached)."""
        get = self._ids.get
        n = len(states)
        ids = np.empty(n, dtype=np.int64)
        inverse = np.empty(n, dtype=np.int64)
        position: dict[int, int] = {}
        unique_ids: list[int] = []
        unique_rows: list[int] = []
        for i, s in enumerate(states):
            sid = get(s)
            if sid is None:
                sid = self._new_id(s)
            ids[i] = sid
            p = position.get(sid)
            if p is None:
                p = position[sid] = len(unique_ids)
                unique_ids.append(sid)
                unique_rows.append(i)
            inverse[i] = p
        return self._make_batch(
            ids,
            np.asarray(unique_ids, dtype=np.int64),
            np.asarray(unique_rows, dtype=np.int64),
            inverse,
            in_order=len(unique_ids) == n,
        )

    def _make_batch(
        self,
        ids: NDArray[np.int64],
        unique_ids: NDArray[np.int64],
        unique_rows: NDArray[np.int64],
        inverse: NDArray[np.int64],
        in_order: bool,
    ) -> StateBatch:
        """Build the batch; ``in_order``: unique_ids[inverse] is the identity (all distinct, in row order)."""
        blocks = self._unique_features(unique_ids)
        if not in_order:
            blocks = [b[inverse] for b in blocks]
        dev = self.device
        tensors = [to_device(np.ascontiguousarray(b), dev) for b in blocks]  # pinned, non-blocking on a GPU
        sparse = None
        if self._constant is not None:
            sparse = SparseRows(tensors[0], tensors[1], self._constant[0], self._constant[1], self.dim)
        return StateBatch(
            features=None if sparse is not None else tensors[0],
            ids=to_device(ids, dev),
            unique_rows=to_device(unique_rows, dev),
            inverse=to_device(inverse, dev),
            sparse=sparse,
            lazy_select=self.fast,
        )

    def features(self, states: Sequence[State]) -> Features:
        """Feature rows of ``states`` as numpy (interning them), shape (B, dim)."""
        return self.batch(states).features.cpu().numpy()

    # -- bookkeeping -----------------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Counters: distinct states, cached rows, hits/misses (per distinct state per call), evictions."""
        return {
            "num_ids": self.num_ids,
            "cached": self._fill,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
        }

    def state_dict(self) -> dict[str, Any]:
        """The interned states in id order (features are not saved; they are recomputed on demand)."""
        return {"version": 1, "dim": self.dim, "states": list(self._states)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore the ids of :meth:`state_dict` exactly (replacing the current ones) and empty the cache."""
        try:
            version, dim, states = d["version"], d["dim"], list(d["states"])
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"featurizer state: missing or malformed field ({exc})") from exc
        if version != 1:
            raise CheckpointError(f"featurizer state: unsupported version {version!r}")
        if dim != self.dim:
            raise CheckpointError(f"featurizer state: feature dim {dim} does not match the encoder's {self.dim}")
        self._ids = {}
        self._states = []
        self._slot = np.full(max(1024, len(states)), -1, dtype=np.int64)
        self._fill = 0
        for s in states:
            if s in self._ids:
                raise CheckpointError("featurizer state: duplicate state in the saved id list")
            self._new_id(s)


# ------------------------------------------------------------------------------------------------------------
# One-hot encoders for enumerable (tabular) worlds


class OneHotStateEncoder:
    """One-hot over an explicit list of states, plus the remaining-time feature when ``include_step_count``.

    ``dim = len(states) (+ 1)``. Encoding a state not in the list raises ``KeyError`` naming it.
    """

    def __init__(self, world: StepCounter, states: Sequence[State], include_step_count: bool = True) -> None:
        self.world = world
        self.include_step_count = include_step_count
        self._index: dict[State, int] = {}
        for s in states:
            self._index.setdefault(s, len(self._index))
        self._dim = len(self._index) + (1 if include_step_count else 0)

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, states: Sequence[State]) -> Features:
        out = np.zeros((len(states), self._dim), dtype=np.float32)
        try:
            cols = np.fromiter((self._index[s] for s in states), dtype=np.int64, count=len(states))
        except KeyError as exc:
            raise KeyError(f"OneHotStateEncoder: state {exc.args[0]!r} is not in the enumerated states") from None
        out[np.arange(len(states)), cols] = 1.0
        if self.include_step_count:
            out[:, -1] = remaining_time(self.world, states)
        return out


class OneHotGoalEncoder:
    """One-hot over an explicit list of goals (typically one human's GoalSet.goals); dim = len(goals)."""

    def __init__(self, goals: Sequence[Goal]) -> None:
        self._index: dict[Goal, int] = {}
        for g in goals:
            self._index.setdefault(g, len(self._index))

    @property
    def dim(self) -> int:
        return len(self._index)

    def encode(self, goals: Sequence[Goal]) -> Features:
        out = np.zeros((len(goals), self.dim), dtype=np.float32)
        try:
            cols = np.fromiter((self._index[g] for g in goals), dtype=np.int64, count=len(goals))
        except KeyError as exc:
            raise KeyError(f"OneHotGoalEncoder: goal {exc.args[0]!s} is not in the enumerated goals") from None
        out[np.arange(len(goals)), cols] = 1.0
        return out


__all__ = [
    "Featurizer",
    "GoalEncoder",
    "OneHotGoalEncoder",
    "OneHotStateEncoder",
    "SparseRows",
    "SparseStateEncoder",
    "StateBatch",
    "StateEncoder",
    "StepCounter",
    "remaining_time",
]
