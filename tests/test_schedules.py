"""Schedules of total_steps (env steps): stages, beta_r ramp, epsilon, learning rate, gradient clip."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from humanpower.api import build_setup
from humanpower.learn.checkpoint import RunFolder
from humanpower.learn.config import Phase2Config
from humanpower.learn.schedules import (
    StageTable,
    beta_r_at,
    beta_r_shortfall,
    env_step_budget,
    episode_length,
    epsilon_at,
    grad_clip_at,
    linear_schedule,
    lr_at,
    sigmoid_ramp,
    warmup_shortfall,
)
from humanpower.learn.trainer import Trainer
from humanpower.worlds.grid.library import load_world

CFG = Phase2Config()  # warm-ups 10k, 10k, (10k), 10k, ramp 20k; 500k env steps
CFG_UR = CFG.replace(u_r_use_network=True, v_r_use_network=True)


def test_stage_table_without_u_r_network() -> None:
    t = StageTable.from_config(CFG)
    assert t.starts == (0, 10_000, 20_000, 20_000, 30_000, 50_000)
    assert (t.rampup_start, t.rampup_end) == (30_000, 50_000)
    expected = {0: 0, 9_999: 0, 10_000: 1, 19_999: 1, 20_000: 3, 29_999: 3, 30_000: 4, 49_999: 4, 50_000: 5}
    for step, stage in expected.items():
        assert t.stage_at(step) == stage, step
    assert t.stage_at(10**9) == 5
    assert {t.stage_at(s) for s in range(0, 60_000, 100)} == {0, 1, 3, 4, 5}  # stage 2 skipped
    assert t.active_networks(0) == {"v_h_e"}
    assert t.active_networks(1) == {"v_h_e", "x_h"}
    assert t.active_networks(2) == {"v_h_e", "x_h"}  # never u_r without the network
    for stage in (3, 4, 5):
        assert t.active_networks(stage) == {"v_h_e", "x_h", "q_r"}


def test_stage_table_with_u_r_and_v_r_networks() -> None:
    t = StageTable.from_config(CFG_UR)
    assert t.starts == (0, 10_000, 20_000, 30_000, 40_000, 60_000)
    assert [t.stage_at(s) for s in (19_999, 20_000, 29_999, 30_000, 39_999, 40_000, 59_999, 60_000)] == [
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
    ]
    assert t.active_networks(2) == {"v_h_e", "x_h", "u_r"}
    assert t.active_networks(3) == {"v_h_e", "x_h", "u_r", "q_r", "v_r"}
    assert t.active_networks(5) == {"v_h_e", "x_h", "u_r", "q_r", "v_r"}


def test_stage_table_zero_length_stages_and_errors() -> None:
    cfg = Phase2Config(
        num_episodes=10, warmup_v_h_e_steps=0, warmup_x_h_steps=0, warmup_q_r_steps=0, beta_r_rampup_steps=0
    )
    t = StageTable.from_config(cfg)
    assert t.stage_at(0) == 5
    with pytest.raises(ValueError):
        t.stage_at(-1)
    with pytest.raises(ValueError):
        t.active_networks(6)
    with pytest.raises(ValueError):
        StageTable((0, 5, 3, 3, 7, 9))
    with pytest.raises(ValueError):
        StageTable((0, 1, 2, 3, 4, 5))  # stage 2 must be empty without a U_r network


def test_beta_r_ramp_values() -> None:
    assert beta_r_at(0, CFG) == 0.0
    assert beta_r_at(29_999, CFG) == 0.0
    assert beta_r_at(30_000, CFG) == 0.0  # exactly 0 at the ramp start
    assert beta_r_at(40_000, CFG) == pytest.approx(5.0, abs=1e-12)  # midpoint: half nominal
    # 25%: (sigmoid(-2.5) - sigmoid(-5)) / (sigmoid(5) - sigmoid(-5)) = 0.0701037 (by hand)
    assert beta_r_at(35_000, CFG) == pytest.approx(0.701037, abs=1e-5)
    assert beta_r_at(45_000, CFG) == pytest.approx(10.0 - 0.701037, abs=1e-5)  # symmetric
    assert beta_r_at(50_000, CFG) == 10.0  # exactly nominal at the end
    assert beta_r_at(400_000, CFG) == 10.0
    t = StageTable.from_config(CFG)
    assert beta_r_at(40_000, t, beta_r=4.0) == pytest.approx(2.0)
    assert beta_r_at(35_000, t, beta_r=1.0, sharpness=10.0) == pytest.approx(0.0701037, abs=1e-6)
    with pytest.raises(TypeError):
        beta_r_at(35_000, t)


def test_beta_r_zero_length_ramp() -> None:
    cfg = CFG.replace(beta_r_rampup_steps=0)
    assert beta_r_at(29_999, cfg) == 0.0
    assert beta_r_at(30_000, cfg) == 10.0


def test_sigmoid_ramp_sharpness() -> None:
    # a steeper ramp stays lower early on
    assert sigmoid_ramp(0.25, 20.0) < sigmoid_ramp(0.25, 10.0) < 0.25
    # tiny sharpness approaches the linear ramp
    assert sigmoid_ramp(0.25, 1e-3) == pytest.approx(0.25, abs=1e-4)
    with pytest.raises(ValueError):
        sigmoid_ramp(0.5, 0.0)


@given(st.integers(0, 60_000), st.integers(0, 60_000))
def test_beta_r_monotone(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert 0.0 <= beta_r_at(lo, CFG) <= beta_r_at(hi, CFG) <= 10.0


def test_epsilon_linear_decay() -> None:
    assert epsilon_at(0, CFG) == 1.0
    assert epsilon_at(25_000, CFG) == pytest.approx(0.505)
    assert epsilon_at(12_500, CFG) == pytest.approx(0.7525)
    assert epsilon_at(50_000, CFG) == pytest.approx(0.01)
    assert epsilon_at(10**7, CFG) == pytest.approx(0.01)
    assert epsilon_at(0, CFG.replace(epsilon_decay_steps=0)) == pytest.approx(0.01)
    assert linear_schedule(5, 2.0, 4.0, 10) == 3.0


def test_lr_constant_in_warmup_then_inverse_sqrt() -> None:
    t = StageTable.from_config(CFG)  # t_5 = 50_000
    assert lr_at(0, 1e-3, t, 10_000) == 1e-3
    assert lr_at(49_999, 1e-3, t, 10_000) == 1e-3
    assert lr_at(50_000, 1e-3, t, 10_000) == 1e-3
    assert lr_at(60_000, 1e-3, t, 10_000) == pytest.approx(1e-3 / math.sqrt(2))
    assert lr_at(130_000, 1e-3, t, 10_000) == pytest.approx(1e-3 / 3)  # 1/sqrt(9), not 1/9
    assert lr_at(1_050_000, 2e-3, t, 10_000) == pytest.approx(2e-3 / math.sqrt(101))
    with pytest.raises(ValueError):
        lr_at(0, 1e-3, t, 0)


def test_grad_clip_scales_with_lr() -> None:
    assert grad_clip_at(1e-3, 1.0, 1e-3) == pytest.approx(1.0)
    assert grad_clip_at(5e-4, 1.0, 1e-3) == pytest.approx(0.5)
    assert grad_clip_at(1e-2, 2.0, 1e-3) == pytest.approx(20.0)
    t = StageTable.from_config(CFG)
    lr = lr_at(130_000, 1e-3, t, 10_000)
    assert grad_clip_at(lr, 3.0, 1e-3) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        grad_clip_at(1e-3, 1.0, 0.0)


# --- the real env-step budget: episodes end at the world's horizon (issue 8's warm-up bug) -------------------

HORIZON_BUG = Phase2Config(
    num_episodes=30,
    steps_per_episode=50,
    warmup_v_h_e_steps=100,
    warmup_x_h_steps=100,
    warmup_q_r_steps=100,
    beta_r_rampup_steps=100,
    batch_size=16,
    buffer_size=500,
    hidden_dim=16,
    log_every_episodes=10,
    checkpoint_every_episodes=10,
    rollout_gif=False,
)
"""Passes config validation (30 x 50 = 1,500 >= 400 warm-up env steps), but on trivial (horizon 10) the run has
30 x 10 = 300 env steps."""


def test_budget_uses_the_horizon() -> None:
    assert episode_length(HORIZON_BUG, 10) == 10 and episode_length(HORIZON_BUG, 80) == 50
    assert env_step_budget(HORIZON_BUG, 10) == 300
    assert HORIZON_BUG.total_env_steps == 1_500  # what the config alone believes


def test_warmup_shortfall_names_the_real_budget() -> None:
    note = warmup_shortfall(HORIZON_BUG, env_step_budget(HORIZON_BUG, 10))
    assert note is not None and "300 env steps" in note and "needs 400" in note and "stage 4" in note
    assert warmup_shortfall(HORIZON_BUG, 400) is None
    assert warmup_shortfall(HORIZON_BUG.replace(beta_r=0.0), 300) is None  # nothing to ramp


def test_beta_r_shortfall_at_the_end() -> None:
    assert beta_r_shortfall(HORIZON_BUG, 400) is None
    note = beta_r_shortfall(HORIZON_BUG, 300)
    assert note is not None and "300 env steps" in note and "below its nominal 10" in note


def test_horizon_capped_run_warns_and_records_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 8 reproduction: the run ends at 300 env steps; it must say so at start and in run.json."""
    world = load_world("trivial")
    setup = build_setup(world, HORIZON_BUG, reference=False)
    with caplog.at_level(logging.WARNING, logger="humanpower.learn.trainer"):
        trainer = Trainer(setup, HORIZON_BUG, tmp_path, progress=False)
        trainer.train()
    assert trainer.total_steps == 300
    messages = [r.getMessage() for r in caplog.records]
    assert any("warm-up needs 400" in m for m in messages)  # at start
    assert any("training stopped at 300 env steps" in m for m in messages)  # at the end
    status = RunFolder(tmp_path).read_status()
    assert status["status"] == "finished" and status["warmup_complete"] is False
    assert 0.0 <= status["beta_r_final"] < HORIZON_BUG.beta_r and "below its nominal" in status["warning"]


def test_complete_run_records_nominal_beta_r(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = HORIZON_BUG.replace(num_episodes=41)
    setup = build_setup(load_world("trivial"), cfg, reference=False)
    with caplog.at_level(logging.WARNING, logger="humanpower.learn.trainer"):
        Trainer(setup, cfg, tmp_path, progress=False).train()
    assert not caplog.records
    status = RunFolder(tmp_path).read_status()
    assert status["warmup_complete"] is True and status["beta_r_final"] == cfg.beta_r and status["warning"] == ""


def test_cli_reports_an_incomplete_warmup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from humanpower.cli.main import main

    flags = [
        f"--{k.replace('_', '-')}={str(v).lower()}"
        for k, v in HORIZON_BUG.to_dict().items()
        if v != getattr(Phase2Config(), k)
    ]
    assert (
        main(["train", "trivial", "--config", "seed-defaults", "--out", str(tmp_path / "r"), "--no-progress", *flags])
        == 0
    )
    assert "finished with the warm-up incomplete" in capsys.readouterr().out
