"""A fixed-shape array observation of a gridworld state (for external RL libraries via the adapters).

:func:`grid_observation` returns a ``float32`` array ``(C, height, width)`` (channels first) with values in
[0, 1]; channel ``c`` is named ``CHANNELS[c]``:

- static terrain: ``wall``, ``lava``, ``unsteady``, ``goal_tile`` (1 where present);
- movable objects: ``rock``, ``block``, ``key`` (a key lying on the floor);
- doors by state: ``door_open``, ``door_closed``, ``door_locked``;
- agents: ``human``, ``robot`` (role, 1 at the agent's cell), ``terminated``, direction one-hot
  ``dir_east`` .. ``dir_north``, ``agent_index`` ((index + 1) / num_agents, 0 where no agent), ``carrying``
  (1 where the agent carries a key);
- ``colour_<c>``: one-hot colour of the door, key or goal tile in the cell (for c in r, g, b, p, y, e);
- ``carried_colour_<c>``: one-hot colour of the key carried by the agent in the cell;
- ``time_left``: (max_steps - step) / max_steps in every cell (the remaining-time feature).

The observation is complete: two states with equal observations are equal (the step count is recovered from
``time_left``), so the observation is Markov for the world model.
"""

from __future__ import annotations

import functools

import gymnasium
import numpy as np
from numpy.typing import NDArray

from humanpower.worlds.grid.render import RenderableGridWorld
from humanpower.worlds.grid.state import (
    COLOURS,
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    LAVA,
    UNSTEADY,
    WALL,
    GridLayout,
    GridState,
)

COLOUR_CODES: tuple[str, ...] = tuple(COLOURS)
CHANNELS: tuple[str, ...] = (
    "wall",
    "lava",
    "unsteady",
    "goal_tile",
    "rock",
    "block",
    "key",
    "door_open",
    "door_closed",
    "door_locked",
    "human",
    "robot",
    "terminated",
    "dir_east",
    "dir_south",
    "dir_west",
    "dir_north",
    "agent_index",
    "carrying",
    *(f"colour_{c}" for c in COLOUR_CODES),
    *(f"carried_colour_{c}" for c in COLOUR_CODES),
    "time_left",
)
CH = {name: i for i, name in enumerate(CHANNELS)}
"""Channel index by name."""
_DOOR_CHANNEL = {DOOR_OPEN: CH["door_open"], DOOR_CLOSED: CH["door_closed"], DOOR_LOCKED: CH["door_locked"]}


@functools.lru_cache(maxsize=32)
def _static_planes(layout: GridLayout) -> NDArray[np.float32]:
    """The static channels of a layout (terrain, goal-tile and door colours); read-only."""
    obs = np.zeros((len(CHANNELS), layout.height, layout.width), dtype=np.float32)
    for y, row in enumerate(layout.terrain):
        for x, code in enumerate(row):
            if code == WALL:
                obs[CH["wall"], y, x] = 1
            elif code == LAVA:
                obs[CH["lava"], y, x] = 1
            elif code == UNSTEADY:
                obs[CH["unsteady"], y, x] = 1
            elif code.startswith("G"):
                obs[CH["goal_tile"], y, x] = 1
                obs[CH[f"colour_{code[1:]}"], y, x] = 1
    for (x, y), colour in zip(layout.door_positions, layout.door_colours, strict=True):
        obs[CH[f"colour_{colour}"], y, x] = 1
    obs.setflags(write=False)
    return obs


def grid_observation(world: RenderableGridWorld, state: GridState) -> NDArray[np.float32]:
    """The ``(len(CHANNELS), height, width)`` float32 observation of ``state`` (see the module docstring)."""
    layout = world.layout
    obs = _static_planes(layout).copy()
    for x, y in state.rocks:
        obs[CH["rock"], y, x] = 1
    for x, y in state.blocks:
        obs[CH["block"], y, x] = 1
    for (x, y), door_state in zip(layout.door_positions, state.doors, strict=True):
        obs[_DOOR_CHANNEL[door_state], y, x] = 1
    for pos, colour in zip(state.keys, layout.key_colours, strict=True):
        if pos is not None:
            x, y = pos
            obs[CH["key"], y, x] = 1
            obs[CH[f"colour_{colour}"], y, x] = 1
    n = len(state.agents)
    robots = set(layout.robots)
    for index, agent in enumerate(state.agents):
        x, y = agent.x, agent.y
        obs[CH["robot" if index in robots else "human"], y, x] = 1
        obs[CH["dir_east"] + agent.dir, y, x] = 1
        obs[CH["agent_index"], y, x] = (index + 1) / n
        if agent.terminated:
            obs[CH["terminated"], y, x] = 1
        if agent.carrying >= 0:
            obs[CH["carrying"], y, x] = 1
            obs[CH[f"carried_colour_{layout.key_colours[agent.carrying]}"], y, x] = 1
    obs[CH["time_left"]] = (world.max_steps - state.step) / world.max_steps if world.max_steps > 0 else 0.0
    return obs


def observation_space(world: RenderableGridWorld) -> gymnasium.spaces.Box:
    """The Box of :func:`grid_observation` for ``world``: [0, 1]^(C, height, width), float32."""
    shape = (len(CHANNELS), world.layout.height, world.layout.width)
    return gymnasium.spaces.Box(low=0.0, high=1.0, shape=shape, dtype=np.float32)


__all__ = ["CH", "CHANNELS", "grid_observation", "observation_space"]
