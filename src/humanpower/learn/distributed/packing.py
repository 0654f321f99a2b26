"""Compact chunks for the process boundary: integer node ids plus one state table per chunk.

An actor's :class:`~.protocol.Chunk` holds transitions whose successor sets repeat the same states many times
(16 joint robot actions per step on ``large``, most leading to a few states). Pickling the transitions as objects
writes every state, tuple and float of them separately. :func:`pack_chunk` instead interns every state of the
chunk into one table (pickled once), every distinct successor distribution into one CSR table of state ids and
probabilities, and every per-transition field into a numpy column; :meth:`PackedChunk.unpack` rebuilds
transitions equal to the originals (same states, same floats, same tuple structure), so the learner sees the
same :class:`~humanpower.learn.replay.Transition` objects as before. Backends pack in the actor and unpack in the
learner's process.
"""

from __future__ import annotations

import itertools
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from humanpower.learn.collector import Chunk
from humanpower.learn.replay import Transition
from humanpower.worlds.protocol import State

Distribution = tuple[tuple[float, State], ...]


class _Interner:
    """State ids and distinct-distribution ids of one chunk (distributions by object identity first, then by
    content)."""

    def __init__(self) -> None:
        self.state_ids: dict[State, int] = {}
        self.states: list[State] = []
        self.by_object: dict[int, int] = {}
        self.by_content: dict[tuple[tuple[int, ...], tuple[float, ...]], int] = {}
        self.offsets: list[int] = [0]
        self.succ: list[int] = []
        self.prob: list[float] = []
        self._keep: list[Distribution] = []  # keeps id() keys valid while packing

    def state(self, s: State) -> int:
        k = self.state_ids.get(s)
        if k is None:
            k = len(self.states)
            self.state_ids[s] = k
            self.states.append(s)
        return k

    def dist(self, d: Distribution) -> int:
        k = self.by_object.get(id(d))
        if k is not None:
            return k
        ids = tuple(self.state(s) for _, s in d)
        ps = tuple(float(p) for p, _ in d)
        key = (ids, ps)
        k = self.by_content.get(key)
        if k is None:
            k = len(self.offsets) - 1
            self.by_content[key] = k
            self.succ.extend(ids)
            self.prob.extend(ps)
            self.offsets.append(len(self.succ))
        self.by_object[id(d)] = k
        self._keep.append(d)
        return k


@dataclass(frozen=True)
class PackedChunk:
    """A :class:`~.protocol.Chunk` as a state table and numpy columns (see the module docs)."""

    header: tuple[int, int, int, int, float]
    """(actor_id, incarnation, request_id, episodes_finished, seconds) of the chunk."""
    states: bytes
    """The pickled tuple of the chunk's distinct states (state id = position)."""
    columns: dict[str, NDArray[Any]]
    """Per-transition columns and the distribution table (``dist_offsets``, ``dist_succ``, ``dist_prob``)."""
    policy_shapes: tuple[tuple[int, int], ...] | None
    """Per human, the (goals, actions) shape of ``human_policies``; None when the transitions carry none."""
    location: str = ""
    """The chunk's :attr:`~humanpower.learn.collector.Chunk.location`."""

    def unpack(self) -> Chunk:
        """The chunk, with transitions equal to the packed ones."""
        actor_id, incarnation, request_id, finished, seconds = self.header
        if not self.columns:
            return Chunk(actor_id, incarnation, request_id, (), finished, seconds, self.location)
        states: tuple[State, ...] = pickle.loads(self.states)
        c = self.columns
        offsets = c["dist_offsets"].tolist()
        succ = c["dist_succ"].tolist()
        prob = c["dist_prob"].tolist()
        dists = [
            tuple((prob[k], states[succ[k]]) for k in range(start, stop)) for start, stop in itertools.pairwise(offsets)
        ]
        n = len(c["state"])
        state_ids, next_ids = c["state"].tolist(), c["next_state"].tolist()
        goals, actions = c["goals"].tolist(), c["human_actions"].tolist()
        robot, total, version = c["robot_action"].tolist(), c["total_steps"].tolist(), c["policy_version"].tolist()
        beta, episode_step, successors = c["beta_r"].tolist(), c["episode_step"].tolist(), c["successors"].tolist()
        human_succ = c["human_successors"].tolist() if "human_successors" in c else None
        policies = c["human_policies"].tolist() if "human_policies" in c else None
        out = []
        for t in range(n):
            hs = None
            if human_succ is not None:
                hs = tuple(
                    tuple(tuple(dists[d] for d in per_action) for per_action in per_human)
                    for per_human in human_succ[t]
                )
            pols = None
            if policies is not None and self.policy_shapes is not None:
                flat, pos, rows = policies[t], 0, []
                for goals_h, acts in self.policy_shapes:
                    rows.append(tuple(tuple(flat[pos + g * acts : pos + (g + 1) * acts]) for g in range(goals_h)))
                    pos += goals_h * acts
                pols = tuple(rows)
            out.append(
                Transition(
                    state=states[state_ids[t]],
                    goals=tuple(goals[t]),
                    human_actions=tuple(actions[t]),
                    robot_action=robot[t],
                    next_state=states[next_ids[t]],
                    successors=tuple(dists[d] for d in successors[t]),
                    total_steps=total[t],
                    policy_version=version[t],
                    beta_r=beta[t],
                    episode_step=episode_step[t],
                    human_successors=hs,
                    human_policies=pols,
                )
            )
        return Chunk(actor_id, incarnation, request_id, tuple(out), finished, seconds, self.location)


def pack_chunk(chunk: Chunk) -> PackedChunk:
    """The compact form of ``chunk``; every transition must carry the same optional fields (one actor's do)."""
    ts = chunk.transitions
    header = (chunk.actor_id, chunk.incarnation, chunk.request_id, chunk.episodes_finished, chunk.seconds)
    if not ts:
        return PackedChunk(header, pickle.dumps(()), {}, None, chunk.location)
    interner = _Interner()
    columns: dict[str, NDArray[Any]] = {
        "state": np.array([interner.state(t.state) for t in ts], dtype=np.int32),
        "next_state": np.array([interner.state(t.next_state) for t in ts], dtype=np.int32),
        "goals": np.array([t.goals for t in ts], dtype=np.int32).reshape(len(ts), -1),
        "human_actions": np.array([t.human_actions for t in ts], dtype=np.int32).reshape(len(ts), -1),
        "robot_action": np.array([t.robot_action for t in ts], dtype=np.int32),
        "total_steps": np.array([t.total_steps for t in ts], dtype=np.int64),
        "policy_version": np.array([t.policy_version for t in ts], dtype=np.int64),
        "beta_r": np.array([t.beta_r for t in ts], dtype=np.float64),
        "episode_step": np.array([t.episode_step for t in ts], dtype=np.int32),
        "successors": np.array([[interner.dist(d) for d in t.successors] for t in ts], dtype=np.int32).reshape(
            len(ts), -1
        ),
    }
    with_human = [t.human_successors is not None for t in ts]
    if any(with_human):
        if not all(with_human):
            raise ValueError("pack_chunk: transitions differ in whether they carry human_successors")
        columns["human_successors"] = np.array(
            [
                [[[interner.dist(d) for d in per_action] for per_action in per_human] for per_human in human]
                for t in ts
                if (human := t.human_successors) is not None
            ],
            dtype=np.int32,
        )
    shapes = None
    with_policies = [t.human_policies is not None for t in ts]
    if any(with_policies):
        if not all(with_policies):
            raise ValueError("pack_chunk: transitions differ in whether they carry human_policies")
        first = ts[0].human_policies
        assert first is not None
        shapes = tuple((len(pol), len(pol[0]) if pol else 0) for pol in first)
        columns["human_policies"] = np.array(
            [[p for pol in t.human_policies for row in pol for p in row] for t in ts if t.human_policies is not None],
            dtype=np.float64,
        )
    columns["dist_offsets"] = np.array(interner.offsets, dtype=np.int32)
    columns["dist_succ"] = np.array(interner.succ, dtype=np.int32)
    columns["dist_prob"] = np.array(interner.prob, dtype=np.float64)
    states = pickle.dumps(tuple(interner.states), protocol=pickle.HIGHEST_PROTOCOL)
    return PackedChunk(header, states, columns, shapes, chunk.location)


__all__ = ["PackedChunk", "pack_chunk"]
