"""The neural Phase 2 network modules: the shared base :class:`Phase2Network` (state trunk, state memo) and Q_r,
V_h^e, X_h, U_r, V_r. Their interface, architecture and container are described in
:mod:`humanpower.learn.networks` (which re-exports every name here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from humanpower.learn.encoding import StateBatch
from humanpower.learn.heads import (
    inverse_negative,
    inverse_probability,
    negative_head,
    power_head,
    probability_head,
)
from humanpower.learn.layers import (
    DEFAULT_MEMO_CAPACITY,
    DEFAULT_MEMO_REFILL,
    MEMO_ROW_MULTIPLE,
    FastDropout,
    SparseInputLinear,
    StateMemo,
)


def mlp_trunk(in_dim: int, hidden_dim: int, num_hidden_layers: int, dropout: float) -> nn.Sequential:
    """``num_hidden_layers`` x (Linear - ReLU - Dropout(dropout)); the identity for 0 layers.

    The first Linear is a :class:`~humanpower.learn.layers.SparseInputLinear` (an ``nn.Linear`` that also takes
    sparse rows).
    """
    layers: list[nn.Module] = []
    d = in_dim
    for i in range(num_hidden_layers):
        linear = SparseInputLinear(d, hidden_dim) if i == 0 else nn.Linear(d, hidden_dim)
        layers += [linear, nn.ReLU(), FastDropout(dropout)]
        d = hidden_dim
    return nn.Sequential(*layers)


class Phase2Network(nn.Module):
    """Environment-agnostic base: an MLP state trunk evaluated once per distinct state of a batch.

    Args:
        state_dim: feature dimension of ``StateBatch.features``.
        hidden_dim: units per hidden layer.
        num_hidden_layers: trunk depth (>= 0).
        dropout: dropout probability after each hidden layer (active in train mode only).
    """

    def __init__(self, state_dim: int, hidden_dim: int, num_hidden_layers: int, dropout: float) -> None:
        super().__init__()
        if state_dim < 1 or hidden_dim < 1 or num_hidden_layers < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"{type(self).__name__}: need state_dim >= 1, hidden_dim >= 1, num_hidden_layers >= 0, "
                f"0 <= dropout < 1; got {state_dim}, {hidden_dim}, {num_hidden_layers}, {dropout}"
            )
        self.state_dim = int(state_dim)
        self.hidden_dim = int(hidden_dim)
        self.trunk = mlp_trunk(state_dim, hidden_dim, num_hidden_layers, dropout)
        self.trunk_dim = hidden_dim if num_hidden_layers > 0 else state_dim
        self.state_memo: StateMemo | None = None

    def enable_state_memo(
        self,
        capacity: int = DEFAULT_MEMO_CAPACITY,
        features_of: Callable[[torch.Tensor], StateBatch] | None = None,
        refill: int = DEFAULT_MEMO_REFILL,
    ) -> None:
        """Remember per-state values by state id while evaluated in eval mode without gradients.

        Meant for frozen copies (target networks): values are recomputed after any change of the weights (see
        :class:`~humanpower.learn.layers.StateMemo` for the arguments), so enabling it never changes an output.
        """
        self.state_memo = StateMemo(capacity, features_of, refill)

    def _check_features(self, states: StateBatch) -> None:
        if states.dim != self.state_dim:
            raise ValueError(f"{type(self).__name__}: expected features of width {self.state_dim}, got {states.dim}")

    def trunk_codes(self, states: StateBatch, *, dropout: bool = True) -> torch.Tensor:
        """Trunk output of every row ``(N, trunk_dim)``; sparse rows go through the first layer sparsely.

        ``dropout=False`` skips the dropout layers whatever the module's mode (eval-mode values).
        """
        layers = list(self.trunk)
        sparse = states.sparse if layers and isinstance(layers[0], SparseInputLinear) else None
        if sparse is not None:
            first = layers[0]
            assert isinstance(first, SparseInputLinear)
            x = first.forward_sparse(sparse)
            layers = layers[1:]
        else:
            x = states.features
        for layer in layers:
            if isinstance(layer, nn.Dropout) and (not dropout or layer.p == 0.0 or not layer.training):
                continue  # the identity
            x = layer.forward(x)  # the module's function without nn.Module's call and hook dispatch
        return x

    def unique_codes(self, batch: StateBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Trunk output per distinct state ``(U, trunk_dim)`` and the row -> code index ``(B,)``.

        The index is None when every row is distinct (codes are then in row order). Only the distinct states'
        rows are gathered and encoded; repeated rows share their code (an embedding gather).
        """
        self._check_features(batch)
        distinct, inverse = batch.distinct_states()
        return self.trunk_codes(distinct), inverse

    def per_state(self, codes: torch.Tensor) -> torch.Tensor:
        """The network's per-state values from trunk codes (everything that depends on the state alone)."""
        raise NotImplementedError(f"{type(self).__name__} does not define per_state")

    def state_values(self, batch: StateBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`per_state` of every distinct state and the row index (None: values already per row).

        Served from the state memo when one is enabled and the network runs in eval mode without gradients.
        """
        memo = self.active_memo()
        if memo is not None:
            self._check_features(batch)
            return memo.lookup(self, batch, self._per_state_of_states), None
        codes, inverse = self.unique_codes(batch)
        return self.per_state(codes), inverse

    def prefetch(self, batch: StateBatch) -> None:
        """Evaluate every row of ``batch`` into the state memo now, when the memo serves (eval mode, no gradients;
        otherwise nothing): later queries of those states are lookups, and the states new to the memo are
        computed in this one batch."""
        memo = self.active_memo()
        if memo is not None:
            self._check_features(batch)
            memo.lookup(self, batch, self._per_state_of_states)

    def active_memo(self) -> StateMemo | None:
        """The state memo if one is enabled and may serve now (eval mode, gradients disabled), else None."""
        memo = self.state_memo
        if memo is None or self.training or torch.is_grad_enabled():
            return None
        return memo

    def _per_state_of_states(self, states: StateBatch) -> torch.Tensor:
        return self.per_state(self.trunk_codes(states))

    def eval_values(self, states: StateBatch) -> torch.Tensor:
        """:meth:`per_state` of every row of ``states`` as in eval mode (no dropout), whatever the module's mode,
        without switching modes (cheap single-state acting on a network that is training)."""
        self._check_features(states)
        return self.per_state(self.trunk_codes(states, dropout=False))

    @staticmethod
    def gather(values: torch.Tensor, inverse: torch.Tensor | None) -> torch.Tensor:
        """Rows of per-distinct-state ``values`` for every batch row."""
        return values if inverse is None else values.index_select(0, inverse)


class QRNetwork(Phase2Network):
    """Q_r(s, a_r) for all joint robot actions at once: (B, num_actions), ``-softplus`` < 0.

    ``init`` is the initial output level (the head bias; the weights start small and random).
    """

    def __init__(
        self,
        state_dim: int,
        num_actions: int,
        hidden_dim: int,
        num_hidden_layers: int,
        dropout: float,
        init: float = -1.0,
    ) -> None:
        super().__init__(state_dim, hidden_dim, num_hidden_layers, dropout)
        self.num_actions = int(num_actions)
        self.head = nn.Linear(self.trunk_dim, self.num_actions)
        nn.init.constant_(self.head.bias, inverse_negative(init))

    def per_state(self, codes: torch.Tensor) -> torch.Tensor:
        return negative_head(self.head(codes))

    def forward(self, batch: StateBatch) -> torch.Tensor:
        return self.gather(*self.state_values(batch))


class VHENetwork(Phase2Network):
    """V_h^e(s, g_h) in [0, 1] for (state, human position, goal index) queries.

    Args:
        goal_features: per human position, the goal feature table ``(G_h, d_h)`` of its GoalSet in index
            order. Stored (zero-padded to the largest d_h, with a human one-hot appended) as the buffer
            ``query_features`` of shape ``(sum_h G_h, max d_h + H)``; ``goal_offsets[h]`` is human h's first
            row.
        init: initial output level (sigmoid of the output bias).
    """

    query_features: torch.Tensor
    goal_offsets: torch.Tensor
    MEMO_ALL_GOALS_MAX = 256
    """With the state memo serving, remember V_h^e for every goal of a state when there are at most this many
    (human, goal) pairs (queries are then lookups); otherwise remember the state part only."""

    def __init__(
        self,
        state_dim: int,
        goal_features: Sequence[NDArray[np.float32]],
        hidden_dim: int,
        num_hidden_layers: int,
        dropout: float,
        init: float = 0.5,
    ) -> None:
        super().__init__(state_dim, hidden_dim, num_hidden_layers, dropout)
        tables = [np.asarray(t, dtype=np.float32) for t in goal_features]
        if not tables or any(t.ndim != 2 or t.shape[0] < 1 for t in tables):
            raise ValueError("VHENetwork: need one goal feature table (G_h >= 1, d) per human")
        n_humans = len(tables)
        width = max(t.shape[1] for t in tables)
        query = np.zeros((sum(t.shape[0] for t in tables), width + n_humans), dtype=np.float32)
        offsets, row = [], 0
        for h, t in enumerate(tables):
            offsets.append(row)
            query[row : row + t.shape[0], : t.shape[1]] = t
            query[row : row + t.shape[0], width + h] = 1.0
            row += t.shape[0]
        self.num_goals = tuple(t.shape[0] for t in tables)
        self.register_buffer("query_features", torch.from_numpy(query))
        self.register_buffer("goal_offsets", torch.tensor(offsets, dtype=torch.long))
        self.goal_embed = nn.Sequential(nn.Linear(query.shape[1], hidden_dim), nn.ReLU())
        self.state_proj = nn.Linear(self.trunk_dim, hidden_dim)
        self.goal_proj = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.pair_dropout = FastDropout(dropout)
        self.out = nn.Linear(hidden_dim, 1)
        nn.init.constant_(self.out.bias, inverse_probability(init))

    @property
    def num_humans(self) -> int:
        return len(self.num_goals)

    def _goal_codes(self, rows: torch.Tensor | slice) -> torch.Tensor:
        q = self.query_features[rows] if isinstance(rows, slice) else self.query_features.index_select(0, rows)
        return self.goal_proj(self.goal_embed(q))

    def _all_goal_codes(self) -> torch.Tensor:
        """Goal codes of every (human, goal) row (remembered by the state memo when it serves)."""
        memo = self.active_memo()
        if memo is None:
            return self._goal_codes(slice(None))
        return memo.extra("goal_codes", lambda: self._goal_codes(slice(None)))

    def _pair_out(self, pre: torch.Tensor) -> torch.Tensor:
        return probability_head(self.out(self.pair_dropout(torch.relu(pre))).squeeze(-1))

    def per_state(self, codes: torch.Tensor) -> torch.Tensor:
        """The state part ``P_s h(s)`` of the pair pre-activation."""
        return self.state_proj(codes)

    def _memo_table(self, batch: StateBatch) -> torch.Tensor | None:
        """V_h^e of every (human, goal) per row, ``(B, sum_h G_h)``, from the state memo; None when the memo does
        not serve now or there are more than ``MEMO_ALL_GOALS_MAX`` goals (then the memo keeps state codes)."""
        memo = self.active_memo()
        if memo is None or self.query_features.shape[0] > self.MEMO_ALL_GOALS_MAX:
            return None
        self._check_features(batch)
        return memo.lookup(self, batch, self._all_pairs_of_states)

    def prefetch(self, batch: StateBatch) -> None:
        """:meth:`Phase2Network.prefetch` of what this network's memo holds (every (human, goal) value per state,
        or the state part when there are more than ``MEMO_ALL_GOALS_MAX`` goals)."""
        if self._memo_table(batch) is None:
            super().prefetch(batch)

    def _all_pairs_of_states(self, states: StateBatch) -> torch.Tensor:
        s = self.state_proj(self.trunk_codes(states))
        g = self._goal_codes(slice(None))
        # Bound the (rows, goals, hidden) temporary; chunks of whole multiples of MEMO_ROW_MULTIPLE rows keep
        # every row's result independent of the batch (see layers.composition_free).
        chunk = max(1, (1 << 22) // (g.shape[0] * g.shape[1] * MEMO_ROW_MULTIPLE)) * MEMO_ROW_MULTIPLE
        parts = [self._pair_values(s[i : i + chunk], g) for i in range(0, s.shape[0], chunk)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _pair_values(self, s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """:meth:`_pair_out` of every (row of ``s``, row of ``g``) pair, ``(len(s), len(g))``; without gradients
        the (rows, goals, hidden) temporary is rectified in place (the same values, one allocation less)."""
        pre = s.unsqueeze(1) + g.unsqueeze(0)
        if torch.is_grad_enabled() or (self.pair_dropout.training and self.pair_dropout.p > 0.0):
            return self._pair_out(pre)
        return probability_head(self.out.forward(pre.relu_()).squeeze(-1))

    def forward(self, batch: StateBatch, human_pos: torch.Tensor, goal_idx: torch.Tensor) -> torch.Tensor:
        """V_h^e for each row's (state, human position, goal index): (B,)."""
        rows = self.goal_offsets.index_select(0, human_pos) + goal_idx
        table = self._memo_table(batch)
        if table is not None:
            return table.gather(1, rows.unsqueeze(1)).squeeze(1)
        s = self.gather(*self.state_values(batch))
        if rows.shape[0] > self.query_features.shape[0] or self.active_memo() is not None:
            g = self._all_goal_codes().index_select(0, rows)
        else:
            g = self._goal_codes(rows)
        return self._pair_out(s + g)

    def forward_all_pairs(self, batch: StateBatch) -> torch.Tensor:
        """V_h^e for every (human, goal) pair: ``(B, sum_h G_h)``, the goals of human 0, then of human 1, ...

        The state trunk runs once for all humans (what :meth:`forward_all_goals` per human would repeat).
        """
        table = self._memo_table(batch)
        if table is not None:
            return table
        s, inverse = self.state_values(batch)
        return self.gather(self._pair_out(s.unsqueeze(1) + self._all_goal_codes().unsqueeze(0)), inverse)

    def forward_all_goals(self, batch: StateBatch, human_pos: int) -> torch.Tensor:
        """V_h^e for every goal of the human at position ``human_pos``: (B, G_h)."""
        start = sum(self.num_goals[:human_pos])  # = goal_offsets[human_pos], without a device read
        stop = start + self.num_goals[human_pos]
        table = self._memo_table(batch)
        if table is not None:
            return table[:, start:stop]
        s, inverse = self.state_values(batch)
        g = self._all_goal_codes()[start:stop]
        return self.gather(self._pair_out(s.unsqueeze(1) + g.unsqueeze(0)), inverse)


class XHNetwork(Phase2Network):
    """X_h(s) = W_h * sigmoid(.) in (0, W_h] for every human; ``init_fraction`` sets the initial X_h / W_h."""

    total_weights: torch.Tensor

    def __init__(
        self,
        state_dim: int,
        total_weights: Sequence[float],
        hidden_dim: int,
        num_hidden_layers: int,
        dropout: float,
        init_fraction: float = 0.5,
    ) -> None:
        super().__init__(state_dim, hidden_dim, num_hidden_layers, dropout)
        if len(total_weights) < 1 or min(total_weights) <= 0:
            raise ValueError(f"XHNetwork: need one positive total weight per human, got {list(total_weights)}")
        self.register_buffer("total_weights", torch.tensor([float(w) for w in total_weights]))
        self.head = nn.Linear(self.trunk_dim, len(total_weights))
        nn.init.constant_(self.head.bias, inverse_probability(init_fraction))

    @property
    def num_humans(self) -> int:
        return int(self.total_weights.shape[0])

    def per_state(self, codes: torch.Tensor) -> torch.Tensor:
        return power_head(self.head(codes), self.total_weights)

    def forward_all(self, batch: StateBatch) -> torch.Tensor:
        """X_h of every human: (B, H)."""
        return self.gather(*self.state_values(batch))

    def forward(self, batch: StateBatch, human_pos: torch.Tensor) -> torch.Tensor:
        """X_h of the human at ``human_pos[i]`` for row i: (B,)."""
        return self.forward_all(batch).gather(1, human_pos.view(-1, 1)).squeeze(1)


class URNetwork(Phase2Network):
    """The raw U_r network output z(s) (B,); the trainer reads z = log(y - y_min), y = mean_h X_h^(-xi)."""

    def __init__(
        self, state_dim: int, hidden_dim: int, num_hidden_layers: int, dropout: float, init: float = 0.0
    ) -> None:
        super().__init__(state_dim, hidden_dim, num_hidden_layers, dropout)
        self.head = nn.Linear(self.trunk_dim, 1)
        nn.init.constant_(self.head.bias, init)

    def per_state(self, codes: torch.Tensor) -> torch.Tensor:
        return self.head(codes).squeeze(-1)

    def forward(self, batch: StateBatch) -> torch.Tensor:
        return self.gather(*self.state_values(batch))


class VRNetwork(Phase2Network):
    """V_r(s) (B,), ``-softplus`` < 0."""

    def __init__(
        self, state_dim: int, hidden_dim: int, num_hidden_layers: int, dropout: float, init: float = -1.0
    ) -> None:
        super().__init__(state_dim, hidden_dim, num_hidden_layers, dropout)
        self.head = nn.Linear(self.trunk_dim, 1)
        nn.init.constant_(self.head.bias, inverse_negative(init))

    def per_state(self, codes: torch.Tensor) -> torch.Tensor:
        return negative_head(self.head(codes).squeeze(-1))

    def forward(self, batch: StateBatch) -> torch.Tensor:
        return self.gather(*self.state_values(batch))


__all__ = ["Phase2Network", "QRNetwork", "URNetwork", "VHENetwork", "VRNetwork", "XHNetwork", "mlp_trunk"]
