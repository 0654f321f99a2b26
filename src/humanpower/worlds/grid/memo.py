"""A memo of gridworld transition tables keyed by the state without its step count (``GridWorld.transition_table``).

The dynamics (GRIDWORLD.md) read the step count only for the horizon (rule 1), so a non-terminal state's table
equals that of any non-terminal state with the same agents and objects, each successor's step count being the
state's plus one: same successors in the same order, same floats. A breadth-first sweep over every joint action
meets every configuration of a level again at the next one (all agents ``still``), so on ``warehouse`` about 70%
of the states get their table from the memo.
"""

from __future__ import annotations

from collections.abc import Sequence

from humanpower.worlds.grid.batch import Canon, canonical_state, check_choices, transition_table
from humanpower.worlds.grid.dynamics import Statics
from humanpower.worlds.grid.state import AgentState, GridState
from humanpower.worlds.protocol import Successors, TransitionTable

Agents = tuple[AgentState, ...]
Part = Agents | GridState | tuple[tuple[float, GridState], ...]
"""One distribution of a memoised table: its one successor's agents tuple when the successor has probability 1 and
the state's objects (rocks, blocks, doors, keys; the common case), its one successor when it has probability 1 and
other objects, else the tuple of its (probability, successor) pairs."""
Entry = tuple[Sequence[int], tuple[Agents, ...] | None, tuple[Part, ...]]
"""A memoised table: its index; every distribution's agents tuple when all are the common case (else None); each
distribution's :data:`Part` otherwise (empty when all are the common case)."""


class TableMemo:
    """The transition tables of recently seen non-terminal states, keyed by (the state without its step count,
    the choices), and the intern table of state parts the tables are built from (module docs).

    Two generations: tables computed for states of step ``step`` (``current``) and of the step before
    (``previous``). A state one step later than ``step`` starts a new generation (``current`` becomes
    ``previous``, the older one is dropped), a state of any other step (an episode reset) clears both and the
    intern table. An entry found in ``previous`` moves to ``current``, so a configuration that recurs step after
    step stays. Tables of the last non-terminal step (``max_steps - 1``) are not kept: only states of that step
    could use them. In a sweep over every joint action each level empties ``previous``, so the memo is empty at
    the end of the sweep.

    Memory: an entry holds its key, one reference per distribution and the parts it was built from; the parts are
    canonical (the intern table maps each agents tuple, rocks, blocks, doors and keys tuple to one object), so the
    entries and the states of a DAG share them. The intern table (one slot per distinct part) lives until the next
    reset or :meth:`clear`. Not pickled (a copy starts empty). An entry is valid whatever its generation, so
    concurrent callers can only make each other lose entries, never get a wrong table.
    """

    __slots__ = ("canon", "current", "last_step", "previous", "step")

    def __init__(self, max_steps: int) -> None:
        self.last_step = max_steps - 1
        self.step = -2
        self.current: dict[tuple[object, ...], Entry] = {}
        self.previous: dict[tuple[object, ...], Entry] = {}
        self.canon: Canon = {}

    def __reduce__(self) -> tuple[type[TableMemo], tuple[int]]:
        return (TableMemo, (self.last_step + 1,))

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)

    def clear(self) -> None:
        """Drop every entry and the intern table."""
        self.current = {}
        self.previous = {}
        self.canon = {}

    def table(
        self,
        st: Statics,
        max_steps: int,
        stumble_probability: float,
        num_actions: int,
        state: GridState,
        choices: Sequence[Sequence[int]],
    ) -> TransitionTable:
        """:func:`~humanpower.worlds.grid.batch.transition_table` of ``state``, from the memo when it holds the
        state's configuration."""
        step = state.step
        if step >= max_steps:
            return transition_table(st, max_steps, stumble_probability, num_actions, state, choices)
        if step != self.step:
            if step == self.step + 1:
                self.previous = self.current
            else:
                self.previous = {}
                self.canon = {}
                canonical_state(state, self.canon)  # the sweep's (or episode's) first state: its parts first
            self.current = {}
            self.step = step
        canon = self.canon
        wanted = tuple(map(tuple, choices))
        shared = canon.get(wanted)
        if shared is None:  # choices not seen since the last reset: checked once
            check_choices(choices, len(state[1]), num_actions)
            shared = canon[wanted] = wanted
        key = (*state[1:], shared)
        entry = self.previous.pop(key, None)
        if entry is None:
            entry = self.current.get(key)
        if entry is None:
            table = transition_table(
                st, max_steps, stumble_probability, num_actions, state, choices, canon, checked=True
            )
            if step < self.last_step:
                self.current[key] = _entry(state, table, canon)
            return table
        if step < self.last_step:
            self.current[key] = entry
        return TransitionTable(_distributions(entry, state), entry[0])


def _entry(state: GridState, table: TransitionTable, canon: Canon) -> Entry:
    """The memo form of ``table``, the table of ``state`` (see :data:`Entry`)."""
    index = table.index
    if not isinstance(index, range):
        as_tuple = tuple(index)
        index = canon.setdefault(as_tuple, as_tuple)  # type: ignore[assignment]
    rocks, blocks, doors, keys = state[2], state[3], state[4], state[5]
    parts: list[Part] = []
    plain = True
    for dist in table.distributions:
        if len(dist) == 1 and dist[0][0] == 1.0:
            s = dist[0][1]
            assert isinstance(s, GridState)
            if s[2] is rocks and s[3] is blocks and s[4] is doors and s[5] is keys:
                parts.append(s[1])
                continue
            parts.append(s)
        else:
            parts.append(tuple(dist))  # type: ignore[arg-type]
        plain = False
    if plain:
        return (index, tuple(parts), ())  # type: ignore[arg-type]
    return (index, None, tuple(parts))


def _distributions(entry: Entry, state: GridState) -> list[Successors]:
    """The distributions of a memoised table for ``state`` (successors one step after it)."""
    step = state[0] + 1
    rocks, blocks, doors, keys = state[2], state[3], state[4], state[5]
    new = tuple.__new__
    plain = entry[1]
    if plain is not None:
        return [[(1.0, new(GridState, (step, agents, rocks, blocks, doors, keys)))] for agents in plain]
    out: list[Successors] = []
    for part in entry[2]:
        if isinstance(part, GridState):
            out.append([(1.0, new(GridState, (step, *part[1:])))])
        elif isinstance(part[0], AgentState):
            out.append([(1.0, new(GridState, (step, part, rocks, blocks, doors, keys)))])
        else:
            out.append([(p, new(GridState, (step, *s[1:]))) for p, s in part])
    return out


__all__ = ["TableMemo"]
