"""One run in two phases: the learned Phase 1 prior first, then Phase 2 against the frozen result.

Used when the human prior is ``learned`` (config ``human_prior: learned``, or ``auto`` on a world whose state DAG
is too large for the exact solver). Environment-agnostic: the caller (``humanpower.api``) passes the encoders,
a function building the Phase 2 setup for a prior, and the Phase 2 trainer call.

Run folder layout (the Phase 2 files are unchanged)::

    RUN/config.yaml, world.yaml          written when Phase 1 starts (phase1_train_steps resolved)
    RUN/phase1/run.json                  Phase 1 status: running / interrupted / finished
    RUN/phase1/checkpoints/ckpt-*.pt     Phase 1 checkpoints: Q_h^m networks, targets, optimizers, replay, walk
    RUN/phase1/metrics.csv, phase1/tb/   Phase 1 losses and speed (its own progress line)
    RUN/phase1/prior.pt                  the frozen prior (written when Phase 1 finishes)
    RUN/run.json, checkpoints/, ...      Phase 2 as for any other prior

A resume continues the phase it was in: without ``phase1/prior.pt`` Phase 1 continues from its newest checkpoint;
with it, the frozen prior is loaded and Phase 2 continues (or starts). ``humanpower eval`` rebuilds the prior from
``phase1/prior.pt`` (:func:`load_learned_prior`).

Budget rule: Phase 1 trains ``phase1_train_steps`` training steps (``phase1_states_per_train_step`` collected
states each). With ``--budget-minutes M`` (the API's :func:`humanpower.api.auto_config`), Phase 1 gets the share
``phase1_budget_share`` of the minutes left after setup: its speed is timed for about 3 CPU seconds
(:func:`measure_step_seconds`) and the steps that fit are taken (:func:`steps_for_seconds`); Phase 2's config is
derived for the remaining minutes. Otherwise (an explicit config without ``phase1_train_steps``) it is
``ceil(share / (1 - share) * num_episodes * steps_per_episode)`` (:func:`derived_phase1_steps`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from humanpower.errors import CheckpointError
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.learn.checkpoint import RunFolder, atomic_write_text, load_torch, save_torch
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import Featurizer, GoalEncoder, StateEncoder
from humanpower.learn.evaluate import LearnedModel
from humanpower.learn.lifecycle import StopRequest
from humanpower.learn.phase1.data import RandomWalkCollector
from humanpower.learn.phase1.learner import Phase1Learner, Phase1Settings
from humanpower.learn.phase1.networks import build_phase1_networks
from humanpower.learn.phase1.prior import LearnedHumanPrior
from humanpower.learn.runlog import RunLogger, truncate_metrics
from humanpower.learn.trainer import TrainingSetup, TrainResult, make_learner
from humanpower.worlds.protocol import SimulatorModel, WorldModel

PHASE1_DIR = "phase1"
PRIOR_FILE = "prior.pt"
LOG_ROWS = 50
"""Phase 1 logs about this many metric rows per run."""
CHECKPOINTS = 10
"""Phase 1 writes about this many periodic checkpoints per run (and one when stopped)."""
PROBE_SECONDS = 3.0
"""Seconds :func:`measure_step_seconds` times Phase 1 for (with ``--budget-minutes``)."""
STEP_CAP_FACTOR = 4.0
"""With a time limit (:func:`plan_phase1`), Phase 1's step cap is this many times the steps the probe says fit,
so that the time limit, not the cap, ends Phase 1: the probe's first steps are not representative (they compile
mostly new states, and a small replay lets successor values come from the memo more often than later)."""


def derived_phase1_steps(cfg: Phase2Config) -> int:
    """The budget rule: ``ceil(share / (1 - share) * total_env_steps)`` Phase 1 training steps."""
    share = cfg.phase1_budget_share
    return max(1, math.ceil(share / (1.0 - share) * cfg.total_env_steps))


def measure_step_seconds(
    world: WorldModel,
    cfg: Phase2Config,
    state_encoder: StateEncoder,
    goal_encoders: Sequence[GoalEncoder],
    seconds: float = PROBE_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds of ``clock`` (wall clock by default, the clock of the time limit) per Phase 1 training step (with
    its collection) of a throwaway trainer, timed for about ``seconds`` and at least 3 training steps."""
    trainer = Phase1Trainer(world, cfg.replace(phase1_train_steps=10**9), state_encoder, goal_encoders, progress=False)
    while trainer.step() is None:  # fill replay with a first batch (not timed)
        pass
    t0, steps = clock(), 0
    while steps < 3 or clock() - t0 < seconds:
        trainer.step()
        steps += 1
    return (clock() - t0) / steps


def plan_phase1(
    world: WorldModel,
    cfg: Phase2Config,
    state_encoder: StateEncoder,
    goal_encoders: Sequence[GoalEncoder],
    seconds: float,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """The Phase 1 config fields for a time budget of ``seconds`` (``--budget-minutes``): the time limit
    ``phase1_max_seconds`` and a step cap ``phase1_train_steps`` of :data:`STEP_CAP_FACTOR` times the steps that
    fit at the probed speed (:func:`measure_step_seconds`)."""
    step_s = measure_step_seconds(world, cfg, state_encoder, goal_encoders, clock=clock)
    seconds = max(float(seconds), 1.0)
    return {"phase1_max_seconds": seconds, "phase1_train_steps": steps_for_seconds(STEP_CAP_FACTOR * seconds, step_s)}


def steps_for_seconds(seconds: float, step_seconds: float) -> int:
    """The Phase 1 training steps that fit ``seconds`` at ``step_seconds`` each (at least 1)."""
    return max(1, int(seconds / max(step_seconds, 1e-9)))


def with_phase1_steps(cfg: Phase2Config) -> Phase2Config:
    """``cfg`` with ``phase1_train_steps`` resolved by :func:`derived_phase1_steps` (kept as is when set)."""
    if cfg.phase1_train_steps is not None:
        return cfg
    return cfg.replace(phase1_train_steps=derived_phase1_steps(cfg))


def phase1_folder(run: RunFolder) -> RunFolder:
    """The Phase 1 part of a run folder (its own status, checkpoints and metrics)."""
    return RunFolder(run.root / PHASE1_DIR)


def read_run_status(run: RunFolder) -> dict[str, Any]:
    """``run.json`` of the run, or of its Phase 1 while Phase 2 has not started (CheckpointError if neither)."""
    p1 = phase1_folder(run)
    if not run.status_path.is_file() and p1.status_path.is_file():
        return p1.read_status()
    return run.read_status()


def untrained_prior(
    world: WorldModel, cfg: Phase2Config, state_encoder: StateEncoder, goal_encoders: Sequence[GoalEncoder]
) -> LearnedHumanPrior:
    """A learned prior with freshly initialised networks: the stand-in while Phase 1 has not run (setup, probes)."""
    learner = Phase1Learner(world, Phase1Settings.from_config(cfg, 1), state_encoder, goal_encoders)
    return frozen_prior(learner)


def frozen_prior(learner: Phase1Learner) -> LearnedHumanPrior:
    """The learner's current main networks as a frozen prior (copies; training on does not change it)."""
    s = learner.settings
    shared = learner.featurizer if learner.tabular else None
    if shared is not None:
        copy = Featurizer(shared.encoder, "cpu", fast=True)
        copy.load_state_dict(shared.state_dict())
        shared = copy
    return LearnedHumanPrior(learner.world, learner.featurizer.encoder, learner.nets, s.beta_h, s.nu_h, shared)


def save_prior(path: Path, prior: LearnedHumanPrior, settings: Phase1Settings) -> None:
    save_torch(path, {"settings": asdict(settings), "prior": prior.state_dict()})


def load_learned_prior(
    run_dir: Path, world: WorldModel, state_encoder: StateEncoder, goal_encoders: Sequence[GoalEncoder]
) -> LearnedHumanPrior:
    """The frozen prior of a run folder (``phase1/prior.pt``); CheckpointError naming the file if unusable."""
    path = phase1_folder(RunFolder(run_dir)).root / PRIOR_FILE
    data = load_torch(path)
    try:
        settings = Phase1Settings(**data["settings"])
        goal_sets = [world.goal_set(h) for h in world.humans]
        features = [enc.encode(list(gs.goals)) for enc, gs in zip(goal_encoders, goal_sets, strict=True)]
        nets = build_phase1_networks(
            settings.backend,
            state_encoder.dim,
            features,
            world.num_actions,
            settings.hidden_dim,
            settings.num_hidden_layers,
            settings.tabular_max_states,
            settings.seed,
        )
        state = data["prior"]
        for net, sd in zip(nets, state["nets"], strict=True):
            net.load_state_dict(sd)
        featurizer = None
        if state["featurizer"] is not None:
            featurizer = Featurizer(state_encoder, "cpu", fast=True)
            featurizer.load_state_dict(state["featurizer"])
        return LearnedHumanPrior(world, state_encoder, nets, state["beta_h"], state["nu_h"], featurizer)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: does not match this run's world and config ({exc})") from exc


class Phase1Trainer:
    """The Phase 1 loop: collect ``phase1_states_per_train_step`` states by the random walk, one training step.

    ``run_dir=None`` trains in memory. With a folder, ``train`` expects the caller to hold the run's lock.
    """

    def __init__(
        self,
        world: WorldModel,
        cfg: Phase2Config,
        state_encoder: StateEncoder,
        goal_encoders: Sequence[GoalEncoder],
        run_dir: Path | None = None,
        *,
        progress: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        steps = cfg.phase1_train_steps if cfg.phase1_train_steps is not None else derived_phase1_steps(cfg)
        torch.set_num_threads(cfg.torch_threads)
        self.cfg = cfg
        self.settings = Phase1Settings.from_config(cfg, steps)
        self.learner = Phase1Learner(world, self.settings, state_encoder, goal_encoders)
        self.collector = RandomWalkCollector(world, self.learner.goal_sets, cfg.seed)
        self.folder = phase1_folder(RunFolder(run_dir)) if run_dir is not None else None
        self.progress = progress
        self.total_steps = 0
        """Phase 1 env steps (states collected)."""
        self.seconds = 0.0
        """Process CPU seconds Phase 1 has trained (over every session of a resumed run)."""
        self.clock = clock
        """The clock of the time limit ``settings.max_seconds`` (wall clock by default)."""
        self.clock_seconds = 0.0
        """Seconds of ``clock`` Phase 1 has trained (over every session of a resumed run)."""
        self._turn = 0.0
        """Seconds of ``clock`` the last loop turn (collection, training step, checkpoint) took."""

    @property
    def out_of_time(self) -> bool:
        """Whether the time limit (``phase1_max_seconds``) is spent: less than half the last loop turn is left
        (so that the limit is overrun by half a turn at most, on average; a turn on ``large`` is about a second)."""
        limit = self.settings.max_seconds
        return limit is not None and self.clock_seconds + 0.5 * self._turn >= limit

    @property
    def done(self) -> bool:
        """Phase 1 is finished: its training steps are done or its time limit is spent."""
        return self.learner.train_steps >= self.settings.train_steps or self.out_of_time

    def _tick(self, since: float) -> float:
        """Add the ``clock`` time since ``since`` to :attr:`clock_seconds` and the learner's time share; now."""
        now = self.clock()
        self._turn = now - since
        self.clock_seconds += self._turn
        limit = self.settings.max_seconds
        if limit is not None:
            self.learner.time_share = min(1.0, self.clock_seconds / limit)
        return now

    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "collector": self.collector.state_dict(),
            "total_steps": self.total_steps,
            "seconds": self.seconds,
            "clock_seconds": self.clock_seconds,
        }

    def checkpoint(self) -> None:
        if self.folder is not None:
            self.folder.save_checkpoint({"state": self.state_dict()}, self.learner.train_steps, 2)

    def resume(self) -> None:
        """Continue from the newest readable Phase 1 checkpoint (from scratch when there is none)."""
        assert self.folder is not None
        found, _ = self.folder.newest_readable_checkpoint(set_aside=True)
        if found is None:
            return
        d = found.data["state"]
        try:
            self.learner.load_state_dict(d["learner"])
            self.collector.load_state_dict(d["collector"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{found.path}: does not match this run ({exc})") from exc
        self.total_steps = int(d["total_steps"])
        self.seconds = float(d["seconds"])
        self.clock_seconds = float(d.get("clock_seconds", 0.0))  # checkpoints before the time limit: 0

    def step(self) -> dict[str, float] | None:
        """Collect ``phase1_states_per_train_step`` states, then one training step (its losses) once replay can
        serve a batch (None before)."""
        for _ in range(self.cfg.phase1_states_per_train_step):
            self.learner.add([self.collector.step()], self.total_steps)
            self.total_steps += 1
        if not self.learner.ready():
            return None
        return self.learner.train_step()

    def train(self, stop: StopRequest, *, resume: bool = False) -> bool:
        """Train to ``settings.train_steps`` or until the time limit is spent; True when Phase 1 finished (False:
        stopped by a signal). Metric rows and checkpoints come every ``1 / LOG_ROWS`` (``1 / CHECKPOINTS``) of
        whichever budget, steps or time, ends first."""
        folder = self.folder
        if folder is not None:
            folder.create()
            if resume:
                self.resume()
                truncate_metrics(folder.metrics_path, self.total_steps)
            folder.write_status(status="running", train_steps=self.learner.train_steps, total=self.settings.train_steps)
        learner = self.learner
        budget = self.settings.train_steps
        limit = self.settings.max_seconds if self.settings.max_seconds is not None else math.inf
        log_every, log_dt = max(1, budget // LOG_ROWS), limit / LOG_ROWS
        ckpt_every, ckpt_dt = max(1, budget // CHECKPOINTS), limit / CHECKPOINTS
        next_log, next_ckpt = self.clock_seconds + log_dt, self.clock_seconds + ckpt_dt
        root = folder.root if folder is not None else None
        logger = RunLogger(root, budget, learner.train_steps, self.progress, purge_after=self.total_steps)
        window: dict[str, list[float]] = {}
        t0, n0 = time.process_time(), learner.train_steps
        tick = self.clock()
        try:
            while not self.done and not stop.requested:
                losses = self.step()
                tick = self._tick(tick)
                if losses is None:
                    continue
                for k, v in losses.items():
                    window.setdefault(k, []).append(v)
                logger.advance(1)
                step = learner.train_steps
                if step % log_every == 0 or self.clock_seconds >= next_log or self.done:
                    next_log = self.clock_seconds + log_dt
                    now = time.process_time()
                    self.seconds += now - t0
                    row: dict[str, Any] = {
                        "phase": 1,
                        "train_steps": step,
                        "total_steps": self.total_steps,
                        "lr": learner.lr_at(step),
                        "buffer": len(learner.replay),
                        "train_steps_per_cpu_s": (step - n0) / max(now - t0, 1e-9),
                        "cpu_seconds": self.seconds,
                        "seconds": self.clock_seconds,
                    }
                    row.update({k: float(np.mean(v)) for k, v in window.items()})
                    t0, n0, window = now, step, {}
                    logger.log(row, step, {"loss": f"{np.mean([row[k] for k in row if k.startswith('loss')]):.2e}"})
                if folder is not None and (step % ckpt_every == 0 or self.clock_seconds >= next_ckpt):
                    next_ckpt = self.clock_seconds + ckpt_dt
                    logger.flush()
                    self.checkpoint()
        finally:
            logger.close()
        self.seconds += time.process_time() - t0
        if folder is not None:
            self.checkpoint()
            if self.done:
                save_prior(folder.root / PRIOR_FILE, frozen_prior(learner), self.settings)
            folder.write_status(
                status="finished" if self.done else "interrupted",
                train_steps=learner.train_steps,
                cpu_seconds=self.seconds,
                seconds=self.clock_seconds,
            )
        return self.done


def train_in_phases(
    world: SimulatorModel,
    cfg: Phase2Config,
    run_dir: Path | None,
    base: TrainingSetup,
    with_prior: Callable[[HumanPolicyPrior], TrainingSetup],
    phase2: Callable[[TrainingSetup, bool], TrainResult],
    *,
    progress: bool = True,
    resume: bool = False,
) -> TrainResult:
    """Phase 1 (train, continue or load), then ``phase2(setup with the frozen prior, resume_phase2)``.

    ``base``: a setup whose encoders Phase 1 uses (its prior is ignored); ``with_prior(prior)``: the Phase 2
    setup for the trained prior (reference solution recomputed for it). ``cfg`` must have
    ``phase1_train_steps`` resolved (:func:`with_phase1_steps`) so that a resume keeps Phase 1's budget.
    """
    run = RunFolder(run_dir) if run_dir is not None else None
    stop = StopRequest()
    prior: LearnedHumanPrior
    if run is not None and resume and (phase1_folder(run).root / PRIOR_FILE).is_file():
        prior = load_learned_prior(run.root, world, base.state_encoder, base.goal_encoders)
    else:
        trainer = Phase1Trainer(world, cfg, base.state_encoder, base.goal_encoders, run_dir, progress=progress)
        with stop.installed():
            if run is None:
                finished = trainer.train(stop)
            else:
                with run.locked():
                    if not resume:
                        _init_folder(run, cfg, base)
                    finished = trainer.train(stop, resume=resume)
        if not finished:
            model = LearnedModel.from_learner(make_learner(base, cfg), world)
            return TrainResult(model, [], run.root if run else None, True, stop.signal)
        prior = frozen_prior(trainer.learner)
    resume_phase2 = resume and run is not None and run.status_path.is_file()
    return phase2(with_prior(prior), resume_phase2)


def _init_folder(run: RunFolder, cfg: Phase2Config, base: TrainingSetup) -> None:
    """A new two-phase run: refuse a folder that holds a run; write config and world (as Phase 2 would)."""
    if run.status_path.is_file() or phase1_folder(run).status_path.is_file():
        raise CheckpointError(
            f"{run.root}: already holds a run; continue it with humanpower train --resume {run.root}, "
            "or use another folder"
        )
    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.config_path, cfg.to_yaml())
    if base.save_world is not None:
        base.save_world(run.world_path)
