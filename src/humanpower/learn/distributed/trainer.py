"""Asynchronous Phase 2 training: ``num_actors`` actors collect env steps in parallel, one learner trains.

    learner loop (this process, cfg.device):
        hand out collect requests (env-step tickets) while the ratio limiter allows   # scheduler.py
        take the chunks that arrived: drop transitions older than max_policy_lag,
            learner.add(chunk); total_steps += len(chunk); learner.on_env_steps(total_steps)
        restart crashed actors (bounded by actor_max_restarts)
        if replay holds a batch: learner.step(total_steps)
            every actor_sync_freq training steps: publish Q_r (CPU weights) to the actors
        at episode counts: log metrics, checkpoint (same run folder and atomic files as the synchronous loop)

The actors (processes or Ray actors, on CPU) run :class:`~.worker.ActorWorker`. The synchronous loop
(:class:`~humanpower.learn.trainer.SyncTrainer`) stays the reference; this trainer reuses its Learner, Actor,
run folder, checkpoint and metrics code and differs only in the wiring. Runs are resumable from their
checkpoints but, unlike synchronous ones, not bit-reproducible (the interleaving of actors depends on timing).
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from humanpower.errors import ConfigError
from humanpower.learn.config import Phase2Config
from humanpower.learn.distributed.local import LocalActorPool
from humanpower.learn.distributed.protocol import (
    ActorCrashError,
    ActorFailure,
    ActorPool,
    ActorSpec,
    Chunk,
    SetupFactory,
    actor_spec,
    policy_update,
)
from humanpower.learn.distributed.ray_backend import RayActorPool, import_ray
from humanpower.learn.distributed.scheduler import RequestScheduler
from humanpower.learn.evaluate import LearnedModel
from humanpower.learn.lifecycle import StopRequest
from humanpower.learn.runlog import RunLogger
from humanpower.learn.trainer import SyncTrainer, TrainingSetup, TrainResult

log = logging.getLogger(__name__)

PIPELINE_DEPTH = 2
"""Collect requests an actor may hold at once (it starts the next while the learner reads the last)."""
POLL_S = 0.5
"""Longest wait for actor events while the learner cannot train (Ctrl-C is noticed within this time)."""


@dataclass(frozen=True)
class ActorCrash:
    """One actor failure: which slot and incarnation, when (env steps), why, and whether it was restarted."""

    actor_id: int
    incarnation: int
    total_steps: int
    reason: str
    restarted: bool


@dataclass
class AsyncTrainResult(TrainResult):
    """:class:`TrainResult` plus the actor failures of the run and the chunks discarded at shutdown."""

    crashes: list[ActorCrash] = field(default_factory=list)
    discarded_chunks: int = 0


class _Window:
    """Statistics accumulated between two metric rows."""

    def __init__(self, num_actors: int, total_steps: int, train_steps: int) -> None:
        self.t0 = time.perf_counter()
        self.steps0 = total_steps
        self.train0 = train_steps
        self.actor_steps = [0] * num_actors
        self.lag_sum = 0
        self.lag_count = 0
        self.lag_max = -1
        self.dropped = 0
        self.fill_sum = 0.0
        self.fill_count = 0


class AsyncTrainer(SyncTrainer):
    """The asynchronous actor-learner; same interface as :class:`SyncTrainer`.

    Args:
        setup: the run's world, prior and encoders. Actors receive pickled copies of the world, prior and state
            encoder, unless ``setup_factory`` is given.
        cfg: the config (``num_actors``, ``backend``, ``chunk_size``, ``actor_sync_freq``,
            ``max_env_steps_per_train_step``, ``max_policy_lag``, ``actor_max_restarts``, ``ray_address``).
        run_dir: run folder (None = in memory only).
        progress: show the progress bar.
        setup_factory: a picklable callable returning the TrainingSetup, called in each actor to build its own
            world, prior and state encoder (for setups that do not pickle).
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
        super().__init__(setup, cfg, run_dir, progress=progress)
        self.setup_factory = setup_factory
        self.crashes: list[ActorCrash] = []
        self.pool: ActorPool | None = None
        """The actor pool while :meth:`train` runs (None before and after)."""
        self.max_lag_seen = -1
        """Largest policy lag (learner version - actor version) of any transition received."""
        self.dropped_stale = 0
        """Transitions dropped for a policy lag above max_policy_lag."""
        self._window = _Window(cfg.num_actors, 0, 0)
        self._crashes_before = 0
        """Crashes recorded before this ``train`` call (restarts are bounded per call, not per run)."""
        self._actor_spec: ActorSpec | None = None
        self._discarded = 0
        """Chunks that arrived after the stop request of the last ``train`` call (discarded)."""

    # -- checkpoints (the synchronous trainer's run folder and files; no single in-process actor) -------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "total_steps": self.total_steps,
            "episode": self.episode,
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
            "async": {"crashes": [asdict(c) for c in self.crashes]},
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.learner.load_state_dict(d["learner"])
        self.total_steps = int(d["total_steps"])
        self.episode = int(d["episode"])
        torch.set_rng_state(d["torch_rng"])
        self.crashes = [ActorCrash(**c) for c in d.get("async", {}).get("crashes", [])]

    # -- actors -------------------------------------------------------------------------------------------------
    def _spec(self) -> ActorSpec:
        spec = actor_spec(self.setup, self.cfg, self.learner, self.episode_len, self.setup_factory)
        try:
            pickle.dumps(spec)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ConfigError(
                "async_training: the world, human prior or state encoder cannot be sent to actor processes "
                f"({type(exc).__name__}: {exc}); pass a picklable setup_factory to AsyncTrainer"
            ) from None
        return spec

    def _make_pool(self, spec: ActorSpec) -> ActorPool:
        cfg = self.cfg
        if cfg.backend == "ray":
            return RayActorPool(spec, cfg.num_actors, cfg.seed, self.total_steps, cfg.ray_address, PIPELINE_DEPTH)
        return LocalActorPool(spec, cfg.num_actors, cfg.seed, self.total_steps)

    # -- the loop -----------------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        if self.cfg.backend == "ray":
            import_ray()  # a missing optional dependency is reported before the run folder is touched
        self._actor_spec = self._spec()

    def _work_left(self) -> bool:
        return self.total_steps < self.cfg.num_episodes * self.episode_len

    def _beyond_budget(self) -> bool:
        return self.total_steps > self.cfg.num_episodes * self.episode_len

    def _status_fields(self) -> dict[str, Any]:
        return {"crashes": len(self.crashes)}

    def train(self, *, resume: bool = False) -> AsyncTrainResult:
        result = super().train(resume=resume)
        assert isinstance(result, AsyncTrainResult)
        return result

    def _collect_and_train(self, logger: RunLogger, stop: StopRequest) -> None:
        cfg, learner = self.cfg, self.learner
        assert self._actor_spec is not None
        budget = cfg.num_episodes * self.episode_len
        self._crashes_before = len(self.crashes)
        scheduler = RequestScheduler(
            cfg.num_actors,
            cfg.chunk_size,
            budget,
            cfg.max_env_steps_per_train_step,
            start_ticket=self.total_steps,
            start_train_steps=learner.train_steps,
            depth=PIPELINE_DEPTH,
        )
        pool = self.pool = self._make_pool(self._actor_spec)
        self._window = _Window(cfg.num_actors, self.total_steps, learner.train_steps)
        crashed = False
        try:
            pool.start(policy_update(learner, self.total_steps))
            self._loop(pool, scheduler, logger, stop, budget)
        except ActorCrashError:
            crashed = True
            raise
        finally:
            self._discarded = pool.close()
            self.pool = None
            if self._window.steps0 != self.total_steps:
                self._log_row(logger)
            if crashed and self.run is not None:
                self.checkpoint()
                self.run.write_status(status="failed", crashes=len(self.crashes))

    def _result(
        self, model: LearnedModel, *, stopped_by: int | None = None, already_finished: bool = False
    ) -> AsyncTrainResult:
        root = self.run.root if self.run else None
        return AsyncTrainResult(
            model,
            self.metrics,
            root,
            stopped_by is not None,
            stopped_by,
            already_finished,
            list(self.crashes),
            self._discarded,
        )

    def _loop(
        self, pool: ActorPool, scheduler: RequestScheduler, logger: RunLogger, stop: StopRequest, budget: int
    ) -> None:
        learner, cfg = self.learner, self.cfg
        while self.total_steps < budget and not stop.requested:
            ready = learner.ready()
            for actor_id, request in scheduler.issue(learner.train_steps, starving=not ready):
                pool.request(actor_id, request)
            self._window.fill_sum += scheduler.in_flight / scheduler.capacity
            self._window.fill_count += 1
            for event in pool.poll(0.0 if ready else POLL_S):
                if isinstance(event, Chunk):
                    self._on_chunk(event, scheduler, logger)
                else:
                    self._on_failure(event, pool, scheduler)
            if self.total_steps < budget and learner.ready():
                learner.step(self.total_steps)  # losses accumulate on the device (learner.losses)
                if learner.train_steps % cfg.actor_sync_freq == 0:
                    pool.publish(policy_update(learner, self.total_steps))

    def _on_chunk(self, chunk: Chunk, scheduler: RequestScheduler, logger: RunLogger) -> None:
        if scheduler.complete(chunk.actor_id, chunk.request_id) is None:
            raise RuntimeError(f"actor {chunk.actor_id} answered request {chunk.request_id}, which it did not hold")
        cfg, learner, window = self.cfg, self.learner, self._window
        version = learner.train_steps
        keep = []
        for t in chunk.transitions:
            lag = version - t.policy_version
            window.lag_sum += lag
            window.lag_max = max(window.lag_max, lag)
            if cfg.max_policy_lag is None or lag <= cfg.max_policy_lag:
                keep.append(t)
        window.lag_count += len(chunk.transitions)
        self.max_lag_seen = max(self.max_lag_seen, window.lag_max)
        dropped = len(chunk.transitions) - len(keep)
        window.dropped += dropped
        self.dropped_stale += dropped
        learner.add(keep)
        n = len(chunk.transitions)
        self.total_steps += n
        learner.on_env_steps(self.total_steps)
        window.actor_steps[chunk.actor_id] += n
        logger.advance(n)
        before, self.episode = self.episode, self.episode + chunk.episodes_finished
        if _crossed(before, self.episode, cfg.log_every_episodes):
            self._log_row(logger)
        if self.run is not None and _crossed(before, self.episode, cfg.checkpoint_every_episodes):
            self.checkpoint()

    def _on_failure(self, failure: ActorFailure, pool: ActorPool, scheduler: RequestScheduler) -> None:
        cfg = self.cfg
        failures = 1 + sum(c.actor_id == failure.actor_id for c in self.crashes[self._crashes_before :])
        restart = failures <= cfg.actor_max_restarts
        self.crashes.append(
            ActorCrash(failure.actor_id, failure.incarnation, self.total_steps, failure.reason, restart)
        )
        if not restart:
            raise ActorCrashError(
                f"actor {failure.actor_id} crashed {failures} times (actor_max_restarts={cfg.actor_max_restarts}); "
                f"last error:\n{failure.reason}"
            )
        log.warning(
            "actor %d (incarnation %d) crashed at env step %d; restarting it (%d of at most %d):\n%s",
            failure.actor_id,
            failure.incarnation,
            self.total_steps,
            failures,
            cfg.actor_max_restarts,
            failure.reason.rstrip(),
        )
        scheduler.actor_failed(failure.actor_id)
        pool.restart(failure.actor_id, policy_update(self.learner, self.total_steps))

    # -- metrics ------------------------------------------------------------------------------------------------
    def _log_row(self, logger: RunLogger) -> None:
        w, learner = self._window, self.learner
        now = time.perf_counter()
        seconds = max(now - w.t0, 1e-9)
        env_steps = self.total_steps - w.steps0
        train_steps = learner.train_steps - w.train0
        row = self._metrics_row(learner.losses.take(), seconds, env_steps, train_steps)
        row.update(
            {
                "policy_lag_mean": w.lag_sum / w.lag_count if w.lag_count else math.nan,
                "policy_lag_max": w.lag_max if w.lag_count else math.nan,
                "queue_fill": w.fill_sum / w.fill_count if w.fill_count else math.nan,
                "replay_ratio": train_steps * self.cfg.batch_size / env_steps if env_steps else math.nan,
                "dropped_stale": w.dropped,
                "actor_restarts": sum(c.restarted for c in self.crashes),
            }
        )
        for i, steps in enumerate(w.actor_steps):
            row[f"env_steps_per_s_actor{i}"] = steps / seconds
        self.metrics.append(row)
        logger.log(row, self.total_steps, _postfix(row))
        self._window = _Window(self.cfg.num_actors, self.total_steps, learner.train_steps)


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]``."""
    return after // every > before // every


def _postfix(row: dict[str, Any]) -> dict[str, str]:
    """Progress-bar fields of a metrics row."""
    out = {
        "ep": str(row["episode"]),
        "env/s": f"{row['env_steps_per_s']:.0f}",
        "train/s": f"{row['train_steps_per_s']:.0f}",
        "lag": f"{row['policy_lag_mean']:.0f}" if row["policy_lag_mean"] == row["policy_lag_mean"] else "-",
        "fill": f"{row['queue_fill']:.2f}" if row["queue_fill"] == row["queue_fill"] else "-",
    }
    if "pi_r_rmse" in row:
        out["pi_rmse"] = f"{row['pi_r_rmse']:.3f}"
    return out
