"""The humanpower gridworld (GRIDWORLD.md): world model, dynamics, world files, library, goals, distances."""

from humanpower.worlds.grid.distances import GridDistances
from humanpower.worlds.grid.dynamics import transition_probabilities_bruteforce
from humanpower.worlds.grid.files import load_world_file, parse_world_yaml, save_world_file, world_to_yaml
from humanpower.worlds.grid.goals import RectGoal, parse_goal_text, rect_text
from humanpower.worlds.grid.library import bundled_names, list_worlds, load_world, reachable_states
from humanpower.worlds.grid.state import (
    DIRECTION_CODES,
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    FULL_ACTIONS,
    SMALL_ACTIONS,
    AgentState,
    GridLayout,
    GridState,
)
from humanpower.worlds.grid.world import GridWorld

__all__ = [
    "DIRECTION_CODES",
    "DOOR_CLOSED",
    "DOOR_LOCKED",
    "DOOR_OPEN",
    "FULL_ACTIONS",
    "SMALL_ACTIONS",
    "AgentState",
    "GridDistances",
    "GridLayout",
    "GridState",
    "GridWorld",
    "RectGoal",
    "bundled_names",
    "list_worlds",
    "load_world",
    "load_world_file",
    "parse_goal_text",
    "parse_world_yaml",
    "reachable_states",
    "rect_text",
    "save_world_file",
    "transition_probabilities_bruteforce",
    "world_to_yaml",
]
