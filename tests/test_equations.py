"""Every property of EQUATIONS.md "Properties to test", checked exactly (to 1e-9) or to the printed digits.

Where a property is about solved worlds it is computed by the exact solver on tiny tabular worlds, not only
by formula.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from humanpower.equations import power_law_policy, u_r_from_x, v_r_from, x_h_from_v
from humanpower.exact import solve
from humanpower.params import TheoryParams
from humanpower.worlds.tabular import NodeGoal, TabularWorld, random_tabular_world

SHARP = 60.0  # beta_h so large that the exact prior is deterministic to float precision (e^-60 ~ 1e-26)


def node_goals(nodes: range | list[int]) -> list[NodeGoal]:
    return [NodeGoal(f"n{n}", frozenset({n})) for n in nodes]


def choice_world(k: int, p_success: float = 1.0) -> TabularWorld:
    """One step: the human's action i leads to goal node 1 + i with probability p_success, else to node 0
    (no goal). No robots."""

    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        target = 1 + joint[0]
        return [(p_success, target)] if p_success == 1.0 else [(p_success, target), (1 - p_success, 0)]

    return TabularWorld(
        k + 1, fn, humans=[0], robots=[], num_actions=k, max_steps=1, goals={0: node_goals(range(1, k + 1))}
    )


def x0(world: TabularWorld, params: TheoryParams, prior: str = "exact") -> float:
    return float(solve(world, params, human_prior=prior).x_h[0, 0])  # type: ignore[arg-type]


# --- scale invariance -------------------------------------------------------------------------------------
def test_power_law_scale_invariance_numbers() -> None:
    a = power_law_policy(np.array([-1.0, -2.0]), 5.0)
    b = power_law_policy(np.array([-10.0, -20.0]), 5.0)
    np.testing.assert_allclose(a, b, atol=1e-15)
    assert a.round(4).tolist() == [0.9697, 0.0303]
    rng = np.random.default_rng(0)
    q = -rng.uniform(0.1, 5.0, size=(20, 6))
    for c in (1e-3, 0.5, 7.0, 1e4):
        np.testing.assert_allclose(power_law_policy(c * q, 3.7), power_law_policy(q, 3.7), atol=1e-12)


def scaled_world(b: float) -> TabularWorld:
    """Two steps. Step 0: the robot picks node 1 (open) or 2 (closed). Step 1: at node 1 the human's action a
    reaches goal node 3 + a, at node 2 every action reaches node 3; either only with probability b, otherwise
    the world falls into node 5 (no goal). Every V_h^e is therefore b times its value at b = 1."""

    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        a_h, a_r = joint
        if node == 0:
            return [(1.0, 1 + a_r)]
        target = 3 + a_h if node == 1 else 3
        return [(1.0, target)] if b == 1.0 else [(b, target), (1.0 - b, 5)]

    return TabularWorld(6, fn, humans=[0], robots=[1], num_actions=2, max_steps=2, goals={0: node_goals([3, 4])})


def test_scaling_v_h_e_scales_u_q_v_and_keeps_pi() -> None:
    params = TheoryParams(zeta=2.0, xi=1.3, eta=1.1, beta_r=4.0, gamma_r=0.9, gamma_h=0.8)
    b = 0.3
    factor = b ** (-params.zeta * params.xi * params.eta)
    base = solve(scaled_world(1.0), params, human_prior="uniform")
    # The terminal constant is absolute; scale it too so that the identity is exact.
    scaled_params = TheoryParams(**{**params.to_dict(), "terminal_v_r": params.terminal_v_r * factor})
    scaled = solve(scaled_world(b), scaled_params, human_prior="uniform")
    for state in [(0, 0), (1, 1), (1, 2)]:
        v1, v2 = base.values_at(state), scaled.values_at(state)
        for g in v1["V_h_e"][0]:
            assert v2["V_h_e"][0][g] == pytest.approx(b * v1["V_h_e"][0][g], rel=1e-12)
        assert v2["U_r"] == pytest.approx(factor * v1["U_r"], rel=1e-9)
        assert v2["V_r"] == pytest.approx(factor * v1["V_r"], rel=1e-9)
        np.testing.assert_allclose(v2["Q_r"], factor * np.array(v1["Q_r"]), rtol=1e-9)
        np.testing.assert_allclose(v2["pi_r"], v1["pi_r"], atol=1e-12)
    assert abs(base.values_at((0, 0))["pi_r"][0] - 0.5) > 0.1  # a non-trivial policy


def test_not_shift_invariant_numbers() -> None:
    assert power_law_policy(np.array([-2.0, -3.0]), 5.0).round(3).tolist() == [0.884, 0.116]
    assert power_law_policy(np.array([-3.0, -4.0]), 5.0).round(3).tolist() == [0.808, 0.192]


def test_beta_r_zero_is_uniform() -> None:
    np.testing.assert_allclose(power_law_policy(np.array([-0.1, -5.0, -80.0]), 0.0), [1 / 3] * 3, atol=1e-15)
    world = random_tabular_world(3, num_nodes=5, num_humans=1, num_robots=2, num_actions=2, max_steps=3)
    sol = solve(world, TheoryParams(beta_r=0.0))
    live = ~sol.terminal
    np.testing.assert_allclose(sol.pi_r[live], np.full((live.sum(), 4), 0.25), atol=1e-15)
    assert np.ptp(sol.q_r[live], axis=1).max() > 1e-3  # the Q values differ, the policy ignores them


# --- X_h limits -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_k_sure_goals_give_x_equal_k(k: int) -> None:
    sol = solve(choice_world(k), TheoryParams(beta_h=SHARP, zeta=2.0))
    v = sol.values_at((0, 0))
    assert v["X_h"][0] == pytest.approx(k, abs=1e-9)
    assert v["W_h"][0] == pytest.approx(math.log2(k), abs=1e-9)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_no_influence_k_goals_each_1_over_k(k: int) -> None:
    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        return [(1.0 / k, 1 + i) for i in range(k)]  # nature decides, whatever anyone does

    world = TabularWorld(
        k + 1, fn, humans=[0], robots=[1], num_actions=2, max_steps=1, goals={0: node_goals(range(1, k + 1))}
    )
    assert x0(world, TheoryParams(zeta=2.0)) == pytest.approx(1.0 / k, abs=1e-12)


def test_deterministic_uninfluenced_single_certain_goal() -> None:
    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        return [(1.0, 1)]

    # Node 2 is an unreachable second goal: it adds 0.
    world = TabularWorld(3, fn, humans=[0], robots=[1], num_actions=3, max_steps=1, goals={0: node_goals([1, 2])})
    for zeta in (0.5, 1.0, 2.0, 3.0):
        assert x0(world, TheoryParams(zeta=zeta)) == pytest.approx(1.0, abs=1e-12)


# --- zeta (reliability) -----------------------------------------------------------------------------------
@pytest.mark.parametrize("zeta", [1.0, 2.0, 3.0])
def test_zeta_two_certain_options_and_four_coin_flips(zeta: float) -> None:
    assert x0(choice_world(2), TheoryParams(beta_h=SHARP, zeta=zeta)) == pytest.approx(2.0, abs=1e-9)
    x = x0(choice_world(4, p_success=0.5), TheoryParams(beta_h=SHARP, zeta=zeta))
    assert x == pytest.approx(4 * 0.5**zeta, abs=1e-9)
    if zeta == 2.0:
        assert x == pytest.approx(1.0, abs=1e-9)


# --- xi (inequality aversion) -----------------------------------------------------------------------------
def test_xi_inequality_aversion_formula() -> None:
    for w in [2, 3, 4, 10, 100, 1e6]:
        for v in [1, 2, 5, 50, 1e6]:
            assert u_r_from_x(np.array([2.0, w]), 1.0, 1.1) > u_r_from_x(np.array([1.0, v]), 1.0, 1.1)


def two_human_branch_world(w: int, v: int) -> TabularWorld:
    """Step 0: the robot picks branch A (node 1) or B (node 2). Step 1: in A human 0 has 2 options and human 1
    has w; in B human 0 has 1 option and human 1 has v. Final node 3 + 4 * i0 + i1 records the options."""

    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        a0, a1, a_r = joint
        if node == 0:
            return [(1.0, 1 + min(a_r, 1))]
        i0 = min(a0, 1) if node == 1 else 0
        i1 = min(a1, (w if node == 1 else v) - 1)
        return [(1.0, 3 + 4 * i0 + i1)]

    finals = [[3 + 4 * i0 + i1 for i1 in range(4)] for i0 in range(4)]
    g0 = [NodeGoal(f"h0:{i}", frozenset(finals[i])) for i in range(4)]
    g1 = [NodeGoal(f"h1:{i}", frozenset(row[i] for row in finals)) for i in range(4)]
    return TabularWorld(19, fn, humans=[0, 1], robots=[2], num_actions=4, max_steps=2, goals={0: g0, 1: g1})


def test_xi_inequality_aversion_in_the_solver() -> None:
    params = TheoryParams(beta_h=SHARP, xi=1.0, zeta=2.0)
    sol = solve(two_human_branch_world(2, 4), params)
    assert sol.values_at((1, 1))["X_h"] == pytest.approx([2.0, 2.0], abs=1e-9)
    assert sol.values_at((1, 2))["X_h"] == pytest.approx([1.0, 4.0], abs=1e-9)
    pi = sol.values_at((0, 0))["pi_r"]  # robot actions 1, 2, 3 all pick branch B
    assert pi[0] > pi[1]


# --- eta (intertemporal aversion) -------------------------------------------------------------------------
def two_step_sum(w_bits: list[tuple[float, float]], eta: float, aggregate: str) -> float:
    total = 0.0
    for bits in w_bits:
        x = np.exp2(np.array(bits))
        if aggregate == "mean":
            total += float(u_r_from_x(x, 1.0, eta))
        else:  # the paper's sum over humans
            total += -(float(np.sum(x**-1.0)) ** eta)
    return total


def test_eta_intertemporal_numbers() -> None:
    # "even" = the same aggregate every step: (1, 2) then (2, 1); "uneven": (1, 1) then (2, 2).
    even, uneven = [(1, 2), (2, 1)], [(1, 1), (2, 2)]
    assert two_step_sum(uneven, 1.0, "mean") == pytest.approx(-0.75, abs=1e-12)
    assert two_step_sum(even, 1.0, "mean") == pytest.approx(-0.75, abs=1e-12)
    assert round(two_step_sum(even, 1.1, "mean"), 5) == -0.67993
    assert round(two_step_sum(uneven, 1.1, "mean"), 5) == -0.68415
    assert two_step_sum(uneven, 1.0, "sum") == pytest.approx(-1.5, abs=1e-12)
    assert two_step_sum(even, 1.0, "sum") == pytest.approx(-1.5, abs=1e-12)
    assert round(two_step_sum(even, 1.1, "sum"), 5) == -1.45746
    assert round(two_step_sum(uneven, 1.1, "sum"), 5) == -1.46652


def test_gamma_r_one_sums_u_r_along_the_path() -> None:
    """With gamma_r = 1 and a deterministic path, V_r(s0) is the sum of U_r over the steps plus terminal_v_r,
    which is what the intertemporal comparison above adds up."""

    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        return [(1.0, min(node + 1, 2))]

    g = [NodeGoal("n1", frozenset({1})), NodeGoal("n12", frozenset({1, 2})), NodeGoal("n2", frozenset({2}))]
    world = TabularWorld(3, fn, humans=[0, 1], robots=[2], num_actions=2, max_steps=2, goals={0: g, 1: g[:2]})
    params = TheoryParams(gamma_r=1.0, eta=1.1, terminal_v_r=-1e-10)
    sol = solve(world, params)
    u0, u1 = sol.values_at((0, 0))["U_r"], sol.values_at((1, 1))["U_r"]
    assert sol.values_at((0, 0))["V_r"] == pytest.approx(u0 + u1 - 1e-10, abs=1e-12)
    assert u0 == pytest.approx(float(u_r_from_x(sol.x_h[0], params.xi, params.eta)), abs=1e-15)


# --- menu size --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("beta_h", "k_star", "k_max"), [(2.0, 6, 12), (3.0, 19, 26)])
def test_menu_size_optimum(beta_h: float, k_star: int, k_max: int) -> None:
    params = TheoryParams(beta_h=beta_h, zeta=2.0, nu_h=0.0)
    xs = {}
    for k in range(1, k_max + 1):
        xs[k] = x0(choice_world(k), params)
        v = math.exp(beta_h) / (math.exp(beta_h) + k - 1)
        assert xs[k] == pytest.approx(k * v**2, rel=1e-12)
    assert max(xs, key=lambda k: xs[k]) == k_star
    assert round((math.exp(beta_h) - 1) / (params.zeta - 1)) == k_star


# --- the shared numpy equations ---------------------------------------------------------------------------
def test_equation_functions_by_hand() -> None:
    x = x_h_from_v(np.array([[0.5, 1.0, 0.0]]), np.array([2.0, 1.0, 1.0]), 2.0)
    assert x.tolist() == [2 * 0.25 + 1.0]
    u = u_r_from_x(np.array([2.0, 4.0]), 1.0, 2.0)  # mean(1/2, 1/4) = 3/8
    assert float(u) == pytest.approx(-(0.375**2), abs=1e-15)
    v = v_r_from(np.array(-1.0), np.array([0.25, 0.75]), np.array([-2.0, -4.0]))
    assert float(v) == pytest.approx(-1.0 - 0.5 - 3.0, abs=1e-15)
