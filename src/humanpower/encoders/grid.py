"""Gridworld state and goal encoders for the learner (flat float32 feature rows).

:class:`GridStateEncoder` reads only the state tuple (:class:`~humanpower.worlds.grid.state.GridState`)
and the world's static layout, never a live environment. Its feature row is the concatenation of

* cell planes, each ``height * width`` long (index ``y * width + x``), in this order:
  ``wall``, ``lava``, ``unsteady`` (static); ``rock``, ``block``; per agent i four planes
  ``agent_i_dir_0..3`` (1 at the agent's cell in the plane of its direction); when the layout has doors,
  ``door_open``, ``door_closed``, ``door_locked``; per key k of the layout, ``key_k`` (1 where key k lies on
  the floor);
* ``carrying[i, k]`` (agent i carries key k), ``terminated[i]`` (agent i stepped into lava);
* ``time_left = (max_steps - step) / max_steps`` when ``include_step_count``.

The static planes are the same in every state (the constant row); a state adds a handful of entries on top
(:meth:`GridStateEncoder.encode_active`: active columns and values, padded to ``max_active`` entries with value
0), so the encoder is a :class:`~humanpower.learn.encoding.SparseStateEncoder` and the learner's first layer
costs a sum of a few weight rows per state. :meth:`GridStateEncoder.encode` builds the dense rows from the same
entries (constant row + entries), for a whole batch with one fancy-indexed assignment. Two states that differ in
any field (step count included when ``include_step_count``) get different rows.

:class:`GridGoalEncoder` encodes a rectangle goal as its normalised corners ``(x1, y1, x2, y2) / (W-1, H-1)``
followed by a cell mask plane of the rectangle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from humanpower.goals import Goal
from humanpower.learn.encoding import remaining_time
from humanpower.worlds.grid.goals import RectGoal
from humanpower.worlds.grid.state import DOOR_CLOSED, DOOR_LOCKED, DOOR_OPEN, LAVA, UNSTEADY, WALL, GridState
from humanpower.worlds.grid.world import GridWorld
from humanpower.worlds.protocol import State

Features = NDArray[np.float32]
_DOOR_PLANE = {DOOR_OPEN: 0, DOOR_CLOSED: 1, DOOR_LOCKED: 2}


class GridStateEncoder:
    """Flat one-hot-style features of a gridworld state (see the module docstring for the layout).

    Attributes:
        dim: feature dimension.
        plane_names: name of every cell plane, in order (for inspection and tests).
    """

    def __init__(self, world: GridWorld, include_step_count: bool = True) -> None:
        layout = world.layout
        self.world = world
        self.include_step_count = include_step_count
        self.width, self.height = layout.width, layout.height
        self.num_agents = len(layout.agent_colours)
        self.num_keys = len(layout.key_colours)
        self.num_doors = len(layout.door_positions)
        cells = self.width * self.height

        names = ["wall", "lava", "unsteady", "rock", "block"]
        names += [f"agent_{i}_dir_{d}" for i in range(self.num_agents) for d in range(4)]
        if self.num_doors:
            names += ["door_open", "door_closed", "door_locked"]
        names += [f"key_{k}" for k in range(self.num_keys)]
        self.plane_names: tuple[str, ...] = tuple(names)
        plane = {name: i * cells for i, name in enumerate(names)}
        self._rock, self._block = plane["rock"], plane["block"]
        self._agent = plane["agent_0_dir_0"] if self.num_agents else 0
        self._door = plane.get("door_open", 0)
        self._key = plane.get("key_0", 0)
        self._carry = len(names) * cells
        self._terminated = self._carry + self.num_agents * self.num_keys
        self._time = self._terminated + self.num_agents
        self._dim = self._time + (1 if include_step_count else 0)
        # Door cells, flat, per door index (the door planes then add DOOR_* plane offsets).
        self._door_cells = np.array([y * self.width + x for x, y in layout.door_positions], dtype=np.int64)

        template = np.zeros(self._dim, dtype=np.float32)
        static_plane = {WALL: plane["wall"], LAVA: plane["lava"], UNSTEADY: plane["unsteady"]}
        for y, row in enumerate(layout.terrain):
            for x, code in enumerate(row):
                if code in static_plane:
                    template[static_plane[code] + y * self.width + x] = 1.0
        template.setflags(write=False)
        self._template = template
        self._constant_cols = np.flatnonzero(template).astype(np.int64)
        start = world.initial_state()
        # Every state has the same number of rocks and blocks (they are pushed, never created or removed).
        per_agent = 1 + 1 + (1 if self.num_keys else 0)  # position plane, terminated, carried key
        self._max_active = (
            self.num_agents * per_agent
            + len(start.rocks)
            + len(start.blocks)
            + self.num_doors
            + self.num_keys
            + (1 if include_step_count else 0)
        )

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_active(self) -> int:
        """Entries per row of :meth:`encode_active`."""
        return self._max_active

    def constant(self) -> tuple[NDArray[np.int64], Features]:
        """The static layout (wall, lava, unsteady planes): its columns and values (all 1)."""
        return self._constant_cols.copy(), np.ones(len(self._constant_cols), dtype=np.float32)

    def active_columns(self, state: GridState) -> list[int]:
        """Columns set to 1 for ``state`` on top of the static template (the time feature excluded)."""
        w, cells = self.width, self.width * self.height
        cols: list[int] = []
        for i, a in enumerate(state.agents):
            cols.append(self._agent + (4 * i + a.dir) * cells + a.y * w + a.x)
            if a.terminated:
                cols.append(self._terminated + i)
            if a.carrying >= 0:
                cols.append(self._carry + i * self.num_keys + a.carrying)
        cols.extend(self._rock + y * w + x for x, y in state.rocks)
        cols.extend(self._block + y * w + x for x, y in state.blocks)
        for d, door_state in enumerate(state.doors):
            cols.append(self._door + _DOOR_PLANE[door_state] * cells + int(self._door_cells[d]))
        for k, pos in enumerate(state.keys):
            if pos is not None:
                cols.append(self._key + k * cells + pos[1] * w + pos[0])
        return cols

    def encode_active(self, states: Sequence[State]) -> tuple[NDArray[np.int64], Features]:
        """(columns, values), each (len(states), max_active): the entries of each state on top of the constant
        row (1 at :meth:`active_columns`, the time feature's value), padded with value 0 at column 0."""
        n, k = len(states), self._max_active
        cols = np.zeros((n, k), dtype=np.int64)
        vals = np.zeros((n, k), dtype=np.float32)
        for r, s in enumerate(states):
            if not isinstance(s, GridState):
                raise TypeError(f"GridStateEncoder: expected a GridState, got {type(s).__name__}")
            c = self.active_columns(s)
            if len(c) + (1 if self.include_step_count else 0) > k:
                raise ValueError(f"GridStateEncoder: state has more objects than the layout ({len(c)} entries)")
            cols[r, : len(c)] = c
            vals[r, : len(c)] = 1.0
        if self.include_step_count and n:
            cols[:, k - 1] = self._time
            vals[:, k - 1] = remaining_time(self.world, states)
        return cols, vals

    def encode(self, states: Sequence[State]) -> Features:
        """Feature matrix (len(states), dim), float32: the constant row plus :meth:`encode_active`'s entries."""
        cols, vals = self.encode_active(states)
        out = np.tile(self._template, (len(states), 1))
        rows = np.repeat(np.arange(len(states), dtype=np.int64), self._max_active)
        np.add.at(out, (rows, cols.reshape(-1)), vals.reshape(-1))
        return out


class GridGoalEncoder:
    """Rectangle goal -> ``(x1/(W-1), y1/(H-1), x2/(W-1), y2/(H-1))`` + a ``W*H`` cell mask of it."""

    def __init__(self, world: GridWorld) -> None:
        self.width, self.height = world.layout.width, world.layout.height
        self._scale = np.array([max(self.width - 1, 1), max(self.height - 1, 1)] * 2, dtype=np.float32)

    @property
    def dim(self) -> int:
        return 4 + self.width * self.height

    def encode(self, goals: Sequence[Goal]) -> Features:
        """Feature matrix (len(goals), dim), float32."""
        out = np.zeros((len(goals), self.dim), dtype=np.float32)
        mask = out[:, 4:].reshape(len(goals), self.height, self.width)
        for i, g in enumerate(goals):
            if not isinstance(g, RectGoal):
                raise TypeError(f"GridGoalEncoder: expected a RectGoal, got {type(g).__name__}")
            if g.x2 >= self.width or g.y2 >= self.height or g.x1 < 0 or g.y1 < 0:
                raise ValueError(f"GridGoalEncoder: goal {g} lies outside the {self.width}x{self.height} grid")
            out[i, :4] = np.array(g.rect, dtype=np.float32) / self._scale
            mask[i, g.y1 : g.y2 + 1, g.x1 : g.x2 + 1] = 1.0
        return out


__all__ = ["GridGoalEncoder", "GridStateEncoder"]
