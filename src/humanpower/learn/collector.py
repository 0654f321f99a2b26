"""Where training data comes from: one :class:`Collector` interface, and the pacing of a run.

The trainer (:class:`~humanpower.learn.trainer.Trainer`) runs one loop for synchronous and asynchronous
training; they differ only in the collector it consumes and in the :class:`Pacing` it owns:

* :class:`SyncCollector` (``async_training: false``): one in-process :class:`~humanpower.learn.actor.Actor`; every
  :meth:`~Collector.collect` call takes exactly one env step, acting with the learner's *live* Q_r (the
  reference loop, bit-exactly reproducible from a seed and from a checkpoint).
* :class:`~humanpower.learn.distributed.pool.ActorPoolCollector` (``async_training: true``): ``num_actors``
  actors (local processes or Ray actors) collecting chunks in parallel with published policy snapshots
  (docs/ASYNC.md).

Both yield :class:`Chunk` s, the same type: the transitions of consecutive env steps of one actor, in ticket
(``total_steps``) order.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from humanpower.learn.actor import Actor, ExplorationParams
from humanpower.learn.config import Phase2Config
from humanpower.learn.replay import Transition
from humanpower.learn.schedules import beta_r_at, epsilon_at

if TYPE_CHECKING:
    from humanpower.learn.learner import Learner


@dataclass(frozen=True)
class Chunk:
    """Consecutive env steps of one actor: one transition per ticket, in ticket order (the answer to one collect
    request of the asynchronous pool, or the single step of the synchronous collector)."""

    actor_id: int
    incarnation: int
    """How many times this actor slot was restarted before the process that collected the chunk."""
    request_id: int
    transitions: tuple[Transition, ...]
    episodes_finished: int
    """Episodes that ended inside this chunk."""
    seconds: float
    """Wall time the actor spent collecting the chunk (not waiting)."""
    location: str = ""
    """Where the actor ran: ``host/pid`` (local processes) or ``ray node <id>`` (Ray)."""


def this_process() -> str:
    """The :attr:`Chunk.location` of an actor in this process: ``hostname/pid``."""
    return f"{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True)
class ActorCrash:
    """One actor failure: which slot and incarnation, when (env steps), why, and whether it was restarted."""

    actor_id: int
    incarnation: int
    total_steps: int
    reason: str
    restarted: bool


@dataclass(frozen=True)
class Pacing:
    """The scheduling policy of a run (owned by the trainer): when it trains, publishes, drops data and stops.

    Pure decisions from counters; :meth:`from_config` derives it from the config.
    """

    updates_per_env_step: int | None
    """Lockstep (synchronous): exactly this many training steps right after each env step arrives (once replay
    holds a batch). None = free-running (asynchronous): one training step per loop turn whenever replay holds a
    batch, while the collector's ratio limiter holds the actors to ``max_env_steps_per_train_step``."""
    max_env_steps_per_train_step: float | None
    """Ratio limiter of a free-running collector (None = no limit)."""
    max_policy_lag: int | None
    """Transitions whose policy is more than this many training steps old are dropped (None = keep all)."""
    publish_every: int | None
    """Training steps between policy publications; None = never (the collector acts with the live network)."""
    budget_in_env_steps: bool
    """The budget ``num_episodes`` is counted in env steps (``num_episodes * episode length``: episodes of several
    actors end out of order) rather than in finished episodes."""

    @classmethod
    def from_config(cls, cfg: Phase2Config) -> Pacing:
        """Lockstep for synchronous training (``updates_per_step``), free-running for ``async_training``."""
        if not cfg.async_training:
            return cls(cfg.updates_per_step, None, None, None, budget_in_env_steps=False)
        return cls(None, cfg.max_env_steps_per_train_step, cfg.max_policy_lag, cfg.actor_sync_freq, True)

    @property
    def lockstep(self) -> bool:
        return self.updates_per_env_step is not None

    def updates_after(self, env_steps: int) -> int:
        """Training steps to take right after ``env_steps`` env steps arrived (0 when free-running)."""
        return 0 if self.updates_per_env_step is None else self.updates_per_env_step * env_steps

    def keeps(self, lag: int) -> bool:
        """Whether a transition with this policy lag (training steps) goes to replay."""
        return self.max_policy_lag is None or lag <= self.max_policy_lag

    def publish_due(self, train_steps: int) -> bool:
        """Whether to publish the policy after training step number ``train_steps``."""
        return self.publish_every is not None and train_steps % self.publish_every == 0

    def work_left(self, episodes: int, total_steps: int, num_episodes: int, episode_len: int) -> bool:
        """Whether the budget of ``num_episodes`` is not reached yet."""
        if self.budget_in_env_steps:
            return total_steps < num_episodes * episode_len
        return episodes < num_episodes

    def beyond(self, episodes: int, total_steps: int, num_episodes: int, episode_len: int) -> bool:
        """Whether more than the budget was done already (a resume with a smaller ``num_episodes``)."""
        if self.budget_in_env_steps:
            return total_steps > num_episodes * episode_len
        return episodes > num_episodes


class Collector(Protocol):
    """A source of env steps for the trainer (module docs). Called from the trainer's thread only."""

    def start(self, learner: Learner, pacing: Pacing, total_steps: int, budget: int) -> None:
        """Begin collecting the env steps ``total_steps .. budget - 1`` (tickets), acting with ``learner``'s
        current policy (resources such as actor processes are acquired here and released by :meth:`close`)."""
        ...

    def collect(self, train_steps: int, learner_ready: bool) -> list[Chunk]:
        """The chunks available now (any order across actors; each in ticket order). ``learner_ready``: the
        learner can train, so the call must not wait long; otherwise it may wait for data."""
        ...

    def publish(self, learner: Learner, total_steps: int) -> None:
        """Hand the learner's current policy to the actors (each adopts it at its next episode boundary)."""
        ...

    def close(self) -> int:
        """Stop collecting; returns the number of chunks that arrived after the stop and were discarded."""
        ...

    @property
    def crashes(self) -> list[ActorCrash]:
        """Actor failures since :meth:`start` (restarted ones and the last, fatal one)."""
        ...

    def row_fields(self, seconds: float) -> dict[str, float]:
        """Collector-specific metric columns over the window since the last call (``seconds`` long)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries of the collector (merged into the trainer's checkpoint)."""
        ...

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore from a trainer checkpoint (KeyError if it lacks this collector's entries)."""
        ...


class SyncCollector:
    """One in-process actor taking one env step per :meth:`collect` call with the learner's live Q_r.

    The step of ticket t acts at ``beta_r_at(t)`` / ``epsilon_at(t)`` with ``learner.acting_policy()`` (the
    network as trained so far: no copy, no publication). Its actor state (RNG streams, episode, exploring-starts
    pool) is checkpointed, so a resumed run continues exactly.
    """

    def __init__(self, actor: Actor, cfg: Phase2Config) -> None:
        self.actor = actor
        self.cfg = cfg
        self._learner: Learner | None = None
        self._ticket = 0
        self._location = this_process()

    def start(self, learner: Learner, pacing: Pacing, total_steps: int, budget: int) -> None:
        self._learner = learner
        self._ticket = total_steps

    def collect(self, train_steps: int, learner_ready: bool) -> list[Chunk]:
        learner, actor = self._learner, self.actor
        if learner is None:
            raise RuntimeError("SyncCollector.collect before start")
        t0 = time.perf_counter()
        if actor.episode_done:
            actor.begin_episode()
        ticket = self._ticket
        explore = ExplorationParams(beta_r=beta_r_at(ticket, self.cfg), epsilon=epsilon_at(ticket, self.cfg))
        transition = actor.step(learner.acting_policy(), explore, ticket)  # uniform without a Q_r call at beta_r 0
        self._ticket += 1
        finished = int(actor.episode_done)
        return [Chunk(0, 0, ticket, (transition,), finished, time.perf_counter() - t0, self._location)]

    def publish(self, learner: Learner, total_steps: int) -> None:
        """Nothing to do: the actor always acts with the live network."""

    def close(self) -> int:
        self._learner = None
        return 0

    @property
    def crashes(self) -> list[ActorCrash]:
        return []

    def row_fields(self, seconds: float) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.actor.load_state_dict(d["actor"])


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]``."""
    return after // every > before // every


def mean_or_nan(total: float, count: int) -> float:
    """``total / count``, NaN when nothing was counted."""
    return total / count if count else math.nan
