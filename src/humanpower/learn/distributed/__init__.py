"""Asynchronous actor-learner training (``async_training: true``): see ``docs/ASYNC.md``.

:class:`AsyncTrainer` has :class:`~humanpower.learn.trainer.SyncTrainer`'s interface. Backends: ``local``
(actor processes on this machine, :mod:`.local`) and ``ray`` (Ray actors, :mod:`.ray_backend`, optional
dependency ``humanpower[ray]``).
"""

from humanpower.learn.distributed.protocol import (
    ActorCrashError,
    ActorFailure,
    ActorPool,
    ActorSpec,
    Chunk,
    CollectRequest,
    PolicyUpdate,
)
from humanpower.learn.distributed.scheduler import RequestScheduler
from humanpower.learn.distributed.trainer import ActorCrash, AsyncTrainer, AsyncTrainResult

__all__ = [
    "ActorCrash",
    "ActorCrashError",
    "ActorFailure",
    "ActorPool",
    "ActorSpec",
    "AsyncTrainResult",
    "AsyncTrainer",
    "Chunk",
    "CollectRequest",
    "PolicyUpdate",
    "RequestScheduler",
]
