"""The Q_h^m networks of the learned Phase 1 prior: one goal-conditioned network per human.

:class:`Phase1QNetwork` reuses the Phase 2 machinery (:class:`~humanpower.learn.networks.Phase2Network`: an MLP
state trunk evaluated once per distinct state, sparse first layer for sparse encoders, state memos for target
copies) with V_h^e's pair architecture: ``sigmoid(out(ReLU(P_s h(s) + P_g e(g))))``, where ``out`` has one unit
per action, so one call gives Q_h^m(s, g, .) for every goal and action: (B, G_h, A) in [0, 1].

:class:`TabularPhase1Q` stores the values themselves, one (G_h, A) block per interned state id (initial 0.5),
clamped to [0, 1] on output; trained with plain SGD on the duplicate-averaging loss it is value iteration.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from humanpower.learn.encoding import StateBatch
from humanpower.learn.heads import inverse_probability, probability_head
from humanpower.learn.networks import Phase2Network
from humanpower.learn.tabular import TabularTable


class Phase1QNetwork(Phase2Network):
    """Q_h^m(s, g, a) of one human for every goal and action: ``forward(batch)`` -> (B, G_h, A).

    Args:
        goal_features: the human's goal feature table (G_h, d) in GoalSet order.
        num_actions: the human's action count A.
        init: initial output level (sigmoid of the output bias).
    """

    goal_features: torch.Tensor

    def __init__(
        self,
        state_dim: int,
        goal_features: NDArray[np.float32],
        num_actions: int,
        hidden_dim: int,
        num_hidden_layers: int,
        dropout: float = 0.0,
        init: float = 0.5,
    ) -> None:
        super().__init__(state_dim, hidden_dim, num_hidden_layers, dropout)
        table = np.asarray(goal_features, dtype=np.float32)
        if table.ndim != 2 or table.shape[0] < 1:
            raise ValueError(f"Phase1QNetwork: goal features must be (G >= 1, d), got shape {table.shape}")
        self.num_goals = int(table.shape[0])
        self.num_actions = int(num_actions)
        self.register_buffer("goal_features", torch.from_numpy(table.copy()))
        self.goal_embed = nn.Sequential(nn.Linear(table.shape[1], hidden_dim), nn.ReLU())
        self.state_proj = nn.Linear(self.trunk_dim, hidden_dim)
        self.goal_proj = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.out = nn.Linear(hidden_dim, self.num_actions)
        nn.init.constant_(self.out.bias, inverse_probability(init))

    def per_state(self, codes: torch.Tensor) -> torch.Tensor:
        """The state part ``P_s h(s)`` of the pair pre-activation."""
        return self.state_proj(codes)

    def forward(self, batch: StateBatch) -> torch.Tensor:
        s, inverse = self.state_values(batch)
        g = self.goal_proj(self.goal_embed(self.goal_features))  # (G, hidden)
        q = probability_head(self.out(torch.relu(s.unsqueeze(1) + g.unsqueeze(0))))  # (U, G, A)
        return self.gather(q, inverse)


class TabularPhase1Q(TabularTable):
    """The tabular Q_h^m: a (max_states, G_h * A) table of values, read as (B, G_h, A) clamped to [0, 1]."""

    def __init__(self, num_goals: int, num_actions: int, max_states: int, init: float = 0.5) -> None:
        super().__init__(max_states, num_goals * num_actions, init)
        self.num_goals = int(num_goals)
        self.num_actions = int(num_actions)

    def forward(self, batch: StateBatch) -> torch.Tensor:
        return self.rows(batch).view(-1, self.num_goals, self.num_actions).clamp(0.0, 1.0)


Phase1QModel = Phase1QNetwork | TabularPhase1Q


def build_phase1_networks(
    backend: str,
    state_dim: int,
    goal_features: Sequence[NDArray[np.float32]],
    num_actions: int,
    hidden_dim: int,
    num_hidden_layers: int,
    max_states: int,
    seed: int,
) -> list[Phase1QModel]:
    """One Q_h^m model per human (``goal_features`` in ``world.humans`` order); torch's global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 7919)
        if backend == "tabular":
            return [TabularPhase1Q(len(f), num_actions, max_states) for f in goal_features]
        return [Phase1QNetwork(state_dim, f, num_actions, hidden_dim, num_hidden_layers) for f in goal_features]
