"""Every way a run can end leaves a valid, resumable folder with a true status (tiny tabular runs on `trivial`).

Covered: a second writer (lock), unique default folders, kill -9 then eval and resume, SIGTERM, a corrupt or
deleted newest checkpoint, a full disk, a read-only folder, resuming a finished run, extending or shrinking the
budget, metrics.csv and TensorBoard after a resume, and progress output without a terminal. A "kill at step S" is
simulated in-process by removing the checkpoints after S from a finished run and marking it running: that is
exactly what a kill -9 right after checkpoint S leaves (rows and TensorBoard points after S included).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
import torch

from humanpower.api import build_setup
from humanpower.cli.main import main
from humanpower.learn import checkpoint as checkpoint_module
from humanpower.learn.checkpoint import (
    RunFolder,
    RunFolderBusyError,
    create_run_dir,
    load_torch,
    newest_policy,
)
from humanpower.learn.config import Phase2Config
from humanpower.learn.runlog import RunLogger, truncate_metrics
from humanpower.learn.trainer import Trainer, TrainingSetup
from humanpower.worlds.grid.library import load_world

TINY = dict(
    networks="tabular",
    num_episodes=12,
    steps_per_episode=10,
    batch_size=16,
    buffer_size=500,
    warmup_v_h_e_steps=10,
    warmup_x_h_steps=10,
    warmup_q_r_steps=10,
    beta_r_rampup_steps=20,
    epsilon_decay_steps=50,
    log_every_episodes=2,
    checkpoint_every_episodes=3,
    keep_checkpoints=10,
)
CFG = Phase2Config(**TINY)  # type: ignore[arg-type]
FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "num_episodes"]
STEPS = [30, 60, 90, 120]
"""Env steps of the fixture run's checkpoints (every 3 episodes of 10 steps)."""


@pytest.fixture(scope="module")
def setup() -> TrainingSetup:
    return build_setup(load_world("trivial"), CFG)  # with the exact reference, as `humanpower train` does


@pytest.fixture(scope="module")
def finished(setup: TrainingSetup, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder (12 episodes, checkpoints at every 30 env steps, rows every 20)."""
    root = tmp_path_factory.mktemp("finished") / "run"
    Trainer(setup, CFG, root, progress=False).train()
    assert [int(p.stem[5:]) for p in RunFolder(root).checkpoints()] == STEPS[::-1]
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _killed_after(src: Path, dst: Path, step: int) -> RunFolder:
    """What kill -9 leaves shortly after checkpoint ``step``: later rows and TB points, no later checkpoint."""
    folder = RunFolder(_copy(src, dst))
    for path in folder.checkpoints():
        if int(path.stem[5:]) > step:
            path.unlink()
    folder.policy_path.unlink()
    (folder.root / "rollout.gif").unlink()
    folder.write_status(status="running")
    return folder


def _policy_params(path: Path) -> dict[str, torch.Tensor]:
    nets = load_torch(path)["nets"]
    return {f"{n}.{k}": v for n, sd in nets.items() for k, v in sd.items()}


def _assert_same_policy(a: Path, b: Path) -> None:
    pa, pb = _policy_params(a), _policy_params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=0, atol=0, msg=k)


def _csv_steps(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    col = lines[0].split(",").index("total_steps")
    return [int(line.split(",")[col]) for line in lines[1:]]


def _tb_steps(root: Path, tag: str = "total_steps") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(root / "tb"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- item 2: one writer per run folder ---------------------------------------------------------------------------


def test_second_writer_gets_one_clear_line(
    finished: Path, tmp_path: Path, setup: TrainingSetup, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = RunFolder(_copy(finished, tmp_path / "run"))
    with folder.locked():  # as the process training in it would
        assert main(["train", "--resume", str(folder.root), "--no-progress"]) == 2
        line = _one_line(capsys.readouterr().err)
        assert str(folder.root) in line and f"pid {os.getpid()}" in line and "another humanpower process" in line
        with pytest.raises(RunFolderBusyError):
            Trainer(setup, CFG.replace(num_episodes=13), folder.root, progress=False).train(resume=True)
    assert folder.read_status()["status"] == "finished"


def test_new_run_never_reuses_a_folder_that_holds_a_run(finished: Path, tmp_path: Path, setup: TrainingSetup) -> None:
    """Two runs on one --out started together both pass the CLI's emptiness check; the loser must not write."""
    root = _copy(finished, tmp_path / "run")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(Exception, match="already holds a run"):
        Trainer(setup, CFG, root, progress=False).train()
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_default_run_folders_are_unique_and_stay_in_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = resources.files("humanpower.worlds.grid").joinpath("data", "trivial.yaml").read_text(encoding="utf-8")
    evil = tmp_path / "evil.yaml"
    evil.write_text(text.replace("name: trivial", 'name: "../../escaped"', 1))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20260101-000000")  # both start "in the same second"
    args = ["train", str(evil), *FLAGS, "--num-episodes", "5", "--no-progress"]
    assert main(args) == 0 and main(args) == 0
    capsys.readouterr()
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["escaped-20260101-000000", "escaped-20260101-000000-2"]
    assert not (tmp_path.parent / "escaped-20260101-000000").exists()
    for name in runs:
        assert RunFolder(tmp_path / "runs" / name).read_status()["status"] == "finished"
    assert create_run_dir(tmp_path / "runs", "escaped-20260101-000000").name == "escaped-20260101-000000-3"


# -- item 4: corrupt or deleted newest checkpoint -----------------------------------------------------------------


def test_corrupt_newest_checkpoint_falls_back_and_is_set_aside(
    finished: Path, tmp_path: Path, setup: TrainingSetup, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _killed_after(finished, tmp_path / "run", 90)
    newest = folder.latest_checkpoint()
    newest.write_bytes(newest.read_bytes()[:1000])  # cut short
    with caplog.at_level(logging.WARNING):
        Trainer(setup, CFG, folder.root, progress=False).train(resume=True)
    (message,) = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert newest.name in message and "resuming from ckpt-0000000060.pt" in message and "\n" not in message
    assert newest.with_name(newest.name + ".corrupt").is_file()
    assert folder.read_status()["status"] == "finished"
    _assert_same_policy(folder.policy_path, finished / "policy.pt")  # exact resume from the older checkpoint
    assert _csv_steps(folder.metrics_path) == _csv_steps(finished / "metrics.csv")


def test_deleted_newest_checkpoint_resumes_from_the_previous_one(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _killed_after(finished, tmp_path / "run", 90)
    assert folder.read_status()["latest_checkpoint"] == "ckpt-0000000120.pt"  # run.json names a deleted file
    folder.latest_checkpoint().unlink()
    assert main(["train", "--resume", str(folder.root), "--no-progress"]) == 0, capsys.readouterr().err
    assert folder.read_status()["status"] == "finished"
    _assert_same_policy(folder.policy_path, finished / "policy.pt")


# -- item 5: resume does not corrupt the logs ---------------------------------------------------------------------


def test_resume_truncates_metrics_and_keeps_the_checkpoint_step_in_tensorboard(
    finished: Path, tmp_path: Path, setup: TrainingSetup
) -> None:
    folder = _killed_after(finished, tmp_path / "run", 60)
    with folder.metrics_path.open("a") as f:
        f.write("12,1")  # a row cut short by the kill
    assert 60 in _tb_steps(finished) and 80 in _csv_steps(folder.metrics_path)
    Trainer(setup, CFG, folder.root, progress=False).train(resume=True)
    steps = _csv_steps(folder.metrics_path)
    assert steps == _csv_steps(finished / "metrics.csv") == [20, 40, 60, 80, 100, 120]
    assert folder.metrics_path.read_text().count("total_steps") == 1
    assert _tb_steps(folder.root) == steps  # 60 (the checkpoint step) kept, 80.. not doubled


def test_truncate_metrics_drops_later_rows_and_a_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("episode,total_steps,loss\r\n1,10,0.5\r\n2,20,0.4\r\n3,30,0.3\r\n4,4")
    assert truncate_metrics(path, 20) == 1
    assert path.read_bytes() == b"episode,total_steps,loss\r\n1,10,0.5\r\n2,20,0.4\r\n"
    path.write_text("episode,tot")  # header cut short: no row to keep
    truncate_metrics(path, 20)
    assert not path.exists()


def test_resuming_a_finished_run_writes_nothing(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(finished, tmp_path / "run")

    def files() -> dict[Path, tuple[int, bytes]]:
        return {
            p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file() and p.name != "run.lock"
        }

    before = files()
    assert main(["train", "--resume", str(root), "--no-progress"]) == 0
    assert "already finished its 12 episodes" in capsys.readouterr().out
    assert files() == before  # no new event file, policy.pt untouched


def test_extending_updates_the_config_and_a_smaller_budget_is_refused(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(finished, tmp_path / "run")
    assert main(["train", "--resume", str(root), "--num-episodes", "8", "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "num_episodes: 8 is below the 12 episodes" in line and str(root) in line
    assert RunFolder(root).read_status()["status"] == "finished"
    assert main(["train", "--resume", str(root), "--num-episodes", "14", "--no-progress"]) == 0
    assert Phase2Config.from_yaml(root / "config.yaml").num_episodes == 14
    status = RunFolder(root).read_status()
    assert status["status"] == "finished" and status["episode"] == 14 and status["total_steps"] == 140
    assert _csv_steps(root / "metrics.csv") == [20, 40, 60, 80, 100, 120, 140]
    assert _tb_steps(root) == [20, 40, 60, 80, 100, 120, 140]


# -- item 3: full disk, read-only folder, eval of a killed run ------------------------------------------------------


def _failing_writes(monkeypatch: pytest.MonkeyPatch, fails: Callable[[Path], bool], err: int) -> None:
    real = checkpoint_module.atomic_write_bytes

    def write(path: Path, data: bytes) -> None:
        if fails(path):
            raise checkpoint_module.with_path(OSError(err, os.strerror(err)), path)
        real(path, data)

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", write)


def test_full_disk_is_one_line_marks_the_run_failed_and_stays_resumable(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _killed_after(finished, tmp_path / "run", 60)
    _failing_writes(monkeypatch, lambda p: p.name.startswith("ckpt-"), errno.ENOSPC)
    assert main(["train", "--resume", str(folder.root), "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert str(folder.checkpoint_dir / "ckpt-0000000090.pt") in line and "No space left on device" in line
    assert "marked failed" in line and "--resume" in line
    assert folder.read_status()["status"] == "failed"
    assert "No space left on device" in folder.read_status()["error"]
    monkeypatch.undo()  # space freed: the run resumes from its newest checkpoint and finishes
    assert main(["train", "--resume", str(folder.root), "--no-progress"]) == 0
    assert "error" not in folder.read_status()
    _assert_same_policy(folder.policy_path, finished / "policy.pt")
    assert _csv_steps(folder.metrics_path) == _csv_steps(finished / "metrics.csv")


def test_read_only_run_folder_is_one_line(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder turns read-only mid-run: no file (run.json included) can be written any more."""
    folder = _killed_after(finished, tmp_path / "run", 60)
    _failing_writes(monkeypatch, lambda p: True, errno.EACCES)
    assert main(["train", "--resume", str(folder.root), "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "Permission denied" in line and str(folder.root) in line and "run.json could not be updated" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_run_folder_by_permissions(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _killed_after(finished, tmp_path / "run", 60)
    (folder.root / "run.lock").unlink(missing_ok=True)
    for p in [folder.root, folder.checkpoint_dir, folder.tb_dir]:
        p.chmod(0o555)
    try:
        assert main(["train", "--resume", str(folder.root), "--no-progress"]) == 1
        assert "Permission denied" in _one_line(capsys.readouterr().err)
    finally:
        for p in [folder.root, folder.checkpoint_dir, folder.tb_dir]:
            p.chmod(0o755)


def test_eval_of_a_killed_run_uses_its_newest_checkpoint(finished: Path, tmp_path: Path) -> None:
    folder = _killed_after(finished, tmp_path / "run", 90)
    source = newest_policy(folder)
    assert source.path.name == "ckpt-0000000090.pt" and "killed" in (source.note or "")
    for path in folder.checkpoints():
        path.unlink()
    with pytest.raises(Exception, match=r"killed .* before writing a readable checkpoint"):
        newest_policy(folder)
    assert newest_policy(RunFolder(finished)).note is None  # a finished run: its policy.pt


# -- item 7: progress without a terminal ----------------------------------------------------------------------------


def test_progress_without_a_terminal_is_plain_lines() -> None:
    stream = io.StringIO()
    logger = RunLogger(None, 100, progress=True, stream=stream)
    for step in range(1, 101):
        logger.advance(1)
        if step % 25 == 0:
            logger.log({"episode": step // 10, "total_steps": step}, step, {"stage": "2"})
    logger.close()
    out = stream.getvalue()
    assert "\r" not in out and len(out.splitlines()) == 4
    assert out.splitlines()[-1].startswith("episode 10  step 100/100 (100%)  stage=2")


# -- scenario: kill -9, eval, resume, SIGTERM, resume to the end (real processes) ----------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "humanpower.cli.main", *args]


def _wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[str], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_kill_9_then_eval_then_sigterm_then_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    folder = RunFolder(run)
    long = [*FLAGS, "--num-episodes", "100000", "--checkpoint-every-episodes", "2"]
    proc = subprocess.Popen(_cli("train", "trivial", "--out", str(run), *long), stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(folder.checkpoints()) >= 2, proc)
        proc.kill()  # kill -9: no chance to write anything
    finally:
        _, err = proc.communicate()
    assert "Traceback" not in err and "\r" not in err and "step" in err  # stderr is a pipe: plain lines, no bar
    assert folder.read_status()["status"] == "running" and not folder.policy_path.exists()

    assert main(["eval", str(run), "--json", "--episodes", "1", "--no-exact"]) == 0
    note = _one_line(capsys.readouterr().err)
    assert "was killed" in note and "ckpt-" in note

    # SIGTERM right after the resumed run's first checkpoint (sent by the process to itself, as `kill PID` would).
    real_checkpoint = Trainer.checkpoint
    sent: list[int] = []

    def checkpoint_then_sigterm(self: Trainer) -> None:
        real_checkpoint(self)
        if not sent:  # once: a second SIGTERM would abort at once, as it should
            sent.append(self.total_steps)
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(Trainer, "checkpoint", checkpoint_then_sigterm)
    start = load_torch(folder.latest_checkpoint())["state"]["total_steps"]
    assert main(["train", "--resume", str(run), "--no-progress"]) == 128 + signal.SIGTERM
    assert "interrupted" in capsys.readouterr().out
    monkeypatch.undo()
    status = folder.read_status()
    assert status["status"] == "interrupted" and status["total_steps"] == sent[0] > start  # stopped right there
    assert load_torch(folder.latest_checkpoint())["state"]["total_steps"] == status["total_steps"]

    done = status["episode"]
    assert main(["train", "--resume", str(run), "--num-episodes", str(done + 2), "--no-progress"]) == 0
    assert folder.read_status()["status"] == "finished"
    steps = _csv_steps(folder.metrics_path)
    assert steps == sorted(set(steps)) and steps[-1] == (done + 2) * 10  # no repeated or backward rows


# -- item 5 for the asynchronous trainer ------------------------------------------------------------------------------


def test_async_resume_after_a_kill_repeats_no_episode_and_a_finished_run_is_left_alone(tmp_path: Path) -> None:
    cfg = CFG.replace(async_training=True, num_actors=1, chunk_size=10)  # one chunk = one episode
    setup = build_setup(load_world("trivial"), cfg, reference=False)
    first = tmp_path / "first"
    Trainer(setup, cfg, first, progress=False).train()
    assert _csv_steps(first / "metrics.csv") == [20, 40, 60, 80, 100, 120]
    folder = _killed_after(first, tmp_path / "run", 60)
    resumed = Trainer(setup, cfg, folder.root, progress=False).train(resume=True)
    assert not resumed.interrupted and folder.read_status()["status"] == "finished"
    steps = _csv_steps(folder.metrics_path)
    assert steps == [20, 40, 60, 80, 100, 120] and _tb_steps(folder.root) == steps
    episodes = [int(line.split(",")[0]) for line in folder.metrics_path.read_text().splitlines()[1:]]
    assert episodes == [2, 4, 6, 8, 10, 12]  # no episode counted twice
    policy = folder.policy_path.read_bytes()
    again = Trainer(setup, cfg, folder.root, progress=False).train(resume=True)
    assert again.already_finished and folder.policy_path.read_bytes() == policy
    assert len(list(folder.tb_dir.iterdir())) == 2  # the first run's event file and the resume's, no empty third
