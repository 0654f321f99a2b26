"""Asynchronous actor-learner training (``async_training: true``): see ``docs/ASYNC.md``.

:class:`ActorPoolCollector` is the :class:`~humanpower.learn.collector.Collector` that the one
:class:`~humanpower.learn.trainer.Trainer` consumes in asynchronous runs. Backends: ``local`` (actor processes on
this machine, :mod:`.local`) and ``ray`` (Ray actors, :mod:`.ray_backend`, optional dependency
``humanpower[ray]``).
"""

from humanpower.learn.collector import ActorCrash, Chunk
from humanpower.learn.distributed.pool import ActorPoolCollector
from humanpower.learn.distributed.protocol import (
    ActorCrashError,
    ActorFailure,
    ActorPool,
    ActorSpec,
    CollectRequest,
    PolicyUpdate,
)
from humanpower.learn.distributed.scheduler import RequestScheduler

__all__ = [
    "ActorCrash",
    "ActorCrashError",
    "ActorFailure",
    "ActorPool",
    "ActorPoolCollector",
    "ActorSpec",
    "Chunk",
    "CollectRequest",
    "PolicyUpdate",
    "RequestScheduler",
]
