"""Synchronous Phase 2 training: the reference loop (exactly reproducible from a seed and from a checkpoint).

    for each env step:                           # total_steps drives stages, beta_r, epsilon and lr
        transition = actor.step(policy, beta_r(t), epsilon(t))
        learner.add([transition]); t += 1; learner.on_env_steps(t)      # replay policies: clear at ramp bounds
        repeat updates_per_step times (once replay holds >= batch_size): learner.step(t)
        at episode ends: log, checkpoint

The asynchronous wiring (``learn/distributed``) reuses the same Actor and Learner objects.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from humanpower.errors import CheckpointError, ConfigError
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.learn.actor import Actor, ExplorationParams
from humanpower.learn.checkpoint import (
    RunFolder,
    RunFolderWriteError,
    atomic_write_text,
    describe_os_error,
    save_torch,
)
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import Featurizer, GoalEncoder, StateEncoder
from humanpower.learn.evaluate import LearnedModel, compare_with_exact
from humanpower.learn.learner import Learner
from humanpower.learn.lifecycle import RunStart, StopRequest, below_done_error, write_failure
from humanpower.learn.networks import build_networks
from humanpower.learn.runlog import RunLogger, truncate_metrics
from humanpower.learn.schedules import beta_r_at, beta_r_shortfall, epsilon_at, lr_at, warmup_shortfall
from humanpower.worlds.protocol import SimulatorModel, State

log = logging.getLogger(__name__)


@dataclass
class TrainingSetup:
    """The environment-specific parts of a run, built by the caller (CLI or :func:`humanpower.train`)."""

    world: SimulatorModel
    prior: HumanPolicyPrior
    state_encoder: StateEncoder
    goal_encoders: Sequence[GoalEncoder]
    """One goal encoder per human, in ``world.humans`` order."""
    reference: Any = None
    """An ExactSolution to compare against while training (small worlds), or None."""
    render: Callable[[State, str], np.ndarray] | None = None
    """Frame of a state with a caption, for the rollout GIF; None skips the GIF."""
    save_world: Callable[[Path], None] | None = None
    """Writes the world file into the run folder (so eval needs nothing else)."""


@dataclass
class TrainResult:
    """What a run returns: the trained model, the logged metric rows and the run folder (if any)."""

    model: LearnedModel
    metrics: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None
    interrupted: bool = False
    """Stopped by SIGINT or SIGTERM before the budget (resumable)."""
    stopped_by: int | None = None
    """The signal that interrupted the run (``signal.SIGINT`` or ``signal.SIGTERM``), if any."""
    already_finished: bool = False
    """A resume of a finished run with no larger budget: nothing was trained or written."""


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def make_learner(setup: TrainingSetup, cfg: Phase2Config) -> Learner:
    """Featurizer, networks and learner for one world and config."""
    device = resolve_device(cfg.device)
    world = setup.world
    featurizer = Featurizer(setup.state_encoder, device, fast=cfg.train_step == "fast")
    goal_features = {
        i: enc.encode(list(world.goal_set(h).goals))
        for i, (h, enc) in enumerate(zip(world.humans, setup.goal_encoders, strict=True))
    }
    max_states = setup.reference.num_states if setup.reference is not None else cfg.tabular_max_states
    nets = build_networks(
        world, cfg, setup.state_encoder.dim, goal_features, cfg.networks, max_states=max_states
    )
    nets.to(device)
    return Learner(world, cfg, nets, featurizer, device)


class SyncTrainer:
    """The synchronous loop. ``run_dir=None`` trains in memory only (tests, the Python API).

    With a run folder, :meth:`train` holds the folder's lock for the whole call (a second writer gets
    RunFolderBusyError), turns SIGINT/SIGTERM into a clean stop (checkpoint, status ``interrupted``) and an OSError
    on the folder into one RunFolderWriteError line (status ``failed`` where it can still be written).
    """

    def __init__(
        self, setup: TrainingSetup, cfg: Phase2Config, run_dir: Path | None = None, *, progress: bool = True
    ) -> None:
        self.setup = setup
        self.cfg = cfg
        self.progress = progress
        self.run = RunFolder(run_dir) if run_dir is not None else None
        torch.set_num_threads(cfg.torch_threads)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        torch.manual_seed(cfg.seed)
        self.learner = make_learner(setup, cfg)
        world = setup.world
        self.episode_len = min(cfg.steps_per_episode, world.max_steps)
        self.actor = Actor.from_config(world, setup.prior, cfg, seed=cfg.seed, steps_per_episode=self.episode_len)
        self.total_steps = 0
        self.episode = 0
        self.metrics: list[dict[str, Any]] = []
        self._logger: RunLogger | None = None
        """The metrics logger while :meth:`train` runs (flushed before each checkpoint)."""

    # -- run folder -----------------------------------------------------------------------------------------
    def _init_run_folder(self) -> None:
        assert self.run is not None
        self.run.create()
        if self.run.status_path.is_file():
            raise CheckpointError(
                f"{self.run.root}: already holds a run (run.json); continue it with "
                f"humanpower train --resume {self.run.root}, or use another folder"
            )
        atomic_write_text(self.run.config_path, self.cfg.to_yaml())
        if self.setup.save_world is not None:
            self.setup.save_world(self.run.world_path)
        self.run.write_status(status="running", episode=0, total_steps=0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "actor": self.actor.state_dict(),
            "total_steps": self.total_steps,
            "episode": self.episode,
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.learner.load_state_dict(d["learner"])
        self.actor.load_state_dict(d["actor"])
        self.total_steps = int(d["total_steps"])
        self.episode = int(d["episode"])
        torch.set_rng_state(d["torch_rng"])

    def resume(self) -> None:
        """Load the newest readable checkpoint of the run folder.

        Unreadable newer checkpoints are renamed ``*.corrupt`` and reported on one line; with no readable
        checkpoint at all (a run killed before its first one), the run starts over from episode 0.
        """
        if self.run is None:
            raise CheckpointError("resume needs a run folder")
        found, skipped = self.run.newest_readable_checkpoint(set_aside=True)
        if found is None:
            unreadable = f" ({'; '.join(skipped)})" if skipped else ""
            log.warning("%s: no readable checkpoint%s; starting the run over", self.run.root, unreadable)
            return
        if skipped:
            log.warning("%s; resuming from %s instead", "; ".join(skipped), found.path.name)
        try:
            self.load_state_dict(found.data["state"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{found.path}: does not match this run ({exc})") from exc

    def checkpoint(self) -> None:
        if self.run is not None:
            if self._logger is not None:
                self._logger.flush()  # every TensorBoard point up to this step is on disk with the checkpoint
            self.run.save_checkpoint({"state": self.state_dict()}, self.total_steps, self.cfg.keep_checkpoints)
            self.run.write_status(episode=self.episode)

    def _work_left(self) -> bool:
        """Whether the run has not reached its budget (``num_episodes``) yet."""
        return self.episode < self.cfg.num_episodes

    def _beyond_budget(self) -> bool:
        """Whether the run already did more than its budget (a resume with a smaller ``num_episodes``)."""
        return self.episode > self.cfg.num_episodes

    def _open_run(self, resume: bool) -> RunStart:
        """Initialise a new run folder, or resume from its newest checkpoint (the caller holds the lock)."""
        run = self.run
        assert run is not None
        if not resume:
            self._init_run_folder()
            return RunStart()
        status = run.read_status().get("status")
        self.resume()
        if self._beyond_budget():
            raise below_done_error(self.cfg.num_episodes, self.episode, self.total_steps, run)
        if status == "finished" and not self._work_left():
            return RunStart(resumed_at=self.total_steps, already_finished=True)
        truncate_metrics(run.metrics_path, self.total_steps)
        config_text = self.cfg.to_yaml()
        if not run.config_path.is_file() or run.config_path.read_text() != config_text:
            atomic_write_text(run.config_path, config_text)  # e.g. a larger num_episodes
        run.remove_stale_temp_files()
        run.write_status(status="running", episode=self.episode, total_steps=self.total_steps, error=None)
        return RunStart(resumed_at=self.total_steps)

    @contextlib.contextmanager
    def _session(self, resume: bool) -> Iterator[RunStart]:
        """Open the run (under the folder's lock, held until the block ends); OSError -> RunFolderWriteError."""
        run = self.run
        if run is None:
            if resume:
                raise CheckpointError("resume needs a run folder")
            yield RunStart()
            return
        if resume:
            run.read_status()  # a clear error (before creating anything) if this is not a run folder
        try:
            with run.locked():
                try:
                    yield self._open_run(resume)
                except OSError as exc:
                    raise write_failure(run, exc) from exc
        except OSError as exc:  # the lock file itself could not be created (read-only folder...)
            raise RunFolderWriteError(f"{describe_os_error(exc)} (cannot lock the run folder {run.root})") from exc

    # -- the loop -------------------------------------------------------------------------------------------
    def train(self, *, resume: bool = False) -> TrainResult:
        """Train to ``num_episodes`` (from the newest checkpoint with ``resume``); see the class docstring."""
        self._prepare()
        stop = StopRequest()
        with stop.installed(), self._session(resume) as start:
            if start.already_finished:
                return self._result(LearnedModel.from_learner(self.learner, self.setup.world), already_finished=True)
            budget = self.cfg.num_episodes * self.episode_len
            warn_short_warmup(self.cfg, budget)
            root = self.run.root if self.run else None
            logger = RunLogger(root, budget, self.total_steps, self.progress, purge_after=start.resumed_at)
            self._logger = logger
            try:
                self._collect_and_train(logger, stop)
            finally:
                self._logger = None
                logger.close()
            interrupted = stop.requested and self._work_left()
            return self._result(self._finish(interrupted), stopped_by=stop.signal if interrupted else None)

    def _prepare(self) -> None:
        """Checks to make before the run folder is touched (none for the synchronous loop)."""

    def _collect_and_train(self, logger: RunLogger, stop: StopRequest) -> None:
        cfg, learner, actor = self.cfg, self.learner, self.actor
        t0, steps0, train0 = time.perf_counter(), self.total_steps, learner.train_steps
        while self.episode < cfg.num_episodes and not stop.requested:
            if actor.episode_done:
                actor.begin_episode()
            beta_r = beta_r_at(self.total_steps, cfg)
            explore = ExplorationParams(beta_r=beta_r, epsilon=epsilon_at(self.total_steps, cfg))
            policy = learner.acting_policy() if beta_r > 0 else None
            transition = actor.step(policy, explore, self.total_steps)
            learner.add([transition])
            self.total_steps += 1
            learner.on_env_steps(self.total_steps)
            if learner.ready():
                for _ in range(cfg.updates_per_step):
                    learner.step(self.total_steps)  # losses accumulate on the device (learner.losses)
            logger.advance(1)
            if actor.episode_done:
                self.episode += 1
                if self.episode % cfg.log_every_episodes == 0 or self.episode == cfg.num_episodes:
                    now = time.perf_counter()
                    losses = learner.losses.take()  # the window's mean losses (checkpointed with the learner)
                    row = self._metrics_row(losses, now - t0, self.total_steps - steps0, learner.train_steps - train0)
                    t0, steps0, train0 = now, self.total_steps, learner.train_steps
                    self.metrics.append(row)
                    logger.log(row, self.total_steps, _postfix(row))
                if self.run is not None and self.episode % cfg.checkpoint_every_episodes == 0:
                    self.checkpoint()

    def _status_fields(self) -> dict[str, Any]:
        """Extra ``run.json`` fields written when the run ends."""
        return {}

    def _finish(self, interrupted: bool) -> LearnedModel:
        """The final checkpoint, policy, rollout GIF and status."""
        model = LearnedModel.from_learner(self.learner, self.setup.world)
        if self.run is not None:
            self.checkpoint()
            model.save(self.run.policy_path)
            if not interrupted:
                self._write_rollout(model)
            self.run.write_status(
                status="interrupted" if interrupted else "finished", episode=self.episode, **self._status_fields()
            )
        if not interrupted:
            record_final_beta_r(self.cfg, self.total_steps, self.run)
        return model

    def _result(
        self, model: LearnedModel, *, stopped_by: int | None = None, already_finished: bool = False
    ) -> TrainResult:
        root = self.run.root if self.run else None
        return TrainResult(model, self.metrics, root, stopped_by is not None, stopped_by, already_finished)

    def _metrics_row(
        self, losses: dict[str, float], seconds: float, env_steps: int, train_steps: int
    ) -> dict[str, Any]:
        cfg, learner = self.cfg, self.learner
        t = self.total_steps
        row: dict[str, Any] = {
            "episode": self.episode,
            "total_steps": t,
            "train_steps": learner.train_steps,
            "stage": learner.stages.stage_at(t),
            "beta_r": beta_r_at(t, cfg),
            "epsilon": epsilon_at(t, cfg),
            "lr_q_r": lr_at(t, cfg.lr_q_r, learner.stages, cfg.lr_decay_steps),
            "buffer": len(learner.replay),
            "env_steps_per_s": env_steps / max(seconds, 1e-9),
            "train_steps_per_s": train_steps / max(seconds, 1e-9),
        }
        for name in ("v_h_e", "x_h", "u_r", "q_r", "v_r"):
            row[f"loss_{name}"] = losses.get(name, float("nan"))
        if self.setup.reference is not None:
            model = LearnedModel.from_learner(learner, self.setup.world)
            row.update(
                {k: v for k, v in compare_with_exact(model, self.setup.reference).items() if k != "states_compared"}
            )
        return row

    def _write_rollout(self, model: LearnedModel) -> None:
        if self.setup.render is None or self.run is None:
            return
        from humanpower.learn.rollout import rollout_frames
        from humanpower.worlds.video import write_gif

        frames = rollout_frames(model, self.setup.world, self.setup.prior, self.setup.render, seed=self.cfg.seed)
        write_gif(frames, self.run.root / "rollout.gif", fps=3)


def _postfix(row: dict[str, Any]) -> dict[str, str]:
    out = {
        "stage": str(row["stage"]),
        "beta_r": f"{row['beta_r']:.2f}",
        "eps": f"{row['epsilon']:.2f}",
        "env/s": f"{row['env_steps_per_s']:.0f}",
        "train/s": f"{row['train_steps_per_s']:.0f}",
    }
    for name in ("v_h_e", "x_h", "q_r"):
        value = row.get(f"loss_{name}")
        if value is not None and value == value:
            out[name] = f"{value:.2e}"
    if "pi_r_rmse" in row:
        out["pi_rmse"] = f"{row['pi_r_rmse']:.3f}"
    return out


def warn_short_warmup(cfg: Phase2Config, budget: int) -> None:
    """Log one warning line at the start of a run whose ``budget`` env steps end before the warm-up does."""
    note = warmup_shortfall(cfg, budget)
    if note is not None:
        log.warning("warning: %s", note)


def record_final_beta_r(cfg: Phase2Config, total_steps: int, run: RunFolder | None) -> None:
    """Record beta_r at the end of a run in run.json; log a warning if it is below nominal."""
    note = beta_r_shortfall(cfg, total_steps)
    if note is not None:
        log.warning("warning: %s", note)
    if run is not None:
        run.write_status(beta_r_final=beta_r_at(total_steps, cfg), warmup_complete=note is None, warning=note or "")


def save_policy_only(model: LearnedModel, path: Path) -> None:
    """Write just the trained model (used by the Python API when no run folder is wanted)."""
    save_torch(path, model.to_checkpoint())
