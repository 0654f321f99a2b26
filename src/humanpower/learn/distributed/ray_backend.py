"""The Ray backend (``backend: ray``): actors are Ray actors; the learner pulls chunks from them.

Optional dependency: ``pip install humanpower[ray]``. A local Ray instance is started (and shut down at the end)
unless Ray is already initialised in this process; ``ray_address`` connects to an existing cluster instead
(``ray.init(address=...)``; its nodes need humanpower importable, docs/ASYNC.md has the recipe). Actors take one
CPU each and are placed with Ray's ``SPREAD`` strategy (over the cluster's nodes rather than packed on one).
Semantics are those of the local backend: each collect request is one remote call returning a
:class:`~humanpower.learn.collector.Chunk`; policy updates are put into the object store once and offered to every
actor. A Ray actor runs calls on several threads (``max_concurrency``), so an update reaches it while it collects
(it is adopted at the next episode boundary); collect calls take a lock, so they run one at a time. A dead actor
(its process or its whole node lost) shows up as a failed call: any Ray error of a call is that actor's failure.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import torch

from humanpower.errors import ConfigError
from humanpower.learn.collector import this_process
from humanpower.learn.distributed.packing import PackedChunk, pack_chunk
from humanpower.learn.distributed.protocol import (
    ActorEvent,
    ActorFailure,
    ActorSpec,
    CollectRequest,
    PolicyUpdate,
    actor_seed,
)
from humanpower.learn.distributed.worker import ActorWorker

log = logging.getLogger(__name__)


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"backend: 'ray' needs the optional dependency Ray (pip install 'humanpower[ray]'): {exc}"
        ) from None
    return ray


class RayActorHost:
    """The body of a Ray actor: one :class:`ActorWorker` (``offer`` may run while ``collect`` does)."""

    def __init__(self, spec: ActorSpec, actor_id: int, incarnation: int, seed: int, update: PolicyUpdate) -> None:
        import ray

        torch.set_num_threads(1)
        location = f"ray node {ray.get_runtime_context().get_node_id()} ({this_process()})"
        self.worker = ActorWorker(spec, actor_id, incarnation, seed, update, location)
        self._collecting = threading.Lock()

    def pid(self) -> int:
        return os.getpid()

    def offer(self, update: PolicyUpdate) -> None:
        self.worker.offer(update)

    def collect(self, request: CollectRequest) -> PackedChunk:
        """The chunk for ``request``, packed for the trip to the learner (:mod:`.packing`)."""
        with self._collecting:
            return pack_chunk(self.worker.collect(request))


class RayActorPool:
    """``num_actors`` Ray actors (see the module docstring)."""

    def __init__(
        self, spec: ActorSpec, num_actors: int, seed: int, start_steps: int, address: str | None, depth: int
    ) -> None:
        self.ray = import_ray()
        self._num_actors = num_actors
        self.seed = seed
        self.start_steps = start_steps
        self._own_ray = False
        if not self.ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if address is None:
                kwargs["num_cpus"] = max(os.cpu_count() or 1, num_actors)
            self.ray.init(address=address, **kwargs)
            self._own_ray = True
        self._remote = self.ray.remote(
            num_cpus=1, max_concurrency=depth + 1, max_restarts=0, scheduling_strategy="SPREAD"
        )(RayActorHost)
        self._spec_ref = self.ray.put(spec)
        self._handles: list[Any] = []
        self._incarnation: list[int] = []
        self._pid_refs: list[Any] = []
        self._latest: Any = None
        self._pending: dict[Any, tuple[int, int]] = {}
        """Outstanding collect calls: object ref -> (actor id, incarnation)."""

    @property
    def num_actors(self) -> int:
        return self._num_actors

    def _spawn(self, actor_id: int, incarnation: int) -> Any:
        seed = actor_seed(self.seed, actor_id, incarnation, self.start_steps)
        return self._remote.remote(self._spec_ref, actor_id, incarnation, seed, self._latest)

    def start(self, update: PolicyUpdate) -> None:
        self._latest = self.ray.put(update)
        self._handles = [self._spawn(i, 0) for i in range(self._num_actors)]
        self._incarnation = [0] * self._num_actors
        self._pid_refs = [h.pid.remote() for h in self._handles]

    def publish(self, update: PolicyUpdate) -> None:
        self._latest = self.ray.put(update)
        for handle in self._handles:
            handle.offer.remote(self._latest)

    def request(self, actor_id: int, request: CollectRequest) -> None:
        ref = self._handles[actor_id].collect.remote(request)
        self._pending[ref] = (actor_id, self._incarnation[actor_id])

    def restart(self, actor_id: int, update: PolicyUpdate) -> None:
        self.ray.kill(self._handles[actor_id], no_restart=True)
        self._pending = {ref: who for ref, who in self._pending.items() if who[0] != actor_id}
        self._latest = self.ray.put(update)
        self._incarnation[actor_id] += 1
        self._handles[actor_id] = self._spawn(actor_id, self._incarnation[actor_id])
        self._pid_refs[actor_id] = self._handles[actor_id].pid.remote()  # resolved lazily: never wait here

    def pids(self) -> list[int]:
        """Process ids of the Ray actors (on whichever node each runs); waits until they have started."""
        return [int(pid) for pid in self.ray.get(self._pid_refs)]

    def poll(self, timeout: float | None) -> list[ActorEvent]:
        if not self._pending:
            return []
        refs = list(self._pending)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        events: list[ActorEvent] = []
        failed: set[int] = set()
        for ref in ready:
            actor_id, incarnation = self._pending.pop(ref)
            if incarnation != self._incarnation[actor_id] or actor_id in failed:
                continue  # a call to an incarnation already replaced or already reported
            try:
                events.append(self.ray.get(ref).unpack())
            except self.ray.exceptions.RayError as exc:  # the actor died, its task failed or its node was lost
                failed.add(actor_id)
                events.append(ActorFailure(actor_id, incarnation, str(exc)))
        return events

    def close(self) -> int:
        discarded = 0
        if self._pending:
            ready, _ = self.ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
            discarded = len(ready)
        self._pending.clear()
        for handle in self._handles:
            self.ray.kill(handle, no_restart=True)
        self._handles = []
        if self._own_ray:
            self.ray.shutdown()
            self._own_ray = False
        return discarded
