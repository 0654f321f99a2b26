"""Loader-side checks of a world file's goals: goals on walls, and goal sets that miss cells a human can reach.

X_h (equation (7)) is positive at a state only when some goal of the human can still be reached from it. A
human standing in a cell that no goal covers, with too little time left to walk to one, has X_h = 0, where
U_r (8) is undefined: the exact solver stops there, and the learner's targets would be infinite. So every cell
a human can stand in at a non-terminal state must lie in some goal.

:func:`human_reachable_cells` over-approximates those cells by a breadth-first search over the map from the
human's start, without simulating other agents: walls block; lava is entered but not left (a human in lava
is terminated where it stands); rocks, blocks, keys and other agents are treated as passable (they may move);
doors block under the ``small`` action set unless open (nobody can toggle them) and are passable under
``full`` (a locked one only when the map holds a key of its colour). Cells farther than ``max_steps - 1``
moves are left out: the human cannot stand there before the horizon. Over-approximating means a world may be
asked to cover a cell its human can in fact never reach; adding that goal changes no value (an unreachable
goal adds V_h^e = 0 to (7)).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from humanpower.worlds.grid.goals import Rect, rect_text
from humanpower.worlds.grid.state import DOOR_LOCKED, DOOR_OPEN, LAVA, WALL, GridLayout, GridState

Cell = tuple[int, int]


def human_reachable_cells(
    layout: GridLayout, initial: GridState, human: int, actions: str, max_steps: int
) -> set[Cell]:
    """Cells the human with agent index ``human`` may stand in before the horizon (an over-approximation)."""
    doors = dict(zip(layout.door_positions, range(len(layout.door_positions)), strict=True))
    key_colours = set(layout.key_colours)

    def passable(cell: Cell) -> bool:
        x, y = cell
        if layout.terrain[y][x] == WALL:
            return False
        door = doors.get(cell)
        if door is None:
            return True
        state = initial.doors[door]
        if actions == "small":
            return state == DOOR_OPEN
        return state != DOOR_LOCKED or layout.door_colours[door] in key_colours

    start = (initial.agents[human].x, initial.agents[human].y)
    distance = {start: 0}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        x, y = cell
        if layout.terrain[y][x] == LAVA or distance[cell] >= max_steps - 1:
            continue  # a terminated human stays; no further move fits before the horizon
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            inside = 0 <= nxt[0] < layout.width and 0 <= nxt[1] < layout.height
            if inside and nxt not in distance and passable(nxt):
                distance[nxt] = distance[cell] + 1
                queue.append(nxt)
    return set(distance)


def rect_cells(rect: Rect) -> Iterable[Cell]:
    """The cells of a goal rectangle (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = rect
    return ((x, y) for y in range(y1, y2 + 1) for x in range(x1, x2 + 1))


def uncovered_cells(reachable: Iterable[Cell], goals: Sequence[Rect]) -> list[Cell]:
    """The reachable cells no goal rectangle contains, sorted by (y, x)."""
    return sorted(
        (c for c in reachable if not any(g[0] <= c[0] <= g[2] and g[1] <= c[1] <= g[3] for g in goals)),
        key=lambda c: (c[1], c[0]),
    )


def on_walls(layout: GridLayout, rect: Rect) -> bool:
    """True when every cell of the goal rectangle is a wall (no human can ever achieve it)."""
    return all(layout.terrain[y][x] == WALL for x, y in rect_cells(rect))


def suggested_goal(cells: Sequence[Cell]) -> str:
    """A ``possible_goals`` entry covering ``cells``: the cell, or their bounding rectangle."""
    xs, ys = [c[0] for c in cells], [c[1] for c in cells]
    return f'- "{rect_text((min(xs), min(ys), max(xs), max(ys)))}"'


def cells_text(cells: Sequence[Cell], shown: int = 8) -> str:
    """``(3, 1), (4, 1)`` with at most ``shown`` cells and a count of the rest."""
    text = ", ".join(f"({x}, {y})" for x, y in cells[:shown])
    return text + (f" and {len(cells) - shown} more" if len(cells) > shown else "")


__all__ = [
    "cells_text",
    "human_reachable_cells",
    "on_walls",
    "rect_cells",
    "suggested_goal",
    "uncovered_cells",
]
