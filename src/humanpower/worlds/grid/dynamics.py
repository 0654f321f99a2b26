"""One step of the gridworld: the exact successor distribution (GRIDWORLD.md, "Dynamics of one step").

The rules, in the order of the spec:

1. A state whose step count equals ``max_steps`` is terminal (no successors); otherwise the step count
   increases by 1 (:func:`successor_distribution`).
2. Actions: ``still, left, right, forward`` (+ ``pickup, drop, toggle`` in the full set).
3. Active agents (not terminated, action not ``still``) act one after another in a uniformly random order;
   the distribution averages over all orders. It is computed exactly with *conflict blocks*
   (:func:`_conflict_blocks`): agents whose actions may touch a common cell are in one block, only the orders
   within a block are enumerated (:func:`_block_outcomes`), and blocks combine as a product.
4. No agent moves or pushes (or drops) anything into a cell that another agent occupied at the start of the
   step; of two agents going for the same free cell the first in the order gets it (:func:`act`).
5. ``forward``: move into walkable cells, terminate in lava, push lines of rocks/blocks, blocked by walls,
   closed/locked doors, keys and the grid edge (:func:`_forward`).
6. Unsteady ground: an agent starting its ``forward`` there stumbles with probability p (turn left or right
   with p/2 each, then forward in the new direction) (:func:`_stumble_branches`).
7. ``toggle`` opens/closes doors (a locked one only with the key of its colour), ``pickup`` takes a key from
   the front cell, ``drop`` puts the carried key on a free front cell (:func:`act`).

Why conflict blocks are exact: every agent's action reads and writes only cells of its *footprint*
(:func:`_footprints`), a conservative superset computed from the start state and valid for every order of
execution (a pushed line can only grow through cells where some rock/block may be during this step, the set
``P`` of :func:`maybe_objects`). Agents with disjoint footprints commute, the relative order of the agents of
one block is uniform and independent of the other blocks' orders, so the average over all n! orders equals
the product over blocks of the averages over each block's orders. :func:`transition_probabilities_bruteforce`
enumerates all n! orders and is used by the tests to check this.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from humanpower.worlds.grid.state import (
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    DROP,
    DX,
    DY,
    EMPTY,
    FORWARD,
    LAVA,
    LEFT,
    PICKUP,
    RIGHT,
    STILL,
    TOGGLE,
    UNSTEADY,
    WALL,
    AgentState,
    GridLayout,
    GridState,
)

if TYPE_CHECKING:
    from humanpower.worlds.grid.world import GridWorld

Pos = tuple[int, int]
Plan = tuple[int, int, int]
"""(agent, action, direction the agent faces while acting: after its turn or stumble)."""

_new = tuple.__new__
"""States and agents are built with ``tuple.__new__`` (what a NamedTuple's constructor does, without its
keyword handling)."""

# Static cell kinds for moving agents.
BLOCKED, WALK, LAVA_CELL = 0, 1, 2


class Statics:
    """Static lookups of a layout, precomputed once per world (all dynamics read only these and the state).

    Attributes:
        neighbour: ``neighbour[(x, y)][d]`` is the cell in direction d, or None beyond the grid edge.
        kind: BLOCKED (wall), WALK (empty, goal tile, unsteady, door cell) or LAVA_CELL per cell.
        landable: cells a rock, block or dropped key may be put on: empty terrain that is not a door.
        unsteady: cells of unsteady ground.
        door_at: door index per door cell.
        rock_pusher: per agent, whether its colour is in ``can_push_rocks``.
    """

    __slots__ = (
        "door_at",
        "door_colours",
        "height",
        "key_colours",
        "kind",
        "landable",
        "neighbour",
        "num_agents",
        "rock_pusher",
        "unsteady",
        "width",
    )

    def __init__(self, layout: GridLayout) -> None:
        self.width, self.height = layout.width, layout.height
        self.neighbour: dict[Pos, tuple[Pos | None, ...]] = {}
        self.kind: dict[Pos, int] = {}
        doors = set(layout.door_positions)
        landable: set[Pos] = set()
        unsteady: set[Pos] = set()
        for y in range(layout.height):
            for x in range(layout.width):
                code = layout.terrain[y][x]
                self.neighbour[(x, y)] = tuple(
                    (x + DX[d], y + DY[d]) if 0 <= x + DX[d] < layout.width and 0 <= y + DY[d] < layout.height else None
                    for d in range(4)
                )
                self.kind[(x, y)] = BLOCKED if code == WALL else LAVA_CELL if code == LAVA else WALK
                if code == EMPTY and (x, y) not in doors:
                    landable.add((x, y))
                if code == UNSTEADY:
                    unsteady.add((x, y))
        self.landable = frozenset(landable)
        self.unsteady = frozenset(unsteady)
        self.door_at = {pos: j for j, pos in enumerate(layout.door_positions)}
        self.door_colours = layout.door_colours
        self.key_colours = layout.key_colours
        self.num_agents = len(layout.agent_colours)
        self.rock_pusher = tuple(c in layout.can_push_rocks for c in layout.agent_colours)


# --- The step: rules 1, 2, 3 and 6 (rules 4, 5 and 7 are in act, below) -------------------------------


def successor_distribution(
    st: Statics,
    max_steps: int,
    stumble_probability: float,
    num_actions: int,
    state: GridState,
    joint_action: Sequence[int],
) -> list[tuple[float, GridState]]:
    """The exact successor distribution: each distinct successor once, probabilities summing to 1.

    ``GridWorld.transition_probabilities`` calls this with the world's parameters.
    """
    # Rule 1: terminal at the horizon; otherwise the step count increases by 1.
    if state.step >= max_steps:
        return []
    base = _new(GridState, (state[0] + 1, *state[1:]))
    # Rules 2, 3: the active agents.
    active = _plans(state, joint_action, num_actions)
    if not active:
        return [(1.0, base)]
    start = frozenset((a.x, a.y) for a in state.agents)
    result: dict[GridState, float] = {}
    # Rule 6: branch over stumble outcomes first (they change which cells an agent touches).
    for p_branch, plans in _stumble_branches(st, state, active, stumble_probability):
        # Rule 3: conflict blocks; singletons (and agents touching nothing) act first, deterministically.
        footprints = _footprints(st, state, plans, start)
        s = base
        blocks = []
        for group in _conflict_blocks(footprints):
            if len(group) == 1:
                s = act(st, s, plans[group[0]], start)
            else:
                blocks.append([plans[k] for k in group])
        dist = {s: p_branch}
        for block in blocks:
            combined: dict[GridState, float] = {}
            for s0, q0 in dist.items():
                for s1, q1 in _block_outcomes(st, s0, block, start).items():
                    combined[s1] = combined.get(s1, 0.0) + q0 * q1
            dist = combined
        for s1, q in dist.items():
            result[s1] = result.get(s1, 0.0) + q
    return [(q, s1) for s1, q in result.items()]


# --- Helpers of the step: active agents (rule 3), stumbling (rule 6), conflict blocks (rule 3) ---------


def _plans(state: GridState, joint_action: Sequence[int], num_actions: int) -> list[tuple[int, int]]:
    """Rule 3: the active agents (not terminated, action not ``still``) with their actions."""
    agents = state.agents
    if len(joint_action) != len(agents):
        raise ValueError(f"joint action has {len(joint_action)} entries, the world has {len(agents)} agents")
    active = []
    for i, a in enumerate(joint_action):
        if not 0 <= a < num_actions:
            raise ValueError(f"action {a} of agent {i} out of range 0..{num_actions - 1}")
        if a != STILL and not agents[i].terminated:
            active.append((i, a))
    return active


def agent_options(st: Statics, state: GridState, i: int, a: int, p: float) -> tuple[bool, list[tuple[float, Plan]]]:
    """Rule 6 for one active agent: ``(stumbles, [(probability, plan)])``. An agent starting its ``forward`` on
    unsteady ground (p > 0) stumbles: it keeps its direction with probability 1 - p and turns left or right with
    p/2 each (zero-probability outcomes left out); otherwise the one plan has probability 1. Turns resolve to the
    new direction here too."""
    agent = state.agents[i]
    d = agent.dir
    if a == LEFT:
        return False, [(1.0, (i, a, (d - 1) % 4))]
    if a == RIGHT:
        return False, [(1.0, (i, a, (d + 1) % 4))]
    if a == FORWARD and p > 0.0 and (agent.x, agent.y) in st.unsteady:
        options = [(1.0 - p, (i, a, d)), (p / 2, (i, a, (d - 1) % 4)), (p / 2, (i, a, (d + 1) % 4))]
        return True, [o for o in options if o[0] > 0.0]
    return False, [(1.0, (i, a, d))]


def _stumble_branches(
    st: Statics, state: GridState, active: list[tuple[int, int]], p: float
) -> list[tuple[float, list[Plan]]]:
    """Rule 6 for all active agents (:func:`agent_options`): (probability, plans) per combination of stumble
    outcomes, stumbling agents in agent order."""
    fixed: list[Plan] = []
    choices: list[list[tuple[float, Plan]]] = []
    for i, a in active:
        stumbles, options = agent_options(st, state, i, a, p)
        if stumbles:
            choices.append(options)
        else:
            fixed.append(options[0][1])
    if not choices:
        return [(1.0, fixed)]
    branches = []
    for combo in itertools.product(*choices):
        prob = math.prod(c[0] for c in combo)
        branches.append((prob, fixed + [c[1] for c in combo]))
    return branches


def maybe_objects(st: Statics, state: GridState, plans: Iterable[Plan], start: frozenset[Pos]) -> set[Pos]:
    """P: every cell where a rock or block may lie at some point of this step, in any order of execution.

    Starts from the objects' cells and adds, until nothing changes, the landing cell of every line that a
    ``forward`` could push through cells of P.
    """
    objects = set(state.rocks)
    objects.update(state.blocks)
    if not objects:
        return objects
    pushers = []
    for i, a, d in plans:
        if a == FORWARD:
            agent = state.agents[i]
            c = st.neighbour[(agent.x, agent.y)][d]
            if c is not None:
                pushers.append((c, d))
    changed = True
    while changed:
        changed = False
        for c, d in pushers:
            if c not in objects:
                continue
            e: Pos | None = c
            while e is not None and e in objects:
                e = st.neighbour[e][d]
            if e is not None and e in st.landable and e not in start:
                objects.add(e)
                changed = True
    return objects


def touched_cell(st: Statics, state: GridState, plan: Plan) -> Pos | None:
    """The front cell a plan reads or writes, or None when it touches nothing: turns, and actions facing a wall
    or the grid edge (those change nothing beyond their own agent in any order of execution)."""
    i, a, d = plan
    if a in (LEFT, RIGHT):
        return None
    agent = state.agents[i]
    c = st.neighbour[(agent.x, agent.y)][d]
    if c is None or st.kind[c] == BLOCKED:
        return None
    return c


def forward_footprint(st: Statics, c: Pos, d: int, maybe: set[Pos]) -> tuple[Pos, ...]:
    """Cells a ``forward`` into ``c`` (direction ``d``) may touch: ``c`` and, if a rock/block may lie there (in
    ``maybe``, the set P), the line it may push and the cell after it."""
    if c not in maybe:
        return (c,)
    cells = [c]
    e = st.neighbour[c][d]
    while e is not None:
        cells.append(e)
        if e not in maybe:
            break
        e = st.neighbour[e][d]
    return tuple(cells)


def _footprints(st: Statics, state: GridState, plans: list[Plan], start: frozenset[Pos]) -> list[tuple[Pos, ...]]:
    """Per plan, every cell its action may read or write (other than its own agent), in any order.

    Turns and moves against a wall or the edge touch nothing; pickup/drop/toggle touch the front cell;
    a ``forward`` touches the cell it would enter and, if a rock/block may lie there, the cells of the line it
    may push (through P) and the cell after them.
    """
    maybe: set[Pos] | None = None
    out: list[tuple[Pos, ...]] = []
    for plan in plans:
        c = touched_cell(st, state, plan)
        if c is None:
            out.append(())
        elif plan[1] != FORWARD:
            out.append((c,))
        else:
            if maybe is None:
                maybe = maybe_objects(st, state, plans, start)
            out.append(forward_footprint(st, c, plan[2], maybe))
    return out


def _conflict_blocks(footprints: list[tuple[Pos, ...]]) -> list[list[int]]:
    """Group plan indices whose footprints share a cell (transitively): union-find over cells."""
    parent = list(range(len(footprints)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    owner: dict[Pos, int] = {}
    for k, cells in enumerate(footprints):
        for cell in cells:
            other = owner.setdefault(cell, k)
            if other != k:
                ra, rb = find(other), find(k)
                if ra != rb:
                    parent[rb] = ra
    groups: dict[int, list[int]] = {}
    for k in range(len(footprints)):
        groups.setdefault(find(k), []).append(k)
    return list(groups.values())


def _block_outcomes(st: Statics, state: GridState, block: list[Plan], start: frozenset[Pos]) -> dict[GridState, float]:
    """Average over all orders of one block's agents, computed over subsets of agents already acted (each
    remaining agent is next with equal probability), merging equal part-way states: at most 2^k subsets
    instead of k! orders."""
    frontier: dict[tuple[frozenset[int], GridState], float] = {(frozenset(range(len(block))), state): 1.0}
    for _ in range(len(block)):
        nxt: dict[tuple[frozenset[int], GridState], float] = {}
        for (remaining, s), q in frontier.items():
            share = q / len(remaining)
            for k in remaining:
                key = (remaining - {k}, act(st, s, block[k], start))
                nxt[key] = nxt.get(key, 0.0) + share
        frontier = nxt
    return {s: q for (_, s), q in frontier.items()}


# --- Rules 4, 5 and 7: one agent's action, applied in the middle of the sequential order -----------------


def act(st: Statics, state: GridState, plan: Plan, start: frozenset[Pos]) -> GridState:
    """Apply one agent's action to ``state`` (the state part-way through the step).

    ``start`` holds the cells occupied by agents at the start of the step (rule 4).
    """
    i, action, d = plan
    agents = state.agents
    agent = agents[i]
    if action in (LEFT, RIGHT):
        return _with_agent(state, i, _new(AgentState, (agent[0], agent[1], d, agent[3], agent[4])))
    if action == FORWARD:
        return _forward(st, state, i, d, start)
    front = st.neighbour[(agent.x, agent.y)][d]
    if front is None:
        return state
    if action == PICKUP:
        # Take a key from the front cell if carrying nothing.
        if agent.carrying < 0 and front in state.keys:
            k = state.keys.index(front)
            keys = (*state.keys[:k], None, *state.keys[k + 1 :])
            held = _new(AgentState, (*agent[:4], k))
            return _new(GridState, (state[0], _agents_with(agents, i, held), *state[2:5], keys))
        return state
    if action == DROP:
        # Put the carried key on a free front cell (rule 4 applies to dropped objects too).
        k = agent.carrying
        if k >= 0 and _free_for_object(st, state, front, start):
            keys = (*state.keys[:k], front, *state.keys[k + 1 :])
            empty = _new(AgentState, (*agent[:4], -1))
            return _new(GridState, (state[0], _agents_with(agents, i, empty), *state[2:5], keys))
        return state
    if action == TOGGLE:
        j = st.door_at.get(front)
        if j is None:
            return state
        door = state.doors[j]
        if door == DOOR_CLOSED:
            new = DOOR_OPEN
        elif door == DOOR_LOCKED:
            # Opens only with the key of the door's colour; the key stays carried.
            if agent.carrying < 0 or st.key_colours[agent.carrying] != st.door_colours[j]:
                return state
            new = DOOR_OPEN
        else:
            # An open door closes unless an agent stands (or stood at the start of the step) in it.
            if front in start or _agent_at(agents, front):
                return state
            new = DOOR_CLOSED
        doors = (*state.doors[:j], new, *state.doors[j + 1 :])
        return _new(GridState, (*state[:4], doors, state[5]))
    raise ValueError(f"unknown action {action}")


def _with_agent(state: GridState, i: int, agent: AgentState) -> GridState:
    """``state`` with agent ``i`` replaced (built directly: namedtuple ``_replace`` is several times slower)."""
    return _new(GridState, (state[0], _agents_with(state[1], i, agent), *state[2:]))


def _agents_with(agents: tuple[AgentState, ...], i: int, agent: AgentState) -> tuple[AgentState, ...]:
    return (*agents[:i], agent, *agents[i + 1 :])


def _free_for_object(st: Statics, state: GridState, cell: Pos, start: frozenset[Pos]) -> bool:
    """Free for a pushed rock/block or a dropped key: empty terrain (no door), no object, no agent now or at
    the start of the step."""
    return (
        cell in st.landable
        and cell not in state.keys
        and cell not in state.rocks
        and cell not in state.blocks
        and cell not in start
        and not _agent_at(state.agents, cell)
    )


def _forward(st: Statics, state: GridState, i: int, d: int, start: frozenset[Pos]) -> GridState:
    """Rule 5 (with rule 4): the agent faces direction ``d`` (its stumble turn, if any, persists)."""
    agent = state.agents[i]
    if agent.dir != d:
        agent = _new(AgentState, (agent[0], agent[1], d, agent[3], agent[4]))
    unmoved = _with_agent(state, i, agent) if agent is not state.agents[i] else state
    c = st.neighbour[(agent.x, agent.y)][d]
    # The grid edge and walls block.
    if c is None or st.kind[c] == BLOCKED:
        return unmoved
    # Closed and locked doors block, so do keys.
    j = st.door_at.get(c)
    if (j is not None and state.doors[j] != DOOR_OPEN) or c in state.keys:
        return unmoved
    # Rule 4: not into a cell some other agent occupied at the start of the step, nor one taken meanwhile.
    if c in start or _agent_at(state.agents, c):
        return unmoved
    rocks, blocks = state.rocks, state.blocks
    if c in rocks or c in blocks:
        # A line of consecutive rocks/blocks moves one cell if every rock in it may be pushed by this
        # agent and the cell after the line is free; the agent moves in behind it.
        line = [c]
        e = st.neighbour[c][d]
        while e is not None and (e in rocks or e in blocks):
            line.append(e)
            e = st.neighbour[e][d]
        if e is None or not _free_for_object(st, state, e, start):
            return unmoved
        if not st.rock_pusher[i] and any(p in rocks for p in line):
            return unmoved
        dx, dy = DX[d], DY[d]
        moved = set(line)
        if any(p in moved for p in rocks):
            rocks = tuple(sorted((p[0] + dx, p[1] + dy) if p in moved else p for p in rocks))
        if any(p in moved for p in blocks):
            blocks = tuple(sorted((p[0] + dx, p[1] + dy) if p in moved else p for p in blocks))
        agent = _new(AgentState, (c[0], c[1], d, agent[3], agent[4]))
        return _new(GridState, (state[0], _agents_with(state[1], i, agent), rocks, blocks, state[4], state[5]))
    # Empty cell, open door, goal tile, unsteady ground: move; lava: move and terminate.
    agent = _new(AgentState, (c[0], c[1], d, st.kind[c] == LAVA_CELL, agent[4]))
    return _with_agent(state, i, agent)


def _agent_at(agents: Sequence[AgentState], cell: Pos) -> bool:
    """Whether some agent stands in ``cell`` now (in the middle of the step)."""
    x, y = cell
    for a in agents:  # noqa: SIM110 (a plain loop: about 3x faster than any() over a generator here)
        if a[0] == x and a[1] == y:
            return True
    return False


# --- The reference: every order of the active agents --------------------------------------------------


def transition_probabilities_bruteforce(
    world: GridWorld, state: GridState, joint_action: Sequence[int]
) -> list[tuple[float, GridState]]:
    """Reference implementation: average over all n! orders of the active agents (tests only)."""
    st = world.statics
    if state.step >= world.max_steps:
        return []
    base = state._replace(step=state.step + 1)
    active = _plans(state, joint_action, world.num_actions)
    start = frozenset((a.x, a.y) for a in state.agents)
    result: dict[GridState, float] = {}
    for p_branch, plans in _stumble_branches(st, state, active, world.stumble_probability):
        orders = list(itertools.permutations(plans))
        for order in orders:
            s = base
            for plan in order:
                s = act(st, s, plan, start)
            result[s] = result.get(s, 0.0) + p_branch / len(orders)
    return [(q, s1) for s1, q in result.items()]


__all__ = [
    "Statics",
    "act",
    "agent_options",
    "forward_footprint",
    "maybe_objects",
    "successor_distribution",
    "touched_cell",
    "transition_probabilities_bruteforce",
]
