"""Exact event probabilities and sampled rollouts under the exact robot policy and a human prior."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from humanpower.exact.result import ExactSolution
from humanpower.goals import Goal
from humanpower.humans.joint import joint_human_distribution
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.worlds.protocol import State, WorldModel, action_distribution, compose_joint_action, sample_successor


def hitting_probability(
    world: WorldModel,
    solution: ExactSolution,
    prior: HumanPolicyPrior,
    event: Callable[[State], bool],
    goals: Mapping[int, Goal] | None = None,
) -> float:
    """Exact probability that a state satisfying ``event`` occurs before or at the horizon.

    Propagates the state distribution forward from the initial state: the robot fleet follows pi_r of
    ``solution``, the humans act independently, each with ``prior``'s goal-conditioned policy for the goal in
    ``goals`` (agent index -> goal) or, for humans not named there, the goal-marginal policy.
    """
    init = world.initial_state()
    if event(init):
        return 1.0
    dist: dict[State, float] = {init: 1.0}
    hit = 0.0
    while dist:
        nxt: dict[State, float] = defaultdict(float)
        for s, p in dist.items():
            if world.is_terminal(s):
                continue
            pi_r = solution.pi_r[solution.state_id(s)]
            humans = joint_human_distribution(world, prior, s, goals)
            for a_r in np.flatnonzero(pi_r > 0):
                for p_h, h_actions in humans:
                    w = p * float(pi_r[a_r]) * p_h
                    joint = compose_joint_action(world, h_actions, int(a_r))
                    for q, s2 in world.transition_probabilities(s, joint):
                        if event(s2):
                            hit += w * q
                        else:
                            nxt[s2] += w * q
        dist = nxt
    return hit


@dataclass(frozen=True)
class RolloutStep:
    """One step of a sampled rollout: the state, the actions taken there (None at the end)."""

    state: State
    human_actions: tuple[int, ...] | None
    robot_action: int | None


def sample_rollout(
    world: WorldModel,
    solution: ExactSolution,
    prior: HumanPolicyPrior,
    rng: np.random.Generator,
    goals: Mapping[int, Goal] | None = None,
) -> tuple[list[RolloutStep], dict[int, Goal]]:
    """One episode from the initial state to the horizon: robots from pi_r, each human from
    pi_h(s, g_h) with its goal g_h fixed for the episode (drawn from its goal set with probability
    w(g) / W unless given in ``goals``). Returns the steps and the goals used."""
    chosen: dict[int, Goal] = {}
    for h in world.humans:
        if goals is not None and h in goals:
            chosen[h] = goals[h]
        else:
            gs = world.goal_set(h)
            chosen[h] = gs.goals[gs.sample_index(rng)]
    s = world.initial_state()
    steps: list[RolloutStep] = []
    while not world.is_terminal(s):
        p_r = action_distribution(solution, s)
        a_r = int(rng.choice(len(p_r), p=p_r))
        acts = []
        for h in world.humans:
            p = np.asarray(prior.action_distribution(s, h, chosen[h]), dtype=np.float64)
            acts.append(int(rng.choice(len(p), p=p / p.sum())))
        steps.append(RolloutStep(s, tuple(acts), a_r))
        s = sample_successor(world.transition_probabilities(s, compose_joint_action(world, acts, a_r)), rng)
    steps.append(RolloutStep(s, None, None))
    return steps, chosen
