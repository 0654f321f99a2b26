"""World-specific encoders for the learner (state and goal features); currently the gridworld's."""

from __future__ import annotations

from humanpower.encoders.grid import GridGoalEncoder, GridStateEncoder
from humanpower.worlds.grid.world import GridWorld


def grid_encoders(
    world: GridWorld, include_step_count: bool = True
) -> tuple[GridStateEncoder, dict[int, GridGoalEncoder]]:
    """The state encoder of ``world`` and a goal encoder per human (keyed by human agent index)."""
    goal_encoder = GridGoalEncoder(world)
    return GridStateEncoder(world, include_step_count), {h: goal_encoder for h in world.humans}


__all__ = ["GridGoalEncoder", "GridStateEncoder", "grid_encoders"]
