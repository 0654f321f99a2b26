"""What the learner and the actors of asynchronous training exchange, and the interface of an actor pool.

The learner drives everything (pull model, the same for every backend):

* It hands an actor a :class:`CollectRequest`: "collect ``num_steps`` env steps, numbered ``first_ticket``,
  ``first_ticket + 1``, ...". The ticket of a step is its ``total_steps`` (the env-step clock that the
  schedules read): the actor acts with ``beta_r_at(ticket)`` / ``epsilon_at(ticket)`` and stamps the transition
  with it, exactly as the synchronous loop does with its own counter. Tickets are handed out in order, so every
  env step of a run has a distinct ticket.
* The actor answers each request with one :class:`~humanpower.learn.collector.Chunk` (the transitions, each
  carrying the version of the policy snapshot it was collected with), or the pool reports an
  :class:`ActorFailure`.
* Every ``actor_sync_freq`` training steps the learner broadcasts a :class:`PolicyUpdate` (CPU weights of Q_r,
  plus the learner's state ids for the tabular backend). An actor adopts the newest update it holds at its next
  episode boundary, never mid-episode.

An actor never runs ahead: it only collects what it was asked for, and the learner only asks when its ratio
limiter allows (see :mod:`.scheduler`), so nothing ever waits in an unbounded queue and nothing is dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from humanpower.errors import RunError
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.learn.collector import Chunk
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import StateEncoder
from humanpower.worlds.protocol import SimulatorModel, State

if TYPE_CHECKING:
    from humanpower.learn.learner import Learner
    from humanpower.learn.trainer import TrainingSetup


@dataclass(frozen=True)
class PolicyUpdate:
    """A published robot policy: the learner's Q_r weights at training step ``version``.

    ``weights`` are CPU numpy copies (never views of live parameters). ``states`` is only set for the tabular
    backend, whose Q_r rows are indexed by the learner's state ids: the learner's interned states in id order.
    """

    version: int
    """Learner training steps when published (= ``policy_version`` of the transitions collected with it)."""
    total_steps: int
    """The learner's env-step clock when published (for logging; requests carry the clock actors act with)."""
    weights: dict[str, np.ndarray]
    """``q_r.state_dict()`` as CPU numpy arrays."""
    states: tuple[State, ...] | None = None
    """Tabular backend: the learner's interned states, state id = position; None for the neural backend."""


@dataclass(frozen=True)
class CollectRequest:
    """Collect ``num_steps`` env steps with tickets ``first_ticket .. first_ticket + num_steps - 1``."""

    request_id: int
    first_ticket: int
    num_steps: int


@dataclass(frozen=True)
class ActorFailure:
    """An actor died: ``reason`` is its Python traceback when it could report one, else how it ended."""

    actor_id: int
    incarnation: int
    reason: str


ActorEvent = Chunk | ActorFailure


class ActorCrashError(RunError, RuntimeError):
    """An actor crashed more than ``actor_max_restarts`` times; the message holds the last traceback."""


SetupFactory = Callable[[], "TrainingSetup"]
"""A picklable callable building the run's :class:`~humanpower.learn.trainer.TrainingSetup` inside an actor."""


@dataclass(frozen=True)
class ActorSpec:
    """Everything an actor process needs to build itself; picklable (sent once per actor start).

    The world, prior and state encoder travel either as objects (``parts``, pickled; each actor unpickles its
    own copy) or are rebuilt by ``setup_factory`` in the actor when they do not pickle.
    """

    cfg: Phase2Config
    episode_len: int
    q_r: torch.nn.Module
    """A CPU copy of the learner's Q_r module (architecture; weights are replaced by each update)."""
    parts: tuple[SimulatorModel, HumanPolicyPrior, StateEncoder] | None = None
    setup_factory: SetupFactory | None = None

    def build(self) -> tuple[SimulatorModel, HumanPolicyPrior, StateEncoder]:
        """The actor's own world, prior and state encoder."""
        if self.setup_factory is not None:
            setup = self.setup_factory()
            return setup.world, setup.prior, setup.state_encoder
        if self.parts is None:
            raise ValueError("ActorSpec: needs either parts or a setup_factory")
        return self.parts


class ActorPool(Protocol):
    """A set of ``num_actors`` actor slots on some backend (local processes, Ray actors): what
    :class:`~humanpower.learn.distributed.pool.ActorPoolCollector` drives.

    Slot ``i`` always exists; after a failure :meth:`restart` starts a new incarnation in it. All methods are
    called from the learner's thread only.
    """

    @property
    def num_actors(self) -> int: ...

    def start(self, update: PolicyUpdate) -> None:
        """Start every actor; each acts with ``update`` until it adopts a newer one."""
        ...

    def publish(self, update: PolicyUpdate) -> None:
        """Offer ``update`` to every live actor (each adopts it at its next episode boundary)."""
        ...

    def request(self, actor_id: int, request: CollectRequest) -> None:
        """Queue a collect request for an actor (never blocks the learner)."""
        ...

    def poll(self, timeout: float | None) -> list[ActorEvent]:
        """Chunks and failures that arrived; waits up to ``timeout`` s (None = until one arrives) for one."""
        ...

    def restart(self, actor_id: int, update: PolicyUpdate) -> None:
        """Replace a failed actor by a new incarnation acting with ``update`` (its requests are forgotten)."""
        ...

    def close(self) -> int:
        """Stop every actor and release the backend; returns how many chunks arrived and were discarded."""
        ...

    def pids(self) -> list[int]:
        """OS process ids of the live actors (local backend; for diagnostics and tests)."""
        ...


def policy_update(learner: Learner, total_steps: int) -> PolicyUpdate:
    """The learner's current Q_r as a :class:`PolicyUpdate` (copied to CPU now, so later steps cannot tear it)."""
    weights = {
        name: tensor.detach().to("cpu", copy=True).numpy() for name, tensor in learner.nets.q_r.state_dict().items()
    }
    states = None
    if learner.cfg.networks == "tabular":
        featurizer = learner.featurizer
        states = tuple(featurizer.state_of(i) for i in range(featurizer.num_ids))
    return PolicyUpdate(version=learner.train_steps, total_steps=total_steps, weights=weights, states=states)


def actor_spec(
    setup: TrainingSetup,
    cfg: Phase2Config,
    learner: Learner,
    episode_len: int,
    setup_factory: SetupFactory | None = None,
) -> ActorSpec:
    """The :class:`ActorSpec` of a run (a CPU, eval-mode copy of Q_r; world/prior/encoder unless a factory)."""
    q_r = copy.deepcopy(learner.nets.q_r).to("cpu").eval()
    for p in q_r.parameters():
        p.requires_grad_(False)
    parts = None if setup_factory is not None else (setup.world, setup.prior, setup.state_encoder)
    return ActorSpec(cfg=cfg, episode_len=episode_len, q_r=q_r, parts=parts, setup_factory=setup_factory)


def actor_seed(seed: int, actor_id: int, incarnation: int, start_steps: int) -> int:
    """Seed of one actor incarnation: distinct per actor, restart and resume point, reproducible from ``seed``."""
    return int(np.random.SeedSequence([seed, 0xA5, actor_id, incarnation, start_steps]).generate_state(1)[0])


def describe_exit(exitcode: Any) -> str:
    """Human-readable end of a process from its exit code (negative = killed by that signal)."""
    if isinstance(exitcode, int) and exitcode < 0:
        import signal

        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"process killed by {name}"
    return f"process exited with code {exitcode} without reporting an error"
