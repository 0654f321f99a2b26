"""Successor distributions of one gridworld state for many joint actions at once (the batch transition hook).

:func:`transition_table` gives the same distributions as calling
:func:`~humanpower.worlds.grid.dynamics.successor_distribution` once per joint action (same successors in the
same order, same float probabilities), sharing the work:

1. **Per state, not per joint action.** The step's start cells, the set P of cells where a rock or block may
   be during the step (computed once for every ``forward`` any agent may take, a superset of what any one joint
   action needs), and each agent's plans, footprints and *solo effect* (its action applied alone to the state)
   are computed once per (agent, action).
2. **Actions with no effect collapse onto ``still``.** A terminated agent's action, and an action facing a wall
   or the grid edge (no stumble) take exactly the path of ``still`` in the per-joint-action code (footprint
   empty, state unchanged, no effect on other agents' footprints), so joint actions that differ only there
   share one distribution.
3. **Composition where nothing conflicts.** When the agents' footprints (unions over their stumble outcomes,
   computed with the superset P, hence supersets of the per-joint-action ones) are pairwise disjoint, every
   conflict block of the per-joint-action code is a single agent, so each successor is the composition of the
   agents' solo effects: built directly, with each stumble branch's probability the same ``math.prod`` over
   the stumbling agents in agent order, summed in the same branch order. Any other joint action (agents that
   may touch a common cell) is computed by ``successor_distribution`` itself (once per distinct joint action
   after step 2).

With ``canon`` (an intern table, :class:`~humanpower.worlds.grid.memo.TableMemo`'s), the successors' parts
(agents tuple, rocks, blocks, doors, keys) are the table's canonical objects: equal parts of different states are
one object, so the states of a DAG share them and the memo's entries can hold just the agents tuples.

The exact solver (every joint action) and the actors (every joint robot action, humans fixed) both use it through
:class:`~humanpower.worlds.grid.memo.TableMemo` (``GridWorld.transition_table``).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Sequence
from typing import cast

from humanpower.worlds.grid.dynamics import (
    BLOCKED,
    FORWARD,
    Plan,
    Pos,
    Statics,
    act,
    agent_options,
    forward_footprint,
    maybe_objects,
    successor_distribution,
    touched_cell,
)
from humanpower.worlds.grid.state import LEFT, RIGHT, STILL, AgentState, GridState
from humanpower.worlds.protocol import Successors, TransitionTable

Canon = dict[tuple[object, ...], tuple[object, ...]]
"""An intern table of state parts: each part maps to the canonical object equal to it."""

Option = tuple[float, Plan, AgentState, GridState | None]
"""One stumble outcome of an agent's action: (probability, plan, the agent after its solo effect, the solo
effect state when it also changes objects (rocks, blocks, doors, keys), else None)."""


class _Choice:
    """An agent's action at one state: its stumble outcomes and the cells they may touch (a bit mask)."""

    __slots__ = ("mask", "options", "stumbles")

    def __init__(self, stumbles: bool, options: list[Option], mask: int) -> None:
        self.stumbles = stumbles
        self.options = options
        self.mask = mask


def check_choices(choices: Sequence[Sequence[int]], num_agents: int, num_actions: int) -> None:
    """Refuse (ValueError) choices that are not one non-empty list of valid actions per agent."""
    if len(choices) != num_agents:
        raise ValueError(f"choices have {len(choices)} entries, the world has {num_agents} agents")
    for i, acts in enumerate(choices):
        if not acts:
            raise ValueError(f"choices of agent {i} are empty")
        if min(acts) < 0 or max(acts) >= num_actions:
            bad = next(a for a in acts if not 0 <= a < num_actions)
            raise ValueError(f"action {bad} of agent {i} out of range 0..{num_actions - 1}")


def transition_table(
    st: Statics,
    max_steps: int,
    stumble_probability: float,
    num_actions: int,
    state: GridState,
    choices: Sequence[Sequence[int]],
    canon: Canon | None = None,
    checked: bool = False,
) -> TransitionTable:
    """Successor distributions of ``state`` for every combination of ``choices`` (module docs); with ``canon``,
    every successor is built from canonical parts (:func:`canonical_state`). ``checked``: the choices passed
    :func:`check_choices` already (the memo checks each distinct one once)."""
    agents = state[1]
    n = len(agents)
    if not checked:
        check_choices(choices, n, num_actions)
    total = math.prod(map(len, choices))
    if state[0] >= max_steps:
        return TransitionTable(([],), [0] * total)
    new = tuple.__new__
    base = new(GridState, (state[0] + 1, *state[1:]))
    start = frozenset([(a[0], a[1]) for a in agents])
    p = stumble_probability
    neighbour, kind = st.neighbour, st.kind

    # Step 2: canonical actions (no-effect actions become STILL) and each agent's stumble outcomes (turns and
    # actions without stumbling inline, as agent_options gives them), with the cell each plan touches.
    canonical: list[list[int]] = []
    outcomes: dict[tuple[int, int], tuple[bool, list[tuple[float, Plan]]]] = {}
    for i, acts in enumerate(choices):
        x, y, d, terminated, _ = agents[i]
        if terminated:
            canonical.append([STILL] * len(acts))
            continue
        unsteady = p > 0.0 and (x, y) in st.unsteady
        row = []
        for a in acts:
            a = int(a)
            if a == STILL:
                row.append(STILL)
                continue
            if (i, a) not in outcomes:
                if a in (LEFT, RIGHT):
                    known = (False, [(1.0, (i, a, (d - 1) % 4 if a == LEFT else (d + 1) % 4))])
                elif a == FORWARD and unsteady:
                    known = agent_options(st, state, i, a, p)
                else:
                    c = neighbour[(x, y)][d]
                    if c is None or kind[c] == BLOCKED:  # touches nothing (touched_cell): no effect
                        row.append(STILL)
                        continue
                    known = (False, [(1.0, (i, a, d))])
                outcomes[(i, a)] = known
            row.append(a)
        canonical.append(row)

    # Step 1: P for every forward any agent may take, then footprints and solo effects once per (agent, action).
    forward_plans = [plan for _, opts in outcomes.values() for _, plan in opts if plan[1] == FORWARD]
    maybe = maybe_objects(st, state, forward_plans, start) if forward_plans else set()
    width = st.width
    objects = base[2:]
    per_agent: list[dict[int, _Choice]] = [{} for _ in range(n)]
    simple: list[dict[int, tuple[int, AgentState]]] = [{} for _ in range(n)]
    for (i, a), (stumbles, options) in outcomes.items():
        mask = 0
        solo: list[Option] = []
        if a in (LEFT, RIGHT):
            # A turn touches no cell and only changes its agent's direction (act's first rule).
            x, y, _, terminated, carrying = agents[i]
            prob, plan = options[0]
            solo.append((prob, plan, new(AgentState, (x, y, plan[2], terminated, carrying)), None))
        else:
            for prob, plan in options:
                c = touched_cell(st, state, plan)
                if c is not None:
                    cells: tuple[Pos, ...] = forward_footprint(st, c, plan[2], maybe) if a == FORWARD else (c,)
                    for cx, cy in cells:
                        mask |= 1 << (cy * width + cx)
                effect = act(st, base, plan, start)
                solo.append((prob, plan, effect[1][i], effect if effect[2:] != objects else None))
        per_agent[i][a] = _Choice(stumbles, solo, mask)
        if not stumbles and solo[0][3] is None:
            simple[i][a] = (mask, solo[0][2])

    # Every distinct combination of canonical actions, in combination order (agent 0 fastest). The common case
    # (no stumble, no object moved, no two agents' footprints overlapping: the masks then add up without
    # carries) is built for every combination in one comprehension; the others are then recomputed.
    distinct = [list(dict.fromkeys(row)) for row in canonical]
    moved: list[list[AgentState]] = []
    masks: list[list[int]] = []
    plain: list[list[bool]] = []
    for i, acts in enumerate(distinct):
        fast = [simple[i].get(a) if a != STILL else (0, agents[i]) for a in acts]
        plain.append([f is not None for f in fast])
        moved.append([f[1] if f is not None else agents[i] for f in fast])
        masks.append([f[0] if f is not None else 0 for f in fast])
    step1, rocks, blocks, doors, keys = base[0], base[2], base[3], base[4], base[5]
    product = itertools.product
    intern = canon.setdefault if canon is not None else _same
    combined = [now[::-1] for now in product(*moved[::-1])]
    distributions: list[Successors] = [
        [(1.0, new(GridState, (step1, intern(now, now), rocks, blocks, doors, keys)))] for now in combined
    ]
    unions = [functools.reduce(operator.or_, m) for m in masks]
    others = [] if all(map(all, plain)) else [not all(t) for t in product(*plain[::-1])]
    if sum(unions) != functools.reduce(operator.or_, unions):
        overlap = [sum(ms) != functools.reduce(operator.or_, ms) for ms in product(*masks[::-1])]
        others = [a or b for a, b in zip(others, overlap, strict=True)] if others else overlap
    if True in others:
        combos = list(product(*distinct[::-1]))
        for j in [j for j, other in enumerate(others) if other]:
            joint = combos[j][::-1]
            dist = _compose(st, base, start, per_agent, joint)
            if dist is None:
                dist = list(successor_distribution(st, max_steps, p, num_actions, state, joint))
            if canon is not None:
                dist = [(q, canonical_state(cast(GridState, s), canon)) for q, s in dist]
            distributions[j] = dist

    # Position of each choice combination's distribution: agent i's choice contributes (position of its
    # canonical action among agent i's distinct ones) * stride_i, agent 0 with stride 1.
    if all(len(d) == len(c) for d, c in zip(distinct, canonical, strict=True)):
        return TransitionTable(distributions, range(total))
    stride = 1
    contributions: list[list[int]] = []
    for i in range(n):
        where = {a: k for k, a in enumerate(distinct[i])}
        contributions.append([where[a] * stride for a in canonical[i]])
        stride *= len(distinct[i])
    index = contributions[-1]
    for faster in contributions[-2::-1]:
        index = [x + c for x in index for c in faster]
    return TransitionTable(distributions, index)


def _same(value: tuple[object, ...], _default: tuple[object, ...]) -> tuple[object, ...]:
    """``canon.setdefault`` without an intern table: every part is its own canonical object."""
    return value


def canonical_state(state: GridState, canon: Canon) -> GridState:
    """``state`` with each part (agents tuple, rocks, blocks, doors, keys) replaced by its canonical object in
    ``canon`` (added when new); ``state`` itself when every part already is."""
    intern = canon.setdefault
    parts = state[1:]
    shared = tuple(intern(x, x) for x in parts)
    if all(x is y for x, y in zip(shared, parts, strict=True)):
        return state
    return tuple.__new__(GridState, (state[0], *shared))


def _compose(
    st: Statics,
    base: GridState,
    start: frozenset[Pos],
    per_agent: list[dict[int, _Choice]],
    joint: tuple[int, ...],
) -> Successors | None:
    """The distribution of ``joint`` (canonical actions) by composing solo effects, or None when two agents'
    footprints overlap (the caller then runs the per-joint-action code)."""
    used = 0
    fixed: list[Option] = []
    stumbling: list[list[Option]] = []
    for i, a in enumerate(joint):
        if a == STILL:
            continue
        choice = per_agent[i][a]
        if used & choice.mask:
            return None
        used |= choice.mask
        if choice.stumbles:
            stumbling.append(choice.options)
        else:
            fixed.append(choice.options[0])
    if not stumbling:
        return [(1.0, _build(st, base, start, fixed))]
    result: dict[GridState, float] = {}
    for branch in itertools.product(*stumbling):
        prob = math.prod(o[0] for o in branch)
        s = _build(st, base, start, fixed + list(branch))
        result[s] = result.get(s, 0.0) + prob
    return [(q, s) for s, q in result.items()]


def _build(st: Statics, base: GridState, start: frozenset[Pos], options: list[Option]) -> GridState:
    """The successor after every option's solo effect (footprints pairwise disjoint, so they commute)."""
    agents = list(base.agents)
    with_objects: list[Option] = []
    for option in options:
        if option[3] is None:
            agents[option[1][0]] = option[2]
        else:
            with_objects.append(option)
    if not with_objects:
        return tuple.__new__(GridState, (base.step, tuple(agents), base.rocks, base.blocks, base.doors, base.keys))
    if len(with_objects) == 1:
        objects = with_objects[0][3]
        assert objects is not None
    else:
        objects = base
        for option in with_objects:
            objects = act(st, objects, option[1], start)
    for option in with_objects:
        i = option[1][0]
        agents[i] = objects.agents[i]
    return tuple.__new__(
        GridState, (base.step, tuple(agents), objects.rocks, objects.blocks, objects.doors, objects.keys)
    )


__all__ = ["canonical_state", "transition_table"]
