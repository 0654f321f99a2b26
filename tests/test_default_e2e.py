"""End to end against the exact solver: the default configuration rule, and the seed's default target path.

Each test trains with a fixed seed and a small fixed env-step budget (``num_episodes``, so no timing), then
compares the learned robot policy with the exact one (``compare_with_exact``). The bars are ones the uniform
policy (the untrained learner's policy: beta_r = 0) clearly fails: its pi_r RMSE is the baseline, and its argmax
agreement is the share of states where action 0 is an exact best action.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from humanpower.api import auto_config
from humanpower.exact import ExactSolution
from humanpower.learn.evaluate import LearnedModel, compare_with_exact, uniform_policy_rmse
from humanpower.learn.trainer import Trainer, make_learner
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.protocol import SimulatorModel
from humanpower.worlds.tabular import random_tabular_world

QUIET = {"log_every_episodes": 10**6, "rollout_gif": False, "seed": 0}


def _uniform_argmax(solution: ExactSolution) -> float:
    """Argmax agreement of the uniform policy (its argmax is action 0) with the exact policy."""
    pi = np.asarray(solution.pi_r)[~np.asarray(solution.terminal, dtype=bool)]
    return float(np.mean(pi[:, 0] >= pi.max(axis=1) - 1e-9))


def _train_default(world: SimulatorModel, **overrides: Any) -> tuple[dict[str, float], ExactSolution]:
    """Train with the default rule (``api.auto_config``) and compare with the exact solution."""
    auto, setup = auto_config(world, {**QUIET, **overrides})
    assert setup.reference is not None
    result = Trainer(setup, auto.config, None, progress=False).train()
    return compare_with_exact(result.model, setup.reference), setup.reference


def test_default_rule_two_humans() -> None:
    """Two humans (sampled other-human actions in the targets), neural backend, 1,000 env steps.

    Measured (seeds 0, worlds 1-3): pi_r RMSE 0.40-0.54 x uniform, argmax 78-85 % (uniform 39-48 %), V_r(s0)
    error 0.2-6 %.
    """
    world = random_tabular_world(
        seed=2, num_nodes=10, num_humans=2, num_robots=1, num_actions=3, max_steps=5, goals_per_human=3
    )
    metrics, solution = _train_default(world, num_episodes=200)
    uniform = uniform_policy_rmse(solution)
    assert uniform > 0.1 and _uniform_argmax(solution) < 0.5
    assert metrics["pi_r_rmse"] <= 0.6 * uniform, metrics
    assert metrics["argmax_agreement"] >= 0.7, metrics
    assert metrics["V_r_rel_error"] <= 0.1, metrics


def test_default_rule_two_robots_stochastic_world() -> None:
    """One human, two robots (9 joint actions), stochastic transitions, weighted goals, neural, 1,020 env steps.

    Measured (seed 0, worlds 3 and 4): pi_r RMSE 0.05 and 0.02 x uniform, argmax 92 % and 97 %.
    """
    world = random_tabular_world(
        seed=4, num_nodes=12, num_robots=2, num_actions=3, max_steps=6, stochastic_fraction=0.5, weighted_goals=True
    )
    metrics, solution = _train_default(world, num_episodes=170)
    uniform = uniform_policy_rmse(solution)
    assert uniform > 0.05 and _uniform_argmax(solution) < 0.35
    assert metrics["pi_r_rmse"] <= 0.25 * uniform, metrics
    assert metrics["argmax_agreement"] >= 0.85, metrics
    assert metrics["V_r_rel_error"] <= 0.05, metrics


def test_seed_target_path_on_trivial() -> None:
    """The seed's default target path: one target draw per transition (sampled human actions and goals in (6)
    and (4)) and one sampled goal per X_h target (7); everything else from the rule, neural, 2,000 env steps.

    Measured (seed 0): V_h^e MAE 0.474 untrained -> 0.111, X_h MAE 0.605 -> 0.472, argmax 0.677 -> 0.766
    (uniform 0.539), but pi_r RMSE 0.172 against the uniform policy's 0.134: at this budget the sampled path
    has learned the human side, not yet the robot policy (the rule's all-goals targets reach pi_r RMSE 0.071
    after 3,740 env steps; docs/LEARNER.md section 5).
    """
    world = load_world("trivial")
    overrides = {**QUIET, "num_episodes": 200, "v_h_e_all_goals": False, "x_h_all_goals": False}
    auto, setup = auto_config(world, overrides)
    cfg = auto.config
    assert cfg.x_h_goal_samples == 1 and not cfg.v_h_e_all_goals and not cfg.x_h_all_goals
    assert setup.reference is not None
    untrained = compare_with_exact(LearnedModel.from_learner(make_learner(setup, cfg), world), setup.reference)
    result = Trainer(setup, cfg, None, progress=False).train()
    metrics = compare_with_exact(result.model, setup.reference)
    assert metrics["v_h_e_mae"] <= 0.4 * untrained["v_h_e_mae"], (metrics, untrained)
    assert metrics["x_h_mae"] <= 0.9 * untrained["x_h_mae"], (metrics, untrained)
    assert metrics["argmax_agreement"] >= _uniform_argmax(setup.reference) + 0.1, metrics
