"""Exact evaluation of a fixed robot policy: solver agreement, hand-computed toys, visits and goal reach."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pytest

from humanpower.errors import UserError
from humanpower.exact import (
    POWER_LAW,
    build_dag,
    evaluate_policy,
    goal_reach,
    policy_table,
    solve,
    visit_probabilities,
)
from humanpower.exact.evaluate import tabulated, weighted_rmse
from humanpower.exact.phase2 import TabulatedPrior
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import State, WorldModel, compose_joint_action
from humanpower.worlds.tabular import NodeGoal, TabularWorld, random_tabular_world

ARRAYS = ("q_r", "pi_r", "v_r", "u_r", "x_h")


def assert_same_values(a: object, b: object, atol: float) -> None:
    for key in ARRAYS:
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), atol=atol, rtol=0, equal_nan=True)
    for va, vb in zip(a.v_h_e, b.v_h_e, strict=True):  # type: ignore[attr-defined]
        np.testing.assert_allclose(va, vb, atol=atol, rtol=0)


@pytest.mark.parametrize(
    ("seed", "humans", "robots"), [(0, 1, 1), (1, 2, 1), (2, 1, 2), (3, 3, 1)]
)  # fmt: skip
def test_evaluating_the_exact_policy_reproduces_the_solver(seed: int, humans: int, robots: int) -> None:
    world = random_tabular_world(
        seed, num_nodes=6, num_humans=humans, num_robots=robots, num_actions=2, max_steps=4, weighted_goals=True
    )
    params = TheoryParams(beta_r=4.0, gamma_r=0.9, gamma_h=0.95, zeta=1.5, xi=0.8, eta=1.2)
    sol = solve(world, params)
    assert sol.dag is not None and sol.prior is not None and sol.robot_policy == POWER_LAW
    for policy in (sol, sol.pi_r.copy()):
        ev = evaluate_policy(world, policy, sol.prior, params, sol.dag, name="exact")
        assert ev.robot_policy == "exact"
        assert_same_values(ev, sol, atol=1e-10)


def test_uniform_policy_is_the_solver_at_beta_r_zero_and_worse() -> None:
    world = random_tabular_world(5, num_nodes=6, num_humans=2, num_robots=1, num_actions=3, max_steps=3)
    params = TheoryParams(beta_r=6.0)
    sol = solve(world, params)
    assert sol.prior is not None
    uniform = evaluate_policy(world, "uniform", sol.prior, params, sol.dag)
    # beta_r = 0 makes (5) uniform, so the solver at beta_r = 0 solves for exactly this policy.
    assert_same_values(uniform, solve(world, dataclasses.replace(params, beta_r=0.0)), atol=1e-10)
    assert uniform.v_r[0] < sol.v_r[0]  # the power law serves the humans better than chance


# Toy 2 of test_exact_toy: two steps; the robot opens (still) or closes (go) the human's choice at the start.
def toy2() -> TabularWorld:
    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        a_h, a_r = joint
        if node == 0:
            return [(1.0, 1 if a_r == 0 else 2)]
        if node == 1:
            return [(1.0, 3 if a_h == 0 else 4)]
        return [(1.0, 3)]

    goals = [NodeGoal("n3", frozenset({3})), NodeGoal("n4", frozenset({4}))]
    return TabularWorld(5, fn, humans=[0], robots=[1], num_actions=2, max_steps=2, goals={0: goals})


TOY2_PARAMS = TheoryParams(
    beta_h=math.log(3.0), gamma_h=0.9, gamma_r=0.5, beta_r=2.0, zeta=2.0, xi=1.0, eta=1.0, terminal_v_r=-0.1
)


@pytest.mark.parametrize("p_open", [1.0, 0.5, 0.2])
def test_toy_by_hand(p_open: float) -> None:
    """Robot opens with probability p at the start: every value, visit and reach probability by hand."""
    world = toy2()
    sol = solve(world, TOY2_PARAMS)
    assert sol.prior is not None and sol.dag is not None

    class OpensAtStart:
        """A RobotPolicy: open with probability p_open at the start, uniform elsewhere."""

        def action_distributions(self, states: Sequence[State]) -> np.ndarray:
            return np.array([[p_open, 1.0 - p_open] if s == (0, 0) else [0.5, 0.5] for s in states])

    policy = OpensAtStart()

    ev = evaluate_policy(world, policy if p_open != 0.5 else "uniform", sol.prior, TOY2_PARAMS, sol.dag)
    p = np.array([p_open, 1.0 - p_open])
    # Step 1 is the solver's (the robot has no influence there): open V_r = -8/9 - 0.05, closed V_r = -1.05.
    q = np.array([0.5 * (-8 / 9 - 0.05), 0.5 * -1.05])
    ve3 = 0.9 * (p[0] * 0.75 + p[1])
    ve4 = 0.9 * p[0] * 0.75
    x0 = ve3**2 + ve4**2
    v0 = ev.values_at((0, 0))
    assert v0["pi_r"] == pytest.approx(p.tolist(), abs=1e-12)
    assert v0["Q_r"] == pytest.approx(q.tolist(), abs=1e-12)
    assert [v0["V_h_e"][0]["n3"], v0["V_h_e"][0]["n4"]] == pytest.approx([ve3, ve4], abs=1e-12)
    assert v0["X_h"][0] == pytest.approx(x0, abs=1e-12)
    assert v0["U_r"] == pytest.approx(-1 / x0, abs=1e-12)
    assert v0["V_r"] == pytest.approx(-1 / x0 + float(p @ q), abs=1e-12)
    # Visits: the goal is drawn at s0 and kept; at (1, open) pi_h(g3) = (3/4, 1/4), pi_h(g4) = (1/4, 3/4).
    d = visit_probabilities(world, sol.dag, sol.prior, policy)
    expected = {(0, 0): 1.0, (1, 1): p[0], (1, 2): p[1], (2, 3): 0.5 * p[0] + p[1], (2, 4): 0.5 * p[0]}
    for state, prob in expected.items():
        assert d[sol.dag.index[state]] == pytest.approx(prob, abs=1e-12)
    # Goal reach (undiscounted): goal n3 with p * 3/4 + (1 - p), goal n4 with p * 3/4; weights 1/2 each.
    reach = goal_reach(world, sol.dag, sol.prior, policy, TOY2_PARAMS)
    assert reach.tolist() == pytest.approx([0.5 + 0.25 * p[0]], abs=1e-12)


def brute_force_visits(world: WorldModel, prior: HumanPolicyPrior, pi_r: dict[State, np.ndarray]) -> dict[State, float]:
    """Visit probabilities by enumerating every joint goal and propagating state dictionaries."""
    visits: dict[State, float] = defaultdict(float)
    goal_sets = [world.goal_set(h) for h in world.humans]
    for combo in itertools.product(*(range(len(gs)) for gs in goal_sets)):
        weight = float(np.prod([gs.probabilities[g] for gs, g in zip(goal_sets, combo, strict=True)]))
        dist: dict[State, float] = {world.initial_state(): weight}
        while dist:
            nxt: dict[State, float] = defaultdict(float)
            for s, ps in dist.items():
                visits[s] += ps
                if world.is_terminal(s):
                    continue
                per_human = [
                    prior.action_distribution(s, h, gs.goals[g])
                    for h, gs, g in zip(world.humans, goal_sets, combo, strict=True)
                ]
                for acts in itertools.product(range(world.num_actions), repeat=len(world.humans)):
                    ph = float(np.prod([dist_h[a] for dist_h, a in zip(per_human, acts, strict=True)]))
                    for a_r, pr in enumerate(pi_r[s]):
                        joint = compose_joint_action(world, list(acts), a_r)
                        for q, s2 in world.transition_probabilities(s, joint):
                            nxt[s2] += ps * ph * pr * q
            dist = nxt
    return visits


def test_visit_probabilities_keep_each_goal_for_the_episode() -> None:
    """Two humans, three goals each: the forward pass equals enumeration over the 9 joint goals (which differs
    from letting each human follow its goal-marginal policy at every state)."""
    world = random_tabular_world(7, num_nodes=5, num_humans=2, num_robots=1, num_actions=2, max_steps=3)
    sol = solve(world, TheoryParams(beta_h=3.0, beta_r=3.0))
    assert sol.prior is not None and sol.dag is not None
    d = visit_probabilities(world, sol.dag, sol.prior, sol)
    ref = brute_force_visits(world, sol.prior, {s: sol.pi_r[i] for i, s in enumerate(sol.states)})
    assert set(ref) == set(sol.states)
    np.testing.assert_allclose(d, [ref[s] for s in sol.states], atol=1e-12)
    for k in range(sol.dag.num_levels):
        assert d[slice(*sol.dag.level(k))].sum() == pytest.approx(1.0, abs=1e-12)


def test_goal_reach_is_the_undiscounted_hitting_probability_for_one_human() -> None:
    world = random_tabular_world(11, num_nodes=6, num_humans=1, num_robots=1, num_actions=3, max_steps=4)
    sol = solve(world, TheoryParams(gamma_h=0.7))
    assert sol.prior is not None and sol.dag is not None
    reach = goal_reach(world, sol.dag, sol.prior, "uniform", sol.params)
    # Enumerate: for each goal, the probability that a state at step >= 1 lies in it (the goal ends the episode).
    h = world.humans[0]
    gs = world.goal_set(h)
    total = 0.0
    for g, w in zip(gs.goals, gs.probabilities, strict=True):
        dist: dict[State, float] = {world.initial_state(): 1.0}
        hit = 0.0
        while dist:
            nxt: dict[State, float] = defaultdict(float)
            for s, ps in dist.items():
                if world.is_terminal(s):
                    continue
                pa = sol.prior.action_distribution(s, h, g)
                for a_h, a_r in itertools.product(range(world.num_actions), repeat=2):
                    for q, s2 in world.transition_probabilities(s, compose_joint_action(world, [a_h], a_r)):
                        mass = ps * pa[a_h] / world.num_actions * q
                        if g.is_achieved(s2):
                            hit += mass
                        else:
                            nxt[s2] += mass
            dist = nxt
        total += w * hit
    assert reach.tolist() == pytest.approx([total], abs=1e-12)


def test_bad_policies_are_refused_with_one_clear_line() -> None:
    world = toy2()
    sol = solve(world, TOY2_PARAMS)
    assert sol.prior is not None and sol.dag is not None
    n = sol.num_states
    cases: list[tuple[object, str]] = [
        (np.full((n, 3), 1 / 3), f"shape (5, 3), expected ({n}, 2)"),
        (np.full((n + 1, 2), 0.5), "expected (5, 2)"),
        (np.array([[0.9, 0.3]] * n), "not a probability vector"),
        (Wide(), "action_distributions() returned shape (3, 3), expected (3, 2)"),
        (lambda s: [1.0, 0.0], "unsupported type function"),
        ("greedy", "unknown name 'greedy'"),
        (solve(random_tabular_world(0, num_actions=2, max_steps=2)), "states in another order"),
    ]
    for policy, message in cases:
        with pytest.raises(UserError) as info:
            evaluate_policy(world, policy, sol.prior, TOY2_PARAMS, sol.dag)  # type: ignore[arg-type]
        assert message in str(info.value) and "\n" not in str(info.value)


class Wide:
    """A RobotPolicy with one column too many."""

    def action_distributions(self, states: Sequence[State]) -> np.ndarray:
        return np.full((len(states), 3), 1 / 3)


class Batch:
    """A RobotPolicy: always 'close'."""

    def action_distributions(self, states: Sequence[State]) -> np.ndarray:
        return np.tile([0.0, 1.0], (len(states), 1))


def test_batch_policies_and_weighted_rmse() -> None:
    world = toy2()
    dag = build_dag(world, progress=False)
    table = policy_table(dag, 2, Batch())
    assert table[dag.index[(0, 0)]].tolist() == [0.0, 1.0] and table[dag.index[(2, 3)]].tolist() == [0.5, 0.5]
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.0, 1.0], [0.5, 0.5]])
    assert weighted_rmse(a, b, np.array([1.0, 3.0])) == pytest.approx(0.5)
    assert weighted_rmse(a, b, np.array([0.0, 1.0])) == 0.0


def test_a_tabulated_prior_gives_the_same_values() -> None:
    """A prior of another DAG is asked per state; its table over this DAG gives identical values."""
    world = random_tabular_world(9, num_nodes=5, num_humans=2, num_robots=1, num_actions=2, max_steps=3)
    sol = solve(world)
    assert sol.prior is not None
    other_dag = build_dag(world, progress=False)
    per_state_prior = solve(world, dag=other_dag).prior  # an ExactHumanPrior of another DAG: no fast path
    assert per_state_prior is not None
    table = tabulated(world, sol.dag, per_state_prior)  # type: ignore[arg-type]
    assert isinstance(table, TabulatedPrior) and tabulated(world, sol.dag, table) is table  # type: ignore[arg-type]
    slow = evaluate_policy(world, "uniform", per_state_prior, sol.params, sol.dag)
    fast = evaluate_policy(world, "uniform", table, sol.params, sol.dag)
    assert_same_values(fast, slow, atol=0.0)
    s = sol.states[3]
    g = world.goal_set(1).goals[1]
    assert table.action_distribution(s, 1, g).tolist() == per_state_prior.action_distribution(s, 1, g).tolist()
    assert table.marginal_distribution(s, 0).tolist() == per_state_prior.marginal_distribution(s, 0).tolist()
