"""Gymnasium and PettingZoo environments for a gridworld: the generic adapters with the grid observation
(:func:`~humanpower.worlds.grid.observation.grid_observation`) and rendering
(:func:`~humanpower.worlds.grid.render.render_state`)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol, cast

import gymnasium
import numpy as np
from numpy.typing import NDArray

from humanpower.worlds.adapters import MultiAgentEnv, RewardFn, RobotFleetEnv
from humanpower.worlds.grid.observation import grid_observation, observation_space
from humanpower.worlds.grid.render import RenderableGridWorld, render_state
from humanpower.worlds.grid.state import GridState
from humanpower.worlds.protocol import State, WorldModel

if TYPE_CHECKING:
    from humanpower.humans.protocol import HumanPolicyPrior

GridObs = NDArray[np.float32]


class GridWorldModel(WorldModel, RenderableGridWorld, Protocol):
    """A world model with a grid layout: what the grid environments need."""


def _observe(world: GridWorldModel, state: State) -> GridObs:
    if not isinstance(state, GridState):
        raise TypeError(f"expected a GridState, got {type(state).__name__}")
    return grid_observation(world, state)


def _render(world: GridWorldModel, cell_size: int, state: State) -> NDArray[np.uint8]:
    if not isinstance(state, GridState):
        raise TypeError(f"expected a GridState, got {type(state).__name__}")
    caption = f"step {state.step}/{world.max_steps}"
    return render_state(world, state, cell_size=cell_size, caption=caption)


def gym_env(
    world: GridWorldModel,
    human_prior: HumanPolicyPrior,
    *,
    reward_fn: RewardFn | None = None,
    render_mode: str | None = "rgb_array",
    cell_size: int = 32,
    horizon_terminates: bool = True,
) -> RobotFleetEnv[GridObs]:
    """A Gymnasium env controlling ``world``'s robot fleet, humans driven by ``human_prior``.

    Observations are :func:`grid_observation` arrays; ``render()`` draws the state with a ``step t/T``
    caption. See :class:`~humanpower.worlds.adapters.RobotFleetEnv` for actions, goals, reward and horizon.
    """
    return RobotFleetEnv(
        world,
        human_prior,
        functools.partial(_observe, world),
        cast("gymnasium.spaces.Space[GridObs]", observation_space(world)),
        reward_fn,
        render_fn=functools.partial(_render, world, cell_size),
        render_mode=render_mode,
        horizon_terminates=horizon_terminates,
    )


def parallel_env(
    world: GridWorldModel, *, cell_size: int = 32, horizon_terminates: bool = True
) -> MultiAgentEnv[GridObs]:
    """A PettingZoo ParallelEnv with every human and robot of ``world`` as an agent.

    See :class:`~humanpower.worlds.adapters.MultiAgentEnv` for agent names, rewards and the horizon.
    """
    return MultiAgentEnv(
        world,
        functools.partial(_observe, world),
        cast("gymnasium.spaces.Space[GridObs]", observation_space(world)),
        render_fn=functools.partial(_render, world, cell_size),
        horizon_terminates=horizon_terminates,
    )


__all__ = ["GridWorldModel", "gym_env", "parallel_env"]
