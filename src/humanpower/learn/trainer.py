"""Phase 2 training: one loop for synchronous and asynchronous training, which differ only in the collector.

    collector.start(learner)                         # SyncCollector: one in-process actor, the live Q_r
    while the budget is not reached:                 # ActorPoolCollector: actors on processes / Ray (docs/ASYNC.md)
        for chunk in collector.collect(...):         # env steps, stamped with tickets (= total_steps)
            drop transitions older than max_policy_lag; learner.add(rest)
            total_steps += len(chunk); learner.on_env_steps(total_steps)     # replay policies: clear at ramp bounds
            lockstep (sync): train updates_per_step times per env step (once replay holds a batch)
            at episode counts: log, checkpoint
        free-running (async): one training step per turn whenever replay holds a batch
        every actor_sync_freq training steps (async): collector.publish(learner)

The scheduling decisions are a :class:`~humanpower.learn.collector.Pacing` the trainer owns. With the
synchronous collector a run is exactly reproducible from a seed and from a checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from humanpower.errors import CheckpointError, ConfigError
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.learn.actor import Actor
from humanpower.learn.checkpoint import (
    RunFolder,
    RunFolderWriteError,
    atomic_write_text,
    describe_os_error,
    save_torch,
)
from humanpower.learn.collector import ActorCrash, Chunk, Collector, Pacing, SyncCollector, crossed, mean_or_nan
from humanpower.learn.config import Phase2Config
from humanpower.learn.distributed.pool import ActorPoolCollector
from humanpower.learn.distributed.protocol import ActorCrashError, SetupFactory, actor_spec
from humanpower.learn.distributed.ray_backend import import_ray
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
    crashes: list[ActorCrash] = field(default_factory=list)
    """Actor failures of the whole run (asynchronous training; restarted ones and a last, fatal one)."""
    discarded_chunks: int = 0
    """Chunks that arrived after the stop of this call (asynchronous training) and were discarded."""


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
    nets = build_networks(world, cfg, setup.state_encoder.dim, goal_features, cfg.networks, max_states=max_states)
    nets.to(device)
    return Learner(world, cfg, nets, featurizer, device)


class _Window:
    """What happened since the last metrics row (restarts on resume; the losses are the learner's ``LossMeter``,
    checkpointed with it)."""

    def __init__(self, total_steps: int, train_steps: int) -> None:
        self.t0 = time.perf_counter()
        self.steps0 = total_steps
        self.train0 = train_steps
        self.lag_sum = 0
        self.lag_count = 0
        self.lag_max = -1
        self.dropped = 0


class Trainer:
    """Phase 2 training of one run. ``run_dir=None`` trains in memory only (tests, the Python API).

    The collector follows the config: :class:`~humanpower.learn.collector.SyncCollector` (one in-process actor)
    or, with ``async_training``, an :class:`~humanpower.learn.distributed.pool.ActorPoolCollector` (``backend``
    local or ray, ``num_actors``); the loop, run folder, checkpoints and metrics are the same.

    With a run folder, :meth:`train` holds the folder's lock for the whole call (a second writer gets
    RunFolderBusyError), turns SIGINT/SIGTERM into a clean stop (checkpoint, status ``interrupted``) and an OSError
    on the folder into one RunFolderWriteError line (status ``failed`` where it can still be written). An actor
    crashing more than ``actor_max_restarts`` times stops the run with ActorCrashError (checkpoint, ``failed``).

    Args:
        setup: the run's world, prior and encoders. Asynchronous actors receive pickled copies of the world, prior
            and state encoder, unless ``setup_factory`` is given.
        cfg: the config.
        run_dir: run folder (None = in memory only).
        progress: show the progress bar.
        setup_factory: a picklable callable returning the TrainingSetup, called in each asynchronous actor to
            build its own world, prior and state encoder (for setups that do not pickle).
    """

    def __init__(
        self,
        setup: TrainingSetup,
        cfg: Phase2Config,
        run_dir: Path | None = None,
        *,
        progress: bool = True,
        setup_factory: SetupFactory | None = None,
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
        self.pacing = Pacing.from_config(cfg)
        self.setup_factory = setup_factory
        self.collector: Collector = (
            ActorPoolCollector(actor_spec(setup, cfg, self.learner, self.episode_len, setup_factory), cfg)
            if cfg.async_training
            else SyncCollector(
                Actor.from_config(world, setup.prior, cfg, seed=cfg.seed, steps_per_episode=self.episode_len), cfg
            )
        )
        self.total_steps = 0
        self.episode = 0
        self.metrics: list[dict[str, Any]] = []
        self.crashes: list[ActorCrash] = []
        """Actor failures of the whole run (checkpointed), this call's last."""
        self.max_lag_seen = -1
        """Largest policy lag (learner version at arrival - the transition's version) of any transition received."""
        self.dropped_stale = 0
        """Transitions dropped for a policy lag above max_policy_lag."""
        self._logger: RunLogger | None = None
        """The metrics logger while :meth:`train` runs (flushed before each checkpoint)."""
        self.actor_locations: list[dict[str, Any]] = []
        """Where the actors of this train call ran: one ``{actor, incarnation, location}`` per incarnation seen
        (in ``run.json`` as ``actor_locations``)."""
        self._window = _Window(0, 0)
        self._discarded = 0
        self.loop_seconds = 0.0
        """Wall-clock seconds the training loop ran in earlier calls (checkpointed; ``max_seconds``)."""
        self._loop_start: float | None = None

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
            **self.collector.state_dict(),
            "total_steps": self.total_steps,
            "episode": self.episode,
            "loop_seconds": self._elapsed(),
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
            "async": {"crashes": [asdict(c) for c in self.crashes]},
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.learner.load_state_dict(d["learner"])
        self.collector.load_state_dict(d)
        self.total_steps = int(d["total_steps"])
        self.episode = int(d["episode"])
        self.loop_seconds = float(d.get("loop_seconds", 0.0))
        torch.set_rng_state(d["torch_rng"])
        self.crashes = [ActorCrash(**c) for c in d.get("async", {}).get("crashes", [])]

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
            self.run.write_status(episode=self.episode, actor_locations=self.actor_locations)

    def _work_left(self) -> bool:
        """Whether the run has reached neither its budget (``num_episodes``) nor its time limit yet."""
        episodes_left = self.pacing.work_left(self.episode, self.total_steps, self.cfg.num_episodes, self.episode_len)
        return episodes_left and not self._out_of_time()

    def _elapsed(self) -> float:
        """Wall-clock seconds of the training loop so far, this call and earlier ones."""
        now = time.perf_counter()
        return self.loop_seconds + (now - self._loop_start if self._loop_start is not None else 0.0)

    def _out_of_time(self) -> bool:
        limit = self.cfg.max_seconds
        return limit is not None and self._elapsed() >= limit

    def _open_run(self, resume: bool) -> RunStart:
        """Initialise a new run folder, or resume from its newest checkpoint (the caller holds the lock)."""
        run = self.run
        assert run is not None
        if not resume:
            self._init_run_folder()
            return RunStart()
        status = run.read_status().get("status")
        self.resume()
        if self.pacing.beyond(self.episode, self.total_steps, self.cfg.num_episodes, self.episode_len):
            raise below_done_error(self.cfg.num_episodes, self.episode, self.total_steps, run)
        if status == "finished" and not self._work_left():
            return RunStart(resumed_at=self.total_steps, already_finished=True)
        truncate_metrics(run.metrics_path, self.total_steps)
        config_text = self.cfg.to_yaml()
        if not run.config_path.is_file() or run.config_path.read_text() != config_text:
            atomic_write_text(run.config_path, config_text)  # e.g. a larger num_episodes
        run.remove_stale_temp_files()
        run.write_status(
            status="running", episode=self.episode, total_steps=self.total_steps, error=None, time_limit_stop=None
        )
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
                self._collect_and_train(logger, stop, budget)
            finally:
                self._logger = None
                logger.close()
            interrupted = stop.requested and self._work_left()
            return self._result(self._finish(interrupted), stopped_by=stop.signal if interrupted else None)

    def _prepare(self) -> None:
        """Checks before the run folder is touched: the optional Ray dependency, actors' setup pickles."""
        cfg = self.cfg
        if not cfg.async_training:
            return
        if cfg.backend == "ray":
            import_ray()
        if isinstance(self.collector, ActorPoolCollector):
            try:
                pickle.dumps(self.collector.spec)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                raise ConfigError(
                    "async_training: the world, human prior or state encoder cannot be sent to actor processes "
                    f"({type(exc).__name__}: {exc}); pass a picklable setup_factory to the Trainer"
                ) from None

    def _collect_and_train(self, logger: RunLogger, stop: StopRequest, budget: int) -> None:
        collector, learner, pacing = self.collector, self.learner, self.pacing
        crashes_before = len(self.crashes)
        self._window = _Window(self.total_steps, learner.train_steps)
        self.actor_locations = []
        failed = False
        self._loop_start = time.perf_counter()
        try:
            collector.start(learner, pacing, self.total_steps, budget)  # inside: a half-started pool is closed too
            while self._work_left() and not stop.requested:
                chunks = collector.collect(learner.train_steps, learner.ready())
                self.crashes[crashes_before:] = collector.crashes
                for chunk in chunks:
                    self._absorb(chunk, logger)
                    if learner.ready():
                        self._train(pacing.updates_after(len(chunk.transitions)))
                    self._episodes_finished(chunk.episodes_finished, logger)
                if not pacing.lockstep and self._work_left() and learner.ready():
                    self._train(1)
        except ActorCrashError:
            failed = True
            raise
        finally:
            self.loop_seconds, self._loop_start = self._elapsed(), None
            self._discarded = collector.close()
            self.crashes[crashes_before:] = collector.crashes
            if failed and self.run is not None:
                self.checkpoint()
                self.run.write_status(status="failed", crashes=len(self.crashes))

    def _absorb(self, chunk: Chunk, logger: RunLogger) -> None:
        """Replay gets the chunk's transitions within max_policy_lag; the env-step clock advances by all of them."""
        learner, window = self.learner, self._window
        seen = {"actor": chunk.actor_id, "incarnation": chunk.incarnation, "location": chunk.location}
        if seen not in self.actor_locations:  # a few entries: one per actor incarnation
            log.info("actor %d (incarnation %d) runs on %s", chunk.actor_id, chunk.incarnation, chunk.location)
            self.actor_locations.append(seen)
        version = learner.train_steps
        keep = []
        for t in chunk.transitions:
            lag = version - t.policy_version
            window.lag_sum += lag
            window.lag_max = max(window.lag_max, lag)
            if self.pacing.keeps(lag):
                keep.append(t)
        n = len(chunk.transitions)
        window.lag_count += n
        self.max_lag_seen = max(self.max_lag_seen, window.lag_max)
        window.dropped += n - len(keep)
        self.dropped_stale += n - len(keep)
        learner.add(keep)
        self.total_steps += n
        learner.on_env_steps(self.total_steps)
        logger.advance(n)

    def _train(self, steps: int) -> None:
        """``steps`` training steps (their losses accumulate on the device, ``learner.losses``), publishing the
        policy when due."""
        learner = self.learner
        for _ in range(steps):
            learner.step(self.total_steps)
            if self.pacing.publish_due(learner.train_steps):
                self.collector.publish(learner, self.total_steps)

    def _episodes_finished(self, count: int, logger: RunLogger) -> None:
        """Count finished episodes; log a row and checkpoint when their counts cross the intervals (or at the
        end of the budget)."""
        cfg = self.cfg
        before, self.episode = self.episode, self.episode + count
        end = not self._work_left() and self._window.steps0 != self.total_steps
        if crossed(before, self.episode, cfg.log_every_episodes) or end:
            self._log_row(logger)
        if self.run is not None and crossed(before, self.episode, cfg.checkpoint_every_episodes):
            self.checkpoint()

    def _finish(self, interrupted: bool) -> LearnedModel:
        """The final checkpoint, policy, rollout GIF and status."""
        model = LearnedModel.from_learner(self.learner, self.setup.world)
        if self.run is not None:
            self.checkpoint()
            model.save(self.run.policy_path)
            if not interrupted:
                self._write_rollout(model)
            self.run.write_status(
                status="interrupted" if interrupted else "finished",
                episode=self.episode,
                crashes=len(self.crashes),
            )
        if not interrupted:
            record_final_beta_r(self.cfg, self.total_steps, self.run)
            self._record_time_limit()
        return model

    def _record_time_limit(self) -> None:
        """Say so (one warning line, run.json ``time_limit_stop``) when the time limit ended the run early."""
        budget = self.cfg.num_episodes * self.episode_len
        early = self.pacing.work_left(self.episode, self.total_steps, self.cfg.num_episodes, self.episode_len)
        note = (
            f"time limit of {self.cfg.max_seconds:.1f} s reached after {self.total_steps} of {budget} env steps"
            if early
            else ""
        )
        if note:
            log.warning("warning: %s", note)
        if self.run is not None:
            self.run.write_status(time_limit_stop=note or None)

    def _result(
        self, model: LearnedModel, *, stopped_by: int | None = None, already_finished: bool = False
    ) -> TrainResult:
        root = self.run.root if self.run else None
        return TrainResult(
            model,
            self.metrics,
            root,
            stopped_by is not None,
            stopped_by,
            already_finished,
            list(self.crashes),
            self._discarded,
        )

    # -- metrics --------------------------------------------------------------------------------------------
    def _log_row(self, logger: RunLogger) -> None:
        w, learner = self._window, self.learner
        now = time.perf_counter()
        seconds = max(now - w.t0, 1e-9)
        env_steps = self.total_steps - w.steps0
        train_steps = learner.train_steps - w.train0
        row = self._metrics_row(learner.losses.take(), seconds, env_steps, train_steps)
        row.update(
            {
                "policy_lag_mean": mean_or_nan(w.lag_sum, w.lag_count),
                "policy_lag_max": w.lag_max if w.lag_count else math.nan,
                "replay_ratio": train_steps * self.cfg.batch_size / env_steps if env_steps else math.nan,
                "dropped_stale": w.dropped,
                "actor_restarts": sum(c.restarted for c in self.crashes),
                **self.collector.row_fields(seconds),
            }
        )
        self.metrics.append(row)
        logger.log(row, self.total_steps, _postfix(row))
        self._window = _Window(self.total_steps, learner.train_steps)

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
    for key, name in (("policy_lag_mean", "lag"), ("queue_fill", "fill")):
        value = row.get(key)
        if value is not None and value == value and (key != "policy_lag_mean" or value > 0):
            out[name] = f"{value:.2f}" if key == "queue_fill" else f"{value:.0f}"
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
