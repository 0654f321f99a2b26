"""Gridworld state and static layout types (the shared vocabulary of dynamics, files and rendering).

Everything that can change lives in :class:`GridState`, a small hashable NamedTuple; everything static lives
in :class:`GridLayout`, held by the world object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# Directions: 0 east, 1 south, 2 west, 3 north; left = dir - 1 mod 4, right = dir + 1 mod 4.
EAST, SOUTH, WEST, NORTH = 0, 1, 2, 3
DX = (1, 0, -1, 0)
DY = (0, 1, 0, -1)
DIRECTION_CODES = ("e", "s", "w", "n")

# Actions. The small set is the first four; the full set adds pickup, drop, toggle.
STILL, LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE = range(7)
SMALL_ACTIONS = ("still", "left", "right", "forward")
FULL_ACTIONS = (*SMALL_ACTIONS, "pickup", "drop", "toggle")

# Door states.
DOOR_OPEN, DOOR_CLOSED, DOOR_LOCKED = 0, 1, 2

# Static terrain codes held by GridLayout.terrain.
EMPTY, WALL, LAVA, UNSTEADY = "..", "We", "La", "Un"
# Goal tiles are "G" + colour (decorative, walkable).

COLOURS = {"r": "red", "g": "green", "b": "blue", "p": "purple", "y": "yellow", "e": "grey"}


class AgentState(NamedTuple):
    """One agent's changing state."""

    x: int
    y: int
    dir: int
    terminated: bool = False
    """Stepped into lava: stays there and takes no further actions."""
    carrying: int = -1
    """Index (into GridLayout.key_colours) of the key the agent carries, or -1."""


class GridState(NamedTuple):
    """Everything that can change in a gridworld. Hashable; compare with ==.

    ``rocks`` and ``blocks`` are sorted tuples of (x, y) positions (objects of one kind are interchangeable,
    so sorting makes equal configurations equal states). ``doors`` holds one of DOOR_OPEN / DOOR_CLOSED /
    DOOR_LOCKED per door of the layout; ``keys`` one position per key of the layout, or None while carried.
    """

    step: int
    agents: tuple[AgentState, ...]
    rocks: tuple[tuple[int, int], ...] = ()
    blocks: tuple[tuple[int, int], ...] = ()
    doors: tuple[int, ...] = ()
    keys: tuple[tuple[int, int] | None, ...] = ()


@dataclass(frozen=True)
class GridLayout:
    """The static part of a gridworld.

    ``terrain[y][x]`` is one of EMPTY, WALL, LAVA, UNSTEADY or a goal tile code "G" + colour. Doors and keys
    are indexed in reading order of the map; their changing state is in GridState.
    """

    width: int
    height: int
    terrain: tuple[tuple[str, ...], ...]
    door_positions: tuple[tuple[int, int], ...]
    door_colours: tuple[str, ...]
    key_colours: tuple[str, ...]
    agent_colours: tuple[str, ...]
    """Colour code per agent index (reading order of the map)."""
    humans: tuple[int, ...]
    robots: tuple[int, ...]
    can_push_rocks: frozenset[str]
    """Colour codes of agents allowed to push rocks (blocks are pushable by every agent)."""
