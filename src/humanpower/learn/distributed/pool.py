"""The asynchronous collector: ``num_actors`` actors on a backend (local processes or Ray), seen as one
:class:`~humanpower.learn.collector.Collector`.

    collect():  hand out collect requests (env-step tickets) while the ratio limiter allows   # scheduler.py
                take the chunks and failures that arrived (wait up to POLL_S while the learner cannot train)
                restart crashed actors (at most actor_max_restarts times per slot and train call)
    publish():  Q_r's CPU weights to every actor (adopted at their next episode boundary)

The trainer drops stale transitions, adds the rest to replay and trains (docs/ASYNC.md).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from humanpower.learn.collector import ActorCrash, Chunk, Pacing
from humanpower.learn.config import Phase2Config
from humanpower.learn.distributed.local import LocalActorPool
from humanpower.learn.distributed.protocol import (
    ActorCrashError,
    ActorFailure,
    ActorPool,
    ActorSpec,
    policy_update,
)
from humanpower.learn.distributed.ray_backend import RayActorPool
from humanpower.learn.distributed.scheduler import RequestScheduler

if TYPE_CHECKING:
    from humanpower.learn.learner import Learner

log = logging.getLogger(__name__)

PIPELINE_DEPTH = 2
"""Collect requests an actor may hold at once (it starts the next while the learner reads the last)."""
POLL_S = 0.5
"""Longest wait for actor events while the learner cannot train (Ctrl-C is noticed within this time)."""


class ActorPoolCollector:
    """``cfg.num_actors`` actors on ``cfg.backend`` (module docs). The backend pool exists between :meth:`start`
    and :meth:`close` (``pool`` is None otherwise).

    Args:
        spec: what each actor builds itself from (picklable).
        cfg: ``num_actors``, ``backend``, ``ray_address``, ``chunk_size``, ``actor_max_restarts``, ``seed``.
    """

    def __init__(self, spec: ActorSpec, cfg: Phase2Config) -> None:
        self.spec = spec
        self.cfg = cfg
        self.pool: ActorPool | None = None
        self.scheduler: RequestScheduler | None = None
        self._crashes: list[ActorCrash] = []
        self._learner: Learner | None = None
        self._total_steps = 0
        self._steps = [0] * cfg.num_actors
        self._fill_sum = 0.0
        self._fill_count = 0

    def _backend(self, start_steps: int) -> ActorPool:
        cfg = self.cfg
        if cfg.backend == "ray":
            return RayActorPool(self.spec, cfg.num_actors, cfg.seed, start_steps, cfg.ray_address, PIPELINE_DEPTH)
        return LocalActorPool(self.spec, cfg.num_actors, cfg.seed, start_steps)

    def start(self, learner: Learner, pacing: Pacing, total_steps: int, budget: int) -> None:
        cfg = self.cfg
        self._learner = learner
        self._total_steps = total_steps
        self._crashes = []
        self.scheduler = RequestScheduler(
            cfg.num_actors,
            cfg.chunk_size,
            budget,
            pacing.max_env_steps_per_train_step,
            start_ticket=total_steps,
            start_train_steps=learner.train_steps,
            depth=PIPELINE_DEPTH,
        )
        pool = self._backend(total_steps)
        self.pool = pool
        pool.start(policy_update(learner, total_steps))

    def collect(self, train_steps: int, learner_ready: bool) -> list[Chunk]:
        pool, scheduler = self.pool, self.scheduler
        if pool is None or scheduler is None:
            raise RuntimeError("ActorPoolCollector.collect before start")
        for actor_id, request in scheduler.issue(train_steps, starving=not learner_ready):
            pool.request(actor_id, request)
        self._fill_sum += scheduler.in_flight / scheduler.capacity
        self._fill_count += 1
        chunks = []
        for event in pool.poll(0.0 if learner_ready else POLL_S):
            if isinstance(event, ActorFailure):
                self._on_failure(event, pool, scheduler)
                continue
            if scheduler.complete(event.actor_id, event.request_id) is None:
                raise RuntimeError(f"actor {event.actor_id} answered request {event.request_id}, which it did not hold")
            self._total_steps += len(event.transitions)
            self._steps[event.actor_id] += len(event.transitions)
            chunks.append(event)
        return chunks

    def _on_failure(self, failure: ActorFailure, pool: ActorPool, scheduler: RequestScheduler) -> None:
        cfg = self.cfg
        failures = 1 + sum(c.actor_id == failure.actor_id for c in self._crashes)
        restart = failures <= cfg.actor_max_restarts
        self._crashes.append(
            ActorCrash(failure.actor_id, failure.incarnation, self._total_steps, failure.reason, restart)
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
            self._total_steps,
            failures,
            cfg.actor_max_restarts,
            failure.reason.rstrip(),
        )
        scheduler.actor_failed(failure.actor_id)
        assert self._learner is not None
        pool.restart(failure.actor_id, policy_update(self._learner, self._total_steps))

    def publish(self, learner: Learner, total_steps: int) -> None:
        if self.pool is not None:
            self.pool.publish(policy_update(learner, total_steps))

    def close(self) -> int:
        pool, self.pool, self.scheduler, self._learner = self.pool, None, None, None
        return pool.close() if pool is not None else 0

    def pids(self) -> list[int]:
        """Process ids of the live actors (see :meth:`ActorPool.pids`); empty when not started."""
        return self.pool.pids() if self.pool is not None else []

    @property
    def crashes(self) -> list[ActorCrash]:
        return list(self._crashes)

    def row_fields(self, seconds: float) -> dict[str, float]:
        out: dict[str, float] = {"queue_fill": self._fill_sum / self._fill_count if self._fill_count else math.nan}
        for i, steps in enumerate(self._steps):
            out[f"env_steps_per_s_actor{i}"] = steps / max(seconds, 1e-9)
        self._steps = [0] * self.cfg.num_actors
        self._fill_sum, self._fill_count = 0.0, 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Nothing to restore: actors start fresh episodes (a synchronous checkpoint's actor state is ignored)."""
