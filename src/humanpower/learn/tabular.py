"""Tabular backend: one learnable table row per interned state id, with the neural networks' interface.

Each tabular module holds one preallocated ``nn.Parameter`` of shape ``(max_states, width)``, indexed by
``StateBatch.ids`` (the :class:`~humanpower.learn.encoding.Featurizer`'s stable ids). A state id at or beyond
``max_states`` raises :class:`~humanpower.errors.ConfigError` (the table never grows, so the optimizer's
references stay valid), except in a model loaded from a policy file for evaluation
(:attr:`TabularTable.answers_unseen`): there such a state is one that training never saw, and it gets the
table's initial row, the value every untrained entry holds.

Entries hold the values themselves (value space, no squashing), clamped to each function's range on output.
The learner trains them with plain SGD on a loss that averages duplicate entries of a batch, so one training
step moves every entry it touches by ``p <- p + lr * (mean target - p)``: with ``lr`` in (0, 1] this is a convex
combination of targets, which keeps Q_r, V_r < 0, V_h^e in [0, 1] and X_h in (0, W_h] without the clamps ever
binding, and makes the backend a stochastic form of value iteration (fast and exact in the limit) for
debugging and exact checks. Initial values: V_h^e = 0.5, Q_r = V_r = ``init`` (default -1), X_h =
``init_fraction * W_h``, U_r's raw z = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from humanpower.errors import ConfigError
from humanpower.learn.encoding import StateBatch
from humanpower.learn.heads import TINY


def _negative(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(max=-TINY)


def _probability(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0)


class TabularTable(nn.Module):
    """Base of the tabular modules: a ``(max_states, width)`` parameter filled with ``init``."""

    def __init__(self, max_states: int, width: int, init: float) -> None:
        super().__init__()
        if max_states < 1 or width < 1:
            raise ValueError(f"TabularTable: max_states and width must be >= 1, got {max_states}, {width}")
        self.max_states = int(max_states)
        self.width = int(width)
        self.table = nn.Parameter(torch.full((self.max_states, self.width), float(init)))
        self.initial_row = torch.full((self.width,), float(init))
        """The row every entry starts from (not part of the state dict)."""
        self.answers_unseen = False
        """True in a model that never trains again (loaded for evaluation): ids beyond the table get
        :attr:`initial_row` instead of an error."""

    def check_ids(self, ids: torch.Tensor) -> None:
        """Raise ConfigError when some id does not fit the table."""
        if ids.numel() and int(ids.max()) >= self.max_states:
            raise ConfigError(
                f"tabular backend ({type(self).__name__}): state id {int(ids.max())} does not fit "
                f"max_states={self.max_states}; the learner has seen more distinct states than the table "
                "holds "
                "(raise max_states or use networks='neural')"
            )

    def rows(self, batch: StateBatch) -> torch.Tensor:
        """Raw table rows of the batch's states, (B, width)."""
        ids = batch.ids
        if self.answers_unseen and ids.numel() and int(ids.max()) >= self.max_states:
            unseen = (ids >= self.max_states).unsqueeze(1)
            known = self.table.index_select(0, ids.clamp(max=self.max_states - 1))
            return torch.where(unseen, self.initial_row.to(known.device, known.dtype), known)
        self.check_ids(ids)
        return self.table.index_select(0, ids)  # several times faster than advanced indexing on the CPU

    def entries(self, batch: StateBatch, cols: torch.Tensor) -> torch.Tensor:
        """``table[id, col]`` for each row's state id and column, (B,)."""
        if self.answers_unseen:
            return self.rows(batch).gather(1, cols.unsqueeze(1)).squeeze(1)
        self.check_ids(batch.ids)
        return self.table[batch.ids, cols]

    def extra_repr(self) -> str:
        return f"max_states={self.max_states}, width={self.width}"


class TabularQR(TabularTable):
    """Q_r(s, a_r) for every joint robot action: ``table[s]`` (B, num_actions), clamped < 0."""

    def __init__(self, num_actions: int, max_states: int, init: float = -1.0) -> None:
        super().__init__(max_states, num_actions, init)
        self.num_actions = int(num_actions)

    def forward(self, batch: StateBatch) -> torch.Tensor:
        return _negative(self.rows(batch))


class TabularVHE(TabularTable):
    """V_h^e(s, g_h) = table[s, offset_h + g] clamped to [0, 1]; one column per (human position, goal index)."""

    goal_offsets: torch.Tensor

    def __init__(self, num_goals: Sequence[int], max_states: int, init: float = 0.5) -> None:
        if len(num_goals) == 0 or min(num_goals) < 1:
            raise ValueError(f"TabularVHE: every human needs >= 1 goal, got {list(num_goals)}")
        super().__init__(max_states, int(sum(num_goals)), init)
        self.num_goals = tuple(int(g) for g in num_goals)
        offsets = [0]
        for g in self.num_goals[:-1]:
            offsets.append(offsets[-1] + g)
        self.register_buffer("goal_offsets", torch.tensor(offsets, dtype=torch.long))

    @property
    def num_humans(self) -> int:
        return len(self.num_goals)

    def forward(self, batch: StateBatch, human_pos: torch.Tensor, goal_idx: torch.Tensor) -> torch.Tensor:
        """V_h^e for each (state, human position, goal index) query, (B,) in [0, 1]."""
        return _probability(self.entries(batch, self.goal_offsets[human_pos] + goal_idx))

    def forward_all_goals(self, batch: StateBatch, human_pos: int) -> torch.Tensor:
        """V_h^e for every goal of one human, (B, G_h) in [0, 1]."""
        start = int(self.goal_offsets[human_pos])
        return _probability(self.rows(batch)[:, start : start + self.num_goals[human_pos]])


class TabularXH(TabularTable):
    """X_h(s) = table[s, h] clamped to (0, W_h]; one column per human position."""

    total_weights: torch.Tensor

    def __init__(self, total_weights: Sequence[float], max_states: int, init_fraction: float = 0.5) -> None:
        weights = torch.tensor([float(w) for w in total_weights])
        super().__init__(max_states, len(total_weights), 0.0)
        with torch.no_grad():
            self.table.copy_((init_fraction * weights).expand(self.max_states, -1))
        self.initial_row = init_fraction * weights
        self.register_buffer("total_weights", weights)

    @property
    def num_humans(self) -> int:
        return self.width

    def forward_all(self, batch: StateBatch) -> torch.Tensor:
        """X_h of every human, (B, H)."""
        return torch.minimum(self.rows(batch).clamp(min=TINY), self.total_weights)

    def forward(self, batch: StateBatch, human_pos: torch.Tensor) -> torch.Tensor:
        """X_h of one human per row, (B,)."""
        return torch.minimum(self.entries(batch, human_pos).clamp(min=TINY), self.total_weights[human_pos])


class TabularUR(TabularTable):
    """The raw U_r parameter z(s) (B,) (the trainer reads z = log(y - y_min))."""

    def __init__(self, max_states: int, init: float = 0.0) -> None:
        super().__init__(max_states, 1, init)

    def forward(self, batch: StateBatch) -> torch.Tensor:
        return self.rows(batch)[:, 0]


class TabularVR(TabularTable):
    """V_r(s) = table[s] (B,), clamped < 0."""

    def __init__(self, max_states: int, init: float = -1.0) -> None:
        super().__init__(max_states, 1, init)

    def forward(self, batch: StateBatch) -> torch.Tensor:
        return _negative(self.rows(batch)[:, 0])


__all__ = ["TabularQR", "TabularTable", "TabularUR", "TabularVHE", "TabularVR", "TabularXH"]
