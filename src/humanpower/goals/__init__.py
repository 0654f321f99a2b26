"""Goals: sets of states a human may want to reach, with weights.

A goal is immutable and hashable, ``is_achieved(state)`` tells whether a state lies in it and ``str(goal)``
is its file form. A :class:`GoalSet` holds the possible goals G_h of one human with weights w(g) (default 1
each); it is both the goal *generator* (iterate all goals with their weights, for exact sums) and the goal
*sampler* (draw a goal with an importance weight, for Monte-Carlo estimates).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class Goal(Protocol):
    """A set of states; hashable and immutable."""

    def is_achieved(self, state: Hashable) -> bool:
        """True when ``state`` lies in the goal."""
        ...


class GoalGenerator(Protocol):
    """Enumerates every goal of a human with its weight (exact sums over G_h)."""

    def __iter__(self) -> Iterator[tuple[Goal, float]]: ...

    def __len__(self) -> int: ...


class GoalSampler(Protocol):
    """Draws goals for Monte-Carlo estimates of sums over G_h.

    ``sample`` returns ``(goal, weight)`` such that E[weight * f(goal)] = sum_g w(g) f(g) for every f.
    """

    def sample(self, rng: np.random.Generator) -> tuple[Goal, float]: ...


@dataclass(frozen=True)
class StateSetGoal:
    """A goal given as an explicit set of states (used by the generic tabular world)."""

    name: str
    states: frozenset[Hashable]

    def is_achieved(self, state: Hashable) -> bool:
        return state in self.states

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class GoalSet:
    """The possible goals of one human with weights: generator and sampler in one.

    Goals are sampled with probability w(g) / W (W = total weight) and returned with importance weight W,
    so the sampler's estimate of sum_g w(g) f(g) is unbiased.
    """

    goals: tuple[Goal, ...]
    weights: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _index: dict[Goal, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.goals) == 0:
            raise ValueError("a goal set needs at least one goal")
        w = np.asarray(self.weights, dtype=np.float64)
        if w.size == 0:
            w = np.ones(len(self.goals))
        if w.shape != (len(self.goals),):
            raise ValueError(f"goal weights: expected {len(self.goals)} weights, got {w.shape[0]}")
        if np.any(~np.isfinite(w)) or np.any(w <= 0):
            raise ValueError("goal weights must be finite and > 0")
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "_index", {g: i for i, g in enumerate(self.goals)})
        if len(self._index) != len(self.goals):
            raise ValueError("goal set contains duplicate goals")

    @classmethod
    def of(cls, goals: Sequence[Goal], weights: Sequence[float] | None = None) -> GoalSet:
        return cls(tuple(goals), np.asarray(weights if weights is not None else [], dtype=np.float64))

    def __len__(self) -> int:
        return len(self.goals)

    def __iter__(self) -> Iterator[tuple[Goal, float]]:
        return iter(zip(self.goals, (float(w) for w in self.weights), strict=True))

    @property
    def total_weight(self) -> float:
        """W = sum_g w(g): the upper bound of X_h."""
        return float(self.weights.sum())

    @property
    def probabilities(self) -> NDArray[np.float64]:
        """Normalised weights w(g) / W: the goal prior of this human."""
        return self.weights / self.weights.sum()

    def index(self, goal: Goal) -> int:
        """Position of ``goal`` in this set (KeyError if absent)."""
        return self._index[goal]

    def sample_index(self, rng: np.random.Generator) -> int:
        """Index of a goal drawn with probability w(g) / W."""
        return int(rng.choice(len(self.goals), p=self.probabilities))

    def sample(self, rng: np.random.Generator) -> tuple[Goal, float]:
        """A goal drawn with probability w(g) / W, with importance weight W."""
        return self.goals[self.sample_index(rng)], self.total_weight

    def achieved_mask(self, state: Hashable) -> NDArray[np.bool_]:
        """Which goals of this set ``state`` achieves."""
        return np.fromiter((g.is_achieved(state) for g in self.goals), dtype=bool, count=len(self.goals))


__all__ = ["Goal", "GoalGenerator", "GoalSampler", "GoalSet", "StateSetGoal"]
