"""The learner converges to the exact solver's answer (equations (4)-(9)), measured by ``compare_with_exact``.

Bars (from the issue), on the bundled `trivial` world with beta_r 10, gamma_r = gamma_h = 0.99, zeta 2, xi 1,
eta 1.1 and the exact Phase 1 human prior:
- tabular backend (shipped config): pi_r RMSE <= 0.03, argmax agreement >= 95 %, |V_r(s0)| relative error <= 3 %;
- neural backend, a short run: pi_r RMSE clearly below the uniform policy's, V_h^e in [0, 1];
- a second, non-grid world family (a random stochastic tabular world with one-hot encoders, two robots and
  weighted goals), tabular backend: the same bars as on `trivial`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from humanpower.encoders import grid_encoders
from humanpower.exact import solve
from humanpower.learn.actor import ActorOptions
from humanpower.learn.collector import SyncCollector
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import OneHotGoalEncoder, OneHotStateEncoder
from humanpower.learn.evaluate import LearnedModel, compare_with_exact, uniform_policy_rmse
from humanpower.learn.terms import build_loss_terms
from humanpower.learn.trainer import Trainer, TrainingSetup
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.tabular import random_tabular_world

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BAR_THEORY = (10.0, 0.99, 0.99, 2.0, 1.0, 1.1)
"""beta_r, gamma_r, gamma_h, zeta, xi, eta of the bars."""


def _train(setup: TrainingSetup, cfg: Phase2Config) -> LearnedModel:
    trainer = Trainer(setup, cfg, None, progress=False)
    # The accuracy options of the config must reach the actor and the losses.
    assert isinstance(trainer.collector, SyncCollector)
    assert trainer.collector.actor.options == ActorOptions.from_config(cfg), (
        "Trainer's SyncCollector must hold an actor built with Actor.from_config(world, prior, cfg, seed=..., "
        "steps_per_episode=...) so that v_h_e_all_goals / exploring_starts_* apply (docs/LEARNER.md)"
    )
    assert trainer.learner.terms == build_loss_terms(cfg, trainer.learner.goal_sets), (
        "Learner must build its loss terms with build_loss_terms(cfg, goal_sets) (x_h_all_goals, q_r_loss; "
        "docs/LEARNER.md)"
    )
    return trainer.train().model


def _trivial(cfg: Phase2Config) -> tuple[TrainingSetup, object]:
    world = load_world("trivial")
    assert (cfg.beta_r, cfg.gamma_r, cfg.gamma_h, cfg.zeta, cfg.xi, cfg.eta) == BAR_THEORY
    sol = solve(world, cfg.theory(), human_prior="exact")
    se, ge = grid_encoders(world, cfg.include_step_count)
    setup = TrainingSetup(world=world, prior=sol.prior, state_encoder=se, goal_encoders=[ge[h] for h in world.humans])
    return setup, sol


def _assert_bars(metrics: dict[str, float], rmse: float, agreement: float, v_r: float) -> None:
    assert metrics["pi_r_rmse"] <= rmse, metrics
    assert metrics["argmax_agreement"] >= agreement, metrics
    assert metrics["V_r_rel_error"] <= v_r, metrics


def test_tabular_learner_matches_exact_on_trivial() -> None:
    cfg = Phase2Config.from_yaml(CONFIGS / "trivial-tabular.yaml").replace(log_every_episodes=10_000)
    setup, sol = _trivial(cfg)
    metrics = compare_with_exact(_train(setup, cfg), sol)
    _assert_bars(metrics, rmse=0.03, agreement=0.95, v_r=0.03)


def test_neural_learner_short_run_beats_uniform_on_trivial() -> None:
    cfg = Phase2Config.from_yaml(CONFIGS / "trivial-neural.yaml").replace(
        num_episodes=400,
        warmup_v_h_e_steps=300,
        warmup_x_h_steps=300,
        warmup_q_r_steps=300,
        beta_r_rampup_steps=600,
        log_every_episodes=10_000,
    )
    setup, sol = _trivial(cfg)
    model = _train(setup, cfg)
    metrics = compare_with_exact(model, sol)
    uniform = uniform_policy_rmse(sol)
    assert uniform == pytest.approx(0.134, abs=0.001)
    assert metrics["pi_r_rmse"] <= 0.75 * uniform, metrics
    assert metrics["argmax_agreement"] >= 0.7, metrics
    assert metrics["V_r_rel_error"] <= 0.25, metrics
    values = model.evaluate([s for s, t in zip(sol.states, sol.terminal, strict=True) if not t], with_v_h_e=True)
    assert values["v_h_e_0"].min() >= 0.0 and values["v_h_e_0"].max() <= 1.0
    total_weight = setup.world.goal_set(setup.world.humans[0]).total_weight
    assert np.all(values["x_h"] > 0) and np.all(values["x_h"] <= total_weight)


def test_tabular_learner_matches_exact_on_a_random_tabular_world() -> None:
    """Environment-agnostic core: a stochastic non-grid world, two robots (joint actions), weighted goals."""
    world = random_tabular_world(
        seed=3,
        num_nodes=12,
        num_humans=1,
        num_robots=2,
        num_actions=3,
        max_steps=6,
        stochastic_fraction=0.5,
        weighted_goals=True,
    )
    cfg = Phase2Config.from_yaml(CONFIGS / "trivial-tabular.yaml").replace(
        steps_per_episode=6, num_episodes=500, log_every_episodes=10_000
    )
    sol = solve(world, cfg.theory(), human_prior="exact")
    assert sol.num_robot_actions == 9 and uniform_policy_rmse(sol) > 0.05
    setup = TrainingSetup(
        world=world,
        prior=sol.prior,
        state_encoder=OneHotStateEncoder(world, sol.states, cfg.include_step_count),
        goal_encoders=[OneHotGoalEncoder(world.goal_set(h).goals) for h in world.humans],
    )
    metrics = compare_with_exact(_train(setup, cfg), sol)
    _assert_bars(metrics, rmse=0.03, agreement=0.95, v_r=0.03)
