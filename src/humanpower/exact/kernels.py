"""Vectorised building blocks of Phase 1 and Phase 2: profile index tables, chunking, row expectations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from humanpower.exact.dag import StateDag

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

CHUNK_ELEMENTS = 1 << 22
"""Target number of float64 elements in the largest temporary array of one chunk (32 MiB)."""


@dataclass(frozen=True)
class ProfileTables:
    """Index tables over the joint action profiles of all agents (agent 0 least significant digit).

    Attributes:
        digits: (P, n_agents) action of each agent in each profile.
        robot_flat: (P,) flat joint robot action of each profile (robot 0 least significant).
        num_robot_actions: A ** len(robots) (1 when there are no robots).
    """

    digits: IntArray
    robot_flat: IntArray
    num_robot_actions: int
    num_actions: int
    humans: tuple[int, ...]
    robots: tuple[int, ...]

    @classmethod
    def build(
        cls, num_agents: int, num_actions: int, humans: tuple[int, ...], robots: tuple[int, ...]
    ) -> ProfileTables:
        p = np.arange(num_actions**num_agents, dtype=np.int64)
        digits = np.stack([(p // num_actions**k) % num_actions for k in range(num_agents)], axis=1)
        flat = np.zeros_like(p)
        for k, r in enumerate(robots):
            flat += digits[:, r] * num_actions**k
        return cls(digits, flat, int(num_actions ** len(robots)), num_actions, humans, robots)

    @property
    def num_profiles(self) -> int:
        return int(self.digits.shape[0])

    def robot_onehot(self) -> FloatArray:
        """(P, A_r) matrix with a 1 at (profile, its flat robot action)."""
        out = np.zeros((self.num_profiles, self.num_robot_actions))
        out[np.arange(self.num_profiles), self.robot_flat] = 1.0
        return out

    def others_flat(self, human: int) -> IntArray:
        """(P,) flat joint action of the humans other than ``human`` (first other human least significant)."""
        flat = np.zeros(self.num_profiles, dtype=np.int64)
        for k, h in enumerate(o for o in self.humans if o != human):
            flat += self.digits[:, h] * self.num_actions**k
        return flat

    def split_human(self, human: int) -> IntArray:
        """(A, P / A) profile indices grouped by the action of ``human``.

        Row a lists the profiles with a_h = a, ordered by (other humans' flat action, robot flat action) with
        the robot action fastest."""
        a = self.num_actions
        key = self.others_flat(human) * self.num_robot_actions + self.robot_flat
        out = np.empty((a, self.num_profiles // a), dtype=np.int64)
        for act in range(a):
            idx = np.flatnonzero(self.digits[:, human] == act)
            out[act] = idx[np.argsort(key[idx], kind="stable")]
        return out


def level_chunks(dag: StateDag, level: int, per_state_elements: int) -> Iterator[tuple[IntArray, int, int]]:
    """Split the non-terminal states of ``level`` into chunks small enough for the temporary arrays.

    Yields ``(ids, r0, r1)``: non-terminal state ids (ascending) and the row range ``[r0, r1)`` they own.
    """
    start, stop = dag.level(level)
    size = max(1, CHUNK_ELEMENTS // max(per_state_elements, 1))
    for a in range(start, stop, size):
        b = min(a + size, stop)
        ids = np.arange(a, b, dtype=np.int64)
        ids = ids[~dag.terminal[a:b]]
        if ids.size == 0:
            continue
        yield ids, int(dag.state_row_offsets[a]), int(dag.state_row_offsets[b])


def row_expectation(dag: StateDag, r0: int, r1: int, values: FloatArray) -> FloatArray:
    """E_{s'}[values[s']] for every row in ``[r0, r1)``: shape (r1 - r0, *values.shape[1:]).

    Gathers successor values with fancy indexing and sums each CSR segment with ``np.add.reduceat``
    (every row is non-empty, so the segments are well defined).
    """
    e0, e1 = int(dag.row_offsets[r0]), int(dag.row_offsets[r1])
    gathered = values[dag.succ[e0:e1]]
    p = dag.prob[e0:e1]
    gathered = gathered * (p if gathered.ndim == 1 else p[:, None])
    starts = dag.row_offsets[r0:r1] - e0
    out: FloatArray = np.add.reduceat(gathered, starts, axis=0)
    return out


def softmax(logits: FloatArray, axis: int = -1) -> FloatArray:
    """Numerically stable softmax along ``axis``."""
    z = logits - logits.max(axis=axis, keepdims=True)
    w = np.exp(z)
    out: FloatArray = w / w.sum(axis=axis, keepdims=True)
    return out
