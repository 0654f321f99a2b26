"""From replay transitions to tensors: compile each transition once, assemble deduplicated batches.

A :class:`Transition` holds states (hashable tuples). On arrival in the learner it is *compiled* once into small
numpy arrays over interned state ids (the learner's :class:`Featurizer` owns the ids), so building a batch is
array concatenation, not Python work per successor:

* ``edge_*``: one entry per (robot action, successor) pair of the cached successor distributions, with the
  successor's id, probability, robot action, terminal flag and, per human, whether the transition's target goal
  is achieved at that successor.

With the actor's all-human-actions option (``v_h_e_all_goals``) a transition also carries, per human h, the
successors of every action a_h of h x every robot action; these compile to :class:`HumanEdges` (one edge per
(a_h, a_r, successor), with the achievement of *every* goal of h at the successor) plus the policy table
pi_h(s, g) for every goal and the goal-marginal sum_g w(g) pi_h(s, g) (normalised weights).

A batch then deduplicates every state it touches (the batch states and all successors) into one node set, so
each distinct state is featurised and evaluated by each network once per training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from humanpower.goals import GoalSet
from humanpower.learn.device import to_device
from humanpower.learn.encoding import Featurizer, StateBatch
from humanpower.learn.replay import Transition
from humanpower.worlds.protocol import WorldModel


@dataclass(slots=True)
class HumanEdges:
    """One human's all-actions successor edges of one transition (see the module docs)."""

    ids: np.ndarray
    """Successor state id per edge, (E,)."""
    prob: np.ndarray
    """P(s' | s, a_h, a_-h, a_r) per edge, (E,)."""
    row: np.ndarray
    """``a_h * A_r + a_r`` per edge, (E,)."""
    terminal: np.ndarray
    """Whether the successor is terminal, (E,)."""
    achieved: np.ndarray
    """Whether each goal of this human is achieved at the successor, (E, G_h)."""
    policy: np.ndarray
    """pi_h(s, g) for every goal, (G_h, A)."""
    marginal: np.ndarray
    """Goal-marginal action distribution sum_g w(g) pi_h(s, g) / W, (A,)."""


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
    human_edges: tuple[HumanEdges, ...] | None = None
    """Per human position, the all-actions edges (None unless the actor computed them)."""


class TransitionCompiler:
    """Compiles :class:`Transition` records against one world and one featurizer (learner side)."""

    def __init__(self, world: WorldModel, featurizer: Featurizer) -> None:
        self.world = world
        self.featurizer = featurizer
        self.goal_sets: list[GoalSet] = [world.goal_set(h) for h in world.humans]
        self._terminal = np.zeros(1024, dtype=bool)
        self._known = np.zeros(1024, dtype=bool)
        self._achieved = [np.zeros((1024, len(gs)), dtype=bool) for gs in self.goal_sets]
        self._achieved_known = [np.zeros(1024, dtype=bool) for _ in self.goal_sets]

    def _terminal_flags(self, ids: np.ndarray, states: Sequence[object]) -> np.ndarray:
        if ids.size == 0:
            return np.zeros(0, dtype=bool)
        top = int(ids.max()) + 1
        if top > len(self._terminal):
            # Grow with zeros (np.resize would repeat the old flags into the new slots).
            size = max(top, 2 * len(self._terminal))
            self._terminal = np.concatenate([self._terminal, np.zeros(size - len(self._terminal), dtype=bool)])
            self._known = np.concatenate([self._known, np.zeros(size - len(self._known), dtype=bool)])
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
        human_edges = None
        if t.human_successors is not None:
            if t.human_policies is None:
                raise ValueError("Transition: human_successors given without human_policies")
            human_edges = tuple(
                self._human_edges(i, per_action, np.asarray(pol, dtype=np.float64))
                for i, (per_action, pol) in enumerate(zip(t.human_successors, t.human_policies, strict=True))
            )
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
            human_edges=human_edges,
        )

    def _achieved_masks(self, human: int, ids: np.ndarray, states: Sequence[object]) -> np.ndarray:
        """(E, G_h) achievement of every goal of human position ``human`` at each state (cached per state id)."""
        gs = self.goal_sets[human]
        if ids.size == 0:
            return np.zeros((0, len(gs)), dtype=bool)
        top = int(ids.max()) + 1
        if top > len(self._achieved_known[human]):
            size = max(top, 2 * len(self._achieved_known[human]))
            table = np.zeros((size, len(gs)), dtype=bool)
            table[: len(self._achieved[human])] = self._achieved[human]
            known = np.zeros(size, dtype=bool)
            known[: len(self._achieved_known[human])] = self._achieved_known[human]
            self._achieved[human], self._achieved_known[human] = table, known
        table, known = self._achieved[human], self._achieved_known[human]
        for i, s in zip(ids.tolist(), states, strict=True):
            if not known[i]:
                table[i] = gs.achieved_mask(s)
                known[i] = True
        return table[ids]

    def _human_edges(
        self, human: int, per_action: Sequence[Sequence[Sequence[tuple[float, object]]]], policy: np.ndarray
    ) -> HumanEdges:
        gs = self.goal_sets[human]
        if policy.shape != (len(gs), len(per_action)):
            raise ValueError(
                f"Transition: human_policies[{human}] has shape {policy.shape}, expected {(len(gs), len(per_action))}"
            )
        num_r = len(per_action[0]) if per_action else 0
        states: list[object] = []
        probs: list[float] = []
        rows: list[int] = []
        for a, per_robot in enumerate(per_action):
            for r, dist in enumerate(per_robot):
                for p, s in dist:
                    states.append(s)
                    probs.append(p)
                    rows.append(a * num_r + r)
        ids = self.featurizer.intern(states)
        return HumanEdges(
            ids=ids,
            prob=np.asarray(probs, dtype=np.float64),
            row=np.asarray(rows, dtype=np.int64),
            terminal=self._terminal_flags(ids, states),
            achieved=self._achieved_masks(human, ids, states),
            policy=policy.astype(np.float32),
            marginal=gs.probabilities @ policy,
        )


@dataclass
class HumanEdgeBatch:
    """One human's all-actions edges over a batch: rows ``b * A * A_r + a_h * A_r + a_r``."""

    edge_node: torch.Tensor
    edge_prob: torch.Tensor
    edge_row: torch.Tensor
    edge_terminal: torch.Tensor
    edge_achieved: torch.Tensor
    """(E, G_h) achievement of every goal of the human at each edge's successor."""
    policy: torch.Tensor
    """(B, G_h, A) pi_h(s, g)."""
    marginal: torch.Tensor
    """(B, A) goal-marginal action distribution."""
    num_actions: int


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
    humans: list[HumanEdgeBatch] | None = None
    """Per human position, the all-actions edges (None unless every transition carries them)."""
    state_dedup: tuple[torch.Tensor, torch.Tensor] | None = None
    """Optional ``(unique_rows, inverse)`` of the B batch states (:attr:`StateBatch.unique_rows`,
    :attr:`StateBatch.inverse`), known when the batch was assembled."""

    @property
    def size(self) -> int:
        return int(self.state_node.shape[0])

    def states(self) -> StateBatch:
        """The B batch states as a StateBatch (rows may repeat; with their dedup info when known)."""
        out = self.nodes.select(self.state_node)
        if self.state_dedup is not None:
            out.unique_rows, out.inverse = self.state_dedup
        return out


def assemble_batch(
    items: Sequence[CompiledTransition], featurizer: Featurizer, num_robot_actions: int, device: torch.device
) -> Batch:
    """Concatenate compiled transitions and deduplicate their states into one node set.

    One pass over the items collects every field; equal-shaped per-item arrays (goals, policies) are joined by
    one concatenation and a reshape (what ``np.stack`` does, without its per-item checks).
    """
    b = len(items)
    (state_id, edge_ids_of, action_of, terminal_of, prob_of, achieved_of, goals_of, now_of, humans_of) = zip(
        *[
            (
                it.state_id,
                it.edge_ids,
                it.edge_action,
                it.edge_terminal,
                it.edge_prob,
                it.edge_achieved,
                it.goals,
                it.achieved_now,
                it.human_edges,
            )
            for it in items
        ],
        strict=True,
    )
    counts = np.fromiter(map(len, edge_ids_of), dtype=np.int64, count=b)
    state_ids = np.array(state_id, dtype=np.int64)
    edge_ids = np.concatenate(edge_ids_of)
    edge_row = np.repeat(np.arange(b, dtype=np.int64) * num_robot_actions, counts) + np.concatenate(action_of)
    with_humans = all(he is not None for he in humans_of)
    human_fields: list[tuple[tuple[np.ndarray, ...], ...]] = []
    if with_humans:
        for i in range(len(humans_of[0])):
            # per edge set of human i: ids, prob, row, terminal, achieved, policy, marginal (one tuple per field)
            human_fields.append(
                tuple(
                    zip(
                        *[
                            (e.ids, e.prob, e.row, e.terminal, e.achieved, e.policy, e.marginal)
                            for e in (he[i] for he in humans_of)
                        ],
                        strict=True,
                    )
                )
            )
    human_parts = [np.concatenate(fields[0]) for fields in human_fields]
    uniq, inverse = np.unique(np.concatenate([state_ids, edge_ids, *human_parts]), return_inverse=True)
    node_terminal = np.zeros(len(uniq), dtype=bool)
    edge_terminal = np.concatenate(terminal_of)
    n_edges = len(edge_ids)
    node_terminal[inverse[b : b + n_edges]] = edge_terminal

    def t(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return to_device(x, device, dtype)  # pinned, non-blocking on an accelerator

    humans: list[HumanEdgeBatch] | None = None
    if with_humans:
        humans = []
        offset = b + n_edges
        for fields, part in zip(human_fields, human_parts, strict=True):
            ids_h, prob_h, row_h, term_h, achieved_h, policy_h, marginal_h = fields
            num_g, num_a = policy_h[0].shape
            per_item = num_a * num_robot_actions
            counts_h = np.fromiter(map(len, ids_h), dtype=np.int64, count=b)
            rows = np.repeat(np.arange(b, dtype=np.int64) * per_item, counts_h) + np.concatenate(row_h)
            term = np.concatenate(term_h)
            node_ix = inverse[offset : offset + len(part)]
            node_terminal[node_ix] = term
            offset += len(part)
            humans.append(
                HumanEdgeBatch(
                    edge_node=t(node_ix, torch.long),
                    edge_prob=t(np.concatenate(prob_h), torch.float32),
                    edge_row=t(rows, torch.long),
                    edge_terminal=t(term, torch.bool),
                    edge_achieved=t(np.concatenate(achieved_h), torch.bool),
                    policy=t(np.concatenate(policy_h).reshape(b, num_g, num_a), torch.float32),
                    marginal=t(np.concatenate(marginal_h).reshape(b, num_a), torch.float32),
                    num_actions=num_a,
                )
            )

    state_node = inverse[:b]
    _, first, state_inverse = np.unique(state_node, return_index=True, return_inverse=True)
    return Batch(
        nodes=featurizer.batch_from_ids(uniq, distinct=True),
        node_terminal=t(node_terminal, torch.bool),
        state_node=t(state_node, torch.long),
        goals=t(np.concatenate(goals_of).reshape(b, -1), torch.long),
        achieved_now=t(np.concatenate(now_of).reshape(b, -1), torch.bool),
        edge_node=t(inverse[b : b + n_edges], torch.long),
        edge_prob=t(np.concatenate(prob_of), torch.float32),
        edge_row=t(edge_row, torch.long),
        edge_terminal=t(edge_terminal, torch.bool),
        edge_achieved=t(np.concatenate(achieved_of), torch.bool),
        num_robot_actions=num_robot_actions,
        humans=humans,
        state_dedup=(t(first, torch.long), t(state_inverse.reshape(-1), torch.long)),
    )
