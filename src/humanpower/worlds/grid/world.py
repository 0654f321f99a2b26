"""The gridworld as a world model (GRIDWORLD.md): static layout + initial state + parameters.

:class:`GridWorld` satisfies :class:`humanpower.worlds.protocol.WorldModel` and inherits ``reset``/``step``
from :class:`humanpower.worlds.protocol.SimulatedWorld`. The one-step dynamics live in
:mod:`humanpower.worlds.grid.dynamics`; world files in :mod:`humanpower.worlds.grid.files`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from humanpower.goals import GoalSet
from humanpower.worlds.grid.dynamics import Statics, successor_distribution
from humanpower.worlds.grid.goals import Rect, RectGoal, parse_goal_text, rect_text
from humanpower.worlds.grid.memo import TableMemo
from humanpower.worlds.grid.state import (
    COLOURS,
    DIRECTION_CODES,
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    FULL_ACTIONS,
    SMALL_ACTIONS,
    WALL,
    GridLayout,
    GridState,
)
from humanpower.worlds.protocol import JointAction, SimulatedWorld, State, Successors, TransitionTable

if TYPE_CHECKING:
    from numpy.typing import NDArray

ActionSetName = Literal["small", "full"]
GoalSpec = str | RectGoal | Rect
"""A goal as given to :class:`GridWorld`: file form text, a RectGoal (its human is ignored) or a rectangle."""

_DIRECTION_NAMES = ("east", "south", "west", "north")
_DOOR_NAMES = {DOOR_OPEN: "open", DOOR_CLOSED: "closed", DOOR_LOCKED: "locked"}


def _as_rect(goal: GoalSpec) -> Rect:
    if isinstance(goal, str):
        return parse_goal_text(goal)
    if isinstance(goal, RectGoal):
        return goal.rect
    x1, y1, x2, y2 = (int(v) for v in goal)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


DESCRIBE_MAX_GOALS = 20
"""Goals listed by :meth:`GridWorld.describe` (the rest are counted)."""


class GridWorld(SimulatedWorld):
    """A multi-agent gridworld with exact transition probabilities.

    Args:
        layout: the static part (terrain, door/key colours, agent colours and roles, rock pushers).
        initial: the state every episode starts from (step 0).
        max_steps: the horizon; a state with ``step == max_steps`` is terminal.
        actions: ``"small"`` (still, left, right, forward) or ``"full"`` (+ pickup, drop, toggle).
        stumble_probability: p of rule 6 (unsteady ground), in [0, 1].
        goals: the possible goals shared by all humans (cell/rectangle), or None for every non-wall cell.
        goal_weights: one positive weight per goal, or None for weight 1 each.
        name, description, source: identification (``source`` is the file it was loaded from, if any).
        transition_cache_size: opt-in memo of ``transition_probabilities`` on (state, joint action), bounded
            to this many entries (0, the default, disables it).
    """

    def __init__(
        self,
        layout: GridLayout,
        initial: GridState,
        max_steps: int,
        actions: ActionSetName = "small",
        stumble_probability: float = 0.5,
        goals: Sequence[GoalSpec] | None = None,
        goal_weights: Sequence[float] | None = None,
        name: str = "gridworld",
        description: str = "",
        source: str | None = None,
        transition_cache_size: int = 0,
    ) -> None:
        if actions not in ("small", "full"):
            raise ValueError(f"actions must be 'small' or 'full', got {actions!r}")
        if not isinstance(max_steps, int) or max_steps < 0:
            raise ValueError(f"max_steps must be an integer >= 0, got {max_steps!r}")
        if not 0.0 <= stumble_probability <= 1.0:
            raise ValueError(f"stumble_probability must be in [0, 1], got {stumble_probability!r}")
        self.layout = layout
        self.name = name
        self.description = description
        self.source = source
        self.max_steps = max_steps
        self.actions: ActionSetName = actions
        self.action_names: tuple[str, ...] = SMALL_ACTIONS if actions == "small" else FULL_ACTIONS
        self.num_actions = len(self.action_names)
        self.stumble_probability = float(stumble_probability)
        self.num_agents = len(layout.agent_colours)
        self.humans = tuple(sorted(layout.humans))
        self.robots = tuple(sorted(layout.robots))
        self._check_layout(initial)
        self._initial = initial
        self.default_goals = goals is None
        self.goal_rects: tuple[Rect, ...] = (
            tuple(_as_rect(g) for g in goals) if goals is not None else self._every_open_cell()
        )
        for rect in self.goal_rects:
            x1, y1, x2, y2 = rect
            if x1 < 0 or y1 < 0 or x2 >= layout.width or y2 >= layout.height:
                size = f"{layout.width}x{layout.height}"
                raise ValueError(f"goal {rect_text(rect)} lies outside the {size} grid")
        self.goal_weights: tuple[float, ...] | None = (
            tuple(float(w) for w in goal_weights) if goal_weights is not None else None
        )
        self._goal_sets: dict[int, GoalSet] = {}
        for h in self.humans:  # validates weights (count, positivity) once
            self.goal_set(h)
        self.statics = Statics(layout)
        self._cache_size = int(transition_cache_size)
        self._cache: dict[tuple[GridState, JointAction], Successors] = {}
        self._tables = TableMemo(max_steps)

    # --- construction checks ----------------------------------------------------------------------------

    def _check_layout(self, initial: GridState) -> None:
        layout = self.layout
        if len(layout.terrain) != layout.height or any(len(row) != layout.width for row in layout.terrain):
            raise ValueError("layout terrain does not match width x height")
        if sorted(self.humans + self.robots) != list(range(self.num_agents)):
            raise ValueError("every agent must be exactly one of humans or robots")
        if len(initial.agents) != self.num_agents:
            raise ValueError(f"initial state has {len(initial.agents)} agents, layout has {self.num_agents}")
        if len(initial.doors) != len(layout.door_positions) or len(initial.keys) != len(layout.key_colours):
            raise ValueError("initial state doors/keys do not match the layout")
        if initial.step != 0:
            raise ValueError(f"initial state must have step 0, got {initial.step}")
        for i, agent in enumerate(initial.agents):
            if not (0 <= agent.x < layout.width and 0 <= agent.y < layout.height):
                raise ValueError(f"agent {i} at ({agent.x}, {agent.y}) lies outside the grid")
            if layout.terrain[agent.y][agent.x] == WALL:
                raise ValueError(f"agent {i} at ({agent.x}, {agent.y}) stands in a wall")

    def _every_open_cell(self) -> tuple[Rect, ...]:
        lay = self.layout
        return tuple((x, y, x, y) for y in range(lay.height) for x in range(lay.width) if lay.terrain[y][x] != WALL)

    # --- the WorldModel protocol -----------------------------------------------------------------------

    def initial_state(self) -> GridState:
        """The state every episode starts from (step count 0)."""
        return self._initial

    def transition_probabilities(self, state: State, joint_action: JointAction) -> Successors:
        """Exact successor distribution (GRIDWORLD.md rules 1-7); empty for a terminal state."""
        assert isinstance(state, GridState)
        if self._cache_size <= 0:
            return successor_distribution(  # type: ignore[return-value]
                self.statics, self.max_steps, self.stumble_probability, self.num_actions, state, joint_action
            )
        key = (state, tuple(joint_action))
        hit = self._cache.get(key)
        if hit is None:
            hit = successor_distribution(  # type: ignore[assignment]
                self.statics, self.max_steps, self.stumble_probability, self.num_actions, state, joint_action
            )
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]  # evict the oldest entry
            self._cache[key] = hit  # type: ignore[assignment]
        return list(hit)  # type: ignore[arg-type]

    def transition_table(self, state: State, choices: Sequence[Sequence[int]]) -> TransitionTable:
        """Successor distributions for every combination of per-agent action ``choices`` at once (the batch hook
        of :class:`~humanpower.worlds.protocol.BatchTransitionModel`; :mod:`humanpower.worlds.grid.batch`):
        equal to ``transition_probabilities`` per joint action, successors in the same order. Memoised on the
        state without its step count (:class:`~humanpower.worlds.grid.memo.TableMemo`: the last two steps)."""
        assert isinstance(state, GridState)
        return self._tables.table(
            self.statics, self.max_steps, self.stumble_probability, self.num_actions, state, choices
        )

    def is_terminal(self, state: State) -> bool:
        """True at the horizon (step count == max_steps)."""
        assert isinstance(state, GridState)
        return state.step >= self.max_steps

    def step_count(self, state: State) -> int:
        """Steps taken since the initial state."""
        assert isinstance(state, GridState)
        return state.step

    def goal_set(self, human: int) -> GoalSet:
        """The possible goals of ``human``: one RectGoal per goal of the world (shared by all humans)."""
        cached = self._goal_sets.get(human)
        if cached is None:
            if human not in self.humans:
                raise ValueError(f"agent {human} is not a human (humans: {self.humans})")
            goals = [RectGoal(human, *rect) for rect in self.goal_rects]
            cached = GoalSet.of(goals, self.goal_weights)
            self._goal_sets[human] = cached
        return cached

    # --- conveniences ----------------------------------------------------------------------------------

    def agent_position(self, state: Hashable, agent: int) -> tuple[int, int]:
        """(x, y) of ``agent`` in ``state``."""
        assert isinstance(state, GridState)
        a = state.agents[agent]
        return (a.x, a.y)

    def clear_transition_cache(self) -> None:
        """Empty the opt-in transition memo (no effect when it is disabled) and the transition table memo."""
        self._cache.clear()
        self._tables.clear()

    def render(self, state: GridState | None = None, **kw: Any) -> NDArray[np.uint8]:
        """An RGB image of ``state`` (default: the initial state); see ``grid.render.render_state``."""
        from humanpower.worlds.grid.render import render_state

        return render_state(self, state if state is not None else self._initial, **kw)

    def map_rows(self, state: GridState | None = None) -> list[list[str]]:
        """The two-character cell codes of ``state`` (default: the initial state), row by row.

        Agents, rocks, blocks, keys and doors are drawn over the terrain (a terminated agent over lava).
        """
        s = state if state is not None else self._initial
        lay = self.layout
        rows = [list(row) for row in lay.terrain]
        door_codes = {DOOR_OPEN: "O", DOOR_CLOSED: "C", DOOR_LOCKED: "L"}
        for j, (x, y) in enumerate(lay.door_positions):
            rows[y][x] = door_codes[s.doors[j]] + lay.door_colours[j]
        for k, pos in enumerate(s.keys):
            if pos is not None:
                rows[pos[1]][pos[0]] = "K" + lay.key_colours[k]
        for x, y in s.rocks:
            rows[y][x] = "Ro"
        for x, y in s.blocks:
            rows[y][x] = "Bl"
        for i, a in enumerate(s.agents):
            rows[a.y][a.x] = "A" + lay.agent_colours[i]
        return rows

    def describe(self) -> str:
        """A readable multi-line description of the world as parsed."""
        lay, s = self.layout, self._initial
        lines = [f"{self.name}: {self.description}" if self.description else self.name]
        if self.source:
            lines.append(f"  file: {self.source}")
        lines.append(f"  size: {lay.width} x {lay.height}, max_steps: {self.max_steps}")
        lines.append(f"  actions: {self.actions} ({', '.join(self.action_names)})")
        lines.append(f"  stumble probability on unsteady ground: {self.stumble_probability:g}")
        lines.append("  agents:")
        for i, a in enumerate(s.agents):
            role = "human" if i in self.humans else "robot"
            colour = COLOURS.get(lay.agent_colours[i], lay.agent_colours[i])
            lines.append(f"    {i}: {role}, {colour}, at ({a.x}, {a.y}) facing {_DIRECTION_NAMES[a.dir]}")
        pushers = ", ".join(COLOURS.get(c, c) for c in sorted(lay.can_push_rocks)) or "nobody"
        lines.append(f"  rocks: {_positions(s.rocks)} (pushable by {pushers})")
        lines.append(f"  blocks: {_positions(s.blocks)}")
        doors = [
            f"{COLOURS.get(c, c)} {_DOOR_NAMES[s.doors[j]]} at {pos}"
            for j, (pos, c) in enumerate(zip(lay.door_positions, lay.door_colours, strict=True))
        ]
        lines.append(f"  doors: {'; '.join(doors) if doors else 'none'}")
        keys = [f"{COLOURS.get(c, c)} at {pos}" for pos, c in zip(s.keys, lay.key_colours, strict=True)]
        lines.append(f"  keys: {'; '.join(keys) if keys else 'none'}")
        special = {
            "lava": sum(row.count("La") for row in lay.terrain),
            "unsteady": sum(row.count("Un") for row in lay.terrain),
        }
        lines.append(f"  lava cells: {special['lava']}, unsteady cells: {special['unsteady']}")
        goals = [rect_text(r) for r in self.goal_rects[:DESCRIBE_MAX_GOALS]]
        more = len(self.goal_rects) - len(goals)
        origin = "every non-wall cell" if self.default_goals else "from the file"
        listed = " | ".join(goals) + (f" | ... ({more} more)" if more else "")
        lines.append(f"  goals per human ({len(self.goal_rects)}, {origin}): {listed}")
        if self.goal_weights is not None:
            weights = ", ".join(f"{w:g}" for w in self.goal_weights[:DESCRIBE_MAX_GOALS])
            lines.append(f"  goal weights: {weights}" + (f", ... ({more} more)" if more else ""))
        lines.append("  map:")
        lines.extend("    " + " ".join(row) for row in self.map_rows())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"GridWorld(name={self.name!r}, size={self.layout.width}x{self.layout.height}, "
            f"agents={self.num_agents}, max_steps={self.max_steps}, actions={self.actions!r})"
        )


def _positions(cells: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"({x}, {y})" for x, y in cells) if cells else "none"


def direction_code(d: int) -> str:
    """The file code ('e', 's', 'w', 'n') of direction d."""
    return DIRECTION_CODES[d]


__all__ = ["ActionSetName", "GoalSpec", "GridWorld", "direction_code"]
