"""Shortest-path distances to gridworld goals, for the heuristic Boltzmann human prior.

:class:`GridDistances` implements :class:`humanpower.humans.protocol.GoalDistanceModel`. Distances count
steps of one agent moving alone (a turn is one step, a move forward is one step), ignoring other agents and
movable objects (rocks, blocks, keys); walls, lava and closed or locked doors block. They are computed once
per (goal, door states) by a backward breadth-first search over poses (x, y, direction) and kept in a
least-recently-used cache of bounded size (:data:`CACHE_BYTES`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import NDArray

from humanpower.goals import Goal
from humanpower.worlds.grid.dynamics import BLOCKED, LAVA_CELL
from humanpower.worlds.grid.goals import Rect, RectGoal
from humanpower.worlds.grid.state import DOOR_OPEN, DX, DY, FORWARD, LEFT, RIGHT, GridState
from humanpower.worlds.grid.world import GridWorld
from humanpower.worlds.protocol import State

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


CACHE_BYTES = 256_000_000
"""Memory the distance tables of one :class:`GridDistances` may hold (bytes); see ``GridDistances.max_tables``."""


class GridDistances:
    """Per-action shortest-path distances (in steps) from where an action leads to a RectGoal.

    Implements ``GoalDistanceModel`` and, for many states and all goals of a human at once,
    ``BatchGoalDistanceModel`` (:meth:`goal_action_distances`, same numbers, vectorised).

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
        self._ahead = self._ahead_arrays()

    def _ahead_arrays(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Per pose (y, x, dir): the cell ahead (x, y; -1 beyond the edge), its kind and its door (-1: none)."""
        st = self.world.statics
        ax = np.full((st.height, st.width, 4), -1, dtype=np.int64)
        ay = np.full_like(ax, -1)
        kind = np.full_like(ax, BLOCKED)
        door = np.full_like(ax, -1)
        for (x, y), cells in st.neighbour.items():
            for d, c in enumerate(cells):
                if c is not None:
                    ax[y, x, d], ay[y, x, d] = c
                    kind[y, x, d] = st.kind[c]
                    door[y, x, d] = st.door_at.get(c, -1)
        return ax, ay, kind, door

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

    def goal_action_distances(self, states: Sequence[State], human: int) -> FloatArray:
        """(len(states), G_h, A): :meth:`action_distances` for every state and every goal of ``human``.

        Vectorised per group of states with equal door states: one (G_h, height, width, 4) stack of tables,
        gathered at each state's pose and at the poses its actions lead to.
        """
        goals: list[RectGoal] = []
        for goal in self.world.goal_set(human).goals:
            if not isinstance(goal, RectGoal):
                raise TypeError(f"GridDistances needs RectGoals, got {type(goal).__name__}")
            goals.append(goal)
        x1, y1, x2, y2 = (np.array(c, dtype=np.int64)[:, None] for c in zip(*(g.rect for g in goals), strict=True))
        n, g_count = len(states), len(goals)
        out = np.empty((n, g_count, self.world.num_actions))
        groups: dict[tuple[int, ...], list[int]] = {}
        poses = []
        for i, s in enumerate(states):
            if not isinstance(s, GridState):
                raise TypeError(f"GridDistances needs GridStates, got {type(s).__name__}")
            groups.setdefault(s.doors, []).append(i)
            a = s.agents[human]
            poses.append((a.x, a.y, a.dir, a.terminated))
        agents = np.array(poses, dtype=np.int64).reshape(n, 4)
        ahead_x, ahead_y, ahead_kind, ahead_door = self._ahead
        for doors, members in groups.items():
            rows = np.asarray(members, dtype=np.int64)
            table = np.stack([self.distance_table(goal, doors) for goal in goals])  # (G, H, W, 4)
            x, y, d, dead = (agents[rows, k] for k in range(4))
            inside = (x1 <= x) & (x <= x2) & (y1 <= y) & (y <= y2)  # (G, n): the human stands in the goal
            here = np.where(dead, np.where(inside, 0.0, np.inf), table[:, y, x, d])  # (G, n)
            block = np.repeat(here[:, :, None], out.shape[2], axis=2)  # (G, n, A)
            live = dead == 0
            block[:, :, LEFT] = np.where(live, table[:, y, x, (d - 1) % 4], here)
            block[:, :, RIGHT] = np.where(live, table[:, y, x, (d + 1) % 4], here)
            cx, cy, kind, j = (arr[y, x, d] for arr in (ahead_x, ahead_y, ahead_kind, ahead_door))
            door_open = np.ones(len(rows), dtype=bool)
            if doors:
                door_open = (j < 0) | (np.asarray(doors, dtype=np.int64)[np.maximum(j, 0)] == DOOR_OPEN)
            lava = live & (kind == LAVA_CELL)
            walk = live & (kind != LAVA_CELL) & (kind != BLOCKED) & door_open
            ahead_in = (x1 <= cx) & (cx <= x2) & (y1 <= cy) & (cy <= y2)
            forward = block[:, :, FORWARD]
            forward = np.where(lava, np.where(ahead_in, 0.0, np.inf), forward)
            forward = np.where(walk, table[:, cy, cx, d], forward)
            block[:, :, FORWARD] = forward
            out[rows] = block.transpose(1, 0, 2)
        return out


__all__ = ["GridDistances"]
