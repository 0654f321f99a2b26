"""Which actor collects which env steps, and when: tickets, pipeline depth and the ratio limiter.

The learner hands out env steps as numbered tickets (``total_steps`` values) in chunks of ``chunk_size``. An
actor holds at most ``depth`` outstanding requests (so it always has the next one queued while the learner
reads the last). The ratio limiter is a credit scheme: tickets may be issued up to

    credit = start + initial_credit + max_env_steps_per_train_step * (train_steps since start) + bonus

so actors never run more than ``max_env_steps_per_train_step`` env steps per training step ahead of the learner
(plus the initial pipeline fill). While the learner cannot train (replay holds less than a batch: at the start
and after the buffer is cleared at the beta_r ramp bounds) requests are issued regardless, and the ``bonus``
records them so the ratio is not paid back later. Requests of a crashed actor are issued again, with the same
tickets, to its next incarnation.
"""

from __future__ import annotations

import math
from collections import deque

from humanpower.learn.distributed.protocol import CollectRequest


class RequestScheduler:
    """Ticket and credit bookkeeping of the learner (pure logic, no I/O)."""

    def __init__(
        self,
        num_actors: int,
        chunk_size: int,
        budget: int,
        max_ratio: float | None,
        *,
        start_ticket: int = 0,
        start_train_steps: int = 0,
        depth: int = 2,
    ) -> None:
        if num_actors < 1 or chunk_size < 1 or depth < 1:
            raise ValueError("RequestScheduler: num_actors, chunk_size and depth must be >= 1")
        self.num_actors = num_actors
        self.chunk_size = chunk_size
        self.budget = budget
        self.max_ratio = max_ratio
        self.depth = depth
        self.next_ticket = start_ticket
        self.start_ticket = start_ticket
        self.start_train_steps = start_train_steps
        self.initial_credit = num_actors * depth * chunk_size
        self.bonus = 0
        self._next_id = 0
        self._turn = 0
        self.outstanding: list[dict[int, CollectRequest]] = [{} for _ in range(num_actors)]
        self._reissue: list[deque[CollectRequest]] = [deque() for _ in range(num_actors)]

    # -- credit -------------------------------------------------------------------------------------------------
    def credit(self, train_steps: int) -> float:
        """Highest ticket (exclusive) the limiter allows at ``train_steps``."""
        if self.max_ratio is None:
            return float("inf")
        done = train_steps - self.start_train_steps
        return self.start_ticket + self.initial_credit + self.max_ratio * done + self.bonus

    @property
    def in_flight(self) -> int:
        """Requests issued and not yet answered."""
        return sum(len(o) for o in self.outstanding)

    @property
    def capacity(self) -> int:
        """Most requests that can be in flight at once."""
        return self.num_actors * self.depth

    @property
    def exhausted(self) -> bool:
        """Every ticket of the budget has been issued (and none waits to be issued again)."""
        return self.next_ticket >= self.budget and not any(self._reissue)

    # -- issuing ------------------------------------------------------------------------------------------------
    def issue(self, train_steps: int, starving: bool) -> list[tuple[int, CollectRequest]]:
        """New requests ``(actor_id, request)`` allowed now; ``starving``: the learner cannot train yet.

        Round robin over the requests actually issued (the actor after the last one served is asked first), so
        that no actor waits long for work and acts with an old policy when it finally gets some.
        """
        out: list[tuple[int, CollectRequest]] = []
        while True:
            for k in range(self.num_actors):
                actor = (self._turn + k) % self.num_actors
                request = self._next_for(actor, train_steps, starving)
                if request is not None:
                    break
            else:
                return out
            self.outstanding[actor][request.request_id] = request
            out.append((actor, request))
            self._turn = (actor + 1) % self.num_actors

    def _next_for(self, actor: int, train_steps: int, starving: bool) -> CollectRequest | None:
        if len(self.outstanding[actor]) >= self.depth:
            return None
        if self._reissue[actor]:
            return self._reissue[actor].popleft()  # already paid for
        if self.next_ticket >= self.budget:
            return None
        n = min(self.chunk_size, self.budget - self.next_ticket)
        end = self.next_ticket + n
        over = end - self.credit(train_steps)
        if over > 0:
            if not starving:
                return None
            self.bonus += math.ceil(over)
        request = CollectRequest(request_id=self._next_id, first_ticket=self.next_ticket, num_steps=n)
        self._next_id += 1
        self.next_ticket = end
        return request

    # -- answers ------------------------------------------------------------------------------------------------
    def complete(self, actor_id: int, request_id: int) -> CollectRequest | None:
        """Mark a request answered; returns it, or None if it was not outstanding for that actor."""
        return self.outstanding[actor_id].pop(request_id, None)

    def actor_failed(self, actor_id: int) -> int:
        """The actor's outstanding requests go to its next incarnation; returns how many."""
        lost = sorted(self.outstanding[actor_id].values(), key=lambda r: r.first_ticket)
        self.outstanding[actor_id].clear()
        self._reissue[actor_id].extend(lost)
        return len(lost)
