"""The heuristic Boltzmann human prior over shortest-path distances (for worlds too large for Phase 1)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import NDArray

from humanpower.goals import Goal
from humanpower.humans.protocol import BatchGoalDistanceModel, FloatArray, GoalDistanceModel
from humanpower.worlds.protocol import State, WorldModel


def boltzmann_over_distances(
    distances: FloatArray, achieved: NDArray[np.bool_], beta_h: float, nu_h: float
) -> FloatArray:
    """The heuristic pi_h for a batch: (..., A) policies from (..., A) per-action distances.

    nu_h * uniform + (1 - nu_h) * softmax(-beta_h * d) over the actions with finite distance (the others get
    probability 0; uniform when none is finite); all mass on ``still`` (action 0) where ``achieved`` (shape
    ``distances.shape[:-1]``) is true.
    """
    a = distances.shape[-1]
    finite = np.isfinite(distances)
    any_finite = finite.any(axis=-1, keepdims=True)
    logits = np.where(finite, -beta_h * np.where(finite, distances, 0.0), -np.inf)
    top = np.where(any_finite, logits.max(axis=-1, keepdims=True), 0.0)
    w = np.exp(logits - top)  # exp(-inf) = 0 for the unreachable actions
    boltzmann = np.where(any_finite, w / np.where(any_finite, w.sum(axis=-1, keepdims=True), 1.0), 1.0 / a)
    out: FloatArray = nu_h / a + (1.0 - nu_h) * boltzmann
    if achieved.any():
        out[achieved] = 0.0
        out[achieved, 0] = 1.0
    return out


class HeuristicPrior:
    """pi_h(s, g) = nu_h * uniform + (1 - nu_h) * softmax(-beta_h * d(s, h, g, .)).

    ``d`` are the per-action distances of a :class:`GoalDistanceModel` (``inf`` = goal unreachable after that
    action; such actions get probability 0 in the softmax). When every action has distance ``inf`` the
    Boltzmann part is uniform. At a state where ``g`` is achieved the human rests: all mass on ``still``
    (action 0), as in Phase 1. ``human`` arguments are agent indices. Implements ``HumanPolicyPrior`` and
    ``BatchHumanPolicyPrior`` (vectorised when the distance model is a ``BatchGoalDistanceModel``).
    """

    name = "heuristic"

    def __init__(self, world: WorldModel, distances: GoalDistanceModel, beta_h: float, nu_h: float = 0.0) -> None:
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
        """pi_h(state, goal) for one goal: the scalar form of :func:`boltzmann_over_distances` (the actor's hot
        path; ``action_distributions`` is the batch form, and a test checks that both agree)."""
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

    def action_distributions(self, states: Sequence[State], human: int) -> FloatArray:
        """(len(states), G_h, A): pi_h(s, g) for every state and every goal of ``human`` (goal-set order)."""
        goal_set = self.world.goal_set(human)
        shape = (len(states), len(goal_set), self.world.num_actions)
        if isinstance(self.distances, BatchGoalDistanceModel):
            d = np.asarray(self.distances.goal_action_distances(states, human), dtype=np.float64)
        else:
            d = np.array(
                [[self.distances.action_distances(s, human, g) for g in goal_set.goals] for s in states],
                dtype=np.float64,
            ).reshape(-1, shape[1], shape[2])
        if d.shape != shape:
            raise ValueError(f"goal distances have shape {d.shape}, expected {shape}")
        achieved = np.array([goal_set.achieved_mask(s) for s in states], dtype=bool).reshape(shape[:2])
        return boltzmann_over_distances(d, achieved, self.beta_h, self.nu_h)

    def marginal_distribution(self, state: Hashable, human: int) -> FloatArray:
        goal_set = self.world.goal_set(human)
        out = np.zeros(self.world.num_actions)
        for goal, p in zip(goal_set.goals, goal_set.probabilities, strict=True):
            out += p * self.action_distribution(state, human, goal)
        return out
