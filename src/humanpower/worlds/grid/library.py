"""The bundled world library (``worlds/grid/data/*.yaml``) and a reachable-state counter.

``load_world(name_or_path)`` accepts a bundled name (``trivial``, ``locked_in``, ...) or a path to a world
file; ``list_worlds()`` gives each bundled name with the one-line purpose from its ``metadata.description``.
"""

from __future__ import annotations

import itertools
import os
from importlib import resources
from importlib.resources.abc import Traversable

import yaml

from humanpower.errors import UserError
from humanpower.worlds.grid.files import load_world_file, parse_world_yaml
from humanpower.worlds.grid.state import GridState
from humanpower.worlds.grid.world import GridWorld


def _data_dir() -> Traversable:
    return resources.files("humanpower.worlds.grid").joinpath("data")


def bundled_names() -> list[str]:
    """Names of the bundled worlds, sorted."""
    return sorted(p.name[: -len(".yaml")] for p in _data_dir().iterdir() if p.name.endswith(".yaml"))


def list_worlds() -> list[tuple[str, str]]:
    """(name, one-line purpose) of every bundled world, sorted by name."""
    out = []
    for name in bundled_names():
        text = _data_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
        meta = yaml.safe_load(text).get("metadata") or {}
        out.append((name, str(meta.get("description", "")).strip().split("\n")[0]))
    return out


def load_world(name_or_path: str | os.PathLike[str]) -> GridWorld:
    """A bundled world by name, or a world file by path (anything ending in .yaml/.yml or naming a file).

    An unknown name raises UserError listing the bundled names; a malformed file raises WorldFileError.
    """
    text = os.fspath(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or os.path.isfile(text):
        return load_world_file(text)
    names = bundled_names()
    if text not in names:
        raise UserError(f"unknown world {text!r}; bundled worlds: {', '.join(names)} (or give a .yaml path)")
    resource = _data_dir().joinpath(f"{text}.yaml")
    return parse_world_yaml(resource.read_text(encoding="utf-8"), str(resource))


def reachable_states(world: GridWorld, limit: int | None = None) -> set[GridState]:
    """Every state reachable from the initial state under any joint action (breadth-first search).

    Raises ValueError once more than ``limit`` states are found (when a limit is given).
    """
    start = world.initial_state()
    seen = {start}
    frontier = [start]
    joint_actions = list(itertools.product(range(world.num_actions), repeat=world.num_agents))
    while frontier:
        nxt = []
        for s in frontier:
            for joint in joint_actions:
                for _, s2 in world.transition_probabilities(s, joint):
                    if s2 not in seen:
                        seen.add(s2)  # type: ignore[arg-type]
                        nxt.append(s2)
                        if limit is not None and len(seen) > limit:
                            raise ValueError(f"{world.name}: more than {limit} reachable states")
        frontier = nxt  # type: ignore[assignment]
    return seen


__all__ = ["bundled_names", "list_worlds", "load_world", "reachable_states"]
