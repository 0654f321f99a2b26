"""Gridworld world files (YAML, the map format of the EMPO MultiGrid worlds; see GRIDWORLD.md).

Every mistake in a file raises :class:`humanpower.errors.WorldFileError` naming the file, the line and the
reason; nothing is silently ignored except the EMPO keys that have no effect here (``partial_obs``,
``see_through_walls``, ``agent_view_size``; ``metadata`` gives the name and description). Line numbers come
from the YAML nodes (``yaml.compose``); a map cell's line is that row's line inside the block scalar.

Defaults: ``max_steps`` 100 (as EMPO), orientations all east, ``can_push_rocks`` grey, small actions,
``stumble_probability`` 0.5, goals every non-wall cell with weight 1, yellow humans and grey robots.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any

import yaml

from humanpower.errors import InputWarning, WorldFileError
from humanpower.limits import format_bytes
from humanpower.worlds.grid.coverage import (
    cells_text,
    human_reachable_cells,
    on_walls,
    suggested_goal,
    uncovered_cells,
)
from humanpower.worlds.grid.goals import Rect, parse_goal_text, rect_text
from humanpower.worlds.grid.state import (
    COLOURS,
    DIRECTION_CODES,
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    EMPTY,
    LAVA,
    UNSTEADY,
    WALL,
    AgentState,
    GridLayout,
    GridState,
)
from humanpower.worlds.grid.world import ActionSetName, GridWorld

DEFAULT_MAX_STEPS = 100
MAX_FILE_BYTES = 4_000_000
"""Largest world file read: loading takes ~400 bytes of memory per byte of map text (49 MB for a 200x200 map of
120 kB), so 4 MB stays under the 2 GB memory budget (:mod:`humanpower.limits`)."""
LOAD_BYTES_PER_TEXT_BYTE = 400
METADATA_KEYS = ("name", "description", "allow_wall_goals")
KNOWN_KEYS = (
    "metadata",
    "map",
    "max_steps",
    "orientations",
    "can_push_rocks",
    "actions",
    "action_class",
    "stumble_probability",
    "possible_goals",
    "goal_weights",
    "humans",
    "robots",
)
IGNORED_KEYS = ("partial_obs", "see_through_walls", "agent_view_size")
_ACTION_CLASSES: dict[str, ActionSetName] = {"SmallActions": "small", "ObjectActions": "full"}
_DOOR_CODES = {"L": DOOR_LOCKED, "C": DOOR_CLOSED, "O": DOOR_OPEN}
_DIRECTION_WORDS = {"east": 0, "south": 1, "west": 2, "north": 3}
_UNSUPPORTED = "EMPO switches, buttons, magic walls, bushes, balls and boxes are not supported"
_SUPPORTED = "We .. La Un Ro Bl, A/K/L/C/O/G + colour (r g b p y e)"


@dataclass
class _Entry:
    """One top-level key of the file: its value and the nodes it came from (for line numbers)."""

    value: Any
    key_node: yaml.Node
    node: yaml.Node

    @property
    def line(self) -> int:
        return int(self.key_node.start_mark.line) + 1


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _compose(text: str, path: str) -> tuple[dict[str, _Entry], int]:
    """YAML text -> {key: entry}; YAML syntax errors and non-mapping documents become WorldFileError."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters (e.g. NUL) up front
        raise WorldFileError(path, f"not a YAML text file: {' '.join(str(exc).split())}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise WorldFileError(path, "the file is empty", 1)
        if not isinstance(node, yaml.MappingNode):
            raise WorldFileError(path, "the file must be a YAML mapping of keys (map:, max_steps:, ...)", _line(node))
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise WorldFileError(path, f"YAML syntax error: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise WorldFileError(path, f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    entries: dict[str, _Entry] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            raise WorldFileError(path, "keys must be plain names (map:, max_steps:, ...)", _line(key_node))
        key = str(key_node.value)
        if key in entries:
            raise WorldFileError(path, f"duplicate key {key!r}", _line(key_node))
        entries[key] = _Entry(data[key], key_node, value_node)
    return entries, _line(node)


class _Parser:
    """Validates the entries of one file and builds the GridWorld."""

    def __init__(self, path: str, entries: dict[str, _Entry], first_line: int) -> None:
        self.path = path
        self.entries = entries
        self.first_line = first_line

    def fail(self, reason: str, line: int | None) -> WorldFileError:
        return WorldFileError(self.path, reason, line)

    def build(self) -> GridWorld:
        for key, entry in self.entries.items():
            if key not in KNOWN_KEYS and key not in IGNORED_KEYS:
                known = ", ".join(KNOWN_KEYS + IGNORED_KEYS)
                raise self.fail(f"unknown key {key!r} (known keys: {known})", entry.line)
        name, description = self.metadata()
        if "map" not in self.entries:
            raise self.fail("missing key 'map'", self.first_line)
        terrain, objects, width, height = self.grid()
        agents = [(x, y, c, line) for (kind, c, x, y, line) in objects if kind == "A"]
        humans, robots = self.roles(agents)
        dirs = self.orientations(len(agents))
        layout = GridLayout(
            width=width,
            height=height,
            terrain=terrain,
            door_positions=tuple((x, y) for kind, _, x, y, _ in objects if kind in _DOOR_CODES),
            door_colours=tuple(c for kind, c, _, _, _ in objects if kind in _DOOR_CODES),
            key_colours=tuple(c for kind, c, _, _, _ in objects if kind == "K"),
            agent_colours=tuple(c for _, _, c, _ in agents),
            humans=humans,
            robots=robots,
            can_push_rocks=self.colour_set("can_push_rocks", frozenset("e")),
        )
        initial = GridState(
            step=0,
            agents=tuple(AgentState(x, y, d) for (x, y, _, _), d in zip(agents, dirs, strict=True)),
            rocks=tuple(sorted((x, y) for kind, _, x, y, _ in objects if kind == "Ro")),
            blocks=tuple(sorted((x, y) for kind, _, x, y, _ in objects if kind == "Bl")),
            doors=tuple(_DOOR_CODES[kind] for kind, _, _, _, _ in objects if kind in _DOOR_CODES),
            keys=tuple((x, y) for kind, _, x, y, _ in objects if kind == "K"),
        )
        goals = self.goals(width, height)
        weights = self.goal_weights(goals)
        max_steps, actions = self.max_steps(), self.action_set()
        self.check_goals(layout, initial, goals, actions, max_steps)
        try:
            return GridWorld(
                layout,
                initial,
                max_steps=max_steps,
                actions=actions,
                stumble_probability=self.stumble_probability(),
                goals=goals,
                goal_weights=weights,
                name=name,
                description=description,
                source=self.path,
            )
        except ValueError as exc:  # every check above should have caught it first; still name the file
            raise self.fail(str(exc), None) from None

    # --- individual keys ---------------------------------------------------------------------------------

    def metadata(self) -> tuple[str, str]:
        stem = os.path.splitext(os.path.basename(self.path))[0]
        entry = self.entries.get("metadata")
        if entry is None or entry.value is None:
            return stem, ""
        if not isinstance(entry.value, dict):
            raise self.fail("metadata must be a mapping (name:, description:)", entry.line)
        unknown = [k for k in entry.value if k not in METADATA_KEYS]
        if unknown:
            known = ", ".join(METADATA_KEYS)
            raise self.fail(f"unknown metadata key {unknown[0]!r} (known: {known})", entry.line)
        self.allow_wall_goals()
        out = []
        for field, default in (("name", stem), ("description", "")):
            value = entry.value.get(field, default)
            if not isinstance(value, str):
                raise self.fail(f"metadata.{field} must be a string", entry.line)
            out.append(value.strip())
        return out[0], out[1]

    def allow_wall_goals(self) -> bool:
        """``metadata.allow_wall_goals``: goals on walls are listed on purpose (no warning)."""
        entry = self.entries.get("metadata")
        value = entry.value.get("allow_wall_goals", False) if entry is not None and entry.value else False
        if not isinstance(value, bool):
            assert entry is not None
            raise self.fail(f"metadata.allow_wall_goals must be true or false, got {value!r}", entry.line)
        return value

    def check_goals(
        self, layout: GridLayout, initial: GridState, goals: list[Rect] | None, actions: str, max_steps: int
    ) -> None:
        """Warn about goals on walls; refuse goal sets that miss a cell a human can reach (see coverage.py)."""
        if goals is None:
            return  # the default goals cover every non-wall cell
        entry = self.entries["possible_goals"]
        if not self.allow_wall_goals():
            for k, rect in enumerate(goals):
                if on_walls(layout, rect):
                    line = _line(entry.node.value[k])
                    warnings.warn(
                        InputWarning(
                            f"{self.path}:{line}: goal {rect_text(rect)!r} lies on a wall, no human can reach "
                            f"it (set metadata.allow_wall_goals: true if that is intended)"
                        ),
                        stacklevel=2,
                    )
        for human in layout.humans:
            reachable = human_reachable_cells(layout, initial, human, actions, max_steps)
            missing = uncovered_cells(reachable, goals)
            if missing:
                raise self.fail(
                    f"possible_goals misses {len(missing)} cell(s) human {human} can reach: "
                    f"{cells_text(missing)}; X_h would be 0 there (no goal left to reach), which the solver "
                    f"and the learner cannot handle; add a goal such as {suggested_goal(missing)}",
                    entry.line,
                )

    def map_rows(self) -> list[tuple[int, str]]:
        """(line, text) per non-blank row of the map."""
        entry = self.entries["map"]
        node = entry.node
        if isinstance(node, yaml.SequenceNode):
            rows = []
            for item in node.value:
                if not isinstance(item, yaml.ScalarNode):
                    raise self.fail("map rows must be strings", _line(item))
                rows.append((_line(item), str(item.value)))
            return [(ln, text) for ln, text in rows if text.strip()]
        if not isinstance(node, yaml.ScalarNode) or not isinstance(entry.value, str):
            raise self.fail("map must be a block of text (map: |) with one row per line", entry.line)
        if node.style == "|":
            first = _line(node) + 1  # a literal block starts on the line after '|'
            lines = [(first + k, text) for k, text in enumerate(entry.value.split("\n"))]
        else:
            lines = [(_line(node), text) for text in entry.value.split("\n")]
        return [(ln, text) for ln, text in lines if text.strip()]

    def grid(self) -> tuple[tuple[tuple[str, ...], ...], list[tuple[str, str, int, int, int]], int, int]:
        """Terrain rows and the objects (kind, colour, x, y, line) in reading order."""
        rows = self.map_rows()
        if not rows:
            raise self.fail("the map is empty", self.entries["map"].line)
        width = len(rows[0][1].split())
        terrain: list[tuple[str, ...]] = []
        objects: list[tuple[str, str, int, int, int]] = []
        for y, (line, text) in enumerate(rows):
            codes = text.split()
            if len(codes) != width:
                raise self.fail(
                    f"map row {y} has {len(codes)} cells, the first row {width} (rows must be equally long)",
                    line,
                )
            row: list[str] = []
            for x, code in enumerate(codes):
                terrain_code, obj = self.cell(code, x, y, line)
                row.append(terrain_code)
                if obj is not None:
                    objects.append((obj[0], obj[1], x, y, line))
            terrain.append(tuple(row))
        return tuple(terrain), objects, width, len(rows)

    def cell(self, code: str, x: int, y: int, line: int) -> tuple[str, tuple[str, str] | None]:
        """Terrain code and object (kind, colour) of one map cell."""
        if code in (WALL, EMPTY, LAVA, UNSTEADY):
            return code, None
        if code in ("Ro", "Bl"):
            return EMPTY, (code, "")
        if len(code) == 2 and code[1] in COLOURS:
            if code[0] == "G":
                return code, None  # a goal tile: decorative, walkable terrain
            if code[0] in "AK" or code[0] in _DOOR_CODES:
                return EMPTY, (code[0], code[1])
        raise self.fail(
            f"map cell ({x}, {y}): unknown cell code {code!r} (supported: {_SUPPORTED}; {_UNSUPPORTED})", line
        )

    def colour_list(self, key: str) -> list[str] | None:
        """A list of colour codes, given as a YAML list (['e', 'y']) or a string ('e', 'ey', 'e, y')."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        value = entry.value
        items: object = [ch for ch in value if ch not in " ,"] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(c, str) and c in COLOURS for c in items):
            codes = " ".join(COLOURS)
            raise self.fail(f"{key} must be a list of colour codes from {codes}, got {value!r}", entry.line)
        return items

    def colour_set(self, key: str, default: frozenset[str]) -> frozenset[str]:
        items = self.colour_list(key)
        return default if items is None else frozenset(items)

    def roles(self, agents: list[tuple[int, int, str, int]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        human_colours = self.colour_set("humans", frozenset("y"))
        robot_colours = self.colour_set("robots", frozenset("e"))
        both = human_colours & robot_colours
        if both:
            line = (self.entries.get("robots") or self.entries["humans"]).line
            raise self.fail(f"colour {sorted(both)[0]!r} is listed both as human and as robot", line)
        humans, robots = [], []
        for i, (x, y, colour, line) in enumerate(agents):
            if colour in human_colours:
                humans.append(i)
            elif colour in robot_colours:
                robots.append(i)
            else:
                hc, rc = " ".join(sorted(human_colours)), " ".join(sorted(robot_colours))
                raise self.fail(
                    f"agent at ({x}, {y}) is {COLOURS[colour]} ({colour!r}), neither a human colour ({hc}) "
                    f"nor a robot colour ({rc}); list it under humans: or robots:",
                    line,
                )
        map_line = self.entries["map"].line
        if not humans:
            raise self.fail("the map has no human (yellow agent 'Ay' unless humans: says otherwise)", map_line)
        if not robots:
            raise self.fail("the map has no robot (grey agent 'Ae' unless robots: says otherwise)", map_line)
        return tuple(humans), tuple(robots)

    def orientations(self, num_agents: int) -> list[int]:
        entry = self.entries.get("orientations")
        if entry is None:
            return [0] * num_agents
        if not isinstance(entry.value, list):
            raise self.fail("orientations must be a list, one of e/s/w/n per agent in reading order", entry.line)
        if len(entry.value) != num_agents:
            raise self.fail(
                f"orientations has {len(entry.value)} entries but the map has {num_agents} agents", entry.line
            )
        dirs = []
        for k, value in enumerate(entry.value):
            line = _line(entry.node.value[k])
            if isinstance(value, str) and value.lower() in DIRECTION_CODES:
                dirs.append(DIRECTION_CODES.index(value.lower()))
            elif isinstance(value, str) and value.lower() in _DIRECTION_WORDS:
                dirs.append(_DIRECTION_WORDS[value.lower()])
            elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 4:
                dirs.append(value)
            else:
                raise self.fail(f"orientation {value!r} is not one of e, s, w, n (or 0-3)", line)
        return dirs

    def action_set(self) -> ActionSetName:
        chosen: ActionSetName | None = None
        entry = self.entries.get("actions")
        if entry is not None:
            if entry.value not in ("small", "full"):
                raise self.fail(f"actions must be 'small' or 'full', got {entry.value!r}", entry.line)
            chosen = entry.value
        cls_entry = self.entries.get("action_class")
        if cls_entry is not None:
            mapped = _ACTION_CLASSES.get(cls_entry.value) if isinstance(cls_entry.value, str) else None
            if mapped is None:
                raise self.fail(
                    f"action_class must be SmallActions or ObjectActions, got {cls_entry.value!r}",
                    cls_entry.line,
                )
            if chosen is not None and chosen != mapped:
                raise self.fail(f"action_class {cls_entry.value} contradicts actions: {chosen}", cls_entry.line)
            chosen = mapped
        return chosen or "small"

    def max_steps(self) -> int:
        entry = self.entries.get("max_steps")
        if entry is None:
            return DEFAULT_MAX_STEPS
        value = entry.value
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(f"max_steps must be a positive integer, got {value!r}", entry.line)
        return value

    def stumble_probability(self) -> float:
        entry = self.entries.get("stumble_probability")
        if entry is None:
            return 0.5
        value = entry.value
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0
        if not ok:
            raise self.fail(f"stumble_probability must be a number in [0, 1], got {value!r}", entry.line)
        return float(value)

    def goals(self, width: int, height: int) -> list[Rect] | None:
        entry = self.entries.get("possible_goals")
        if entry is None:
            return None
        if not isinstance(entry.value, list) or not entry.value:
            raise self.fail('possible_goals must be a non-empty list of "x,y" or "x1,y1, x2,y2"', entry.line)
        rects: list[Rect] = []
        for k, value in enumerate(entry.value):
            line = _line(entry.node.value[k])
            rect = self._goal(value, line)
            x1, y1, x2, y2 = rect
            if x1 < 0 or y1 < 0 or x2 >= width or y2 >= height:
                raise self.fail(f"goal {rect_text(rect)!r} lies outside the {width}x{height} grid", line)
            if rect in rects:
                raise self.fail(f"goal {rect_text(rect)!r} is listed twice", line)
            rects.append(rect)
        return rects

    def _goal(self, value: object, line: int) -> Rect:
        if isinstance(value, str):
            try:
                return parse_goal_text(value)
            except ValueError as exc:
                raise self.fail(str(exc), line) from None
        if (
            isinstance(value, list)
            and len(value) in (2, 4)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            return parse_goal_text(",".join(str(v) for v in value))
        raise self.fail(f'goal {value!r} is neither "x,y" nor "x1,y1, x2,y2"', line)

    def goal_weights(self, goals: list[Rect] | None) -> list[float] | None:
        entry = self.entries.get("goal_weights")
        if entry is None:
            return None
        if goals is None:
            raise self.fail("goal_weights needs possible_goals", entry.line)
        value = entry.value
        if not isinstance(value, list) or len(value) != len(goals):
            n = len(value) if isinstance(value, list) else "no list of"
            raise self.fail(f"goal_weights must list one weight per goal ({len(goals)}), got {n}", entry.line)
        for w in value:
            if not isinstance(w, int | float) or isinstance(w, bool) or not math.isfinite(w) or w <= 0:
                raise self.fail(f"goal weight {w!r} must be a finite number > 0", entry.line)
        return [float(w) for w in value]


def parse_world_yaml(text: str, path: str) -> GridWorld:
    """Parse the text of a world file; ``path`` names the file in errors and becomes ``world.source``."""
    entries, first_line = _compose(text, path)
    return _Parser(path, entries, first_line).build()


def load_world_file(path: str | os.PathLike[str]) -> GridWorld:
    """Load a world file; an unreadable or malformed file raises WorldFileError."""
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        if size > MAX_FILE_BYTES:
            raise WorldFileError(
                name,
                f"the file has {size:,} bytes, more than the {MAX_FILE_BYTES:,} a world file may have (loading "
                f"it would need about {format_bytes(size * LOAD_BYTES_PER_TEXT_BYTE)} of memory)",
            )
        with open(name, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise WorldFileError(name, "no such file") from None
    except OSError as exc:
        raise WorldFileError(name, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorldFileError(
            name, f"not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    return parse_world_yaml(text, name)


def safe_name(name: str, max_length: int = 80) -> str:
    """``name`` made safe as one file or folder name: runs of characters other than letters, digits, ``_``,
    ``.`` and ``-`` become ``_``, leading and trailing dots and underscores go (so no ``..`` or hidden name),
    at most ``max_length`` characters; ``world`` if nothing is left. ``"../../x"`` -> ``"x"``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:max_length].strip("._")
    return safe or "world"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def world_to_yaml(world: GridWorld) -> str:
    """The world file text of ``world`` (its initial state as the map).

    Raises ValueError when the initial state cannot be written as a map (an agent standing on lava,
    unsteady ground or a goal tile, a carried key, a terminated agent, or colours with mixed roles).
    """
    lay, s = world.layout, world.initial_state()
    for i, a in enumerate(s.agents):
        if lay.terrain[a.y][a.x] != EMPTY or a.terminated or a.carrying >= 0:
            raise ValueError(f"agent {i} cannot be written as a map cell (not on plain ground, or carrying/terminated)")
    if any(k is None for k in s.keys):
        raise ValueError("a carried key cannot be written as a map cell")
    human_colours = {lay.agent_colours[h] for h in world.humans}
    robot_colours = {lay.agent_colours[r] for r in world.robots}
    if human_colours & robot_colours:
        raise ValueError("a colour used by both a human and a robot cannot be written to a world file")
    out = ["metadata:", f"  name: {_quote(world.name)}", f"  description: {_quote(world.description)}"]
    if not world.default_goals and any(on_walls(lay, r) for r in world.goal_rects):
        out.append("  allow_wall_goals: true")  # the world was accepted with them: keep it quiet on reload
    out.append("map: |")
    out.extend("  " + " ".join(row) for row in world.map_rows())
    out.append(f"max_steps: {world.max_steps}")
    out.append(f"orientations: [{', '.join(DIRECTION_CODES[a.dir] for a in s.agents)}]")
    out.append(f"can_push_rocks: {_quote(''.join(sorted(lay.can_push_rocks)))}")
    out.append(f"actions: {world.actions}")
    out.append(f"stumble_probability: {world.stumble_probability!r}")
    if not (human_colours <= {"y"} and robot_colours <= {"e"}):
        out.append(f"humans: [{', '.join(sorted(human_colours))}]")
        out.append(f"robots: [{', '.join(sorted(robot_colours))}]")
    if not world.default_goals:
        out.append("possible_goals:")
        out.extend(f"  - {_quote(rect_text(r))}" for r in world.goal_rects)
    if world.goal_weights is not None:
        out.append(f"goal_weights: [{', '.join(repr(w) for w in world.goal_weights)}]")
    return "\n".join(out) + "\n"


def save_world_file(world: GridWorld, path: str | os.PathLike[str]) -> None:
    """Write ``world`` as a world file (see :func:`world_to_yaml`)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(world_to_yaml(world))


__all__ = [
    "DEFAULT_MAX_STEPS",
    "IGNORED_KEYS",
    "KNOWN_KEYS",
    "MAX_FILE_BYTES",
    "load_world_file",
    "parse_world_yaml",
    "safe_name",
    "save_world_file",
    "world_to_yaml",
]
