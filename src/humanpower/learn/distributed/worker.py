"""The actor side of asynchronous training, independent of the backend that hosts it.

:class:`ActorWorker` owns one :class:`~humanpower.learn.actor.Actor` (its own world copy and RNG streams) and the
actor's copy of the robot policy. It answers :class:`~.protocol.CollectRequest` s with
:class:`~.protocol.Chunk` s and adopts offered :class:`~.protocol.PolicyUpdate` s only at episode boundaries.
The local backend runs it in a spawned process, the Ray backend in a Ray actor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from humanpower.learn.actor import Actor, ExplorationParams
from humanpower.learn.collector import Chunk, this_process
from humanpower.learn.distributed.protocol import ActorSpec, CollectRequest, PolicyUpdate
from humanpower.learn.encoding import StateBatch, StateEncoder
from humanpower.learn.policy import QPolicy, StateBatcher
from humanpower.learn.schedules import beta_r_at, epsilon_at
from humanpower.worlds.protocol import State


def encoded_batches(encoder: StateEncoder) -> StateBatcher:
    """Batches of a neural Q_r outside the learner: each state encoded afresh (no id or feature cache, so a
    long-running actor does not accumulate every state it ever visited)."""

    def batch_of(states: Sequence[State]) -> StateBatch:
        features = torch.from_numpy(np.asarray(encoder.encode(list(states)), dtype=np.float32))
        rows = torch.arange(len(states), dtype=torch.long)
        return StateBatch(features=features, ids=rows, unique_rows=rows, inverse=rows)

    return batch_of


def mirrored_ids(ids: dict[State, int]) -> StateBatcher:
    """Batches of a tabular Q_r outside the learner: states map to the learner's ids.

    The table is indexed by the learner's state ids, so the actor mirrors the learner's id list (sent with each
    update). A state the learner had not seen at publication gets the first id the learner had not assigned:
    that row has never been trained, so it holds exactly the value the learner would give the state (its
    initial value, after the same weight decay as every untouched row).
    """
    unseen = len(ids)

    def batch_of(states: Sequence[State]) -> StateBatch:
        sids = torch.tensor([ids.get(s, unseen) for s in states], dtype=torch.long)
        return StateBatch(features=torch.zeros(len(states), 0), ids=sids)

    return batch_of


class PolicyMirror:
    """The actor's copy of the learner's acting policy; changes only through :meth:`adopt`."""

    def __init__(self, q_r: torch.nn.Module, encoder: StateEncoder, tabular: bool, beta_r: float) -> None:
        self.q_r = q_r.eval()
        self.beta_r = beta_r
        """Nominal beta_r of the adopted policies (each step acts at its own schedule values)."""
        self.tabular = tabular
        self.encoder = encoder
        self.ids: dict[State, int] = {}
        self.version = -1

    def adopt(self, update: PolicyUpdate) -> QPolicy:
        """Load ``update``'s weights into the actor's Q_r copy and return the frozen acting policy."""
        # torch.tensor copies: arrays from Ray's object store are read-only views.
        self.q_r.load_state_dict({k: torch.tensor(v) for k, v in update.weights.items()})
        self.version = update.version
        if not self.tabular:
            return QPolicy(self.q_r, encoded_batches(self.encoder), update.version, self.beta_r)
        if update.states is None:
            raise ValueError("tabular policy update without the learner's state ids")
        # The learner's ids are append-only: extend the mirror with the states it has not seen yet.
        for sid in range(len(self.ids), len(update.states)):
            self.ids[update.states[sid]] = sid
        return QPolicy(self.q_r, mirrored_ids(dict(self.ids)), update.version, self.beta_r)


class ActorWorker:
    """One actor: collects requested env steps with the newest adopted policy snapshot.

    :meth:`offer` may be called from another thread (the Ray backend does); everything else from one thread.
    """

    def __init__(
        self,
        spec: ActorSpec,
        actor_id: int,
        incarnation: int,
        seed: int,
        update: PolicyUpdate,
        location: str | None = None,
    ) -> None:
        world, prior, encoder = spec.build()
        self.location = this_process() if location is None else location
        """Stamped on every chunk (:attr:`~humanpower.learn.collector.Chunk.location`)."""
        self.cfg = spec.cfg
        self.actor_id = actor_id
        self.incarnation = incarnation
        self.actor = Actor.from_config(world, prior, spec.cfg, seed=seed, steps_per_episode=spec.episode_len)
        self.mirror = PolicyMirror(spec.q_r, encoder, spec.cfg.networks == "tabular", spec.cfg.beta_r)
        self.policy: QPolicy = self.mirror.adopt(update)
        self._lock = threading.Lock()
        self._pending: PolicyUpdate | None = None

    def offer(self, update: PolicyUpdate) -> None:
        """Keep ``update`` for the next episode boundary (an older one than already held is ignored)."""
        with self._lock:
            held = self._pending.version if self._pending is not None else self.mirror.version
            if update.version > held:
                self._pending = update

    def _adopt_pending(self) -> None:
        with self._lock:
            update, self._pending = self._pending, None
        if update is not None:
            self.policy = self.mirror.adopt(update)

    def collect(self, request: CollectRequest, at_boundary: Callable[[], None] | None = None) -> Chunk:
        """Take ``request.num_steps`` env steps; ``at_boundary`` runs before each new episode (to receive updates)."""
        t0 = time.perf_counter()
        cfg, actor = self.cfg, self.actor
        out = []
        finished = 0
        for i in range(request.num_steps):
            if actor.episode_done:
                if at_boundary is not None:
                    at_boundary()
                self._adopt_pending()
                actor.begin_episode()
            ticket = request.first_ticket + i
            explore = ExplorationParams(beta_r=beta_r_at(ticket, cfg), epsilon=epsilon_at(ticket, cfg))
            out.append(actor.step(self.policy, explore, ticket))
            if actor.episode_done:
                finished += 1
        return Chunk(
            actor_id=self.actor_id,
            incarnation=self.incarnation,
            request_id=request.request_id,
            transitions=tuple(out),
            episodes_finished=finished,
            seconds=time.perf_counter() - t0,
            location=self.location,
        )
