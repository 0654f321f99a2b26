"""The human policy prior interface: pi_h(state, human, goal) -> distribution over the human's actions."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from humanpower.goals import Goal

FloatArray = NDArray[np.float64]


@runtime_checkable
class HumanPolicyPrior(Protocol):
    """A human policy prior pi_h(s, g_h), fixed before Phase 2.

    ``action_distribution`` returns a probability vector of length ``world.num_actions``. At a state where
    the goal is already achieved the human rests: all mass on ``still`` (action 0).
    ``marginal_distribution`` is the goal-marginal policy sum_g w(g) pi_h(s, g) with normalised weights,
    used for the other humans in (6) and for all humans in (4).
    """

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> FloatArray: ...

    def marginal_distribution(self, state: Hashable, human: int) -> FloatArray: ...


@runtime_checkable
class BatchHumanPolicyPrior(Protocol):
    """A prior that computes pi_h for many states at once (optional fast path beside :class:`HumanPolicyPrior`).

    ``action_distributions(states, human)`` returns an (N, G_h, A) array: row n, goal column k is
    ``action_distribution(states[n], human, world.goal_set(human).goals[k])`` (goals in GoalSet order).
    """

    def action_distributions(self, states: Sequence[Hashable], human: int) -> FloatArray: ...


@runtime_checkable
class GoalDistanceModel(Protocol):
    """World-specific distances used by the heuristic Boltzmann prior.

    ``action_distances(state, human, goal)`` gives, per action of ``human``, the shortest-path distance (in
    steps) from where that action leads to the goal, ``inf`` where the goal cannot be reached.
    """

    def action_distances(self, state: Hashable, human: int, goal: Goal) -> FloatArray: ...
