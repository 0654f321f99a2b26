"""Gymnasium / PettingZoo adapters: API checkers, joint-action wiring, goals, rewards, horizon, seeding."""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from dataclasses import dataclass

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from humanpower.goals import Goal, GoalSet
from humanpower.humans.uniform import UniformPrior
from humanpower.worlds.adapters import MultiAgentEnv, RobotFleetEnv, agent_name
from humanpower.worlds.grid.envs import gym_env, parallel_env
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.grid.observation import CH, grid_observation
from humanpower.worlds.grid.state import FORWARD, GridState
from humanpower.worlds.protocol import SimulatedWorld, Successors

# ---------------------------------------------------------------------------------------------------------
# A tiny world written here: agents on a line of 4 cells. State = (step, pos_0, pos_1, ...).
# Actions: 0 still, 1 left, 2 right (clipped at the ends); deterministic. Agent 0 human, agents 1.. robots.


@dataclass(frozen=True)
class AtCell:
    human: int
    cell: int

    def is_achieved(self, state: Hashable) -> bool:
        assert isinstance(state, tuple)
        return bool(state[1 + self.human] == self.cell)

    def __str__(self) -> str:
        return f"cell {self.cell}"


class LineWorld(SimulatedWorld):
    num_actions = 3
    action_names: tuple[str, ...] = ("still", "left", "right")

    def __init__(self, num_robots: int = 2, max_steps: int = 4, goals: tuple[int, ...] = (3,)) -> None:
        self.num_agents = 1 + num_robots
        self.humans: tuple[int, ...] = (0,)
        self.robots: tuple[int, ...] = tuple(range(1, 1 + num_robots))
        self.max_steps = max_steps
        self._goals = GoalSet.of([AtCell(0, c) for c in goals])

    def initial_state(self) -> tuple[int, ...]:
        return (0, *([0] * self.num_agents))

    def transition_probabilities(self, state: Hashable, joint_action: tuple[int, ...]) -> Successors:
        assert isinstance(state, tuple)
        if self.is_terminal(state):
            return []
        moves = (0, -1, 1)
        pos = [min(3, max(0, p + moves[a])) for p, a in zip(state[1:], joint_action, strict=True)]
        return [(1.0, (state[0] + 1, *pos))]

    def is_terminal(self, state: Hashable) -> bool:
        return self.step_count(state) >= self.max_steps

    def step_count(self, state: Hashable) -> int:
        assert isinstance(state, tuple)
        return int(state[0])

    def goal_set(self, human: int) -> GoalSet:
        return self._goals


class AlwaysRight:
    """A deterministic prior: the human always moves right (rests at an achieved goal)."""

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> np.ndarray:
        return np.array([1.0, 0.0, 0.0]) if goal.is_achieved(state) else np.array([0.0, 0.0, 1.0])

    def marginal_distribution(self, state: Hashable, human: int) -> np.ndarray:
        return np.array([0.0, 0.0, 1.0])


class Uniform:
    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> np.ndarray:
        return np.full(3, 1 / 3)

    def marginal_distribution(self, state: Hashable, human: int) -> np.ndarray:
        return np.full(3, 1 / 3)


def observe(state: Hashable) -> np.ndarray:
    assert isinstance(state, tuple)
    return np.asarray(state, dtype=np.int64)


def obs_space(world: LineWorld) -> gymnasium.spaces.Box:
    high = np.array([world.max_steps, *([3] * world.num_agents)], dtype=np.int64)
    return gymnasium.spaces.Box(low=0, high=high, dtype=np.int64)


def render_line(state: Hashable) -> np.ndarray:
    assert isinstance(state, tuple)
    img = np.zeros((8, 32, 3), dtype=np.uint8)
    for i, p in enumerate(state[1:]):
        img[2 * i : 2 * i + 2, 8 * p : 8 * p + 8] = 255
    return img


def fleet_env(world: LineWorld, prior: object = None, **kw: object) -> RobotFleetEnv[np.ndarray]:
    return RobotFleetEnv(world, prior or Uniform(), observe, obs_space(world), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------ Gym


def test_robot_fleet_env_passes_gymnasium_checker() -> None:
    env = fleet_env(LineWorld(), render_fn=render_line, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports problems as warnings: none allowed
        warnings.filterwarnings("ignore", message=".*not having a spec")  # we construct envs directly
        check_env(env)
    assert env.action_space == gymnasium.spaces.Discrete(9)


def test_flat_robot_action_robot0_least_significant_and_human_prior_drives_human() -> None:
    env = fleet_env(LineWorld(num_robots=2), AlwaysRight())
    obs, info = env.reset(seed=1)
    assert obs.tolist() == [0, 0, 0, 0]
    # flat 5 = 2 + 1 * 3: robot 1 (agent 1) plays 2 (right), robot 2 (agent 2) plays 1 (left, clipped at 0).
    obs, reward, terminated, truncated, info = env.step(5)
    assert info["joint_action"] == (2, 2, 1)
    assert info["human_actions"] == (2,)
    assert obs.tolist() == [1, 1, 1, 0]
    assert (reward, terminated, truncated) == (0.0, False, False)
    with pytest.raises(ValueError, match="out of range"):
        env.step(9)


def test_goal_achieved_then_resampled_reward_fn_and_horizon_terminates() -> None:
    calls: list[tuple[Hashable, Hashable]] = []

    def reward_fn(s: Hashable, s2: Hashable) -> float:
        calls.append((s, s2))
        return float(s2[1])  # type: ignore[index]

    env = fleet_env(LineWorld(num_robots=1, max_steps=4), AlwaysRight(), reward_fn=reward_fn)
    env.reset(seed=0)
    rewards, achieved, ends = [], [], []
    for _ in range(4):
        _, r, term, trunc, info = env.step(0)
        rewards.append(r)
        achieved.append(info["goals_achieved"][0])
        ends.append((term, trunc))
    # The human walks 0 -> 1 -> 2 -> 3 and rests at its goal, cell 3 (the only goal, resampled each time).
    assert rewards == [1.0, 2.0, 3.0, 3.0]
    assert achieved == [False, False, True, True]
    assert calls[0] == ((0, 0, 0), (1, 1, 0))
    assert ends == [(False, False)] * 3 + [(True, False)]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_horizon_as_truncation_when_asked() -> None:
    env = fleet_env(LineWorld(num_robots=1, max_steps=2), horizon_terminates=False)
    env.reset(seed=0)
    assert env.step(0)[2:4] == (False, False)
    assert env.step(0)[2:4] == (False, True)


def test_seeded_runs_repeat_and_goals_follow_weights() -> None:
    world = LineWorld(num_robots=1, max_steps=4, goals=(1, 2, 3))

    def run(seed: int) -> list[object]:
        env = fleet_env(world)
        _, info = env.reset(seed=seed)
        out: list[object] = [info["goals"]]
        for a in (2, 1, 0, 2):
            obs, *_, info = env.step(a)
            out += [obs.tolist(), info["goals"]]
        return out

    assert run(7) == run(7)
    env = fleet_env(world)
    counts = {1: 0, 2: 0, 3: 0}
    for seed in range(300):
        _, info = env.reset(seed=seed)
        counts[info["goals"][0].cell] += 1
    assert all(70 < c < 130 for c in counts.values()), counts  # 1/3 each


def test_render_requires_render_fn() -> None:
    with pytest.raises(ValueError, match="render_fn"):
        fleet_env(LineWorld(), render_mode="rgb_array")
    env = fleet_env(LineWorld(), render_fn=render_line, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame is not None and frame.shape == (8, 32, 3)
    assert fleet_env(LineWorld()).render() is None


# ----------------------------------------------------------------------------------------------- PettingZoo


def test_multi_agent_env_passes_pettingzoo_checker() -> None:
    world = LineWorld(num_robots=2, max_steps=5, goals=(0, 2, 3))
    env = MultiAgentEnv(world, observe, obs_space(world), render_fn=render_line)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel_api_test(env, num_cycles=20)
    assert env.possible_agents == ["human_0", "robot_1", "robot_2"]
    assert agent_name(world, 2) == "robot_2"


def test_multi_agent_rewards_goals_and_horizon() -> None:
    world = LineWorld(num_robots=1, max_steps=4, goals=(2,))
    env = MultiAgentEnv(world, observe, obs_space(world))
    obs, infos = env.reset(seed=3)
    assert set(obs) == {"human_0", "robot_1"}
    assert infos == {"human_0": {"goal": AtCell(0, 2)}, "robot_1": {}}
    trace = []
    for human_action in (2, 2, 0, 1):
        obs, rew, term, trunc, infos = env.step({"human_0": human_action, "robot_1": 2})
        trace.append((obs["human_0"].tolist(), rew["human_0"], rew["robot_1"], term["robot_1"], trunc["human_0"]))
    assert trace == [
        ([1, 1, 1], 0.0, 0.0, False, False),
        ([2, 2, 2], 1.0, 0.0, False, False),  # goal reached: reward 1, goal resampled (the same cell)
        ([3, 2, 3], 1.0, 0.0, False, False),  # still there after resting: achieved again
        ([4, 1, 3], 0.0, 0.0, True, False),  # horizon: everyone terminated, agents list empty
    ]
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_multi_agent_rejects_missing_or_unknown_agents() -> None:
    world = LineWorld(num_robots=1)
    env = MultiAgentEnv(world, observe, obs_space(world), horizon_terminates=False)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="missing agents \\['robot_1'\\]"):
        env.step({"human_0": 0})
    with pytest.raises(ValueError, match="unknown agents \\['robot_7'\\]"):
        env.step({"human_0": 0, "robot_1": 0, "robot_7": 1})
    for _ in range(world.max_steps - 1):
        env.step({"human_0": 0, "robot_1": 0})
    *_, term, trunc, _ = env.step({"human_0": 0, "robot_1": 0})
    assert term == {"human_0": False, "robot_1": False}
    assert trunc == {"human_0": True, "robot_1": True}


# ---------------------------------------------------------------------------------------------- grid worlds


def test_grid_gym_env_on_trivial_world() -> None:
    world = load_world("trivial")
    env = gym_env(world, UniformPrior(world))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*not having a spec")
        check_env(env)
    obs, info = env.reset(seed=0)
    assert isinstance(info["state"], GridState)
    np.testing.assert_array_equal(obs, grid_observation(world, info["state"]))
    assert env.action_space == gymnasium.spaces.Discrete(4)  # one robot, small action set
    # The robot (agent 0, facing east) pushes the rock from (2, 1) to (3, 1).
    obs, *_, info = env.step(FORWARD)
    assert info["state"].rocks == ((3, 1),) and info["state"].agents[0][:2] == (2, 1)
    assert obs[CH["rock"], 1, 3] == 1 and obs[CH["robot"], 1, 2] == 1
    frame = env.render()
    assert frame is not None and frame.shape[1] == 6 * 32 and frame.shape[0] > 4 * 32  # with caption


def test_grid_parallel_env_on_two_humans_world() -> None:
    world = load_world("two_humans")
    env = parallel_env(world)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel_api_test(env, num_cycles=world.max_steps + 5)
    assert env.possible_agents == [agent_name(world, i) for i in range(world.num_agents)]
    assert sorted(env.possible_agents) == ["human_0", "human_1", "robot_2"]
    obs, infos = env.reset(seed=1)
    assert obs["robot_2"].shape == env.observation_space("robot_2").shape
    assert str(infos["human_0"]["goal"]) in {str(g) for g, _ in world.goal_set(0)}
