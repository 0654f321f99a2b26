"""Phase 1 data: states with their cached successor distributions for every joint action, the collector, batches.

A :class:`StateModel` holds, for one non-terminal state, the exact successor distribution of every joint action
profile of all agents (from the world's :func:`~humanpower.worlds.protocol.transition_table`, distinct
distributions stored once as *rows*), which successors are terminal and which goals each successor (and the state
itself) achieves. The targets of (1) are model-based expectations over these cached distributions, so the data
only decides *which* states are trained, never the fixed point.

Behaviour (:class:`RandomWalkCollector`): a random walk that prefers states it has not compiled yet. From a state,
every agent, humans and robots, acts uniformly at random; when the successor drawn is one the walk has compiled
already and the state has non-terminal successors it has not, the walk moves to one of those instead (uniformly).
When the walk reaches the horizon it restarts, with probability 1/2 at ``world.initial_state()`` and otherwise at a
state drawn uniformly from the *frontier*: the non-terminal successors seen but not compiled yet (exploring starts;
when the frontier is empty, from the pool of all non-terminal successors seen). Each visited non-terminal state is
one replay item. A uniform walk revisits the states near the start many times and reaches few of the states in the
middle of the horizon; this walk compiles a new state at almost every visit until it has covered what it can reach,
so replay (which holds each state once) covers the reachable states about as fast as compiling allows. The walk
reaches every reachable state with positive probability; compiled state models are cached per state (bounded), so a
revisited state costs a dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from humanpower.goals import GoalSet
from humanpower.learn.encoding import Featurizer, StateBatch
from humanpower.worlds.protocol import State, WorldModel, transition_table

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

MODEL_CACHE_STATES = 250_000
"""Most compiled :class:`StateModel` s the collector keeps for revisits (emptied at once when full; the models of
states in replay are the same objects, so the cache adds only its dict)."""
START_POOL_STATES = 100_000
"""Most states in the exploring-starts pool (reservoir sampling beyond) and in the frontier (a random entry is
replaced when full)."""


@dataclass(frozen=True, slots=True)
class StateModel:
    """One non-terminal state's successor distributions under every joint action profile."""

    state: State
    successors: tuple[State, ...]
    """The distinct successor states (K) over all profiles."""
    terminal: BoolArray
    """(K,) whether each successor is terminal (the horizon)."""
    achieved: tuple[BoolArray, ...]
    """Per human position, (K, G_h): which goals each successor achieves."""
    state_achieved: tuple[BoolArray, ...]
    """Per human position, (G_h,): which goals the state itself achieves (the human rests there)."""
    row_offsets: IntArray
    """(R + 1,) edge range of each distinct distribution (row)."""
    edge_node: IntArray
    """(E,) successor (index into ``successors``) of each edge."""
    edge_prob: NDArray[np.float64]
    """(E,) its probability."""
    profile_rows: NDArray[np.int32]
    """(P,) the row of each joint action profile (agent 0 least significant)."""

    @property
    def num_rows(self) -> int:
        return int(self.row_offsets.shape[0] - 1)


AchievedFn = Callable[[State], tuple[BoolArray, ...]]
"""Per human position, the (G_h,) goals a state achieves."""


def achieved_masks(goal_sets: Sequence[GoalSet]) -> AchievedFn:
    """The plain :data:`AchievedFn` of ``goal_sets`` (every goal asked)."""
    return lambda s: tuple(gs.achieved_mask(s) for gs in goal_sets)


def compile_state(
    world: WorldModel, state: State, goal_sets: Sequence[GoalSet], achieved: AchievedFn | None = None
) -> StateModel:
    """The :class:`StateModel` of a non-terminal ``state`` (one batched transition-table call).

    ``achieved``: where the goal masks come from (default: every goal asked; the collector passes a cache).
    """
    achieved_of = achieved if achieved is not None else achieved_masks(goal_sets)
    a = world.num_actions
    table = transition_table(world, state, [range(a)] * world.num_agents)
    node_of: dict[State, int] = {}
    offsets = [0]
    nodes: list[int] = []
    probs: list[float] = []
    for dist in table.distributions:
        for p, s in dist:
            k = node_of.get(s)
            if k is None:
                k = node_of[s] = len(node_of)
            nodes.append(k)
            probs.append(p)
        offsets.append(len(nodes))
    successors = tuple(node_of)
    masks = [achieved_of(s) for s in successors]
    return StateModel(
        state=state,
        successors=successors,
        terminal=np.fromiter((world.is_terminal(s) for s in successors), dtype=bool, count=len(successors)),
        achieved=tuple(
            np.stack([m[h] for m in masks]).reshape(len(successors), len(gs)) for h, gs in enumerate(goal_sets)
        ),
        state_achieved=achieved_of(state),
        row_offsets=np.asarray(offsets, dtype=np.int64),
        edge_node=np.asarray(nodes, dtype=np.int64),
        edge_prob=np.asarray(probs, dtype=np.float64),
        profile_rows=np.asarray(table.index, dtype=np.int32),
    )


@dataclass(frozen=True, slots=True)
class Phase1Item:
    """A replay item: a compiled state with the learner's interned ids of it and its successors."""

    model: StateModel
    state_id: int
    successor_ids: IntArray
    total_steps: int
    """Phase 1 env steps when collected."""
    policy_version: int
    """Phase 1 training steps when collected."""


@dataclass(frozen=True)
class Phase1Batch:
    """B replayed states with their successor nodes and edges, as tensors (see :mod:`.targets` for shapes)."""

    states: StateBatch
    nodes: StateBatch
    node_terminal: torch.Tensor
    node_achieved: tuple[torch.Tensor, ...]
    state_achieved: tuple[torch.Tensor, ...]
    edge_node: torch.Tensor
    edge_prob: torch.Tensor
    edge_row: torch.Tensor
    num_rows: int
    profile_rows: torch.Tensor


def assemble_batch(items: Sequence[Phase1Item], featurizer: Featurizer, device: torch.device) -> Phase1Batch:
    """Concatenate the items' nodes, rows and edges (offsets shifted) into one :class:`Phase1Batch`."""
    node_off = np.cumsum([0] + [len(it.successor_ids) for it in items])
    row_off = np.cumsum([0] + [it.model.num_rows for it in items])
    edge_row = np.concatenate(
        [
            np.repeat(np.arange(it.model.num_rows) + row_off[i], np.diff(it.model.row_offsets))
            for i, it in enumerate(items)
        ]
    )
    edge_node = np.concatenate([it.model.edge_node + node_off[i] for i, it in enumerate(items)])
    edge_prob = np.concatenate([it.model.edge_prob for it in items])
    profile_rows = np.stack([it.model.profile_rows.astype(np.int64) + row_off[i] for i, it in enumerate(items)])
    num_humans = len(items[0].model.achieved)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device)

    return Phase1Batch(
        states=featurizer.batch_from_ids(np.fromiter((it.state_id for it in items), np.int64, len(items))),
        nodes=featurizer.batch_from_ids(np.concatenate([it.successor_ids for it in items])),
        node_terminal=t(np.concatenate([it.model.terminal for it in items])),
        node_achieved=tuple(t(np.concatenate([it.model.achieved[h] for it in items])) for h in range(num_humans)),
        state_achieved=tuple(t(np.stack([it.model.state_achieved[h] for it in items])) for h in range(num_humans)),
        edge_node=t(edge_node),
        edge_prob=t(edge_prob),
        edge_row=t(edge_row),
        num_rows=int(row_off[-1]),
        profile_rows=t(profile_rows),
    )


class RandomWalkCollector:
    """Visits states by a uniformly random walk of all agents from the initial state (see the module docs)."""

    def __init__(self, world: WorldModel, goal_sets: Sequence[GoalSet], seed: int) -> None:
        self.world = world
        self.goal_sets = list(goal_sets)
        self.rng = np.random.default_rng([seed, 11])
        self.state: State = world.initial_state()
        self._models: dict[State, StateModel] = {}
        self._masks: dict[State, tuple[BoolArray, ...]] = {}
        self._plain_masks = achieved_masks(self.goal_sets)
        self.pool: list[State] = []
        """Non-terminal successors seen (exploring starts), at most :data:`START_POOL_STATES`."""
        self._pooled: set[State] = set()
        self._offered = 0
        self.frontier = _Frontier(self.rng)
        """Non-terminal successors seen and not compiled (exploring starts prefer them)."""

    def model(self, state: State) -> StateModel:
        """The compiled model of ``state`` (cached)."""
        m = self._models.get(state)
        if m is None:
            if len(self._models) >= MODEL_CACHE_STATES:
                self._models.clear()
            m = self._models[state] = compile_state(self.world, state, self.goal_sets, self._achieved)
            self.frontier.discard(state)
            for s, terminal in zip(m.successors, m.terminal, strict=True):
                if terminal:
                    continue
                if s not in self._pooled:
                    self._offer(s)
                if s not in self._models:
                    self.frontier.add(s)
        return m

    def compiled(self, state: State) -> bool:
        """Whether the collector holds the compiled model of ``state``."""
        return state in self._models

    def _achieved(self, state: State) -> tuple[BoolArray, ...]:
        """Goal masks of ``state``, cached (successors recur across the states of a walk)."""
        hit = self._masks.get(state)
        if hit is None:
            if len(self._masks) >= 8 * MODEL_CACHE_STATES:
                self._masks.clear()
            hit = self._masks[state] = self._plain_masks(state)
        return hit

    def _offer(self, state: State) -> None:
        """Reservoir sampling of the distinct non-terminal successors into the exploring-starts pool."""
        self._offered += 1
        if len(self.pool) < START_POOL_STATES:
            self.pool.append(state)
            self._pooled.add(state)
            return
        k = int(self.rng.integers(self._offered))
        if k < START_POOL_STATES:
            self._pooled.discard(self.pool[k])
            self.pool[k] = state
            self._pooled.add(state)

    def _restart(self) -> State:
        if self.pool and self.rng.random() < 0.5:
            if len(self.frontier):
                return self.frontier.sample()
            return self.pool[int(self.rng.integers(len(self.pool)))]
        return self.world.initial_state()

    def step(self) -> StateModel:
        """The model of the current state; then moves on (preferring a successor not compiled yet; restarting
        at the horizon, see the module docs)."""
        m = self.model(self.state)
        row = int(m.profile_rows[int(self.rng.integers(len(m.profile_rows)))])
        lo, hi = int(m.row_offsets[row]), int(m.row_offsets[row + 1])
        pick = lo + int(self.rng.choice(hi - lo, p=m.edge_prob[lo:hi] / m.edge_prob[lo:hi].sum()))
        nxt = m.successors[int(m.edge_node[pick])]
        if nxt in self._models:
            new = [k for k, s in enumerate(m.successors) if not m.terminal[k] and s not in self._models]
            if new:
                nxt = m.successors[new[int(self.rng.integers(len(new)))]]
        self.state = self._restart() if self.world.is_terminal(nxt) else nxt
        return m

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "rng": self.rng.bit_generator.state,
            "pool": list(self.pool),
            "offered": self._offered,
            "frontier": list(self.frontier.items),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore the walk; the model cache starts empty (states compiled before are recompiled when visited)."""
        self.state = d["state"]
        self.rng.bit_generator.state = d["rng"]
        self.pool = list(d["pool"])
        self._pooled = set(self.pool)
        self._offered = int(d["offered"])
        self.frontier = _Frontier(self.rng, d.get("frontier", ()))  # checkpoints before the frontier: empty


class _Frontier:
    """A set of states with uniform sampling and O(1) add / discard, at most :data:`START_POOL_STATES` (when full,
    a new state replaces a uniformly drawn one)."""

    def __init__(self, rng: np.random.Generator, items: Sequence[State] = ()) -> None:
        self.rng = rng
        self.items: list[State] = []
        self._where: dict[State, int] = {}
        for s in items:
            self.add(s)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, state: State) -> None:
        if state in self._where:
            return
        if len(self.items) >= START_POOL_STATES:
            k = int(self.rng.integers(len(self.items)))
            del self._where[self.items[k]]
            self.items[k] = state
            self._where[state] = k
            return
        self._where[state] = len(self.items)
        self.items.append(state)

    def discard(self, state: State) -> None:
        k = self._where.pop(state, None)
        if k is None:
            return
        last = self.items.pop()
        if k < len(self.items):
            self.items[k] = last
            self._where[last] = k

    def sample(self) -> State:
        return self.items[int(self.rng.integers(len(self.items)))]
