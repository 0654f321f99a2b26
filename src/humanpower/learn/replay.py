"""Replay: the :class:`Transition` record, a preallocated ring storage, and composable sampler policies.

TorchRL-style split: :class:`ReplayStorage` only stores (a numpy object ring plus int64 columns of
``total_steps`` / ``policy_version`` so policies can filter without touching Python objects), a sampler draws
slot indices (:class:`UniformSampler`), and sampler *policies* react to the env-step clock and restrict which
slots may be sampled (:class:`ClearAtSteps`, :class:`MaxAge`). :class:`ReplayBuffer` wires them together.

Storage holds any item with integer ``total_steps`` and ``policy_version`` attributes (:class:`ReplayItem`):
raw :class:`Transition` records or the learner's compiled form of them. Slot indices are stable until the
next ``add``/``clear``; valid slots are always ``0 .. len(storage) - 1``.

Call order each env step: ``buffer.on_step(total_steps)`` (may clear), then add what was collected.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from humanpower.learn.config import Phase2Config
from humanpower.learn.schedules import StageTable

State = Hashable
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Transition:
    """One environment step as collected by an actor (see ``docs/ARCHITECTURE.md``)."""

    state: State
    """The state s the step started from."""
    goals: tuple[int, ...]
    """Goal index per human (``world.humans`` order) used for the targets of this transition."""
    human_actions: tuple[int, ...]
    """Action per human (``world.humans`` order) the successors below were computed with."""
    robot_action: int
    """Flat joint robot action taken (robot 0 least significant)."""
    next_state: State
    """The sampled successor s'."""
    successors: tuple[tuple[tuple[float, State], ...], ...]
    """Per flat robot action, the exact successor distribution ``((p, s'), ...)`` given ``human_actions``."""
    total_steps: int
    """Cumulative env steps when the transition was collected (before this step)."""
    policy_version: int
    """Learner training step of the acting policy snapshot (-1 = no network policy yet)."""
    beta_r: float
    """beta_r the robot acted with."""
    episode_step: int
    """Step index of s within its episode."""
    human_successors: tuple[tuple[tuple[tuple[tuple[float, State], ...], ...], ...], ...] | None = None
    """Optional (``v_h_e_all_goals``): per human position i, per action a_i of that human, per flat robot action,
    the exact successor distribution ``((p, s'), ...)`` with every other human at its ``human_actions`` entry.
    None when the actor did not compute it."""
    human_policies: tuple[tuple[tuple[float, ...], ...], ...] | None = None
    """Optional (``v_h_e_all_goals``): per human position, pi_h(s, g) for every goal of its goal set (G_h rows of
    num_actions probabilities; tuples so that the record stays hashable and comparable). None when the actor
    did not compute it."""


class ReplayItem(Protocol):
    """What storage needs from an item: its collection time and policy version."""

    @property
    def total_steps(self) -> int: ...

    @property
    def policy_version(self) -> int: ...


ItemT = TypeVar("ItemT", bound=ReplayItem)


class ReplayStorage(Generic[ItemT]):
    """A preallocated ring of ``capacity`` items; the oldest item is overwritten when full."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._items: NDArray[np.object_] = np.empty(self.capacity, dtype=object)
        self._total_steps: IntArray = np.zeros(self.capacity, dtype=np.int64)
        self._policy_version: IntArray = np.zeros(self.capacity, dtype=np.int64)
        self._pos = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def position(self) -> int:
        """Slot the next ``add`` writes to."""
        return self._pos

    @property
    def total_steps(self) -> IntArray:
        """``total_steps`` of the stored items, indexed by slot (a read-only view, length ``len(self)``)."""
        view = self._total_steps[: self._size]
        view.flags.writeable = False
        return view

    @property
    def policy_version(self) -> IntArray:
        """``policy_version`` of the stored items, indexed by slot (a read-only view)."""
        view = self._policy_version[: self._size]
        view.flags.writeable = False
        return view

    def add(self, item: ItemT) -> None:
        """Store one item, overwriting the oldest when full."""
        self._items[self._pos] = item
        self._total_steps[self._pos] = item.total_steps
        self._policy_version[self._pos] = item.policy_version
        self._pos = (self._pos + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def extend(self, chunk: Iterable[ItemT]) -> None:
        """Store items in order."""
        for item in chunk:
            self.add(item)

    def get(self, indices: Sequence[int] | IntArray) -> list[ItemT]:
        """The items at slot ``indices`` (each in ``0 .. len - 1``)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self._size):
            raise IndexError(f"replay slot out of range 0..{self._size - 1}")
        return list(self._items[idx])

    def chronological(self) -> IntArray:
        """Slot indices from oldest to newest."""
        if self._size < self.capacity:
            return np.arange(self._size, dtype=np.int64)
        return np.roll(np.arange(self.capacity, dtype=np.int64), -self._pos)

    def clear(self) -> None:
        """Drop every item (and the references to them)."""
        self._items[:] = None
        self._pos = 0
        self._size = 0

    def keep(self, mask: BoolArray) -> int:
        """Keep the items whose slot has ``mask`` True (compacted, oldest first); returns how many dropped."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self._size,):
            raise ValueError(f"keep: mask must have shape ({self._size},), got {mask.shape}")
        order = self.chronological()
        kept = order[mask[order]]
        n = len(kept)
        items, ts, pv = self._items[kept].copy(), self._total_steps[kept], self._policy_version[kept]
        dropped = self._size - n
        self.clear()
        self._items[:n], self._total_steps[:n], self._policy_version[:n] = items, ts, pv
        self._size = n
        self._pos = n % self.capacity
        return dropped

    def state_dict(self) -> dict[str, Any]:
        """Picklable snapshot: items in slot order plus the ring position (exact round trip)."""
        return {
            "capacity": self.capacity,
            "items": list(self._items[: self._size]),
            "pos": self._pos,
            "size": self._size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` snapshot; the capacity must match."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay capacity mismatch: snapshot {state['capacity']}, storage {self.capacity}")
        items = state["items"]
        self.clear()
        for slot, item in enumerate(items):
            self._items[slot] = item
            self._total_steps[slot] = item.total_steps
            self._policy_version[slot] = item.policy_version
        self._size = int(state["size"])
        self._pos = int(state["pos"])
        if self._size != len(items) or not 0 <= self._pos < self.capacity:
            raise ValueError("corrupt replay snapshot (size/position do not match the items)")


class SamplerPolicy(Protocol):
    """A composable rule applied before sampling: follows the env-step clock, restricts eligible slots."""

    def on_step(self, storage: ReplayStorage[Any], total_steps: int) -> None:
        """Called with the current ``total_steps`` before new items of that step are added."""
        ...

    def eligible(self, storage: ReplayStorage[Any]) -> BoolArray | None:
        """Mask over slots ``0 .. len - 1`` of items that may be sampled, or None for all."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ClearAtSteps:
    """Clear the storage once when ``total_steps`` first reaches each of ``steps`` (e.g. beta_r ramp ends).

    Items collected at or after the boundary survive (so the order of ``on_step`` and ``add`` within one env
    step does not matter). Items collected before the latest fired boundary that arrive later (asynchronous
    actors) are never sampled either.
    """

    def __init__(self, steps: Iterable[int]) -> None:
        self.steps: tuple[int, ...] = tuple(sorted({int(s) for s in steps}))
        self.fired: set[int] = set()

    @property
    def latest_fired(self) -> int | None:
        """The largest boundary already fired, or None."""
        return max(self.fired) if self.fired else None

    def on_step(self, storage: ReplayStorage[Any], total_steps: int) -> None:
        new = [s for s in self.steps if s <= total_steps and s not in self.fired]
        if new:
            self.fired.update(new)
            storage.keep(storage.total_steps >= max(new))

    def eligible(self, storage: ReplayStorage[Any]) -> BoolArray | None:
        latest = self.latest_fired
        return None if latest is None else storage.total_steps >= latest

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "fired": sorted(self.fired)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["steps"]) != self.steps:
            raise ValueError(f"ClearAtSteps: snapshot boundaries {state['steps']} != {list(self.steps)}")
        self.fired = {int(s) for s in state["fired"]}


class MaxAge:
    """Never sample items collected more than ``max_age`` env steps before the current ``total_steps``."""

    def __init__(self, max_age: int) -> None:
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.max_age = int(max_age)
        self.now: int | None = None

    def on_step(self, storage: ReplayStorage[Any], total_steps: int) -> None:
        self.now = int(total_steps)

    def eligible(self, storage: ReplayStorage[Any]) -> BoolArray | None:
        if self.now is None:
            return None
        return storage.total_steps >= self.now - self.max_age

    def state_dict(self) -> dict[str, Any]:
        return {"max_age": self.max_age, "now": self.now}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.now = None if state["now"] is None else int(state["now"])


class UniformSampler:
    """Uniform sampling of eligible slots with a caller's numpy Generator (reproducible).

    Without replacement (default) a batch holds distinct items and needs at least ``batch_size`` eligible.
    """

    def __init__(self, replacement: bool = False) -> None:
        self.replacement = replacement

    def sample(
        self,
        storage: ReplayStorage[Any],
        batch_size: int,
        rng: np.random.Generator,
        mask: BoolArray | None = None,
    ) -> IntArray:
        """``batch_size`` slot indices drawn uniformly among eligible slots (all when ``mask`` is None)."""
        pool: IntArray = np.arange(len(storage), dtype=np.int64) if mask is None else np.flatnonzero(mask)
        n = len(pool)
        if n == 0 or (not self.replacement and n < batch_size):
            raise ValueError(f"cannot sample {batch_size} items: only {n} eligible in replay")
        picks = rng.choice(n, size=batch_size, replace=self.replacement)
        return pool[picks]


class ReplayBuffer(Generic[ItemT]):
    """Storage + sampler + sampler policies. ``sample`` returns slot indices; ``get`` fetches the items."""

    def __init__(
        self,
        storage: ReplayStorage[ItemT],
        sampler: UniformSampler | None = None,
        policies: Iterable[SamplerPolicy] = (),
    ) -> None:
        self.storage = storage
        self.sampler = sampler if sampler is not None else UniformSampler()
        self.policies: list[SamplerPolicy] = list(policies)

    @classmethod
    def from_config(cls, cfg: Phase2Config) -> ReplayBuffer[Any]:
        """The buffer ``cfg`` asks for: capacity, clearing at the beta_r ramp start and end, max age."""
        policies: list[SamplerPolicy] = []
        if cfg.clear_buffer_at_rampup:
            table = StageTable.from_config(cfg)
            policies.append(ClearAtSteps([table.rampup_start, table.rampup_end]))
        if cfg.replay_max_age is not None:
            policies.append(MaxAge(cfg.replay_max_age))
        return cls(ReplayStorage(cfg.buffer_size), UniformSampler(), policies)

    def __len__(self) -> int:
        return len(self.storage)

    def add(self, item: ItemT) -> None:
        self.storage.add(item)

    def extend(self, chunk: Iterable[ItemT]) -> None:
        self.storage.extend(chunk)

    def on_step(self, total_steps: int) -> None:
        """Advance every policy to the env-step clock (may clear storage)."""
        for policy in self.policies:
            policy.on_step(self.storage, total_steps)

    def eligible_mask(self) -> BoolArray | None:
        """Slots every policy allows (None = all)."""
        mask: BoolArray | None = None
        for policy in self.policies:
            m = policy.eligible(self.storage)
            if m is not None:
                mask = m if mask is None else mask & m
        return mask

    def num_eligible(self) -> int:
        """How many stored items the policies currently allow to be sampled."""
        mask = self.eligible_mask()
        return len(self.storage) if mask is None else int(mask.sum())

    def can_sample(self, batch_size: int) -> bool:
        """Whether ``sample(batch_size)`` would succeed now."""
        n = self.num_eligible()
        return n > 0 if self.sampler.replacement else n >= batch_size

    def sample(self, batch_size: int, rng: np.random.Generator) -> IntArray:
        """Slot indices of a batch of eligible items (fetch them with :meth:`get`)."""
        return self.sampler.sample(self.storage, batch_size, rng, self.eligible_mask())

    def get(self, indices: Sequence[int] | IntArray) -> list[ItemT]:
        return self.storage.get(indices)

    def sample_items(self, batch_size: int, rng: np.random.Generator) -> list[ItemT]:
        """A batch of eligible items."""
        return self.storage.get(self.sample(batch_size, rng))

    def state_dict(self) -> dict[str, Any]:
        """Storage contents (with ring position) and each policy's state (e.g. boundaries already fired)."""
        return {
            "storage": self.storage.state_dict(),
            "policies": [(type(p).__name__, p.state_dict()) for p in self.policies],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [name for name, _ in state["policies"]]
        if names != [type(p).__name__ for p in self.policies]:
            raise ValueError(f"replay policies mismatch: snapshot {names}")
        self.storage.load_state_dict(state["storage"])
        for policy, (_, ps) in zip(self.policies, state["policies"], strict=True):
            policy.load_state_dict(ps)
