"""Policy quality (learn.evaluate.policy_quality) and how `humanpower eval` reports it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from humanpower.cli.eval_cmd import _print_exact_comparison
from humanpower.errors import UserError
from humanpower.exact import ExactSolution, solve
from humanpower.learn.evaluate import policy_quality, uniform_policy_rmse
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import State
from humanpower.worlds.tabular import TabularWorld, random_tabular_world

KEYS = {
    "V_r_s0_policy",
    "V_r_s0_exact",
    "V_r_s0_uniform",
    "policy_gap_closed",
    "discriminates",
    "W_h_s0_policy",
    "W_h_s0_exact",
    "goal_reach_policy",
    "goal_reach_exact",
    "pi_r_rmse_on_policy",
    "argmax_agreement_on_policy",
    "uniform_pi_r_rmse",
    "uniform_pi_r_rmse_on_policy",
}


def world_and_solution(beta_r: float = 5.0) -> tuple[TabularWorld, ExactSolution]:
    world = random_tabular_world(4, num_nodes=6, num_humans=2, num_robots=1, num_actions=3, max_steps=3)
    return world, solve(world, TheoryParams(beta_r=beta_r))


class Mix:
    """Half exact, half uniform (a RobotPolicy)."""

    def __init__(self, sol: ExactSolution) -> None:
        self.sol = sol

    def action_distributions(self, states: Sequence[State]) -> np.ndarray:
        rows = self.sol.pi_r[[self.sol.state_id(s) for s in states]]
        return 0.5 * rows + 0.5 / rows.shape[1]


def test_exact_and_uniform_policies_bound_the_gap() -> None:
    world, sol = world_and_solution()
    exact = policy_quality(sol, sol, world)
    assert set(exact) == KEYS
    assert exact["policy_gap_closed"] == pytest.approx(1.0, abs=1e-12)
    assert exact["V_r_s0_policy"] == pytest.approx(exact["V_r_s0_exact"], abs=1e-12)
    assert exact["W_h_s0_policy"] == pytest.approx(exact["W_h_s0_exact"], abs=1e-12)
    assert exact["goal_reach_policy"] == pytest.approx(exact["goal_reach_exact"], abs=1e-12)
    assert exact["pi_r_rmse_on_policy"] == 0.0 and exact["argmax_agreement_on_policy"] == 1.0
    assert exact["W_h_s0_exact"] == pytest.approx(np.log2(sol.x_h[0]).tolist())
    assert len(exact["goal_reach_exact"]) == 2 and all(0 < g <= 1 for g in exact["goal_reach_exact"])
    assert exact["discriminates"] and exact["V_r_s0_uniform"] < exact["V_r_s0_exact"]
    assert exact["uniform_pi_r_rmse"] == uniform_policy_rmse(sol)

    uniform = policy_quality("uniform", sol, world)
    assert uniform["policy_gap_closed"] == pytest.approx(0.0, abs=1e-12)
    assert uniform["pi_r_rmse_on_policy"] == pytest.approx(uniform["uniform_pi_r_rmse_on_policy"])

    mixed = policy_quality(Mix(sol), sol, world)
    assert 0.0 < mixed["policy_gap_closed"] < 1.0
    assert mixed["pi_r_rmse_on_policy"] == pytest.approx(0.5 * uniform["pi_r_rmse_on_policy"])


def test_a_world_where_uniform_is_nearly_optimal_is_flagged(capsys: pytest.CaptureFixture[str]) -> None:
    world, sol = world_and_solution(beta_r=0.01)  # the power law is almost uniform
    result = policy_quality(sol, sol, world)
    assert not result["discriminates"]
    result.update({"V_r_s0": -1.0, "V_r_rel_error": 0.1, "pi_r_rmse": 0.0, "argmax_agreement": 1.0})
    result["states_compared"] = 10
    _print_exact_comparison(result, [0, 1])
    out = capsys.readouterr().out
    assert "does not discriminate" in out and "gap closed 1.000" in out and "human 1: W_h(s0)" in out


def test_a_loaded_solution_cannot_be_used() -> None:
    world, sol = world_and_solution()
    sol.dag = None
    with pytest.raises(UserError, match="no state DAG"):
        policy_quality("uniform", sol, world)
