"""State and goal encoders, the feature cache (:class:`Featurizer`) and :class:`StateBatch`.

Environment-agnostic: a world-specific encoder (e.g. :mod:`humanpower.encoders.grid`) implements
:class:`StateEncoder` / :class:`GoalEncoder`; the learner only ever sees float32 feature rows and interned
integer state ids.

The :class:`Featurizer` interns every state it sees to a stable integer id (0, 1, 2, ... in order of first
sight) and caches its feature row, so a state is encoded once however often replay samples it. The ids key the
tabular backend's tables and are saved with checkpoints, so they stay stable across resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import NDArray

from humanpower.errors import CheckpointError
from humanpower.goals import Goal
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
# StateBatch


@dataclass
class StateBatch:
    """A batch of B states as the networks see them.

    Attributes:
        features: (B, dim) float32 feature rows.
        ids: (B,) int64 interned state ids (equal ids <=> equal states <=> equal feature rows).
        unique_rows: optional (U,) rows holding one representative of each distinct id, and
        inverse: optional (B,) position in ``unique_rows`` of every row's id. The :class:`Featurizer`
            fills both (it deduplicates anyway); otherwise :meth:`dedup` computes them with
            ``torch.unique`` on first use. Networks evaluate their state trunk on the U distinct states only
            and gather back.
    """

    features: torch.Tensor
    ids: torch.Tensor
    unique_rows: torch.Tensor | None = None
    inverse: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def device(self) -> torch.device:
        return self.features.device

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

    def select(self, rows: torch.Tensor) -> StateBatch:
        """The sub-batch (or re-indexed batch, rows may repeat) ``self[rows]``."""
        if rows.dim() == 1 and rows.dtype in (torch.long, torch.int):
            # index_select is several times faster than advanced indexing for row gathers on the CPU.
            return StateBatch(self.features.index_select(0, rows), self.ids.index_select(0, rows))
        return StateBatch(self.features[rows], self.ids[rows])

    def repeat_interleave(self, repeats: int) -> StateBatch:
        """Every row repeated ``repeats`` times in place (row i -> rows i*r .. i*r+r-1); keeps dedup info."""
        out = StateBatch(self.features.repeat_interleave(repeats, dim=0), self.ids.repeat_interleave(repeats, dim=0))
        if self.unique_rows is not None and self.inverse is not None:
            out.unique_rows = self.unique_rows * repeats
            out.inverse = self.inverse.repeat_interleave(repeats, dim=0)
        return out

    @staticmethod
    def cat(batches: Sequence[StateBatch]) -> StateBatch:
        """Concatenation of several batches (dedup info is recomputed lazily)."""
        return StateBatch(torch.cat([b.features for b in batches], dim=0), torch.cat([b.ids for b in batches], dim=0))

    def to(self, device: torch.device | str) -> StateBatch:
        return StateBatch(
            self.features.to(device),
            self.ids.to(device),
            None if self.unique_rows is None else self.unique_rows.to(device),
            None if self.inverse is None else self.inverse.to(device),
        )


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

    Ids: 0, 1, 2, ... in order of first sight; never reused or changed; saved by :meth:`state_dict`.
    """

    def __init__(self, encoder: StateEncoder, device: torch.device | str = "cpu", cache_size: int = 1 << 18):
        if cache_size < 0:
            raise ValueError(f"Featurizer: cache_size must be >= 0, got {cache_size}")
        self.encoder = encoder
        self.dim = int(encoder.dim)
        self.device = torch.device(device)
        self.cache_size = int(cache_size)
        self._ids: dict[State, int] = {}
        self._states: list[State] = []
        self._slot = np.full(1024, -1, dtype=np.int64)  # id -> cache row, -1 = not cached
        self._cache: Features = np.zeros((min(self.cache_size, 1024), self.dim), dtype=np.float32)
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
    def _store(self, ids: NDArray[np.int64], rows: Features) -> None:
        """Cache ``rows`` for ``ids`` (all uncached), emptying the cache first if they do not fit."""
        n = len(ids)
        if n == 0 or n > self.cache_size:
            return
        if self._fill + n > self.cache_size:
            self._slot[:] = -1
            self._fill = 0
            self.evictions += 1
        need = self._fill + n
        if need > self._cache.shape[0]:
            capacity = min(self.cache_size, max(need, 2 * self._cache.shape[0]))
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[: self._fill] = self._cache[: self._fill]
            self._cache = grown
        self._cache[self._fill : need] = rows
        self._slot[ids] = np.arange(self._fill, need)
        self._fill = need

    def _unique_features(self, unique_ids: NDArray[np.int64]) -> Features:
        """Feature rows of distinct ids, from the cache or from one encoder call for the missing ones."""
        slots = self._slot[unique_ids]
        missing = slots < 0
        out = np.empty((len(unique_ids), self.dim), dtype=np.float32)
        hit = ~missing
        n_missing = int(missing.sum())
        self.hits += len(unique_ids) - n_missing
        self.misses += n_missing
        if n_missing < len(unique_ids):
            out[hit] = self._cache[slots[hit]]
        if n_missing:
            new_ids = unique_ids[missing]
            rows = np.asarray(self.encoder.encode([self._states[i] for i in new_ids]), dtype=np.float32)
            if rows.shape != (n_missing, self.dim):
                raise ValueError(f"Featurizer: encoder returned shape {rows.shape}, expected {(n_missing, self.dim)}")
            out[missing] = rows
            self._store(new_ids, rows)
        return out

    def batch_from_ids(self, ids: NDArray[np.int64] | Sequence[int]) -> StateBatch:
        """A :class:`StateBatch` for already interned ids (e.g. stored by a replay buffer)."""
        ids_arr = np.asarray(ids, dtype=np.int64)
        if ids_arr.size and (ids_arr.min() < 0 or ids_arr.max() >= self.num_ids):
            raise IndexError(f"Featurizer.batch_from_ids: ids must lie in 0..{self.num_ids - 1}")
        unique_ids, unique_rows, inverse = np.unique(ids_arr, return_index=True, return_inverse=True)
        return self._make_batch(ids_arr, unique_ids, unique_rows, inverse.reshape(-1), in_order=False)

    def features_of_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Feature rows ``(N, dim)`` on :attr:`device` of already interned ids (any order, may repeat)."""
        return self.batch_from_ids(ids.cpu().numpy()).features

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
        feats = self._unique_features(unique_ids)
        if not in_order:
            feats = feats[inverse]
        dev = self.device
        return StateBatch(
            features=torch.from_numpy(np.ascontiguousarray(feats)).to(dev),
            ids=torch.from_numpy(ids).to(dev),
            unique_rows=torch.from_numpy(unique_rows).to(dev),
            inverse=torch.from_numpy(inverse).to(dev),
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
    "StateBatch",
    "StateEncoder",
    "StepCounter",
    "remaining_time",
]
