"""The uniform human policy prior: every action equally likely, resting (``still``) at an achieved goal."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from humanpower.goals import Goal
from humanpower.humans.protocol import FloatArray
from humanpower.worlds.protocol import WorldModel


class UniformPrior:
    """pi_h(s, g) = uniform over the world's actions, or all mass on ``still`` (action 0) when s is in g.

    ``human`` arguments are agent indices (elements of ``world.humans``).
    """

    name = "uniform"

    def __init__(self, world: WorldModel) -> None:
        self.world = world
        self._uniform = np.full(world.num_actions, 1.0 / world.num_actions)
        self._still = np.zeros(world.num_actions)
        self._still[0] = 1.0

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> FloatArray:
        return (self._still if goal.is_achieved(state) else self._uniform).copy()

    def marginal_distribution(self, state: Hashable, human: int) -> FloatArray:
        goal_set = self.world.goal_set(human)
        achieved = goal_set.achieved_mask(state)
        p_rest = float(goal_set.probabilities[achieved].sum())
        out: FloatArray = (1.0 - p_rest) * self._uniform + p_rest * self._still
        return out
