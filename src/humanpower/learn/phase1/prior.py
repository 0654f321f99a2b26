"""The frozen learned Phase 1 prior as a :class:`~humanpower.humans.protocol.HumanPolicyPrior`.

pi_h(s, g) is (2) applied to the trained Q_h^m networks (eval mode, no gradients), with the resting rule at an
achieved goal and Q_h^m = 0 at a terminal state (as in the exact solver). Evaluation is batched and cached: the
first query of a state computes pi_h for every human, goal and action of that state in one forward pass per
human; later queries of that state (the Phase 2 actors ask per step, per human, per goal) are dict lookups.
:meth:`LearnedHumanPrior.action_distributions` computes many states at once (for fidelity measurements). Goal
order: ``world.goal_set(h).goals``, as :class:`~humanpower.exact.phase1.ExactHumanPrior`.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from humanpower.goals import Goal
from humanpower.humans.protocol import FloatArray
from humanpower.learn.encoding import Featurizer, StateEncoder
from humanpower.learn.phase1 import targets as T
from humanpower.learn.phase1.networks import Phase1QModel, TabularPhase1Q
from humanpower.learn.tabular import TabularTable
from humanpower.worlds.protocol import State, WorldModel

CACHE_STATES = 200_000
"""Most states whose policies the prior keeps (the cache is emptied at once when full)."""
BATCH_STATES = 4096
"""States per forward pass of :meth:`LearnedHumanPrior.action_distributions`."""


class LearnedHumanPrior:
    """pi_h(s, g) from trained Q_h^m models (one per human, ``world.humans`` order); ``human`` = agent index.

    ``featurizer``: the learner's (tabular models index its state ids; a state the learner never saw then has
    the table's initial values, also beyond the table: the prior's copies never train); None for neural models
    (a private featurizer is used and reset with the cache).
    """

    name = "learned"

    def __init__(
        self,
        world: WorldModel,
        state_encoder: StateEncoder,
        nets: Sequence[Phase1QModel],
        beta_h: float,
        nu_h: float,
        featurizer: Featurizer | None = None,
    ) -> None:
        if len(nets) != len(world.humans):
            raise ValueError(f"LearnedHumanPrior: {len(nets)} models for {len(world.humans)} humans")
        self.world = world
        self.state_encoder = state_encoder
        self.nets = [copy.deepcopy(n).to("cpu").eval() for n in nets]
        for n in self.nets:
            for p in n.parameters():
                p.requires_grad_(False)
            if isinstance(n, TabularTable):
                n.answers_unseen = True
        self.beta_h = float(beta_h)
        self.nu_h = float(nu_h)
        self._shared_featurizer = featurizer is not None
        self.featurizer = featurizer if featurizer is not None else Featurizer(state_encoder, "cpu", fast=True)
        self._ordinal = {h: i for i, h in enumerate(world.humans)}
        self._goal_sets = [world.goal_set(h) for h in world.humans]
        self._weights = [gs.probabilities for gs in self._goal_sets]
        self._cache: dict[State, list[FloatArray]] = {}

    @property
    def tabular(self) -> bool:
        return isinstance(self.nets[0], TabularPhase1Q)

    def _position(self, human: int) -> int:
        hi = self._ordinal.get(human)
        if hi is None:
            raise KeyError(f"agent {human} is not a human of this world (humans: {self.world.humans})")
        return hi

    def _compute(self, states: Sequence[State]) -> list[FloatArray]:
        """pi of every human for ``states``: per human position an (N, G_h, A) float64 array."""
        if not self._shared_featurizer and self.featurizer.num_ids > CACHE_STATES:
            self.featurizer = Featurizer(self.state_encoder, "cpu", fast=True)
        batch = self.featurizer.batch(list(states))
        terminal = torch.tensor([self.world.is_terminal(s) for s in states], dtype=torch.bool)
        out = []
        with torch.no_grad():
            for net, gs in zip(self.nets, self._goal_sets, strict=True):
                achieved = torch.from_numpy(np.stack([gs.achieved_mask(s) for s in states]).reshape(len(states), -1))
                q = net(batch).double()
                q[terminal] = 0.0  # Q_h^m = 0 at the horizon, as in the exact solver
                out.append(T.human_policy(q, achieved, self.beta_h, self.nu_h).numpy())
        return out

    def _policies(self, state: Hashable) -> list[FloatArray]:
        hit = self._cache.get(state)
        if hit is None:
            if len(self._cache) >= CACHE_STATES:
                self._cache.clear()
            hit = self._cache[state] = [p[0] for p in self._compute([state])]
        return hit

    def action_distributions(self, states: Sequence[State], human: int) -> FloatArray:
        """pi_h(s, g) for many states: (N, G_h, A), goals in ``world.goal_set(human).goals`` order."""
        hi = self._position(human)
        parts = [self._compute(states[i : i + BATCH_STATES])[hi] for i in range(0, len(states), BATCH_STATES)]
        if not parts:
            return np.zeros((0, len(self._goal_sets[hi]), self.world.num_actions))
        return np.concatenate(parts)

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> FloatArray:
        hi = self._position(human)
        out: FloatArray = self._policies(state)[hi][self._goal_sets[hi].index(goal)].copy()
        return out

    def marginal_distribution(self, state: Hashable, human: int) -> FloatArray:
        hi = self._position(human)
        out: FloatArray = np.einsum("ga,g->a", self._policies(state)[hi], self._weights[hi])
        return out

    # -- persistence --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The models' weights, theory values and (tabular) the featurizer's state ids."""
        return {
            "nets": [n.state_dict() for n in self.nets],
            "beta_h": self.beta_h,
            "nu_h": self.nu_h,
            "featurizer": self.featurizer.state_dict() if self._shared_featurizer else None,
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}  # actor processes start with an empty cache
        return state
