"""Phase 1 and Phase 2 of the exact solver against values computed by hand on 2-3 state toy worlds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from humanpower.errors import UserError
from humanpower.exact import build_dag, solve, solve_phase1
from humanpower.params import TheoryParams
from humanpower.worlds.tabular import NodeGoal, TabularWorld


def goals(*node_sets: set[int]) -> list[NodeGoal]:
    return [NodeGoal(f"n{sorted(s)}", frozenset(s)) for s in node_sets]


# --- Toy 1: one step, the robot may half-block the human ------------------------------------------------
# Agents: human 0, robot 1; actions 0 = still, 1 = go. Nodes: 0 start, 1, 2. Goals of the human: {1}, {2}.
#   human still            -> node 2
#   human go, robot still  -> node 1
#   human go, robot block  -> node 1 or 2 with probability 1/2 each
def toy1() -> TabularWorld:
    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        a_h, a_r = joint
        if a_h == 0:
            return [(1.0, 2)]
        return [(1.0, 1)] if a_r == 0 else [(0.5, 1), (0.5, 2)]

    return TabularWorld(3, fn, humans=[0], robots=[1], num_actions=2, max_steps=1, goals={0: goals({1}, {2})})


def test_toy1_phase1_by_hand() -> None:
    world = toy1()
    params = TheoryParams(beta_h=1.0, gamma_h=0.9)
    dag = build_dag(world, progress=False)
    prior = solve_phase1(world, dag, params, keep_q=True)
    s0 = world.initial_state()
    g1, g2 = world.goal_set(0).goals
    # Goal {1}: Q(still) = min_r P(node 1) = 0; Q(go) = min(1, 1/2) = 1/2 (the robot blocks).
    # pi = softmax(1 * (0, 1/2)) = (1, e^0.5) / (1 + e^0.5); V^m = pi(go) * 1/2.
    e = math.exp(0.5)
    assert prior.q_m is not None
    np.testing.assert_allclose(prior.q_m[0][0, 0], [0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(prior.action_distribution(s0, 0, g1), [1 / (1 + e), e / (1 + e)], atol=1e-12)
    assert prior.v_m[0][0, 0] == pytest.approx(0.5 * e / (1 + e), abs=1e-12)
    # Goal {2}: Q(still) = 1; Q(go) = min(P(node 2) | robot still = 0, robot block = 1/2) = 0.
    # pi = softmax((1, 0)) = (e, 1) / (1 + e).
    np.testing.assert_allclose(prior.q_m[0][0, 1], [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(
        prior.action_distribution(s0, 0, g2), [math.e / (1 + math.e), 1 / (1 + math.e)], atol=1e-12
    )
    # Goal-marginal with equal weights.
    expected = 0.5 * (np.array([1 / (1 + e), e / (1 + e)]) + np.array([math.e, 1.0]) / (1 + math.e))
    np.testing.assert_allclose(prior.marginal_distribution(s0, 0), expected, atol=1e-12)


def test_toy1_phase2_by_hand() -> None:
    world = toy1()
    params = TheoryParams(
        beta_h=1.0, gamma_h=0.9, gamma_r=0.8, beta_r=3.0, zeta=2.0, xi=1.0, eta=1.5, terminal_v_r=-0.25
    )
    sol = solve(world, params)
    v = sol.values_at(world.initial_state())
    e = math.exp(0.5)
    # Every successor is terminal (V_r = -0.25): Q_r = 0.8 * -0.25 = -0.2 for both actions, pi_r uniform.
    assert v["Q_r"] == pytest.approx([-0.2, -0.2], abs=1e-12)
    assert v["pi_r"] == pytest.approx([0.5, 0.5], abs=1e-12)
    # V^e(g1) = pi_g1(go) * (1/2 * 1 + 1/2 * 1/2) = 0.75 e / (1 + e)   (a terminal successor still pays 1)
    # V^e(g2) = pi_g2(still) * 1 + pi_g2(go) * (1/2 * 0 + 1/2 * 1/2)
    ve1 = 0.75 * e / (1 + e)
    ve2 = math.e / (1 + math.e) + 0.25 / (1 + math.e)
    assert v["V_h_e"][0]["n[1]"] == pytest.approx(ve1, abs=1e-12)
    assert v["V_h_e"][0]["n[2]"] == pytest.approx(ve2, abs=1e-12)
    x = ve1**2 + ve2**2
    assert v["X_h"][0] == pytest.approx(x, abs=1e-12)
    u = -((1 / x) ** 1.5)
    assert v["U_r"] == pytest.approx(u, abs=1e-12)
    assert v["V_r"] == pytest.approx(u - 0.2, abs=1e-12)
    # Terminal states: V_r is the absolute constant, V^e = X = 0.
    for s in sol.states[1:]:
        tv = sol.values_at(s)
        assert tv["terminal"] and tv["V_r"] == -0.25 and tv["X_h"] == [0.0]


# --- Toy 2: two steps; the robot opens or closes the human's choice --------------------------------------
# Agents: human 0, robot 1; actions still / go. Nodes: 0 start; 1 open, 2 closed; 3, 4 the human's goals.
#   node 0: robot still -> 1 (open), robot go -> 2 (closed); the human has no influence.
#   node 1: human still -> 3, human go -> 4.      node 2: everything -> 3.
def toy2() -> TabularWorld:
    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        a_h, a_r = joint
        if node == 0:
            return [(1.0, 1 if a_r == 0 else 2)]
        if node == 1:
            return [(1.0, 3 if a_h == 0 else 4)]
        return [(1.0, 3)]

    return TabularWorld(5, fn, humans=[0], robots=[1], num_actions=2, max_steps=2, goals={0: goals({3}, {4})})


def test_toy2_phase1_by_hand() -> None:
    world = toy2()
    params = TheoryParams(beta_h=math.log(3.0), gamma_h=0.9)
    dag = build_dag(world, progress=False)
    prior = solve_phase1(world, dag, params, keep_q=True)
    g3, g4 = world.goal_set(0).goals
    # At (1, open): Q(g3) = (1, 0), softmax with e^beta = 3 -> (3/4, 1/4); V^m = 3/4. Same for g4 mirrored.
    np.testing.assert_allclose(prior.action_distribution((1, 1), 0, g3), [0.75, 0.25], atol=1e-12)
    np.testing.assert_allclose(prior.action_distribution((1, 1), 0, g4), [0.25, 0.75], atol=1e-12)
    # At (1, closed): Q(g3) = (1, 1), Q(g4) = (0, 0): uniform. V^m(g3) = 1, V^m(g4) = 0.
    np.testing.assert_allclose(prior.action_distribution((1, 2), 0, g3), [0.5, 0.5], atol=1e-12)
    # At the start the robot minimises: Q(g3, .) = min(0.9 * 3/4, 0.9 * 1) = 0.675;
    # Q(g4, .) = min(0.675, 0) = 0.
    sid = dag.index[(0, 0)]
    assert prior.q_m is not None
    np.testing.assert_allclose(prior.q_m[0][sid], [[0.675, 0.675], [0.0, 0.0]], atol=1e-12)
    assert prior.v_m[0][sid].tolist() == pytest.approx([0.675, 0.0], abs=1e-12)


def test_toy2_phase2_by_hand() -> None:
    world = toy2()
    params = TheoryParams(
        beta_h=math.log(3.0),
        gamma_h=0.9,
        gamma_r=0.5,
        beta_r=2.0,
        zeta=2.0,
        xi=1.0,
        eta=1.0,
        terminal_v_r=-0.1,
    )
    sol = solve(world, params)
    # (1, open): V^e = (3/4, 3/4), X = 2 * 9/16 = 9/8, U_r = -8/9, Q_r = 0.5 * -0.1 = -0.05,
    # V_r = -8/9 - 0.05.
    v_open = sol.values_at((1, 1))
    assert v_open["X_h"][0] == pytest.approx(9 / 8, abs=1e-12)
    assert v_open["U_r"] == pytest.approx(-8 / 9, abs=1e-12)
    assert v_open["V_r"] == pytest.approx(-8 / 9 - 0.05, abs=1e-12)
    # (1, closed): V^e = (1, 0), X = 1, U_r = -1, V_r = -1.05.
    v_closed = sol.values_at((1, 2))
    assert v_closed["X_h"][0] == pytest.approx(1.0, abs=1e-12)
    assert v_closed["V_r"] == pytest.approx(-1.05, abs=1e-12)
    # Start: Q_r = 0.5 * (V_r(open), V_r(closed)); pi_r proportional to (-Q_r)^-2.
    q = np.array([0.5 * (-8 / 9 - 0.05), 0.5 * -1.05])
    w = (-q) ** -2.0
    pi = w / w.sum()
    v0 = sol.values_at((0, 0))
    assert v0["Q_r"] == pytest.approx(q.tolist(), abs=1e-12)
    assert v0["pi_r"] == pytest.approx(pi.tolist(), abs=1e-12)
    assert pi[0] == pytest.approx(0.55569, abs=1e-5)  # 4.53767 / (4.53767 + 3.62812); opening the choice is preferred
    # V^e at the start: 0.9 * (pi_open * 3/4 + pi_closed * 1) and 0.9 * (pi_open * 3/4 + pi_closed * 0).
    ve3 = 0.9 * (pi[0] * 0.75 + pi[1])
    ve4 = 0.9 * (pi[0] * 0.75)
    assert v0["V_h_e"][0]["n[3]"] == pytest.approx(ve3, abs=1e-12)
    assert v0["V_h_e"][0]["n[4]"] == pytest.approx(ve4, abs=1e-12)
    x0 = ve3**2 + ve4**2
    assert v0["X_h"][0] == pytest.approx(x0, abs=1e-12)
    assert v0["V_r"] == pytest.approx(-1 / x0 + float(pi @ q), abs=1e-12)


# --- Toy 3: two humans; the other human is averaged outside the min over the robot -----------------------
# Agents: humans 0, 1; robot 2; actions still / go. One step from node 0 to node 1 or 2.
#   node 1 iff human 0 goes and the robot does NOT match human 1's action; else node 2.
def toy3() -> TabularWorld:
    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        a0, a1, a_r = joint
        return [(1.0, 1 if (a0 == 1 and a1 != a_r) else 2)]

    g = goals({1}, {2})
    return TabularWorld(3, fn, humans=[0, 1], robots=[2], num_actions=2, max_steps=1, goals={0: g, 1: g})


def test_toy3_other_humans_averaged_outside_the_min() -> None:
    world = toy3()
    dag = build_dag(world, progress=False)
    prior = solve_phase1(world, dag, TheoryParams(beta_h=2.0), keep_q=True)
    assert prior.q_m is not None
    # Human 0, goal {1}: E_{a_1} min_{a_r} 1[a_1 != a_r] = 0 (the robot matches each a_1), not
    # min_{a_r} E_{a_1} 1[a_1 != a_r] = 1/2. So Q(still) = Q(go) = 0.
    np.testing.assert_allclose(prior.q_m[0][0, 0], [0.0, 0.0], atol=1e-12)
    # Goal {2}: Q(still) = 1, Q(go) = E_{a_1} min_{a_r} 1[a_1 == a_r] = 0.
    np.testing.assert_allclose(prior.q_m[0][0, 1], [1.0, 0.0], atol=1e-12)


# Toy 4: custom beliefs mu about the other human: node 1 iff both humans go (the robot has no influence).
def test_phase1_custom_beliefs_and_default_policy() -> None:
    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        return [(1.0, 1 if joint[0] == 1 and joint[1] == 1 else 2)]

    g = goals({1}, {2})
    world = TabularWorld(3, fn, humans=[0, 1], robots=[2], num_actions=2, max_steps=1, goals={0: g, 1: g})
    dag = build_dag(world, progress=False)
    # Human 0 believes human 1 goes with probability 0.8: Q(goal {1}) = (0, 0.8).
    prior = solve_phase1(
        world, dag, TheoryParams(beta_h=1.0), beliefs=lambda s, h, goal, o: np.array([0.2, 0.8]), keep_q=True
    )
    assert prior.q_m is not None
    np.testing.assert_allclose(prior.q_m[0][0, 0], [0.0, 0.8], atol=1e-12)
    # nu_h = 0.5 with a default policy that always goes: pi = 0.5 (0, 1) + 0.5 softmax(Q).
    params = TheoryParams(beta_h=1.0, nu_h=0.5)
    prior = solve_phase1(world, dag, params, default_policy=lambda s, h, goal: np.array([0.0, 1.0]))
    soft = np.exp([0.0, 0.5]) / np.exp([0.0, 0.5]).sum()  # uniform mu: Q(goal {1}) = (0, 1/2)
    np.testing.assert_allclose(prior.pi[0][0, 0], 0.5 * np.array([0.0, 1.0]) + 0.5 * soft, atol=1e-12)
    # At an achieved state the human rests regardless of nu_h (terminal states here).
    sid = dag.index[(1, 1)]
    np.testing.assert_allclose(prior.pi[0][sid, 0], [1.0, 0.0])


def test_x_h_zero_raises_user_error_naming_human_and_state() -> None:
    # Human 1's only goal is node 5, which no transition reaches: X_1 = 0 at the start state.
    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        return [(1.0, 1)]

    world = TabularWorld(
        6,
        fn,
        humans=[0, 1],
        robots=[2],
        num_actions=2,
        max_steps=1,
        goals={0: goals({1}), 1: goals({5})},
    )
    with pytest.raises(UserError, match=r"human 1 has X_h = 0 at the non-terminal state \(0, 0\)"):
        solve(world)
