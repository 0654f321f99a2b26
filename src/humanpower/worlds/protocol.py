"""The world-model protocol: everything the exact solver and the learner know about a world.

A world model is a finite-horizon multi-agent Markov model with *exact* transition probabilities.
Agents are numbered 0..num_agents-1; some are humans, the others form one robot fleet. All agents share
one action set of size ``num_actions`` (action 0 is ``still``).

States are small immutable hashable tuples holding everything that can change, the step count included.
Static layout lives in the world object. ``step``/``reset`` sample from ``transition_probabilities`` with the
world's own seeded RNG (Gymnasium style), so a simulated run and the exact model never disagree.

Joint robot actions: the fleet of K robots with A actions each acts in the joint space A^K. The flat index of
a joint robot action has robot 0 as the least significant digit (:func:`encode_robot_action`).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from humanpower.goals import GoalSet

State = Hashable
"""A world state: an immutable hashable value (a tuple in practice)."""
JointAction = tuple[int, ...]
"""One action per agent, indexed by agent index."""
Successors = list[tuple[float, State]]
"""Each distinct successor state once, with its probability (summing to 1 to 1e-12)."""


@runtime_checkable
class WorldModel(Protocol):
    """What a world must provide to be solved exactly or learned on.

    Attributes:
        num_agents: number of agents (humans and robots).
        humans: agent indices of the humans, ascending.
        robots: agent indices of the robots (the fleet), ascending.
        num_actions: actions per agent; action 0 is ``still`` (a human whose goal is achieved rests).
        action_names: a name per action index.
        max_steps: the horizon; a state whose step count equals it is terminal.
    """

    num_agents: int
    humans: tuple[int, ...]
    robots: tuple[int, ...]
    num_actions: int
    action_names: tuple[str, ...]
    max_steps: int

    def initial_state(self) -> State:
        """The state every episode starts from (step count 0)."""
        ...

    def transition_probabilities(self, state: State, joint_action: JointAction) -> Successors:
        """Exact successor distribution P(s' | s, a); empty for a terminal state."""
        ...

    def is_terminal(self, state: State) -> bool:
        """True at the horizon (step count == max_steps)."""
        ...

    def step_count(self, state: State) -> int:
        """Steps taken since the initial state (0..max_steps)."""
        ...

    def goal_set(self, human: int) -> GoalSet:
        """The possible goals G_h of human ``human`` with their weights."""
        ...


@dataclass(frozen=True)
class TransitionTable:
    """Successor distributions of one state for every combination of per-agent action choices.

    For choices ``C_0, ..., C_{n-1}`` (one non-empty action list per agent) the combinations are numbered with
    agent 0's choice as the least significant digit (the same order as flat joint robot actions and as the
    exact solver's profiles). ``distributions[index[j]]`` is the distribution of combination ``j``; a
    distribution shared by several combinations (actions with identical effect) may be stored once.
    """

    distributions: Sequence[Successors]
    index: Sequence[int]
    """One entry per combination: the position of its distribution in ``distributions``."""

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, j: int) -> Successors:
        """The successor distribution of combination ``j``."""
        return self.distributions[self.index[j]]


@runtime_checkable
class BatchTransitionModel(Protocol):
    """Optional fast path of a world model: successor distributions for many joint actions in one call.

    The exact solver asks for every joint action of a state; the learner's actors for every joint robot action
    with the humans' actions fixed. Worlds without it get :func:`generic_transition_table`.
    """

    def transition_table(self, state: State, choices: Sequence[Sequence[int]]) -> TransitionTable:
        """The distributions for every combination of ``choices`` (see :class:`TransitionTable`); each must
        equal ``transition_probabilities(state, joint)`` of its joint action, successors in the same order."""
        ...


def choice_combinations(choices: Sequence[Sequence[int]]) -> list[JointAction]:
    """Every joint action of ``choices`` in combination order (agent 0 least significant)."""
    return [tuple(reversed(c)) for c in itertools.product(*reversed([list(c) for c in choices]))]


def generic_transition_table(world: WorldModel, state: State, choices: Sequence[Sequence[int]]) -> TransitionTable:
    """The :class:`TransitionTable` from one ``transition_probabilities`` call per combination (no sharing)."""
    dists = [world.transition_probabilities(state, joint) for joint in choice_combinations(choices)]
    return TransitionTable(dists, range(len(dists)))


def transition_table(world: WorldModel, state: State, choices: Sequence[Sequence[int]]) -> TransitionTable:
    """The world's batch hook when it has one (:class:`BatchTransitionModel`), else the generic table."""
    if isinstance(world, BatchTransitionModel):
        return world.transition_table(state, choices)
    return generic_transition_table(world, state, choices)


def robot_choices(world: WorldModel, human_actions: Sequence[int]) -> list[list[int]]:
    """Choices fixing each human (``world.humans`` order) at its action and letting every robot take any action:
    their combinations are the flat joint robot actions in order."""
    choices: list[list[int]] = [list(range(world.num_actions)) for _ in range(world.num_agents)]
    for h, a in zip(world.humans, human_actions, strict=True):
        choices[h] = [int(a)]
    return choices


@runtime_checkable
class SimulatorModel(WorldModel, Protocol):
    """A world model that can also be simulated (Gymnasium style, one RNG seeded through ``reset``)."""

    def reset(self, seed: int | None = None) -> State: ...

    def step(self, joint_action: JointAction) -> State: ...

    @property
    def np_random(self) -> np.random.Generator: ...


@runtime_checkable
class RobotPolicy(Protocol):
    """A robot fleet policy pi_r(s, .): the one interface through which anything acts or is evaluated.

    Implemented by the exact solution (:class:`humanpower.exact.ExactSolution`, its pi_r table), the trained
    model (:class:`humanpower.learn.evaluate.LearnedModel`, the power law at the nominal beta_r) and the actors'
    and learner's Q_r policies (:class:`humanpower.learn.policy.QPolicy`, power law plus epsilon-uniform
    exploration). :func:`humanpower.exact.evaluate_policy` evaluates any of them exactly.
    """

    def action_distributions(self, states: Sequence[State]) -> np.ndarray:
        """(len(states), A_r) float64 rows, each a probability vector over flat joint robot actions (robot 0 the
        least significant digit, :func:`encode_robot_action`)."""
        ...


def action_distribution(policy: RobotPolicy, state: State) -> np.ndarray:
    """pi_r(state, .) of ``policy``: the single-state form of :meth:`RobotPolicy.action_distributions`."""
    row: np.ndarray = policy.action_distributions([state])[0]
    return row


def num_robot_actions(world: WorldModel) -> int:
    """Size of the fleet's joint action space, num_actions ** len(robots)."""
    return int(world.num_actions ** len(world.robots))


def encode_robot_action(actions: Sequence[int], num_actions: int) -> int:
    """Flat index of a joint robot action; robot 0 is the least significant digit."""
    index = 0
    for a in reversed(actions):
        if not 0 <= a < num_actions:
            raise ValueError(f"robot action {a} out of range 0..{num_actions - 1}")
        index = index * num_actions + int(a)
    return index


def decode_robot_action(index: int, num_robots: int, num_actions: int) -> tuple[int, ...]:
    """Inverse of :func:`encode_robot_action`: the per-robot actions of a flat joint index."""
    if not 0 <= index < num_actions**num_robots:
        raise ValueError(f"joint robot action {index} out of range 0..{num_actions**num_robots - 1}")
    out = []
    for _ in range(num_robots):
        index, a = divmod(index, num_actions)
        out.append(a)
    return tuple(out)


def robot_action_name(world: WorldModel, index: int) -> str:
    """Readable name of a joint robot action, e.g. ``forward`` or ``(left, still)``."""
    parts = [world.action_names[a] for a in decode_robot_action(index, len(world.robots), world.num_actions)]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def compose_joint_action(world: WorldModel, human_actions: Sequence[int], robot_index: int) -> JointAction:
    """Full joint action from the humans' actions (in ``world.humans`` order) and a flat robot action."""
    joint = [0] * world.num_agents
    for h, a in zip(world.humans, human_actions, strict=True):
        joint[h] = int(a)
    robot_actions = decode_robot_action(robot_index, len(world.robots), world.num_actions)
    for r, a in zip(world.robots, robot_actions, strict=True):
        joint[r] = a
    return tuple(joint)


def sample_successor(successors: Successors, rng: np.random.Generator) -> State:
    """Draw one successor from an exact distribution (inverse CDF, one uniform draw)."""
    u = rng.random()
    acc = 0.0
    for p, s in successors:
        acc += p
        if u < acc:
            return s
    return successors[-1][1]


class SimulatedWorld:
    """Gymnasium-style ``reset``/``step`` for any world model, sampling from its exact transitions.

    Subclasses (the gridworld, the tabular world) implement the :class:`WorldModel` methods; this mixin gives
    them one RNG seeded through ``reset(seed=...)``.
    """

    _rng: np.random.Generator
    _state: State | None = None

    def reset(self, seed: int | None = None) -> State:
        """Start a new episode at ``initial_state()``; ``seed`` re-seeds the world's own RNG."""
        if seed is not None or not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(seed)
        self._state = self.initial_state()  # type: ignore[attr-defined]
        return self._state

    @property
    def np_random(self) -> np.random.Generator:
        """The world's own RNG (seeded by ``reset(seed=...)``), for code that samples its transitions."""
        if not hasattr(self, "_rng"):
            self._rng = np.random.default_rng()
        return self._rng

    @property
    def state(self) -> State:
        """The current state of the simulated episode (after ``reset``)."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        return self._state

    def step(self, joint_action: JointAction) -> State:
        """Advance the simulated episode by one step; returns the sampled successor state."""
        state = self.state
        successors = self.transition_probabilities(state, joint_action)  # type: ignore[attr-defined]
        if not successors:
            raise RuntimeError("step() called on a terminal state; call reset()")
        self._state = sample_successor(successors, self._rng)
        return self._state
