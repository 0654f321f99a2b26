"""The training loop's time limit (``max_seconds``): --budget-minutes holds when a run is slower than timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from humanpower.api import auto_config, build_setup
from humanpower.cli.main import main
from humanpower.learn.checkpoint import RunFolder, load_torch
from humanpower.learn.config import Phase2Config
from humanpower.learn.trainer import Trainer
from humanpower.worlds.grid.library import load_world
from test_trainer import SMALL

LIMIT_SECONDS = 0.12
"""Far less than the 120 env steps (with training) of SMALL take on any machine."""


def test_run_stops_at_its_time_limit_finished_and_says_so(tmp_path: Path) -> None:
    world = load_world("trivial")
    cfg = Phase2Config(**SMALL, max_seconds=LIMIT_SECONDS)
    setup = build_setup(world, cfg)
    run = tmp_path / "run"
    result = Trainer(setup, cfg, run, progress=False).train()
    status = json.loads((run / "run.json").read_text())
    budget = cfg.num_episodes * cfg.steps_per_episode
    assert not result.interrupted and status["status"] == "finished"
    assert 0 < status["total_steps"] < budget
    assert status["time_limit_stop"].startswith(f"time limit of {LIMIT_SECONDS:.1f} s reached after")
    assert (run / "policy.pt").is_file()
    newest = RunFolder(run).checkpoints()[0]
    assert load_torch(newest)["state"]["loop_seconds"] >= LIMIT_SECONDS

    # the time is spent: a resume has nothing to do
    again = Trainer(setup, cfg, run, progress=False).train(resume=True)
    assert again.already_finished

    # without the limit (what --num-episodes on resume does) the same run trains on to its episodes
    more = Trainer(setup, cfg.replace(max_seconds=None), run, progress=False).train(resume=True)
    status = json.loads((run / "run.json").read_text())
    assert not more.already_finished and status["total_steps"] == budget
    assert "time_limit_stop" not in status


def test_run_within_its_time_limit_is_unchanged(tmp_path: Path) -> None:
    world = load_world("trivial")
    cfg = Phase2Config(**SMALL, max_seconds=3600.0)
    setup = build_setup(world, cfg)
    Trainer(setup, cfg, tmp_path / "run", progress=False).train()
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["total_steps"] == cfg.num_episodes * cfg.steps_per_episode
    assert "time_limit_stop" not in status


def test_budget_minutes_sets_the_time_limit_and_num_episodes_does_not() -> None:
    world = load_world("trivial")
    timed, _ = auto_config(world, {"seed": 0}, budget_minutes=0.5)
    limit = timed.config.max_seconds
    assert limit is not None and 0 < limit < 30  # what is left after the setup and the timing
    fixed, _ = auto_config(world, {"seed": 0, "num_episodes": 20})
    assert fixed.config.max_seconds is None


def test_resume_with_num_episodes_lifts_the_time_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    cfg = Phase2Config(**SMALL, max_seconds=LIMIT_SECONDS)  # the whole of SMALL: more than the limit anywhere
    config_file = tmp_path / "c.yaml"
    config_file.write_text(cfg.to_yaml())
    assert main(["train", "trivial", "--config", str(config_file), "--out", str(run), "--no-progress"]) == 0
    assert "at its time limit (time limit of" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--num-episodes", str(cfg.num_episodes), "--no-progress"]) == 0
    status = json.loads((run / "run.json").read_text())
    assert status["total_steps"] == cfg.num_episodes * cfg.steps_per_episode and "time_limit_stop" not in status
    assert Phase2Config.from_yaml(run / "config.yaml").max_seconds is None
