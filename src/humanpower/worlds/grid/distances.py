"""Shortest-path distances to gridworld goals, for the heuristic Boltzmann human prior.

:class:`GridDistances` implements :class:`humanpower.humans.protocol.GoalDistanceModel`. Distances count
steps of one agent moving alone (a turn is one step, a move forward is one step), ignoring other agents and
movable objects (rocks, blocks, keys); walls, lava and closed or locked doors block. They are computed once
per (goal, door states) by a backward breadth-first search over poses (x, y, direction) and kept in a
least-recently-used cache of bounded size (:data:`CACHE_BYTES`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable

import numpy as np
from numpy.typing import NDArray

from humanpower.goals import Goal
from humanpower.worlds.grid.dynamics import BLOCKED, LAVA_CELL
from humanpower.worlds.grid.goals import Rect, RectGoal
from humanpower.worlds.grid.state import DOOR_OPEN, DX, DY, FORWARD, LEFT, RIGHT, GridState
from humanpower.worlds.grid.world import GridWorld

FloatArray = NDArray[np.float64]


CACHE_BYTES = 256_000_000
"""Memory the distance tables of one :class:`GridDistances` may hold (bytes); see ``GridDistances.max_tables``."""


class GridDistances:
    """Per-action shortest-path distances (in steps) from where an action leads to a RectGoal.

    ``action_distances(state, human, goal)[a]`` is the distance from the pose (x, y, dir) that action ``a``
    of ``human`` leads to (``still``, ``pickup``, ``drop``, ``toggle``: the current pose; ``left``/``right``:
    turned; ``forward``: one cell ahead if that cell is walkable, else the current pose) to any cell of the
    goal; 0 if the human already stands in it, ``inf`` if unreachable. ``forward`` into lava ends the
    human's moves: 0 if the lava cell is in the goal, else ``inf``. A terminated human gets its current
    distance (0 or ``inf``) for every action.
    """

    def __init__(self, world: GridWorld, cache_bytes: int = CACHE_BYTES) -> None:
        self.world = world
        st = world.statics
        table_bytes = st.height * st.width * 4 * np.dtype(np.float64).itemsize
        self.max_tables = max(1, cache_bytes // table_bytes)
        """Most distance tables kept (least recently used evicted): memory stays within ``cache_bytes`` however
        many goals and door states a world has (a 200x200 world has ~40,000 goals of 1.28 MB tables each)."""
        self._tables: OrderedDict[tuple[Rect, tuple[int, ...]], FloatArray] = OrderedDict()

    def distance_table(self, goal: RectGoal, doors: tuple[int, ...]) -> FloatArray:
        """Distances to ``goal`` from every pose, shape (height, width, 4) indexed [y, x, dir] (LRU-cached)."""
        key = (goal.rect, doors)
        table = self._tables.get(key)
        if table is None:
            table = self._bfs(goal, doors)
            table.setflags(write=False)
            self._tables[key] = table
            if len(self._tables) > self.max_tables:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(key)
        return table

    def _walkable(self, doors: tuple[int, ...]) -> NDArray[np.bool_]:
        """Cells a lone agent may stand in and enter: not wall, not lava, not a closed or locked door."""
        st = self.world.statics
        ok = np.zeros((st.height, st.width), dtype=bool)
        for (x, y), kind in st.kind.items():
            ok[y, x] = kind != BLOCKED and kind != LAVA_CELL
        for (x, y), j in st.door_at.items():
            if doors[j] != DOOR_OPEN:
                ok[y, x] = False
        return ok

    def _bfs(self, goal: RectGoal, doors: tuple[int, ...]) -> FloatArray:
        st = self.world.statics
        walkable = self._walkable(doors)
        dist = np.full((st.height, st.width, 4), np.inf)
        queue: deque[tuple[int, int, int]] = deque()
        for x, y in goal.cells():
            for d in range(4):
                dist[y, x, d] = 0.0
                queue.append((x, y, d))
        while queue:
            x, y, d = queue.popleft()
            nd = dist[y, x, d] + 1.0
            # Predecessors: a turn (right from d-1, left from d+1), or a forward from the cell behind.
            preds = [(x, y, (d - 1) % 4), (x, y, (d + 1) % 4)]
            px, py = x - DX[d], y - DY[d]
            if walkable[y, x] and 0 <= px < st.width and 0 <= py < st.height and walkable[py, px]:
                preds.append((px, py, d))
            for qx, qy, qd in preds:
                if dist[qy, qx, qd] == np.inf:
                    dist[qy, qx, qd] = nd
                    queue.append((qx, qy, qd))
        return dist

    def action_distances(self, state: Hashable, human: int, goal: Goal) -> FloatArray:
        """Distance from where each action of ``human`` leads to ``goal`` (see the class docstring)."""
        if not isinstance(state, GridState):
            raise TypeError(f"GridDistances needs a GridState, got {type(state).__name__}")
        if not isinstance(goal, RectGoal):
            raise TypeError(f"GridDistances needs a RectGoal, got {type(goal).__name__}")
        st = self.world.statics
        table = self.distance_table(goal, state.doors)
        agent = state.agents[human]
        x, y, d = agent.x, agent.y, agent.dir
        here = float(table[y, x, d]) if not agent.terminated else (0.0 if goal.contains(x, y) else np.inf)
        out = np.full(self.world.num_actions, here)
        if agent.terminated:
            return out
        out[LEFT] = table[y, x, (d - 1) % 4]
        out[RIGHT] = table[y, x, (d + 1) % 4]
        ahead = st.neighbour[(x, y)][d]
        if ahead is not None:
            ax, ay = ahead
            j = st.door_at.get(ahead)
            kind = st.kind[ahead]
            if kind == LAVA_CELL:
                out[FORWARD] = 0.0 if goal.contains(ax, ay) else np.inf
            elif kind != BLOCKED and (j is None or state.doors[j] == DOOR_OPEN):
                out[FORWARD] = table[ay, ax, d]
        return out


__all__ = ["GridDistances"]
