"""Prior fidelity (exact.prior_fidelity): TV distance to the exact Phase 1 prior over reachable (state, goal) pairs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence

import numpy as np
import pytest

from humanpower.cli.eval_cmd import exact_reference
from humanpower.exact import ExactSolution, build_dag, solve, visit_probabilities
from humanpower.exact.phase1 import ExactHumanPrior
from humanpower.exact.prior_fidelity import FidelityReference, exact_prior_solution, weighted_quantile
from humanpower.goals import Goal
from humanpower.humans.heuristic import HeuristicPrior
from humanpower.humans.protocol import BatchHumanPolicyPrior
from humanpower.humans.uniform import UniformPrior
from humanpower.params import TheoryParams
from humanpower.worlds.grid import GridDistances, load_world
from humanpower.worlds.protocol import State, WorldModel
from humanpower.worlds.tabular import NodeGoal, TabularWorld, random_tabular_world


class Tilted:
    """A per-call prior: a fixed pseudo-random distribution per (state, goal), ``still`` at an achieved goal."""

    def __init__(self, world: WorldModel) -> None:
        self.world = world

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> np.ndarray:
        a = self.world.num_actions
        if goal.is_achieved(state):
            return np.eye(a)[0]
        rng = np.random.default_rng(abs(hash((state, human, str(goal)))) % (2**32))
        return rng.dirichlet(np.ones(a))

    def marginal_distribution(self, state: Hashable, human: int) -> np.ndarray:
        gs = self.world.goal_set(human)
        return gs.probabilities @ np.array([self.action_distribution(state, human, g) for g in gs.goals])


class BatchTilted(Tilted):
    """The same prior through ``action_distributions`` (a BatchHumanPolicyPrior)."""

    def action_distributions(self, states: Sequence[State], human: int) -> np.ndarray:
        goals = self.world.goal_set(human).goals
        return np.array([[self.action_distribution(s, human, g) for g in goals] for s in states])


def brute_force(world: WorldModel, solution: ExactSolution, prior: object, human: int) -> tuple[np.ndarray, np.ndarray]:
    """TV and on-policy weights by a per-call loop over every (state, goal) of the DAG."""
    exact = solution.prior
    assert isinstance(exact, ExactHumanPrior) and solution.dag is not None
    visits = visit_probabilities(world, solution.dag, exact, solution)
    gs = world.goal_set(human)
    tv, w = [], []
    for sid, s in enumerate(solution.dag.states):
        if world.is_terminal(s):
            continue
        for g, p in zip(gs.goals, gs.probabilities, strict=True):
            if g.is_achieved(s):
                continue
            mine = prior.action_distribution(s, human, g)  # type: ignore[attr-defined]
            tv.append(0.5 * np.abs(mine - exact.action_distribution(s, human, g)).sum())
            w.append(visits[sid] * p)
    return np.array(tv), np.array(w) / np.sum(w)


def two_human_world() -> tuple[TabularWorld, ExactSolution]:
    world = random_tabular_world(4, num_nodes=6, num_humans=2, num_robots=1, num_actions=3, max_steps=3)
    return world, exact_prior_solution(world, build_dag(world, progress=False), TheoryParams(beta_h=2.0))


@pytest.mark.parametrize("batch", [False, True])
def test_tv_matches_a_per_call_loop_on_a_two_human_world(batch: bool) -> None:
    world, solution = two_human_world()
    ref = FidelityReference.from_solution(world, solution)
    prior = BatchTilted(world) if batch else Tilted(world)
    assert isinstance(prior, BatchHumanPolicyPrior) == batch
    fid = ref.measure(prior)
    tvs, ws = [], []
    for hi, h in enumerate(world.humans):
        tv, w = ref.tv(prior, h)
        want_tv, want_w = brute_force(world, solution, prior, h)
        np.testing.assert_allclose(tv, want_tv, atol=1e-12)
        np.testing.assert_allclose(w, want_w, atol=1e-12)
        assert w.sum() == pytest.approx(1.0, abs=1e-12)  # on-policy weights are normalised per human
        assert fid.per_human[hi].mean == pytest.approx(want_tv.mean(), abs=1e-12)
        assert fid.per_human[hi].mean_on_policy == pytest.approx(want_w @ want_tv, abs=1e-12)
        tvs.append(want_tv)
        ws.append(want_w / 2)
    assert 0.1 < fid.pooled.mean < 0.9  # a random prior is far from exact
    assert fid.pooled.pairs == sum(len(t) for t in tvs)
    assert fid.pooled.mean == pytest.approx(np.concatenate(tvs).mean(), abs=1e-12)
    assert fid.pooled.mean_on_policy == pytest.approx(np.concatenate(ws) @ np.concatenate(tvs), abs=1e-12)


def test_tv_matches_a_per_call_loop_for_the_heuristic_prior_on_trivial() -> None:
    world = load_world("trivial")
    params = TheoryParams()
    solution = exact_prior_solution(world, build_dag(world, progress=False), params)
    ref = FidelityReference.from_solution(world, solution)
    heuristic = HeuristicPrior(world, GridDistances(world), params.beta_h, params.nu_h)
    h = world.humans[0]
    tv, w = ref.tv(heuristic, h)
    want_tv, want_w = brute_force(world, solution, heuristic, h)
    np.testing.assert_allclose(tv, want_tv, atol=1e-12)
    np.testing.assert_allclose(w, want_w, atol=1e-12)
    fid = ref.measure(heuristic)
    assert fid.pooled.p95 == pytest.approx(np.percentile(want_tv, 95, method="inverted_cdf"))
    assert fid.pooled.pairs == 4460  # 892 non-terminal states x 5 goals, less the achieved ones
    exact = ref.measure(solution.prior)  # type: ignore[arg-type]
    assert exact.pooled.mean == exact.pooled.p95 == exact.pooled.mean_on_policy == exact.pooled.p95_on_policy == 0.0


def test_uniform_prior_on_a_hand_computed_toy() -> None:
    """One step, one human: action 1 reaches goal A (weight 3), action 2 reaches goal B (weight 1) half the time.

    beta_h = ln 4: pi(A) = softmax(ln4 * (0, 1, 0)) = (1/6, 4/6, 1/6), TV to uniform 1/3;
    pi(B) = softmax(ln4 * (0, 0, 1/2)) = (1/4, 1/4, 1/2), TV 1/6. Mean 1/4; on-policy (visit 1 x goal weights
    3/4, 1/4) 3/4 * 1/3 + 1/4 * 1/6 = 7/24; both 95th percentiles 1/3.
    """

    def fn(node: int, joint: tuple[int, ...]) -> list[tuple[float, int]]:
        if node != 0 or joint[0] == 0:
            return [(1.0, node)]
        return [(1.0, 1)] if joint[0] == 1 else [(0.5, 2), (0.5, 0)]

    goals = {0: [(NodeGoal("A", frozenset({1})), 3.0), (NodeGoal("B", frozenset({2})), 1.0)]}
    world = TabularWorld(3, fn, humans=[0], robots=[1], num_actions=3, max_steps=1, goals=goals)
    solution = exact_prior_solution(world, build_dag(world, progress=False), TheoryParams(beta_h=math.log(4.0)))
    fid = FidelityReference.from_solution(world, solution).measure(UniformPrior(world))
    assert fid.pooled.pairs == 2
    assert fid.pooled.mean == pytest.approx(0.25, abs=1e-12)
    assert fid.pooled.mean_on_policy == pytest.approx(7 / 24, abs=1e-12)
    assert fid.pooled.p95 == fid.pooled.p95_on_policy == pytest.approx(1 / 3, abs=1e-12)
    assert fid.as_dict("prior_tv")["prior_tv_mean_per_human"] == [fid.pooled.mean]


def test_weighted_quantile_is_the_inverted_cdf() -> None:
    rng = np.random.default_rng(0)
    v = rng.random(37)
    for q in (0.5, 0.95, 1.0):
        assert weighted_quantile(v, np.ones_like(v), q) == np.percentile(v, 100 * q, method="inverted_cdf")
    assert weighted_quantile(np.array([0.1, 0.9]), np.array([0.96, 0.04]), 0.95) == 0.1
    assert weighted_quantile(np.array([0.1, 0.9]), np.array([0.94, 0.06]), 0.95) == 0.9
    assert math.isnan(weighted_quantile(v, np.zeros_like(v), 0.95))


def first_states(world: WorldModel, count: int) -> list[State]:
    """The first ``count`` reachable states in breadth-first order."""
    seen, queue = {world.initial_state()}, [world.initial_state()]
    for s in queue:
        if len(seen) >= count:
            break
        if world.is_terminal(s):
            continue
        for joint in itertools.product(range(world.num_actions), repeat=world.num_agents):
            for _, s2 in world.transition_probabilities(s, joint):
                if s2 not in seen:
                    seen.add(s2)
                    queue.append(s2)
    return list(seen)


def test_heuristic_batch_equals_per_call_with_doors_and_lava() -> None:
    for name in ("door_key", "unsteady"):
        world = load_world(name)
        states = first_states(world, 500)
        heuristic = HeuristicPrior(world, GridDistances(world), 3.0, 0.2)
        assert isinstance(heuristic, BatchHumanPolicyPrior)
        h = world.humans[0]
        goals = world.goal_set(h).goals
        batch = heuristic.action_distributions(states, h)
        loop = np.array([[heuristic.action_distribution(s, h, g) for g in goals] for s in states])
        np.testing.assert_allclose(batch, loop, atol=1e-15)
    assert any(a.terminated for s in states for a in s.agents)  # unsteady: lava and terminated humans covered


def test_eval_reference_uses_the_exact_prior_whatever_the_run_trained_with() -> None:
    world = load_world("trivial")
    params = TheoryParams()
    heuristic = HeuristicPrior(world, GridDistances(world), params.beta_h, params.nu_h)
    reference = exact_reference(world, params, heuristic)
    assert reference is not None and isinstance(reference.prior, ExactHumanPrior)
    np.testing.assert_allclose(reference.v_r, solve(world, params).v_r, atol=1e-12)
    same = exact_reference(world, params, reference.prior)  # an exact run's prior is reused, not solved again
    assert same is not None and same.prior is reference.prior
