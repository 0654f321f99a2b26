"""The heuristic Boltzmann human prior over shortest-path distances (for worlds too large for Phase 1)."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from humanpower.goals import Goal
from humanpower.humans.protocol import FloatArray, GoalDistanceModel
from humanpower.worlds.protocol import WorldModel


class HeuristicPrior:
    """pi_h(s, g) = nu_h * uniform + (1 - nu_h) * softmax(-beta_h * d(s, h, g, .)).

    ``d`` are the per-action distances of a :class:`GoalDistanceModel` (``inf`` = goal unreachable after that
    action; such actions get probability 0 in the softmax). When every action has distance ``inf`` the
    Boltzmann part is uniform. At a state where ``g`` is achieved the human rests: all mass on ``still``
    (action 0), as in Phase 1. ``human`` arguments are agent indices.
    """

    name = "heuristic"

    def __init__(
        self, world: WorldModel, distances: GoalDistanceModel, beta_h: float, nu_h: float = 0.0
    ) -> None:
        if not beta_h >= 0:
            raise ValueError(f"beta_h must be >= 0, got {beta_h}")
        if not 0.0 <= nu_h <= 1.0:
            raise ValueError(f"nu_h must be in [0, 1], got {nu_h}")
        self.world = world
        self.distances = distances
        self.beta_h = float(beta_h)
        self.nu_h = float(nu_h)
        self._uniform = np.full(world.num_actions, 1.0 / world.num_actions)

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> FloatArray:
        a = self.world.num_actions
        if goal.is_achieved(state):
            out = np.zeros(a)
            out[0] = 1.0
            return out
        d = np.asarray(self.distances.action_distances(state, human, goal), dtype=np.float64)
        if d.shape != (a,):
            raise ValueError(f"action_distances returned shape {d.shape}, expected ({a},)")
        finite = np.isfinite(d)
        if not finite.any():
            return self._uniform.copy()
        logits = np.where(finite, -self.beta_h * np.where(finite, d, 0.0), -np.inf)
        logits -= logits[finite].max()
        w = np.exp(logits)
        boltzmann = w / w.sum()
        out = self.nu_h * self._uniform + (1.0 - self.nu_h) * boltzmann
        return out

    def marginal_distribution(self, state: Hashable, human: int) -> FloatArray:
        goal_set = self.world.goal_set(human)
        out = np.zeros(self.world.num_actions)
        for goal, p in zip(goal_set.goals, goal_set.probabilities, strict=True):
            out += p * self.action_distribution(state, human, goal)
        return out
