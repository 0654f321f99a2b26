"""A generic explicit (tabular) world model: the second world-model family next to the gridworld.

Semantics
---------
The world has ``num_nodes`` abstract nodes ``0..num_nodes-1``. A state is the tuple ``(step, node)``: the step
count (0..max_steps) and the current node, so the same node at different steps is a different state and
the state graph is a DAG by construction. The episode starts at ``(0, initial_node)``. A state with
``step == max_steps`` is terminal (no transitions); from any other state ``(t, n)`` the joint action ``a``
(one action per agent) leads to ``(t + 1, n')`` with probability ``P(n' | n, a)``.

Transitions are given either as a function ``fn(node, joint_action) -> [(p, next_node), ...]`` or as an
array ``T[node, profile, next_node]`` of shape ``(num_nodes, num_actions ** num_agents, num_nodes)``, where
the joint action profile index has agent 0 as the least significant digit. Both forms are evaluated once,
validated (probabilities >= 0 summing to 1 within 1e-9; repeated successors merged) and stored as a table,
so transitions are cheap lookups afterwards.

Goals of a human are :class:`NodeGoal` (a set of nodes, achieved at any step) or any other
:class:`humanpower.goals.Goal` (e.g. :class:`humanpower.goals.StateSetGoal` with explicit ``(step, node)``
states), with weights. Agents are numbered ``0..num_agents-1``; ``humans`` and ``robots`` partition them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from humanpower.goals import Goal, GoalSet
from humanpower.worlds.protocol import (
    JointAction,
    SimulatedWorld,
    Successors,
    TransitionTable,
    generic_transition_table,
)

TabularState = tuple[int, int]
"""A tabular world state: ``(step, node)``."""
TransitionFn = Callable[[int, JointAction], Sequence[tuple[float, int]]]
"""``fn(node, joint_action) -> [(p, next_node), ...]``."""
GoalSpec = GoalSet | Sequence[Goal] | Sequence[tuple[Goal, float]]


@dataclass(frozen=True)
class NodeGoal:
    """A goal given as a set of nodes of a :class:`TabularWorld`: achieved at ``(t, n)`` iff n is in it."""

    name: str
    nodes: frozenset[int]

    def is_achieved(self, state: Hashable) -> bool:
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(f"NodeGoal expects a tabular (step, node) state, got {state!r}")
        return state[1] in self.nodes

    def __str__(self) -> str:
        return self.name


def _profile_tuple(index: int, num_agents: int, num_actions: int) -> JointAction:
    """Joint action of a flat profile index (agent 0 least significant)."""
    out = []
    for _ in range(num_agents):
        index, a = divmod(index, num_actions)
        out.append(a)
    return tuple(out)


def _profile_index(joint_action: JointAction, num_actions: int) -> int:
    index = 0
    for a in reversed(joint_action):
        index = index * num_actions + int(a)
    return index


def _as_goal_set(spec: GoalSpec) -> GoalSet:
    if isinstance(spec, GoalSet):
        return spec
    items: list[Any] = list(spec)
    if items and isinstance(items[0], tuple):
        return GoalSet.of([g for g, _ in items], [float(w) for _, w in items])
    return GoalSet.of(items)


class TabularWorld(SimulatedWorld):
    """An explicit finite-horizon multi-agent world model over ``(step, node)`` states (see module docs).

    Args:
        num_nodes: number of nodes.
        transitions: ``fn(node, joint_action) -> [(p, next_node)]`` or an array ``(num_nodes, P, num_nodes)``.
        humans: agent indices of the humans; robots: agent indices of the robot fleet (together 0..n-1).
        num_actions: actions per agent (action 0 is ``still``).
        max_steps: the horizon.
        goals: per human agent index, its goals: a GoalSet, a list of goals, or a list of ``(goal, weight)``.
        initial_node: the node of the initial state.
        action_names: a name per action (default ``still, a1, a2, ...``).
        name: a display name.
    """

    def __init__(
        self,
        num_nodes: int,
        transitions: TransitionFn | NDArray[np.float64],
        *,
        humans: Sequence[int],
        robots: Sequence[int],
        num_actions: int,
        max_steps: int,
        goals: Mapping[int, GoalSpec],
        initial_node: int = 0,
        action_names: Sequence[str] | None = None,
        name: str = "tabular",
    ) -> None:
        self.num_agents = len(humans) + len(robots)
        self.humans = tuple(sorted(int(h) for h in humans))
        self.robots = tuple(sorted(int(r) for r in robots))
        if sorted(self.humans + self.robots) != list(range(self.num_agents)):
            raise ValueError(f"humans {self.humans} and robots {self.robots} must partition 0..n-1")
        if not self.humans:
            raise ValueError("a world needs at least one human")
        if num_actions < 1 or num_nodes < 1 or max_steps < 0:
            raise ValueError("num_actions and num_nodes must be >= 1, max_steps >= 0")
        if not 0 <= initial_node < num_nodes:
            raise ValueError(f"initial_node {initial_node} out of range 0..{num_nodes - 1}")
        self.num_nodes = int(num_nodes)
        self.num_actions = int(num_actions)
        self.max_steps = int(max_steps)
        self.initial_node = int(initial_node)
        self.name = name
        names = tuple(action_names) if action_names is not None else None
        if names is None:
            names = ("still", *(f"a{i}" for i in range(1, num_actions)))
        if len(names) != num_actions:
            raise ValueError(f"action_names: expected {num_actions} names, got {len(names)}")
        self.action_names = names
        self.num_profiles = self.num_actions**self.num_agents
        self._table = self._build_table(transitions)
        self._goal_sets: dict[int, GoalSet] = {}
        for h in self.humans:
            if h not in goals:
                raise ValueError(f"goals: no goals given for human {h}")
            self._goal_sets[h] = _as_goal_set(goals[h])
        extra = set(goals) - set(self.humans)
        if extra:
            raise ValueError(f"goals: given for non-human agents {sorted(extra)}")

    # -- construction -------------------------------------------------------------------------------------
    def _build_table(
        self, transitions: TransitionFn | NDArray[np.float64]
    ) -> list[list[tuple[tuple[float, int], ...]]]:
        table: list[list[tuple[tuple[float, int], ...]]] = []
        if callable(transitions):
            fn = transitions
            for node in range(self.num_nodes):
                row = []
                for j in range(self.num_profiles):
                    joint = _profile_tuple(j, self.num_agents, self.num_actions)
                    row.append(self._clean(node, joint, list(fn(node, joint))))
                table.append(row)
            return table
        arr = np.asarray(transitions, dtype=np.float64)
        expected = (self.num_nodes, self.num_profiles, self.num_nodes)
        if arr.shape != expected:
            raise ValueError(f"transition array: expected shape {expected}, got {arr.shape}")
        for node in range(self.num_nodes):
            row = []
            for j in range(self.num_profiles):
                nz = np.flatnonzero(arr[node, j])
                joint = _profile_tuple(j, self.num_agents, self.num_actions)
                row.append(self._clean(node, joint, [(float(arr[node, j, k]), int(k)) for k in nz]))
            table.append(row)
        return table

    def _clean(self, node: int, joint: JointAction, succ: list[tuple[float, int]]) -> tuple[tuple[float, int], ...]:
        merged: dict[int, float] = {}
        for p, n2 in succ:
            if not 0 <= int(n2) < self.num_nodes:
                raise ValueError(f"transition from node {node} under {joint}: next node {n2} out of range")
            if not p >= 0:
                raise ValueError(f"transition from node {node} under {joint}: probability {p} < 0")
            if p > 0:
                merged[int(n2)] = merged.get(int(n2), 0.0) + float(p)
        total = sum(merged.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"transition from node {node} under {joint}: probabilities sum to {total}, not 1")
        return tuple((p, n2) for n2, p in sorted(merged.items()))

    # -- WorldModel protocol ------------------------------------------------------------------------------
    def initial_state(self) -> TabularState:
        return (0, self.initial_node)

    def is_terminal(self, state: Hashable) -> bool:
        return self._unpack(state)[0] >= self.max_steps

    def step_count(self, state: Hashable) -> int:
        return self._unpack(state)[0]

    def transition_probabilities(self, state: Hashable, joint_action: JointAction) -> Successors:
        t, node = self._unpack(state)
        if t >= self.max_steps:
            return []
        if len(joint_action) != self.num_agents:
            raise ValueError(f"joint action {joint_action}: expected {self.num_agents} actions")
        entries = self._table[node][_profile_index(joint_action, self.num_actions)]
        return [(p, (t + 1, n2)) for p, n2 in entries]

    def all_transition_probabilities(self, state: Hashable) -> list[Successors]:
        """Successor distributions for every joint action profile in flat order (agent 0 least significant)."""
        t, node = self._unpack(state)
        if t >= self.max_steps:
            return [[] for _ in range(self.num_profiles)]
        return [[(p, (t + 1, n2)) for p, n2 in entries] for entries in self._table[node]]

    def transition_table(self, state: Hashable, choices: Sequence[Sequence[int]]) -> TransitionTable:
        """The batch hook of :class:`~humanpower.worlds.protocol.BatchTransitionModel`: every joint action's row of
        the table at once when ``choices`` hold every action of every agent, else one lookup per combination."""
        full = list(range(self.num_actions))
        if len(choices) == self.num_agents and all(list(c) == full for c in choices):
            dists = self.all_transition_probabilities(state)
            return TransitionTable(dists, range(len(dists)))
        return generic_transition_table(self, state, choices)

    def goal_set(self, human: int) -> GoalSet:
        try:
            return self._goal_sets[human]
        except KeyError:
            raise ValueError(f"agent {human} is not a human of this world (humans: {self.humans})") from None

    # -- helpers ------------------------------------------------------------------------------------------
    def _unpack(self, state: Hashable) -> TabularState:
        if not (isinstance(state, tuple) and len(state) == 2):
            raise TypeError(f"a tabular state is a (step, node) tuple, got {state!r}")
        return int(state[0]), int(state[1])

    def node_successors(self, node: int, joint_action: JointAction) -> tuple[tuple[float, int], ...]:
        """The node-level transition table entry ``[(p, next_node)]``."""
        return self._table[node][_profile_index(joint_action, self.num_actions)]

    def all_states(self) -> list[TabularState]:
        """Every ``(step, node)`` pair, reachable or not, ordered by step then node."""
        return [(t, n) for t in range(self.max_steps + 1) for n in range(self.num_nodes)]

    def states(self) -> list[TabularState]:
        """All states reachable from the initial state, level by level (by step), nodes ascending."""
        level = {self.initial_node}
        out: list[TabularState] = []
        for t in range(self.max_steps + 1):
            out.extend((t, n) for n in sorted(level))
            if t == self.max_steps:
                break
            level = {n2 for n in level for row in self._table[n] for _, n2 in row}
        return out


def partition_goals(num_nodes: int, num_goals: int, rng: np.random.Generator, prefix: str = "g") -> list[NodeGoal]:
    """Split the nodes into ``num_goals`` non-empty random groups, one :class:`NodeGoal` each.

    Goals that cover every node guarantee X_h > 0 at every non-terminal state (every successor is in a goal).
    """
    if not 1 <= num_goals <= num_nodes:
        raise ValueError(f"num_goals must be in 1..{num_nodes}, got {num_goals}")
    order = rng.permutation(num_nodes)
    labels = np.concatenate([np.arange(num_goals), rng.integers(0, num_goals, num_nodes - num_goals)])
    groups: list[set[int]] = [set() for _ in range(num_goals)]
    for node, lab in zip(order, labels, strict=True):
        groups[int(lab)].add(int(node))
    return [NodeGoal(f"{prefix}{i}:{sorted(g)}", frozenset(g)) for i, g in enumerate(groups)]


def random_tabular_world(
    seed: int,
    num_nodes: int = 6,
    num_humans: int = 1,
    num_robots: int = 1,
    num_actions: int = 3,
    max_steps: int = 3,
    *,
    goals_per_human: int = 3,
    stochastic_fraction: float = 0.3,
    branching: int = 2,
    weighted_goals: bool = False,
) -> TabularWorld:
    """A random :class:`TabularWorld` (seeded, reproducible).

    Humans are agents ``0..num_humans-1``, robots the following indices. For every node and joint action
    profile the successor is, with probability ``1 - stochastic_fraction``, one uniformly drawn node,
    otherwise a Dirichlet(1)-weighted distribution over ``branching`` distinct nodes. Each human's goals
    partition the nodes into ``goals_per_human`` non-empty node sets (so X_h > 0 at every non-terminal
    state); with ``weighted_goals`` their weights are drawn from U(0.5, 2), otherwise they are 1.
    """
    rng = np.random.default_rng(seed)
    num_agents = num_humans + num_robots
    profiles = num_actions**num_agents
    table = np.zeros((num_nodes, profiles, num_nodes))
    for node, j in itertools.product(range(num_nodes), range(profiles)):
        if rng.random() < stochastic_fraction and num_nodes >= 2:
            k = min(branching, num_nodes)
            targets = rng.choice(num_nodes, size=k, replace=False)
            table[node, j, targets] = rng.dirichlet(np.ones(k))
        else:
            table[node, j, int(rng.integers(num_nodes))] = 1.0
    goals: dict[int, GoalSpec] = {}
    for h in range(num_humans):
        gs = partition_goals(num_nodes, min(goals_per_human, num_nodes), rng, prefix=f"h{h}g")
        if weighted_goals:
            goals[h] = GoalSet.of(gs, list(rng.uniform(0.5, 2.0, len(gs))))
        else:
            goals[h] = GoalSet.of(gs)
    return TabularWorld(
        num_nodes,
        table,
        humans=range(num_humans),
        robots=range(num_humans, num_agents),
        num_actions=num_actions,
        max_steps=max_steps,
        goals=goals,
        name=f"random-{seed}",
    )


__all__ = [
    "NodeGoal",
    "TabularState",
    "TabularWorld",
    "TransitionFn",
    "partition_goals",
    "random_tabular_world",
]
