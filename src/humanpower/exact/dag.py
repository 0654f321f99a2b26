"""The reachable state DAG of a finite-horizon world, with successor distributions for every joint action.

Layout (all numpy, float64 probabilities):

- ``states[i]`` / ``index[state]``: integer ids in topological order. States are grouped in *levels* by the
  number of steps from the initial state; level ``k`` holds ids ``level_offsets[k]:level_offsets[k + 1]``.
  Every transition goes from level ``k`` to level ``k + 1`` (the world's step count must grow by exactly 1;
  anything else is refused), so backward induction processes levels last to first.
- ``terminal[i]``: ``world.is_terminal(states[i])``. Terminal states have no transitions.
- Joint action *profiles* cover all agents: profile ``j`` has agent ``k``'s action at digit ``k`` of ``j`` in
  base ``num_actions`` (agent 0 least significant); ``num_profiles = num_actions ** num_agents``.
- Successor distributions are stored once per distinct distribution *of a state* (many profiles of a state
  usually give the same distribution, e.g. bumping into a wall and standing still): these are the *rows*,
  in CSR form ``row_offsets`` (R + 1), ``succ`` (int32 successor ids), ``prob`` (float64). ``row_of[i, j]``
  is the row of state ``i`` under profile ``j`` (-1 for terminal states). The rows of state ``i`` are
  ``state_row_offsets[i]:state_row_offsets[i + 1]``, so the rows of a contiguous id range are contiguous too.
"""

from __future__ import annotations

import gc
import itertools
import sys
import time
from array import array
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from humanpower.errors import UserError
from humanpower.worlds.protocol import (
    BatchTransitionModel,
    JointAction,
    State,
    Successors,
    TransitionTable,
    WorldModel,
)

OBJECT_BYTES_PER_STATE = 400
"""Rough Python-object cost of one stored state (the state tuple, its dict entry and list slot), used only for
memory estimates in error messages."""


@dataclass
class StateDag:
    """All reachable states of a world and their successor distributions (see the module docs)."""

    states: list[State]
    index: dict[State, int]
    level_offsets: NDArray[np.int64]
    terminal: NDArray[np.bool_]
    num_agents: int
    num_actions: int
    row_of: NDArray[np.int32]
    state_row_offsets: NDArray[np.int64]
    row_offsets: NDArray[np.int64]
    succ: NDArray[np.int32]
    prob: NDArray[np.float64]
    build_seconds: float = 0.0
    transition_calls: int = 0
    goal_masks: dict[int, NDArray[np.bool_]] = field(default_factory=dict, repr=False)
    """Cache: per human agent index, the (N, G_h) matrix of achieved goals (see :func:`achieved_matrix`)."""

    @property
    def num_states(self) -> int:
        return len(self.states)

    @property
    def num_profiles(self) -> int:
        return int(self.num_actions**self.num_agents)

    @property
    def num_levels(self) -> int:
        return len(self.level_offsets) - 1

    @property
    def num_rows(self) -> int:
        return len(self.row_offsets) - 1

    def level(self, k: int) -> tuple[int, int]:
        """The id range ``[start, stop)`` of level ``k``."""
        return int(self.level_offsets[k]), int(self.level_offsets[k + 1])

    def successors(self, state_id: int, profile: int) -> list[tuple[float, int]]:
        """``[(p, successor_id)]`` of state ``state_id`` under joint action profile ``profile``."""
        row = int(self.row_of[state_id, profile])
        if row < 0:
            return []
        a, b = int(self.row_offsets[row]), int(self.row_offsets[row + 1])
        return [(float(p), int(s)) for p, s in zip(self.prob[a:b], self.succ[a:b], strict=True)]

    def array_bytes(self) -> int:
        """Bytes held by the numpy arrays (not counting the Python state objects)."""
        arrays = (self.level_offsets, self.terminal, self.row_of, self.state_row_offsets)
        return int(sum(a.nbytes for a in (*arrays, self.row_offsets, self.succ, self.prob)))


def profile_actions(num_agents: int, num_actions: int) -> list[JointAction]:
    """The joint action of every profile index (agent 0 least significant)."""
    return [tuple(reversed(p)) for p in itertools.product(range(num_actions), repeat=num_agents)]


def _estimate_bytes(num_states: int, arrays: int, done: int) -> float:
    per_state = arrays / max(done, 1) + OBJECT_BYTES_PER_STATE
    return per_state * num_states


MAX_DAG_BYTES = 2 * 2**30
"""Default memory limit of :func:`build_dag`'s up-front check: the row table alone (4 bytes per joint action and
state) may not need more than this at ``max_states`` states."""
FIRST_USE_CACHE = 4096
"""Index tuples whose order of first use :class:`_Builder` remembers."""
MAX_JOINT_ACTIONS = 2**20
"""Most joint actions (``num_actions ** num_agents``) one state may expand in :func:`build_dag`."""


def check_dag_size(world: WorldModel, max_states: int, max_bytes: int = MAX_DAG_BYTES) -> None:
    """Refuse (:class:`UserError`, one line with the estimate) a world whose joint action count, or whose row
    table at ``max_states`` states, is beyond what :func:`build_dag` may expand or store."""
    n_agents, n_actions = world.num_agents, world.num_actions
    n_prof = n_actions**n_agents
    per_state = 4 * n_prof
    need = per_state * max_states
    what = f"{n_agents} agents with {n_actions} actions each: {n_actions}^{n_agents} = {n_prof:,} joint actions"
    if n_prof > MAX_JOINT_ACTIONS:
        raise UserError(
            f"state space too large for the exact solver: {what} per state (at most {MAX_JOINT_ACTIONS:,}); "
            f"the state DAG would need {_size(per_state)} per state, {_size(need)} at max_states={max_states:,}; "
            "use the learner (humanpower train) for worlds this big"
        )
    if need > max_bytes:
        fits = max(max_bytes // per_state, 1)
        raise UserError(
            f"state space too large for the exact solver: {what}; the state DAG needs {_size(per_state)} per "
            f"state, {_size(need)} at max_states={max_states:,} (limit {_size(max_bytes)}); lower --max-states "
            f"to at most {fits:,} or use the learner (humanpower train)"
        )


def _size(nbytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def build_dag(
    world: WorldModel,
    max_states: int = 2_000_000,
    progress: bool = True,
    *,
    batch: bool = True,
    max_bytes: int = MAX_DAG_BYTES,
) -> StateDag:
    """Enumerate every reachable state of ``world`` breadth-first and store its transitions (module docs).

    With ``batch`` (the default) and a world implementing :class:`~humanpower.worlds.protocol.BatchTransitionModel`,
    each state's distributions come from one ``transition_table`` call (a distribution shared by several joint
    actions is stored and looked up once); otherwise ``world.transition_probabilities`` is called once per
    (non-terminal state, joint action profile). Both give the same DAG (the hook's contract). Raises
    :class:`UserError` up front when the world is too big to expand (:func:`check_dag_size`), as soon as more than
    ``max_states`` states are found, even in the middle of a state's expansion (with the count so far and a
    memory estimate), or when the world breaks the protocol (probabilities not summing to 1, a non-terminal
    state without successors, a transition that does not advance the step count by exactly 1).
    """
    check_dag_size(world, max_states, max_bytes)
    start_time = time.perf_counter()
    builder = _Builder(world, max_states)
    n_prof = builder.n_prof
    table_of: Callable[[State, list[list[int]]], TransitionTable] | None = None
    if batch and isinstance(world, BatchTransitionModel):
        table_of = world.transition_table
    every_action = [list(range(world.num_actions))] * world.num_agents
    states = builder.states
    level_offsets = [0]
    terminal = array("b")
    row_of = builder.row_of
    state_row_offsets = array("q", [0])
    calls = 0

    bar = tqdm(desc="state DAG", unit=" states", disable=not progress or not sys.stderr.isatty(), file=sys.stderr)
    level_start, level_stop = 0, 1
    # The cyclic garbage collector is paused while the states pile up (restored in the finally below): the build
    # creates no reference cycles, and each full collection would traverse every state found so far (tuple
    # subclasses such as namedtuples are never untracked), a third of the build's time on warehouse.
    collecting = gc.isenabled()
    gc.disable()
    try:
        while level_start < level_stop:
            level_offsets.append(level_stop)
            builder.level_stop = level_stop
            for i in range(level_start, level_stop):
                s = states[i]
                if world.is_terminal(s):
                    terminal.append(1)
                    row_of.extend([-1] * n_prof)
                    state_row_offsets.append(len(builder.row_offsets) - 1)
                    continue
                terminal.append(0)
                dists: Sequence[Successors]
                which: Sequence[int]
                if table_of is not None:
                    table = table_of(s, every_action)
                    calls += 1
                    dists, which = table.distributions, table.index
                    if len(which) != n_prof:
                        raise UserError(
                            f"world: transition_table returned {len(which)} entries at state {s!r}, expected {n_prof}"
                        )
                else:
                    dists = _LazyProfiles(world, s, world.num_agents, world.num_actions)
                    which = range(n_prof)
                    calls += n_prof
                builder.expand(i, dists, which)
                state_row_offsets.append(len(builder.row_offsets) - 1)
                if (i & 255) == 255:
                    bar.update(256)
            bar.set_postfix(step=builder.step, states=len(states))
            level_start, level_stop = level_stop, len(states)
            builder.step += 1
        bar.update(len(states) - bar.n)
    finally:
        bar.close()
        if collecting:
            gc.enable()

    n = len(states)
    dag = StateDag(
        states=states,
        index=builder.index,
        level_offsets=np.asarray(level_offsets, dtype=np.int64),
        terminal=np.frombuffer(terminal, dtype=np.int8).astype(bool),
        num_agents=world.num_agents,
        num_actions=world.num_actions,
        row_of=np.frombuffer(row_of, dtype=np.int32).reshape(n, n_prof).copy(),
        state_row_offsets=np.frombuffer(state_row_offsets, dtype=np.int64).copy(),
        row_offsets=np.frombuffer(builder.row_offsets, dtype=np.int64).copy(),
        succ=np.frombuffer(builder.succ, dtype=np.int32).copy(),
        prob=np.frombuffer(builder.prob, dtype=np.float64).copy(),
        transition_calls=calls,
    )
    dag.build_seconds = time.perf_counter() - start_time
    return dag


class _Builder:
    """The growing state list and CSR rows of :func:`build_dag`; :meth:`expand` stores one state's rows."""

    def __init__(self, world: WorldModel, max_states: int) -> None:
        self.world = world
        self.max_states = max_states
        self.n_agents, self.n_actions = world.num_agents, world.num_actions
        self.n_prof = self.n_actions**self.n_agents
        init = world.initial_state()
        self.states: list[State] = [init]
        self.index: dict[State, int] = {init: 0}
        self.step = world.step_count(init)
        self.level_stop = 1
        self.row_of = array("i")
        self.row_offsets = array("q", [0])
        self.succ = array("i")
        self.prob = array("d")
        self.first_use: dict[int, tuple[tuple[int, ...], list[int]]] = {}

    def expand(self, i: int, dists: Sequence[Successors], which: Sequence[int]) -> None:
        """Store the rows of state ``i``: profile ``j`` has distribution ``dists[which[j]]`` (each distinct
        distribution is read and checked once, in the order of first use, so ids follow the per-profile order)."""
        identity = isinstance(which, range) and which == range(len(dists))
        order: Iterable[int] = which if identity else self._first_use(which)
        row_of_dist = [-1] * len(dists)
        local: dict[Hashable, int] = {}
        index_get, local_get = self.index.get, local.get
        succ, prob, row_offsets = self.succ, self.prob, self.row_offsets
        level_stop = self.level_stop
        for k in order:
            successors = dists[k]
            if len(successors) == 1 and successors[0][0] == 1.0:
                # The common case, inline: one successor with probability 1 (row key: its id alone).
                s2 = successors[0][1]
                sid = index_get(s2)
                if sid is None or sid < level_stop:
                    sid = self._new_state(i, s2, sid)
                row = local_get(sid, -1)
                if row < 0:
                    row = len(row_offsets) - 1
                    local[sid] = row
                    succ.append(sid)
                    prob.append(1.0)
                    row_offsets.append(len(succ))
            else:
                row = self._row(local, successors, i, which, k)
            row_of_dist[k] = row
        self.row_of.extend(row_of_dist if identity else [row_of_dist[k] for k in which])

    def _first_use(self, which: Sequence[int]) -> Iterable[int]:
        """The distinct entries of ``which`` in order of first use. Remembered for tuples (immutable; worlds often
        return the same index object for many states): keyed by identity, holding the tuple so that its id stays
        its own, at most ``FIRST_USE_CACHE`` of them."""
        if type(which) is not tuple:
            return dict.fromkeys(which)
        known = self.first_use.get(id(which))
        if known is not None and known[0] is which:
            return known[1]
        order = list(dict.fromkeys(which))
        if len(self.first_use) >= FIRST_USE_CACHE:
            self.first_use.clear()
        self.first_use[id(which)] = (which, order)
        return order

    def _row(self, local: dict[Hashable, int], successors: Successors, i: int, which: Sequence[int], k: int) -> int:
        """The row of distribution ``k`` of state ``i`` (``which`` maps profiles to distributions), added unless
        the state already has an identical one."""
        if not successors:
            raise UserError(
                f"world: non-terminal state {self.states[i]!r} has no successors under {self._joint(which, k)}"
            )
        index = self.index
        ids = []
        ps = []
        for p, s2 in successors:
            sid = index.get(s2)
            if sid is None or sid < self.level_stop:
                sid = self._new_state(i, s2, sid)
            ids.append(sid)
            ps.append(float(p))
        total = sum(ps)
        if abs(total - 1.0) > 1e-9:
            raise UserError(
                f"world: successor probabilities of {self.states[i]!r} under {self._joint(which, k)} sum to {total}, "
                "not 1"
            )
        key = (tuple(ids), tuple(ps))
        row = local.get(key, -1)
        if row < 0:
            row = len(self.row_offsets) - 1
            local[key] = row
            self.succ.extend(ids)
            self.prob.extend(ps)
            self.row_offsets.append(len(self.succ))
        return row

    def _new_state(self, i: int, s2: State, known: int | None) -> int:
        """Id of a successor not seen yet (checked: one step later, within ``max_states``); ``known`` is the id
        of one of an earlier level (a protocol error)."""
        world, s, step = self.world, self.states[i], self.step
        if known is not None:
            raise UserError(
                f"world: transition from {s!r} leads back to {s2!r} at step {world.step_count(s2)}; the step "
                "count must advance by 1"
            )
        if world.step_count(s2) != step + 1:
            raise UserError(
                f"world: transition from {s!r} (step {step}) to {s2!r} (step {world.step_count(s2)}) does not "
                "advance the step count by 1"
            )
        sid = len(self.states)
        if sid >= self.max_states:
            nbytes = 4 * len(self.row_of) + 8 * len(self.row_offsets) + 12 * len(self.succ)
            est = _estimate_bytes(sid + 1, nbytes, i)
            raise UserError(
                f"state space too large: more than max_states={self.max_states} reachable states ({sid + 1} found "
                f"so far, {i} expanded, up to step {step + 1}); storing them needs about {est / 2**30:.2f} GiB and "
                "more for the rest; raise --max-states or lower --max-steps"
            )
        self.index[s2] = sid
        self.states.append(s2)
        return sid

    def _joint(self, which: Sequence[int], k: int) -> JointAction:
        """The first joint action whose distribution is ``k`` (for error messages)."""
        return profile_action(list(which).index(k), self.n_agents, self.n_actions)


def profile_action(j: int, num_agents: int, num_actions: int) -> JointAction:
    """The joint action of profile index ``j`` (agent 0 least significant)."""
    out = []
    for _ in range(num_agents):
        j, a = divmod(j, num_actions)
        out.append(a)
    return tuple(out)


class _LazyProfiles(Sequence[Successors]):
    """The generic path's distributions: ``transition_probabilities`` per profile, computed when first read (so
    that the state limit is checked between calls)."""

    def __init__(self, world: WorldModel, state: State, num_agents: int, num_actions: int) -> None:
        self.world, self.state = world, state
        self.num_agents, self.num_actions = num_agents, num_actions

    def __len__(self) -> int:
        return int(self.num_actions**self.num_agents)

    def __getitem__(self, j: int) -> Successors:  # type: ignore[override]
        return self.world.transition_probabilities(self.state, profile_action(j, self.num_agents, self.num_actions))


def achieved_matrix(world: WorldModel, dag: StateDag, human: int) -> NDArray[np.bool_]:
    """The (N, G_h) matrix ``goal.is_achieved(state)`` for ``human`` (agent index); cached on the DAG."""
    cached = dag.goal_masks.get(human)
    if cached is not None:
        return cached
    goals = world.goal_set(human).goals
    out = np.empty((dag.num_states, len(goals)), dtype=bool)
    for gi, goal in enumerate(goals):
        check = goal.is_achieved
        out[:, gi] = np.fromiter((check(s) for s in dag.states), dtype=bool, count=dag.num_states)
    dag.goal_masks[human] = out
    return out
