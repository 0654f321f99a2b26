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

import itertools
import sys
import time
from array import array
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from humanpower.errors import UserError
from humanpower.worlds.protocol import JointAction, State, Successors, WorldModel

OBJECT_BYTES_PER_STATE = 400
"""Rough Python-object cost of one stored state (the state tuple, its dict entry and list slot), used only for
memory estimates in error messages."""


@runtime_checkable
class BatchTransitionModel(Protocol):
    """Optional fast path for :func:`build_dag`: all successor distributions of a state in one call."""

    def all_transition_probabilities(self, state: Hashable) -> Sequence[Successors]:
        """One successor list per joint action profile, profiles in flat order (agent 0 least significant)."""
        ...


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


def build_dag(world: WorldModel, max_states: int = 2_000_000, progress: bool = True) -> StateDag:
    """Enumerate every reachable state of ``world`` breadth-first and store its transitions (module docs).

    Calls ``world.transition_probabilities`` once per (non-terminal state, joint action profile), or
    ``all_transition_probabilities`` once per state when the world implements :class:`BatchTransitionModel`.
    Raises :class:`UserError` when more than ``max_states`` states are found (with the count so far and a
    memory estimate), or when the world breaks the protocol (probabilities not summing to 1, a non-terminal
    state without successors, a transition that does not advance the step count by exactly 1).
    """
    start_time = time.perf_counter()
    n_agents, n_actions = world.num_agents, world.num_actions
    profiles = profile_actions(n_agents, n_actions)
    n_prof = len(profiles)
    batch = isinstance(world, BatchTransitionModel)

    init = world.initial_state()
    states: list[State] = [init]
    index: dict[State, int] = {init: 0}
    level_offsets = [0]
    terminal = array("b")
    row_of = array("i")
    state_row_offsets = array("q", [0])
    row_offsets = array("q", [0])
    succ = array("i")
    prob = array("d")
    calls = 0

    bar = tqdm(
        desc="state DAG",
        unit=" states",
        disable=not progress or not sys.stderr.isatty(),
        file=sys.stderr,
    )
    level_start, level_stop = 0, 1
    step = world.step_count(init)
    try:
        while level_start < level_stop:
            level_offsets.append(level_stop)
            for i in range(level_start, level_stop):
                s = states[i]
                if world.is_terminal(s):
                    terminal.append(1)
                    row_of.extend([-1] * n_prof)
                    state_row_offsets.append(len(row_offsets) - 1)
                    continue
                terminal.append(0)
                if batch:
                    all_succ = list(world.all_transition_probabilities(s))  # type: ignore[attr-defined]
                    calls += 1
                    if len(all_succ) != n_prof:
                        raise UserError(
                            f"world: all_transition_probabilities returned {len(all_succ)} lists at state "
                            f"{s!r}, expected {n_prof}"
                        )
                else:
                    all_succ = [world.transition_probabilities(s, joint) for joint in profiles]
                    calls += n_prof
                local: dict[tuple[tuple[int, ...], tuple[float, ...]], int] = {}
                for j, successors in enumerate(all_succ):
                    if not successors:
                        raise UserError(
                            f"world: non-terminal state {s!r} has no successors under {profiles[j]}"
                        )
                    ids = []
                    ps = []
                    for p, s2 in successors:
                        k = index.get(s2)
                        if k is None:
                            k = len(states)
                            if world.step_count(s2) != step + 1:
                                raise UserError(
                                    f"world: transition from {s!r} (step {step}) to {s2!r} (step "
                                    f"{world.step_count(s2)}) does not advance the step count by 1"
                                )
                            index[s2] = k
                            states.append(s2)
                        elif k < level_stop:
                            raise UserError(
                                f"world: transition from {s!r} leads back to {s2!r} at step "
                                f"{world.step_count(s2)}; the step count must advance by 1"
                            )
                        ids.append(k)
                        ps.append(float(p))
                    total = sum(ps)
                    if abs(total - 1.0) > 1e-9:
                        raise UserError(
                            f"world: successor probabilities of {s!r} under {profiles[j]} sum to {total}, "
                            "not 1"
                        )
                    key = (tuple(ids), tuple(ps))
                    row = local.get(key)
                    if row is None:
                        row = len(row_offsets) - 1
                        local[key] = row
                        succ.extend(ids)
                        prob.extend(ps)
                        row_offsets.append(len(succ))
                    row_of.append(row)
                state_row_offsets.append(len(row_offsets) - 1)
                if len(states) > max_states:
                    done = i + 1
                    nbytes = 4 * len(row_of) + 8 * len(row_offsets) + 12 * len(succ)
                    est = _estimate_bytes(len(states), nbytes, done)
                    raise UserError(
                        f"state space too large: more than max_states={max_states} reachable states "
                        f"({len(states)} found so far, {done} expanded, up to step {step + 1}); storing them "
                        f"needs about {est / 2**30:.2f} GiB and more for the rest; raise --max-states or "
                        f"lower --max-steps"
                    )
                if (i & 255) == 255:
                    bar.update(256)
            bar.set_postfix(step=step, states=len(states))
            level_start, level_stop = level_stop, len(states)
            step += 1
        bar.update(len(states) - bar.n)
    finally:
        bar.close()

    n = len(states)
    dag = StateDag(
        states=states,
        index=index,
        level_offsets=np.asarray(level_offsets, dtype=np.int64),
        terminal=np.frombuffer(terminal, dtype=np.int8).astype(bool),
        num_agents=n_agents,
        num_actions=n_actions,
        row_of=np.frombuffer(row_of, dtype=np.int32).reshape(n, n_prof).copy(),
        state_row_offsets=np.frombuffer(state_row_offsets, dtype=np.int64).copy(),
        row_offsets=np.frombuffer(row_offsets, dtype=np.int64).copy(),
        succ=np.frombuffer(succ, dtype=np.int32).copy(),
        prob=np.frombuffer(prob, dtype=np.float64).copy(),
        transition_calls=calls,
    )
    dag.build_seconds = time.perf_counter() - start_time
    return dag


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
