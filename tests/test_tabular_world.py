"""The tabular world model, the uniform/heuristic priors, the state DAG, and the vectorised exact solver
against a naive per-state recursion (tests/reference_solver.py) on random tabular worlds."""

from __future__ import annotations

import numpy as np
import pytest

from humanpower.errors import UserError
from humanpower.exact import build_dag, solve
from humanpower.exact.dag import profile_actions
from humanpower.goals import GoalSet, StateSetGoal
from humanpower.humans import HeuristicPrior, HumanPolicyPrior, UniformPrior, joint_human_distribution
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import WorldModel
from humanpower.worlds.tabular import NodeGoal, TabularWorld, random_tabular_world
from reference_solver import reference_phase1, reference_phase2


def test_tabular_world_semantics_and_validation() -> None:
    table = np.zeros((2, 4, 2))
    table[:, :, 1] = 1.0
    table[0, 0] = [0.25, 0.75]  # both agents still at node 0
    world = TabularWorld(
        2,
        table,
        humans=[0],
        robots=[1],
        num_actions=2,
        max_steps=2,
        goals={0: [(NodeGoal("one", frozenset({1})), 2.0)]},
    )
    assert isinstance(world, WorldModel)
    assert world.initial_state() == (0, 0)
    assert world.transition_probabilities((0, 0), (0, 0)) == [(0.25, (1, 0)), (0.75, (1, 1))]
    assert world.transition_probabilities((2, 0), (0, 0)) == []
    assert world.is_terminal((2, 1)) and not world.is_terminal((1, 1))
    assert world.states() == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert len(world.all_states()) == 6
    assert world.goal_set(0).weights.tolist() == [2.0]
    world.reset(seed=1)
    assert world.step((1, 1)) == (1, 1)
    with pytest.raises(ValueError, match="sum to"):
        TabularWorld(
            2,
            lambda n, a: [(0.5, 0)],
            humans=[0],
            robots=[],
            num_actions=1,
            max_steps=1,
            goals={0: [NodeGoal("z", frozenset({0}))]},
        )
    with pytest.raises(ValueError, match="partition"):
        TabularWorld(2, table, humans=[0], robots=[2], num_actions=2, max_steps=1, goals={0: []})


def test_random_tabular_world_is_reproducible_and_covers_nodes() -> None:
    a = random_tabular_world(5, num_nodes=7, num_humans=2, num_robots=1, weighted_goals=True)
    b = random_tabular_world(5, num_nodes=7, num_humans=2, num_robots=1, weighted_goals=True)
    for node in range(7):
        for joint in profile_actions(3, 3):
            assert a.node_successors(node, joint) == b.node_successors(node, joint)
    for h in a.humans:
        covered = set().union(*(g.nodes for g in a.goal_set(h).goals))  # type: ignore[attr-defined]
        assert covered == set(range(7))
        assert np.all(a.goal_set(h).weights != 1.0)


def test_dag_matches_transition_probabilities() -> None:
    world = random_tabular_world(2, num_nodes=6, num_humans=1, num_robots=2, num_actions=2, max_steps=3)
    dag = build_dag(world, progress=False)
    assert dag.num_states == len(world.states())
    assert dag.num_levels == world.max_steps + 1
    profiles = profile_actions(world.num_agents, world.num_actions)
    for i, s in enumerate(dag.states):
        assert dag.index[s] == i
        assert world.step_count(s) == np.searchsorted(dag.level_offsets, i, side="right") - 1
        assert dag.terminal[i] == world.is_terminal(s)
        for j, joint in enumerate(profiles):
            expected = sorted((p, s2) for p, s2 in world.transition_probabilities(s, joint))
            got = sorted((p, dag.states[k]) for p, k in dag.successors(i, j))
            assert got == expected
    assert dag.num_rows < dag.num_profiles * int((~dag.terminal).sum())  # identical rows are stored once


def test_dag_max_states_and_protocol_errors() -> None:
    world = random_tabular_world(0, num_nodes=8, max_steps=4)
    with pytest.raises(UserError, match=r"max_states=5 .* GiB"):
        build_dag(world, max_states=5, progress=False)

    class Loop(TabularWorld):
        def transition_probabilities(self, state, joint_action):  # type: ignore[no-untyped-def]
            return [(1.0, state)]

        def all_transition_probabilities(self, state):  # type: ignore[no-untyped-def]
            return [[(1.0, state)]] * self.num_profiles

    loop = Loop(
        1,
        lambda n, a: [(1.0, 0)],
        humans=[0],
        robots=[],
        num_actions=1,
        max_steps=2,
        goals={0: [NodeGoal("z", frozenset({0}))]},
    )
    with pytest.raises(UserError, match="step count"):
        build_dag(loop, progress=False)


@pytest.mark.parametrize(
    ("seed", "humans", "robots", "actions", "nu_h"),
    [
        (0, 1, 1, 3, 0.0),
        (1, 2, 1, 2, 0.3),
        (2, 1, 2, 2, 0.0),
        (3, 2, 2, 2, 0.0),
        (4, 3, 1, 2, 0.1),
        (5, 1, 0, 3, 0.0),
    ],
)
def test_solver_matches_naive_recursion(seed: int, humans: int, robots: int, actions: int, nu_h: float) -> None:
    world = random_tabular_world(
        seed,
        num_nodes=5,
        num_humans=humans,
        num_robots=robots,
        num_actions=actions,
        max_steps=3,
        weighted_goals=True,
    )
    params = TheoryParams(beta_h=2.0, beta_r=3.0, gamma_h=0.9, gamma_r=0.95, zeta=1.7, xi=1.2, eta=1.1, nu_h=nu_h)
    sol = solve(world, params)
    pi = reference_phase1(world, params)
    q_r, pi_r, v_r, x_h, v_e = reference_phase2(world, params, pi)
    prior = sol.prior
    assert prior is not None
    for s in sol.states:
        i = sol.state_id(s)
        assert sol.v_r[i] == pytest.approx(v_r(s), abs=1e-12)
        for hi, h in enumerate(world.humans):
            for gi, g in enumerate(world.goal_set(h).goals):
                np.testing.assert_allclose(prior.action_distribution(s, h, g), pi(s, h, gi), atol=1e-12)
                assert sol.v_h_e[hi][i, gi] == pytest.approx(v_e(s, h, gi), abs=1e-12)
        if not world.is_terminal(s):
            np.testing.assert_allclose(sol.q_r[i], q_r(s), atol=1e-12)
            np.testing.assert_allclose(sol.pi_r[i], pi_r(s), atol=1e-12)
            np.testing.assert_allclose(sol.x_h[i], [x_h(s, h) for h in world.humans], atol=1e-12)


def test_uniform_prior_and_solver_with_given_prior_object() -> None:
    world = random_tabular_world(7, num_nodes=5, num_humans=2, num_robots=1, num_actions=2, max_steps=2)
    uniform = UniformPrior(world)
    assert isinstance(uniform, HumanPolicyPrior)
    s = world.initial_state()
    g = world.goal_set(0).goals[0]
    assert uniform.action_distribution((1, next(iter(g.nodes))), 0, g).tolist() == [1.0, 0.0]  # type: ignore[attr-defined]
    # The uniform fast path of the solver and the generic per-state path agree.

    class Wrapped:
        def action_distribution(self, state, human, goal):  # type: ignore[no-untyped-def]
            return uniform.action_distribution(state, human, goal)

        def marginal_distribution(self, state, human):  # type: ignore[no-untyped-def]
            return uniform.marginal_distribution(state, human)

    a = solve(world, human_prior="uniform")
    b = solve(world, human_prior=Wrapped())  # type: ignore[arg-type]
    np.testing.assert_allclose(a.v_r, b.v_r, atol=1e-13)
    assert a.human_prior == "uniform" and b.human_prior == "Wrapped"
    joint = joint_human_distribution(world, uniform, s)
    assert sum(p for p, _ in joint) == pytest.approx(1.0)
    assert len(joint) == 4 and all(len(acts) == 2 for _, acts in joint)


class FakeDistances:
    """Distances 0, 1, 2, inf for actions 0..3 unless the goal name says 'far' (all inf)."""

    def action_distances(self, state, human, goal):  # type: ignore[no-untyped-def]
        if str(goal) == "far":
            return np.full(4, np.inf)
        return np.array([0.0, 1.0, 2.0, np.inf])


def test_heuristic_prior() -> None:
    far = StateSetGoal("far", frozenset())
    near = StateSetGoal("near", frozenset({(1, 1)}))
    world = TabularWorld(
        2,
        lambda n, a: [(1.0, 1)],
        humans=[0],
        robots=[],
        num_actions=4,
        max_steps=1,
        goals={0: GoalSet.of([far, near], [1.0, 3.0])},
    )
    prior = HeuristicPrior(world, FakeDistances(), beta_h=2.0, nu_h=0.2)
    s = world.initial_state()
    boltz = np.exp([-0.0, -2.0, -4.0]) / np.exp([-0.0, -2.0, -4.0]).sum()
    expected_near = 0.2 * 0.25 + 0.8 * np.append(boltz, 0.0)
    np.testing.assert_allclose(prior.action_distribution(s, 0, near), expected_near, atol=1e-12)
    np.testing.assert_allclose(prior.action_distribution(s, 0, far), [0.25] * 4, atol=1e-12)
    np.testing.assert_allclose(prior.action_distribution((1, 1), 0, near), [1, 0, 0, 0])  # rests when achieved
    np.testing.assert_allclose(
        prior.marginal_distribution(s, 0), 0.25 * np.full(4, 0.25) + 0.75 * expected_near, atol=1e-12
    )
    sol = solve(world, TheoryParams(beta_h=2.0, nu_h=0.2), human_prior="heuristic", distances=FakeDistances())
    assert sol.human_prior == "heuristic"
    with pytest.raises(UserError, match="distance"):
        solve(world, human_prior="heuristic")
