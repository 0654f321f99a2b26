"""Thin adapters from any world model to Gymnasium and PettingZoo. Environment-agnostic.

Both adapters sample from the world's *exact* transition probabilities (``transition_probabilities`` and
:func:`~humanpower.worlds.protocol.sample_successor`) with their own RNG seeded by ``reset(seed=...)``, so a
run of an adapter is reproducible and can never disagree with the exact model.

Goals. Every human carries a goal drawn from its goal set (probability w(g) / W) at reset. After each step,
a human whose current goal holds in the new state has *achieved* it and draws a fresh goal (which may be the
same one; a human whose goal already holds rests, by the prior's convention, until it is resampled).

Horizon. The world's horizon is part of the model: a state whose step count equals ``max_steps`` is terminal
(``world.is_terminal``) and has value 0 in every equation, and the observations of the grid adapters carry
the remaining time. So by default the adapters report the horizon as ``terminated=True, truncated=False``:
an RL library must not bootstrap a value beyond it. ``horizon_terminates=False`` reports it as a time limit
instead (``terminated=False, truncated=True``), for libraries or users that treat the horizon as external.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, SupportsInt, TypeVar

import gymnasium
import numpy as np
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from humanpower.goals import Goal
from humanpower.worlds.protocol import (
    State,
    WorldModel,
    compose_joint_action,
    num_robot_actions,
    sample_successor,
)

if TYPE_CHECKING:
    from humanpower.humans.protocol import HumanPolicyPrior

ObsT = TypeVar("ObsT")
RewardFn = Callable[[State, State], float]
"""reward_fn(state, next_state) -> reward of the robot fleet for one step."""
RenderFn = Callable[[State], NDArray[np.uint8]]
"""render_fn(state) -> RGB array (H, W, 3)."""


def _sample_goals(world: WorldModel, rng: np.random.Generator) -> list[Goal]:
    """One goal per human (``world.humans`` order), drawn with probability w(g) / W."""
    goals = []
    for h in world.humans:
        goal_set = world.goal_set(h)
        goals.append(goal_set.goals[goal_set.sample_index(rng)])
    return goals


def _resample_achieved(world: WorldModel, goals: list[Goal], state: State, rng: np.random.Generator) -> list[bool]:
    """Which humans' goals hold in ``state``; draws new goals for those humans (in place)."""
    achieved = [g.is_achieved(state) for g in goals]
    for i, (h, done) in enumerate(zip(world.humans, achieved, strict=True)):
        if done:
            goal_set = world.goal_set(h)
            goals[i] = goal_set.goals[goal_set.sample_index(rng)]
    return achieved


class RobotFleetEnv(gymnasium.Env[ObsT, np.int64], Generic[ObsT]):
    """Gymnasium ``Env`` in which the robot fleet is the agent and the humans follow a policy prior.

    Action space: ``Discrete(num_actions ** len(robots))``, the flat joint robot action (robot 0 is the least
    significant digit, :func:`~humanpower.worlds.protocol.encode_robot_action`). Each step, every human draws
    its action from ``human_prior.action_distribution(state, human, goal)`` for its current goal (see the
    module docstring for goals and the horizon). The reward is ``reward_fn(state, next_state)`` (default 0).

    ``info`` (reset and step) holds ``state`` (the world state), ``goals`` (current goal per human, after
    resampling); step adds ``human_actions``, ``joint_action`` and ``goals_achieved`` (per human).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        world: WorldModel,
        human_prior: HumanPolicyPrior,
        observe: Callable[[State], ObsT],
        observation_space: gymnasium.spaces.Space[ObsT],
        reward_fn: RewardFn | None = None,
        *,
        render_fn: RenderFn | None = None,
        render_mode: str | None = None,
        horizon_terminates: bool = True,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if render_mode == "rgb_array" and render_fn is None:
            raise ValueError("render_mode='rgb_array' needs a render_fn(state)")
        self.world = world
        self.human_prior = human_prior
        self.observe = observe
        self.observation_space = observation_space
        self._num_robot_actions = num_robot_actions(world)
        self.action_space = gymnasium.spaces.Discrete(self._num_robot_actions)
        self.reward_fn = reward_fn
        self.render_fn = render_fn
        self.render_mode = render_mode
        self.horizon_terminates = horizon_terminates
        self._state: State | None = None
        self._goals: list[Goal] = []

    @property
    def current_state(self) -> State:
        """The world state of the running episode."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    @property
    def goals(self) -> tuple[Goal, ...]:
        """The humans' current goals (``world.humans`` order)."""
        return tuple(self._goals)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[ObsT, dict[str, Any]]:
        """Start at ``world.initial_state()`` with freshly sampled human goals."""
        super().reset(seed=seed)
        self._state = self.world.initial_state()
        self._goals = _sample_goals(self.world, self.np_random)
        return self.observe(self._state), {"state": self._state, "goals": self.goals}

    def step(self, action: SupportsInt) -> tuple[ObsT, float, bool, bool, dict[str, Any]]:
        """One world step: the fleet plays ``action``, the humans sample theirs from the prior."""
        state = self.current_state
        if self.world.is_terminal(state):
            raise RuntimeError("step() called after the episode ended; call reset()")
        rng = self.np_random
        robot_action = int(action)
        if not 0 <= robot_action < self._num_robot_actions:
            raise ValueError(f"action {robot_action} out of range 0..{self._num_robot_actions - 1}")
        human_actions = tuple(
            int(rng.choice(self.world.num_actions, p=self.human_prior.action_distribution(state, h, g)))
            for h, g in zip(self.world.humans, self._goals, strict=True)
        )
        joint = compose_joint_action(self.world, human_actions, robot_action)
        next_state = sample_successor(self.world.transition_probabilities(state, joint), rng)
        reward = 0.0 if self.reward_fn is None else float(self.reward_fn(state, next_state))
        achieved = _resample_achieved(self.world, self._goals, next_state, rng)
        self._state = next_state
        end = self.world.is_terminal(next_state)
        info = {
            "state": next_state,
            "goals": self.goals,
            "human_actions": human_actions,
            "joint_action": joint,
            "goals_achieved": tuple(achieved),
        }
        terminated = end and self.horizon_terminates
        truncated = end and not self.horizon_terminates
        return self.observe(next_state), reward, terminated, truncated, info

    def render(self) -> NDArray[np.uint8] | None:
        """The current state as an RGB array (``render_mode='rgb_array'``), else None."""
        if self.render_mode is None or self.render_fn is None:
            return None
        return self.render_fn(self.current_state)


def agent_name(world: WorldModel, agent: int) -> str:
    """PettingZoo name of agent index ``agent``: ``human_<i>`` or ``robot_<i>``."""
    return f"human_{agent}" if agent in world.humans else f"robot_{agent}"


class MultiAgentEnv(ParallelEnv[str, ObsT, np.int64], Generic[ObsT]):
    """PettingZoo ``ParallelEnv`` in which every human and every robot is an agent.

    Agents are named ``human_<i>`` / ``robot_<i>`` by agent index and all act every step with
    ``Discrete(num_actions)``; every agent observes ``observe(state)`` (the full state, one object shared by
    all agents; a policy tells agents apart by their names). A human's reward is 1 on each step after which
    its current (sampled) goal holds, else 0; robots get 0. All agents leave together at the horizon (see
    the module docstring); an agent terminated inside the world (e.g. in lava) stays in the env and its
    actions have no effect. ``infos[human]`` holds ``goal`` (its current goal) and, after a step,
    ``goal_achieved``; ``infos[robot]`` is empty.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012
        "name": "humanpower_multi_agent_v0",
        "render_modes": ["rgb_array"],
        "render_fps": 4,
    }

    def __init__(
        self,
        world: WorldModel,
        observe: Callable[[State], ObsT],
        observation_space: gymnasium.spaces.Space[ObsT],
        render_fn: RenderFn | None = None,
        *,
        horizon_terminates: bool = True,
    ) -> None:
        self.world = world
        self.observe = observe
        self.render_fn = render_fn
        self.render_mode = "rgb_array" if render_fn is not None else None
        self.horizon_terminates = horizon_terminates
        self.possible_agents = [agent_name(world, i) for i in range(world.num_agents)]
        self.agents: list[str] = []
        self._index = {name: i for i, name in enumerate(self.possible_agents)}
        self._observation_spaces = dict.fromkeys(self.possible_agents, observation_space)
        self._action_spaces = {name: gymnasium.spaces.Discrete(world.num_actions) for name in self.possible_agents}
        self._rng = np.random.default_rng()
        self._state: State | None = None
        self._goals: list[Goal] = []

    def observation_space(self, agent: str) -> gymnasium.spaces.Space[ObsT]:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space[np.int64]:
        return self._action_spaces[agent]

    @property
    def current_state(self) -> State:
        """The world state of the running episode."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def _infos(self, achieved: list[bool] | None) -> dict[str, dict[str, Any]]:
        infos: dict[str, dict[str, Any]] = {name: {} for name in self.agents}
        for i, h in enumerate(self.world.humans):
            name = self.possible_agents[h]
            if name in infos:
                infos[name]["goal"] = self._goals[i]
                if achieved is not None:
                    infos[name]["goal_achieved"] = achieved[i]
        return infos

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, ObsT], dict[str, dict[str, Any]]]:
        """Start at ``world.initial_state()`` with all agents and freshly sampled human goals."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for i, space in enumerate(self._action_spaces.values()):
                space.seed(seed + 1 + i)
        self._state = self.world.initial_state()
        self.agents = list(self.possible_agents)
        self._goals = _sample_goals(self.world, self._rng)
        obs = self.observe(self._state)
        return dict.fromkeys(self.agents, obs), self._infos(None)

    def step(
        self, actions: Mapping[str, SupportsInt]
    ) -> tuple[
        dict[str, ObsT],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """One world step with one action per live agent (all agents are live until the horizon)."""
        state = self.current_state
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset()")
        missing = [name for name in self.agents if name not in actions]
        unknown = [name for name in actions if name not in self._index]
        if missing or unknown:
            raise ValueError(f"actions: missing agents {missing}, unknown agents {unknown}")
        joint = tuple(int(actions[name]) for name in self.possible_agents)
        for name, a in zip(self.possible_agents, joint, strict=True):
            if not 0 <= a < self.world.num_actions:
                raise ValueError(f"action {a} of {name} out of range 0..{self.world.num_actions - 1}")
        next_state = sample_successor(self.world.transition_probabilities(state, joint), self._rng)
        achieved = _resample_achieved(self.world, self._goals, next_state, self._rng)
        self._state = next_state
        rewards = dict.fromkeys(self.agents, 0.0)
        for h, done in zip(self.world.humans, achieved, strict=True):
            if done:
                rewards[self.possible_agents[h]] = 1.0
        end = self.world.is_terminal(next_state)
        terminations = dict.fromkeys(self.agents, end and self.horizon_terminates)
        truncations = dict.fromkeys(self.agents, end and not self.horizon_terminates)
        obs = dict.fromkeys(self.agents, self.observe(next_state))
        infos = self._infos(achieved)
        if end:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> NDArray[np.uint8] | None:
        """The current state as an RGB array when a ``render_fn`` was given, else None."""
        if self.render_fn is None:
            return None
        return self.render_fn(self.current_state)

    def state(self) -> NDArray[Any]:
        """The global state as an array: ``observe(state)`` (every agent observes the full state)."""
        return np.asarray(self.observe(self.current_state))


__all__ = ["MultiAgentEnv", "RenderFn", "RewardFn", "RobotFleetEnv", "agent_name"]
