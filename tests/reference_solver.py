"""A deliberately naive, per-state recursive implementation of equations (1)-(9) for cross-checking the
vectorised exact solver on small worlds. Written straight from EQUATIONS.md with dicts and loops."""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable
from functools import cache

import numpy as np

from humanpower.params import TheoryParams
from humanpower.worlds.protocol import WorldModel, compose_joint_action, num_robot_actions


def reference_phase1(world: WorldModel, params: TheoryParams):
    """Returns pi(state, human, goal_index) -> np.ndarray via memoised recursion (uniform pi0 and mu)."""
    a_count = world.num_actions
    n_r = num_robot_actions(world)

    @cache
    def v_m(state: Hashable, h: int, gi: int) -> float:
        if world.is_terminal(state):
            return 0.0
        q = q_m(state, h, gi)
        return float(np.dot(pi(state, h, gi), q))

    def payoff(s2: Hashable, h: int, gi: int) -> float:
        g = world.goal_set(h).goals[gi]
        return 1.0 if g.is_achieved(s2) else params.gamma_h * v_m(s2, h, gi)

    @cache
    def q_m(state: Hashable, h: int, gi: int) -> tuple[float, ...]:
        if world.is_terminal(state):
            return (0.0,) * a_count
        others = [o for o in world.humans if o != h]
        out = []
        for a_h in range(a_count):
            total = 0.0
            combos = list(itertools.product(range(a_count), repeat=len(others)))
            for combo in combos:
                best = math.inf
                for a_r in range(n_r):
                    acts = {h: a_h, **dict(zip(others, combo, strict=True))}
                    joint = compose_joint_action(world, [acts[x] for x in world.humans], a_r)
                    val = sum(p * payoff(s2, h, gi) for p, s2 in world.transition_probabilities(state, joint))
                    best = min(best, val)
                total += best / len(combos)
            out.append(total)
        return tuple(out)

    @cache
    def pi(state: Hashable, h: int, gi: int) -> np.ndarray:
        g = world.goal_set(h).goals[gi]
        if g.is_achieved(state):
            out = np.zeros(a_count)
            out[0] = 1.0
            return out
        q = np.array(q_m(state, h, gi))
        z = np.exp(params.beta_h * (q - q.max()))
        soft = z / z.sum()
        return params.nu_h / a_count + (1 - params.nu_h) * soft

    return pi


def reference_phase2(world: WorldModel, params: TheoryParams, pi):
    """Returns functions q_r(state), v_r(state), x_h(state), v_e(state, h, gi) for the prior ``pi``."""
    a_count = world.num_actions
    n_r = num_robot_actions(world)

    def marginal(state, h):
        gs = world.goal_set(h)
        return sum(p * pi(state, h, gi) for gi, p in enumerate(gs.probabilities))

    @cache
    def q_r(state):
        out = []
        for a_r in range(n_r):
            total = 0.0
            for combo in itertools.product(range(a_count), repeat=len(world.humans)):
                w = 1.0
                for h, a in zip(world.humans, combo, strict=True):
                    w *= marginal(state, h)[a]
                if w == 0:
                    continue
                joint = compose_joint_action(world, combo, a_r)
                total += w * sum(p * params.gamma_r * v_r(s2) for p, s2 in world.transition_probabilities(state, joint))
            out.append(total)
        return np.array(out)

    @cache
    def pi_r(state):
        q = q_r(state)
        logits = -params.beta_r * np.log(-q)
        z = np.exp(logits - logits.max())
        return z / z.sum()

    @cache
    def v_e(state, h, gi):
        if world.is_terminal(state):
            return 0.0
        g = world.goal_set(h).goals[gi]
        pr = pi_r(state)
        total = 0.0
        for combo in itertools.product(range(a_count), repeat=len(world.humans)):
            w = 1.0
            for hh, a in zip(world.humans, combo, strict=True):
                w *= (pi(state, hh, gi) if hh == h else marginal(state, hh))[a]
            if w == 0:
                continue
            for a_r in range(n_r):
                joint = compose_joint_action(world, combo, a_r)
                for p, s2 in world.transition_probabilities(state, joint):
                    val = 1.0 if g.is_achieved(s2) else params.gamma_h * v_e(s2, h, gi)
                    total += w * pr[a_r] * p * val
        return total

    def x_h(state, h):
        gs = world.goal_set(h)
        return sum(w * v_e(state, h, gi) ** params.zeta for gi, w in enumerate(gs.weights))

    @cache
    def v_r(state):
        if world.is_terminal(state):
            return params.terminal_v_r
        y = np.mean([x_h(state, h) ** (-params.xi) for h in world.humans])
        u = -(y**params.eta)
        return u + float(np.dot(pi_r(state), q_r(state)))

    return q_r, pi_r, v_r, x_h, v_e
