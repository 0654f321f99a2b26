"""From replay transitions to tensors: compile each transition once, assemble deduplicated batches.

A :class:`Transition` holds states (hashable tuples). On arrival in the learner it is *compiled* once into small
numpy arrays over interned state ids (the learner's :class:`Featurizer` owns the ids), so building a batch is
array concatenation, not Python work per successor:

* ``edge_*``: one entry per (robot action, successor) pair of the cached successor distributions, with the
  successor's id, probability, robot action, terminal flag and, per human, whether the transition's target goal
  is achieved at that successor.

A batch then deduplicates every state it touches (the batch states and all successors) into one node set, so
each distinct state is featurised and evaluated by each network once per training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from humanpower.goals import GoalSet
from humanpower.learn.encoding import Featurizer, StateBatch
from humanpower.learn.replay import Transition
from humanpower.worlds.protocol import WorldModel


@dataclass(slots=True)
class CompiledTransition:
    """A transition as stored in replay: interned state ids and flat successor edges."""

    state_id: int
    goals: np.ndarray
    """Target goal index per human (position in ``world.humans``), shape (H,)."""
    achieved_now: np.ndarray
    """Whether each human's target goal is already achieved at the state, shape (H,)."""
    edge_ids: np.ndarray
    edge_prob: np.ndarray
    edge_action: np.ndarray
    edge_terminal: np.ndarray
    edge_achieved: np.ndarray
    """Target goal achieved at the successor, shape (E, H)."""
    total_steps: int
    policy_version: int
    beta_r: float


class TransitionCompiler:
    """Compiles :class:`Transition` records against one world and one featurizer (learner side)."""

    def __init__(self, world: WorldModel, featurizer: Featurizer) -> None:
        self.world = world
        self.featurizer = featurizer
        self.goal_sets: list[GoalSet] = [world.goal_set(h) for h in world.humans]
        self._terminal = np.zeros(1024, dtype=bool)
        self._known = np.zeros(1024, dtype=bool)

    def _terminal_flags(self, ids: np.ndarray, states: Sequence[object]) -> np.ndarray:
        top = int(ids.max()) + 1
        if top > len(self._terminal):
            size = max(top, 2 * len(self._terminal))
            self._terminal = np.resize(self._terminal, size)
            self._known = np.resize(self._known, size)
            self._known[top:] = False
        for i, s in zip(ids.tolist(), states, strict=True):
            if not self._known[i]:
                self._terminal[i] = self.world.is_terminal(s)
                self._known[i] = True
        return self._terminal[ids]

    def __call__(self, t: Transition) -> CompiledTransition:
        succ_states: list[object] = []
        probs: list[float] = []
        actions: list[int] = []
        for a, dist in enumerate(t.successors):
            for p, s in dist:
                succ_states.append(s)
                probs.append(p)
                actions.append(a)
        ids = self.featurizer.intern([t.state, *succ_states])
        edge_ids = ids[1:]
        goals = [gs.goals[g] for gs, g in zip(self.goal_sets, t.goals, strict=True)]
        achieved = np.array([[g.is_achieved(s) for g in goals] for s in succ_states], dtype=bool)
        return CompiledTransition(
            state_id=int(ids[0]),
            goals=np.asarray(t.goals, dtype=np.int64),
            achieved_now=np.array([g.is_achieved(t.state) for g in goals], dtype=bool),
            edge_ids=edge_ids,
            edge_prob=np.asarray(probs, dtype=np.float64),
            edge_action=np.asarray(actions, dtype=np.int64),
            edge_terminal=self._terminal_flags(edge_ids, succ_states),
            edge_achieved=achieved.reshape(len(succ_states), len(goals)),
            total_steps=t.total_steps,
            policy_version=t.policy_version,
            beta_r=t.beta_r,
        )


@dataclass
class Batch:
    """One training batch over a deduplicated node set (all tensors on the learner's device).

    ``nodes`` holds every distinct state the batch touches; ``state_node`` maps each of the B transitions to its
    node, ``edge_node`` each successor edge. ``edge_row = b * A + robot_action`` groups edges by
    (transition, robot action).
    """

    nodes: StateBatch
    node_terminal: torch.Tensor
    state_node: torch.Tensor
    goals: torch.Tensor
    achieved_now: torch.Tensor
    edge_node: torch.Tensor
    edge_prob: torch.Tensor
    edge_row: torch.Tensor
    edge_terminal: torch.Tensor
    edge_achieved: torch.Tensor
    num_robot_actions: int

    @property
    def size(self) -> int:
        return int(self.state_node.shape[0])

    def states(self) -> StateBatch:
        """The B batch states as a StateBatch (rows may repeat)."""
        return self.nodes.select(self.state_node)


def assemble_batch(
    items: Sequence[CompiledTransition], featurizer: Featurizer, num_robot_actions: int, device: torch.device
) -> Batch:
    """Concatenate compiled transitions and deduplicate their states into one node set."""
    b = len(items)
    counts = np.fromiter((len(it.edge_ids) for it in items), dtype=np.int64, count=b)
    state_ids = np.fromiter((it.state_id for it in items), dtype=np.int64, count=b)
    edge_ids = np.concatenate([it.edge_ids for it in items])
    edge_row = np.repeat(np.arange(b, dtype=np.int64) * num_robot_actions, counts) + np.concatenate(
        [it.edge_action for it in items]
    )
    uniq, inverse = np.unique(np.concatenate([state_ids, edge_ids]), return_inverse=True)
    node_terminal = np.zeros(len(uniq), dtype=bool)
    edge_terminal = np.concatenate([it.edge_terminal for it in items])
    node_terminal[inverse[b:]] = edge_terminal

    def t(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dtype, device=device)

    return Batch(
        nodes=featurizer.batch_from_ids(uniq),
        node_terminal=t(node_terminal, torch.bool),
        state_node=t(inverse[:b], torch.long),
        goals=t(np.stack([it.goals for it in items]), torch.long),
        achieved_now=t(np.stack([it.achieved_now for it in items]), torch.bool),
        edge_node=t(inverse[b:], torch.long),
        edge_prob=t(np.concatenate([it.edge_prob for it in items]), torch.float32),
        edge_row=t(edge_row, torch.long),
        edge_terminal=t(edge_terminal, torch.bool),
        edge_achieved=t(np.concatenate([it.edge_achieved for it in items]), torch.bool),
        num_robot_actions=num_robot_actions,
    )
