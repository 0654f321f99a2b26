"""Rollouts of a trained robot policy: frames for GIF/MP4 and statistics (human power, goal-reach rates)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.learn.evaluate import LearnedModel
from humanpower.worlds.protocol import SimulatorModel, State, compose_joint_action, sample_successor


@dataclass
class Episode:
    """One rollout: visited states, each human's goal (index) and per-step X_h and V_r."""

    states: list[State] = field(default_factory=list)
    goals: list[int] = field(default_factory=list)
    x_h: list[np.ndarray] = field(default_factory=list)
    v_r: list[float] = field(default_factory=list)
    reached: list[bool] = field(default_factory=list)


def run_episode(
    model: LearnedModel, world: SimulatorModel, prior: HumanPolicyPrior, rng: np.random.Generator
) -> Episode:
    """Humans draw a goal from their prior and act by pi_h; the robot acts by the learned pi_r (no exploration)."""
    goal_sets = model.goal_sets
    ep = Episode(goals=[gs.sample_index(rng) for gs in goal_sets])
    ep.reached = [False] * len(goal_sets)
    state = world.reset()
    while True:
        values = model.evaluate([state])
        ep.states.append(state)
        ep.x_h.append(values["x_h"][0])
        ep.v_r.append(float(values["v_r"][0]))
        for i, gs in enumerate(goal_sets):
            ep.reached[i] = ep.reached[i] or gs.goals[ep.goals[i]].is_achieved(state)
        if world.is_terminal(state):
            return ep
        human_actions = []
        for h, gs, g in zip(world.humans, goal_sets, ep.goals, strict=True):
            p = prior.action_distribution(state, h, gs.goals[g])
            human_actions.append(int(rng.choice(len(p), p=p)))
        pi = values["pi_r"][0]
        robot = int(rng.choice(len(pi), p=pi / pi.sum()))
        state = sample_successor(
            world.transition_probabilities(state, compose_joint_action(world, human_actions, robot)),
            world.np_random,
        )


def rollout_frames(
    model: LearnedModel,
    world: SimulatorModel,
    prior: HumanPolicyPrior,
    render: Callable[[State, str], np.ndarray],
    seed: int = 0,
) -> list[np.ndarray]:
    """Frames of one seeded rollout, captioned with the step, each human's X_h and V_r."""
    world.reset(seed=seed)
    ep = run_episode(model, world, prior, np.random.default_rng(seed))
    frames = []
    for t, (s, x, v) in enumerate(zip(ep.states, ep.x_h, ep.v_r, strict=True)):
        xs = " ".join(f"X{h}={val:.2f}" for h, val in zip(world.humans, x, strict=True))
        frames.append(render(s, f"t={t} {xs} V_r={v:.3f}"))
    return frames


def rollout_statistics(
    model: LearnedModel, world: SimulatorModel, prior: HumanPolicyPrior, episodes: int, seed: int = 0
) -> dict[str, list[float]]:
    """Mean human power W_h = log2 X_h over visited non-terminal states, and goal-reach rates, per human."""
    world.reset(seed=seed)
    rng = np.random.default_rng(seed)
    w_sum = np.zeros(len(world.humans))
    count = 0
    reached = np.zeros(len(world.humans))
    for _ in range(episodes):
        ep = run_episode(model, world, prior, rng)
        xs = np.array([x for s, x in zip(ep.states, ep.x_h, strict=True) if not world.is_terminal(s)])
        if len(xs):
            w_sum += np.log2(np.maximum(xs, 1e-300)).sum(axis=0)
            count += len(xs)
        reached += np.array(ep.reached, dtype=float)
    return {"W_h": (w_sum / max(count, 1)).tolist(), "goal_reach_rate": (reached / episodes).tolist()}
