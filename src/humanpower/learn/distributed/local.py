"""The local backend: each actor is a process started with ``spawn`` on this machine.

Per actor slot:

* an inbox (``multiprocessing.Queue``, learner -> actor): collect requests, policy updates, stop. The learner's
  ``put`` never blocks (a feeder thread writes it), so the learner cannot deadlock with a busy actor.
* a result pipe (actor -> learner): one message per chunk, packed (:mod:`.packing`: a state table and numpy
  columns, unpacked in the learner's process). ``send`` blocks until the learner reads, which is
  back-pressure, never loss; there are at most ``depth`` requests per actor outstanding anyway.

The learner waits on all result pipes and all process sentinels at once, so a chunk, an error report and a
process that died (even by SIGKILL) are all noticed without polling.

Actor processes ignore SIGINT and SIGTERM (the learner stops them in order on Ctrl-C or SIGTERM) and exit by
themselves when the learner process disappears (a thread waits on the parent's sentinel), so they cannot outlive it
as orphans; they are also daemonic, and :meth:`LocalActorPool.close` kills any that do not stop in time.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import torch

from humanpower.learn.distributed.packing import PackedChunk, pack_chunk
from humanpower.learn.distributed.protocol import (
    ActorEvent,
    ActorFailure,
    ActorSpec,
    Chunk,
    CollectRequest,
    PolicyUpdate,
    actor_seed,
    describe_exit,
)
from humanpower.learn.distributed.worker import ActorWorker

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
"""Seconds actors get to finish their current chunk and exit after a stop request, before being killed."""

# Inbox messages: (kind, payload). Policy updates travel pre-pickled (pickled once, not once per actor).
_COLLECT, _POLICY, _STOP = "collect", "policy", "stop"


def _exit_with_parent() -> None:
    """Start a thread that ends this process at once when its parent process is gone (no orphans)."""
    parent = mp.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        wait([sentinel])
        os._exit(3)

    threading.Thread(target=watch, name="humanpower-parent-watch", daemon=True).start()


class _Inbox:
    """The actor process's view of its inbox: pending requests, policy updates handed to the worker, stop."""

    def __init__(self, inbox: mp.Queue[tuple[str, Any]], worker: ActorWorker) -> None:
        self.inbox = inbox
        self.worker = worker
        self.requests: deque[CollectRequest] = deque()
        self.stopped = False

    def _handle(self, message: tuple[str, Any]) -> None:
        kind, payload = message
        if kind == _COLLECT:
            self.requests.append(payload)
        elif kind == _POLICY:
            self.worker.offer(pickle.loads(payload))
        elif kind == _STOP:
            self.stopped = True
        else:
            raise ValueError(f"actor inbox: unknown message kind {kind!r}")

    def drain(self) -> None:
        """Handle every message already waiting (never blocks)."""
        while True:
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._handle(message)

    def next_request(self) -> CollectRequest | None:
        """The next request to serve, blocking until one arrives; None once a stop was received."""
        self.drain()
        while not self.requests and not self.stopped:
            self._handle(self.inbox.get())
            self.drain()
        return None if self.stopped else self.requests.popleft()


def _actor_main(
    spec: ActorSpec,
    actor_id: int,
    incarnation: int,
    seed: int,
    first_update: bytes,
    inbox: mp.Queue[tuple[str, Any]],
    results: Connection,
) -> None:
    """Entry point of an actor process: serve collect requests until told to stop; report any error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the learner handles Ctrl-C and SIGTERM sent to the whole
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # process group and stops its actors in order
    _exit_with_parent()
    torch.set_num_threads(1)
    try:
        worker = ActorWorker(spec, actor_id, incarnation, seed, pickle.loads(first_update))
        mailbox = _Inbox(inbox, worker)
        while (request := mailbox.next_request()) is not None:
            results.send(pack_chunk(worker.collect(request, at_boundary=mailbox.drain)))
    except BaseException:
        report = ActorFailure(actor_id, incarnation, traceback.format_exc())
        try:
            results.send(report)
        except OSError:
            # The learner is gone; the traceback goes to this process's stderr instead.
            traceback.print_exc()
        raise SystemExit(1) from None


@dataclass
class _Slot:
    """One actor slot: the current incarnation's process, inbox and result pipe."""

    actor_id: int
    incarnation: int
    process: BaseProcess
    inbox: mp.Queue[tuple[str, Any]]
    results: Connection
    reported: list[str] = field(default_factory=list)
    """Error reports received from this incarnation (its traceback)."""
    alive: bool = True


class LocalActorPool:
    """``num_actors`` actor processes on this machine (see the module docstring)."""

    def __init__(self, spec: ActorSpec, num_actors: int, seed: int, start_steps: int) -> None:
        self.spec = spec
        self._num_actors = num_actors
        self.seed = seed
        self.start_steps = start_steps
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        self._latest: bytes = b""
        self.discarded = 0

    @property
    def num_actors(self) -> int:
        return self._num_actors

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def _spawn(self, actor_id: int, incarnation: int) -> _Slot:
        inbox: mp.Queue[tuple[str, Any]] = self._ctx.Queue()
        inbox.cancel_join_thread()  # never block the learner's exit on a dead actor's unread inbox
        receive, send = self._ctx.Pipe(duplex=False)
        seed = actor_seed(self.seed, actor_id, incarnation, self.start_steps)
        process = self._ctx.Process(
            target=_actor_main,
            args=(self.spec, actor_id, incarnation, seed, self._latest, inbox, send),
            name=f"humanpower-actor-{actor_id}",
            daemon=True,
        )
        process.start()
        send.close()  # only the child writes; EOF on our end then means the child is gone
        return _Slot(actor_id, incarnation, process, inbox, receive)

    def start(self, update: PolicyUpdate) -> None:
        self._latest = pickle.dumps(update, protocol=pickle.HIGHEST_PROTOCOL)
        self._slots = [self._spawn(i, 0) for i in range(self._num_actors)]

    def publish(self, update: PolicyUpdate) -> None:
        self._latest = pickle.dumps(update, protocol=pickle.HIGHEST_PROTOCOL)
        for slot in self._slots:
            if slot.alive:
                slot.inbox.put((_POLICY, self._latest))

    def request(self, actor_id: int, request: CollectRequest) -> None:
        self._slots[actor_id].inbox.put((_COLLECT, request))

    def restart(self, actor_id: int, update: PolicyUpdate) -> None:
        old = self._slots[actor_id]
        self._release(old)
        self._latest = pickle.dumps(update, protocol=pickle.HIGHEST_PROTOCOL)
        self._slots[actor_id] = self._spawn(actor_id, old.incarnation + 1)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.alive and s.process.pid is not None]

    # -- events -------------------------------------------------------------------------------------------------
    def _receive(self, slot: _Slot) -> list[ActorEvent]:
        """Every message waiting on a slot's result pipe (error reports are kept for the failure event)."""
        events: list[ActorEvent] = []
        while slot.results.poll():
            try:
                message = slot.results.recv()
            except EOFError:
                break  # the actor closed its end: its death is reported through the sentinel
            except (OSError, pickle.UnpicklingError) as exc:
                slot.reported.append(f"result pipe broken ({type(exc).__name__}: {exc})")
                break
            if isinstance(message, ActorFailure):
                slot.reported.append(message.reason)
            elif isinstance(message, PackedChunk):
                events.append(message.unpack())
            else:
                raise TypeError(f"actor {slot.actor_id} sent an unexpected {type(message).__name__}")
        return events

    def poll(self, timeout: float | None) -> list[ActorEvent]:
        live = [s for s in self._slots if s.alive]
        if not live:
            return []
        waitables: list[Any] = [s.results for s in live] + [s.process.sentinel for s in live]
        ready = set(wait(waitables, timeout))
        events: list[ActorEvent] = []
        for slot in live:
            if slot.results in ready:
                events += self._receive(slot)
        for slot in live:
            if slot.process.sentinel in ready:
                events += self._receive(slot)  # whatever it sent before dying
                slot.process.join()
                slot.alive = False
                reason = "\n".join(slot.reported) or describe_exit(slot.process.exitcode)
                events.append(ActorFailure(slot.actor_id, slot.incarnation, reason))
        return events

    # -- shutdown -----------------------------------------------------------------------------------------------
    def _release(self, slot: _Slot) -> None:
        """Reap a finished slot's process and close its channels."""
        if slot.process.is_alive():  # it ignores SIGTERM (see _actor_main): kill it
            slot.process.kill()
        slot.process.join()
        slot.alive = False
        slot.results.close()
        slot.inbox.close()

    def close(self) -> int:
        """Ask every actor to stop, keep reading their pipes so none blocks in ``send``, then reap them all.

        Actors that have not exited after :data:`STOP_GRACE_S` seconds are killed.
        Returns the number of chunks that arrived after the stop request (discarded).
        """
        live = [s for s in self._slots if s.alive]
        for slot in live:
            slot.inbox.put((_STOP, None))
        deadline = time.monotonic() + STOP_GRACE_S
        while live and (left := deadline - time.monotonic()) > 0:
            waitables: list[Any] = [s.results for s in live] + [s.process.sentinel for s in live]
            ready = set(wait(waitables, left))
            for slot in live:
                if slot.results in ready or slot.process.sentinel in ready:
                    self.discarded += sum(isinstance(e, Chunk) for e in self._receive(slot))
            live = [s for s in live if s.process.is_alive()]
        for slot in self._slots:
            if live and slot in live:
                log.warning("actor %d did not stop within %.0f s; killing it", slot.actor_id, STOP_GRACE_S)
            self._release(slot)
        return self.discarded
