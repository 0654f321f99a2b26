"""The synchronous trainer: exact resume, run folder contents, Ctrl-C, corrupt checkpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from humanpower.api import build_setup
from humanpower.errors import CheckpointError
from humanpower.learn.checkpoint import RunFolder, load_torch
from humanpower.learn.config import Phase2Config
from humanpower.learn.trainer import Trainer
from humanpower.worlds.grid.library import load_world

SMALL = dict(
    num_episodes=12,
    steps_per_episode=10,
    batch_size=16,
    buffer_size=500,
    warmup_v_h_e_steps=10,
    warmup_x_h_steps=10,
    warmup_q_r_steps=10,
    beta_r_rampup_steps=20,
    epsilon_decay_steps=50,
    hidden_dim=16,
    dropout=0.5,
    log_every_episodes=2,
    checkpoint_every_episodes=3,
    target_update_interval_q_r=7,
    target_update_interval_v_h_e=5,
    target_update_interval_x_h=6,
)


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in trainer.learner.nets.named().items():
        for k, v in m.state_dict().items():
            out[f"{name}.{k}"] = v.clone()
    for name, t in trainer.learner.targets.items():
        for k, v in t.module.state_dict().items():
            out[f"target.{name}.{k}"] = v.clone()
    for name, opt in trainer.learner.optimizers.items():
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    out[f"opt.{name}.{i}.{k}"] = v.clone()
    return out


@pytest.mark.parametrize("networks", ["neural", "tabular"])
def test_resume_is_exact(tmp_path: Path, networks: str) -> None:
    """N episodes straight == N/2 episodes, then resume from the checkpoint for the other N/2."""
    world = load_world("trivial")
    cfg = Phase2Config(**SMALL, networks=networks)
    setup = build_setup(world, cfg, reference=False)
    straight = Trainer(setup, cfg, tmp_path / "a", progress=False)
    straight.train()

    half = cfg.replace(num_episodes=6)
    Trainer(setup, half, tmp_path / "b", progress=False).train()
    resumed = Trainer(setup, cfg, tmp_path / "b", progress=False)
    resumed.train(resume=True)

    assert resumed.total_steps == straight.total_steps == 120
    assert resumed.learner.train_steps == straight.learner.train_steps
    a, b = _params(straight), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_run_folder_contents(tmp_path: Path) -> None:
    world = load_world("trivial")
    cfg = Phase2Config(**SMALL)
    result = Trainer(build_setup(world, cfg), cfg, tmp_path, progress=False).train()
    folder = RunFolder(tmp_path)
    for name in ("config.yaml", "world.yaml", "run.json", "metrics.csv", "policy.pt", "rollout.gif"):
        assert (tmp_path / name).is_file(), name
    assert any((tmp_path / "tb").iterdir())
    assert folder.read_status()["status"] == "finished"
    assert len(list(folder.checkpoint_dir.glob("ckpt-*.pt"))) <= cfg.keep_checkpoints
    assert Phase2Config.from_yaml(folder.config_path) == cfg
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in (
        "total_steps",
        "train_steps",
        "stage",
        "beta_r",
        "epsilon",
        "env_steps_per_s",
        "train_steps_per_s",
        "loss_v_h_e",
        "pi_r_rmse",
        "argmax_agreement",
        "V_r_rel_error",
    ):
        assert key in header
    assert len(result.metrics) == cfg.num_episodes // cfg.log_every_episodes
    assert result.metrics[-1]["stage"] == 5 and result.metrics[-1]["beta_r"] == cfg.beta_r


def test_corrupt_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"ckpt\.pt: corrupt"):
        load_torch(bad)
    with pytest.raises(CheckpointError, match=r"run\.json missing"):
        RunFolder(tmp_path).read_status()


def test_ctrl_c_leaves_resumable_run_folder(tmp_path: Path) -> None:
    """SIGINT mid-run: the process exits cleanly, the folder is marked interrupted and resumes to the end."""
    run_dir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "humanpower.cli.main",
        "train",
        "trivial",
        "--out",
        str(run_dir),
        "--no-progress",
        "--num-episodes",
        "100000",
        "--networks",
        "tabular",
        "--log-every-episodes",
        "1",
        "--checkpoint-every-episodes",
        "1000",
        "--batch-size",
        "8",
        "--warmup-v-h-e-steps",
        "5",
        "--warmup-x-h-steps",
        "5",
        "--warmup-q-r-steps",
        "5",
        "--beta-r-rampup-steps",
        "5",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (run_dir / "metrics.csv").is_file():
        time.sleep(0.2)
    assert (run_dir / "metrics.csv").is_file(), proc.stderr.read() if proc.poll() is not None else "no metrics"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    status = RunFolder(run_dir).read_status()
    assert status["status"] == "interrupted"
    steps = status["total_steps"]
    ckpt = load_torch(RunFolder(run_dir).latest_checkpoint())
    assert ckpt["state"]["total_steps"] == steps > 0
    # resume with a budget just past the interruption: it finishes
    episodes_done = ckpt["state"]["episode"]
    resume = subprocess.run(
        [
            sys.executable,
            "-m",
            "humanpower.cli.main",
            "train",
            "--resume",
            str(run_dir),
            "--no-progress",
            "--num-episodes",
            str(episodes_done + 2),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert resume.returncode == 0, resume.stderr
    assert RunFolder(run_dir).read_status()["status"] == "finished"
