"""Drawing a gridworld state as an RGB image (Pillow).

:func:`render_state` returns a ``uint8`` array of shape ``(H, W, 3)`` with ``H = height * cell_size`` (plus a
caption strip when a caption is given) and ``W = width * cell_size``. The look, cell by cell:

- terrain: empty floor light grey with thin grid lines, walls dark grey, lava orange with dark waves, unsteady
  ground sand-coloured and hatched, goal tiles tinted in their colour with an inner frame;
- objects: rocks are dark irregular stones, blocks are wooden crates (square with a cross), keys are key
  shapes in their colour; doors in their colour: locked = dark filled with a keyhole, closed = filled with a
  handle, open = only a frame;
- agents are triangles pointing in their direction, filled with the agent's colour (humans yellow, robots
  grey by default): humans are plain triangles, robots triangles inside a dark ring; the agent index is
  printed in the cell's top-left corner; a carried key shows as a small key mark in the bottom-right
  corner; a terminated agent (in lava) is crossed out;
- ``show_goals=True`` outlines the cells of every possible goal of every human with a thin line in a colour
  per human (inset a little more for each further human so overlapping goal sets stay visible); humans with
  the same goals as an earlier human (e.g. the shared goals of a world file) are not drawn again;
- ``overlay`` tints each listed cell on a viridis-like scale (low = dark violet, high = yellow) and prints the
  value (``overlay_format``) at the bottom of the cell; ``highlight`` draws thick magenta frames;
- ``caption`` adds a white strip at the bottom with the (word-wrapped) text.

Shapes are drawn at 3x resolution and downsampled (anti-aliasing); text is drawn at the final resolution.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from humanpower.goals import GoalSet
from humanpower.worlds.grid.state import (
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    DX,
    DY,
    EMPTY,
    LAVA,
    UNSTEADY,
    WALL,
    AgentState,
    GridLayout,
    GridState,
)

RGB = tuple[int, int, int]
Cell = tuple[int, int]

COLOUR_RGB: dict[str, RGB] = {
    "r": (220, 50, 47),
    "g": (50, 160, 60),
    "b": (40, 110, 220),
    "p": (150, 70, 200),
    "y": (245, 200, 0),
    "e": (150, 150, 150),
}
"""Fill colour per colour code of the world format (agents, doors, keys, goal tiles)."""

FLOOR: RGB = (244, 244, 240)
GRID_LINE: RGB = (205, 205, 200)
WALL_RGB: RGB = (70, 70, 76)
WALL_EDGE: RGB = (100, 100, 108)
LAVA_RGB: RGB = (240, 105, 30)
LAVA_WAVE: RGB = (170, 35, 10)
UNSTEADY_RGB: RGB = (226, 206, 160)
UNSTEADY_HATCH: RGB = (160, 128, 78)
ROCK_RGB: RGB = (105, 92, 84)
ROCK_EDGE: RGB = (50, 42, 38)
BLOCK_RGB: RGB = (196, 146, 84)
BLOCK_EDGE: RGB = (110, 72, 32)
OUTLINE: RGB = (25, 25, 25)
ROBOT_RING_RGB: RGB = (190, 212, 238)
CROSS_RGB: RGB = (150, 0, 0)
HIGHLIGHT_RGB: RGB = (230, 0, 200)
GOAL_OUTLINE_RGB: tuple[RGB, ...] = ((0, 150, 60), (0, 90, 200), (200, 0, 120), (0, 150, 160), (150, 90, 0))
"""Goal-outline colour per human (cycled)."""
VALUE_SCALE: tuple[RGB, ...] = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
"""Anchors of the overlay tint scale, low to high (viridis)."""
OVERLAY_ALPHA = 0.55
SUPERSAMPLE = 3
MIN_CELL_SIZE = 8
"""Smallest cell side in pixels."""


@runtime_checkable
class CellGoal(Protocol):
    """A goal that is a set of grid cells (the gridworld's cell and rectangle goals)."""

    def cells(self) -> Iterable[Cell]:
        """The cells (x, y) in which the goal is achieved."""
        ...


class RenderableGridWorld(Protocol):
    """What rendering (and the grid observation) needs of a gridworld."""

    layout: GridLayout
    humans: tuple[int, ...]
    max_steps: int

    def initial_state(self) -> Hashable: ...

    def goal_set(self, human: int) -> GoalSet: ...


def render_state(
    world: RenderableGridWorld,
    state: GridState | None = None,
    *,
    cell_size: int = 32,
    overlay: Mapping[Cell, float] | None = None,
    overlay_format: str = "{:.2f}",
    overlay_range: tuple[float, float] | None = None,
    highlight: Iterable[Cell] = (),
    caption: str | None = None,
    show_goals: bool = False,
) -> NDArray[np.uint8]:
    """Draw ``state`` of ``world`` (default: the world's initial state) as an RGB array.

    Args:
        world: the gridworld (its ``layout`` gives the static terrain, doors and keys).
        state: the state to draw; ``None`` draws ``world.initial_state()``.
        cell_size: pixels per cell side (>= 8).
        overlay: per-cell values (x, y) -> value: tinted and printed in the cell (e.g. X_h over the human's
            position). Non-finite values are printed but not tinted.
        overlay_format: ``str.format`` pattern for the printed values.
        overlay_range: (low, high) of the tint scale; default the min and max of the finite overlay values.
        highlight: cells framed in thick magenta.
        caption: text of a strip added below the grid (e.g. ``"step 3  X_h=2.1  V_r=-0.4"``).
        show_goals: outline the cells of every possible goal of every human.

    Returns:
        ``uint8`` array ``(height * cell_size + caption_height, width * cell_size, 3)``.
    """
    if cell_size < MIN_CELL_SIZE:
        raise ValueError(f"cell_size must be >= {MIN_CELL_SIZE}, got {cell_size}")
    layout = world.layout
    if state is None:
        initial = world.initial_state()
        if not isinstance(initial, GridState):
            raise TypeError(f"initial_state() returned {type(initial).__name__}, expected GridState")
        state = initial
    overlay = dict(overlay or {})
    highlight_cells: list[Cell] = [(int(c[0]), int(c[1])) for c in highlight]
    for x, y in [*overlay.keys(), *highlight_cells]:
        if not (0 <= x < layout.width and 0 <= y < layout.height):
            raise ValueError(f"cell ({x}, {y}) lies outside the {layout.width}x{layout.height} grid")

    s = cell_size * SUPERSAMPLE
    big = Image.new("RGB", (layout.width * s, layout.height * s), FLOOR)
    painter = _Painter(big, s)
    for y in range(layout.height):
        for x in range(layout.width):
            painter.terrain(x, y, layout.terrain[y][x])
    if overlay:
        painter.tint(overlay, overlay_range)
    for i, (pos, door_state) in enumerate(zip(layout.door_positions, state.doors, strict=True)):
        painter.door(pos, layout.door_colours[i], door_state)
    for x, y in state.rocks:
        painter.rock(x, y)
    for x, y in state.blocks:
        painter.block(x, y)
    for i, key_pos in enumerate(state.keys):
        if key_pos is not None:
            painter.key_icon(key_pos[0] * s + s // 2, key_pos[1] * s + s // 2, s * 0.8, layout.key_colours[i])
    for index, agent in enumerate(state.agents):
        painter.agent(agent, layout.agent_colours[index], index in layout.robots, layout.key_colours)
    if show_goals:
        drawn: list[list[frozenset[Cell]]] = []
        for human in world.humans:
            cell_sets = [frozenset(g.cells()) for g, _ in world.goal_set(human) if isinstance(g, CellGoal)]
            if cell_sets in drawn:  # the same goals as an earlier human: drawn once
                continue
            rank = len(drawn)
            drawn.append(cell_sets)
            colour = GOAL_OUTLINE_RGB[rank % len(GOAL_OUTLINE_RGB)]
            for cells in cell_sets:
                painter.cell_set_outline(cells, colour, inset=0.06 + 0.05 * rank)
    for x, y in highlight_cells:
        painter.frame(x, y, HIGHLIGHT_RGB, width=max(2, s // 12))

    image = big.resize((layout.width * cell_size, layout.height * cell_size), Image.Resampling.BOX)
    _draw_labels(image, state.agents, cell_size)
    if overlay:
        _draw_overlay_text(image, overlay, overlay_format, cell_size)
    if caption is not None:
        image = _add_caption(image, caption, cell_size)
    return np.asarray(image, dtype=np.uint8).copy()


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear blend: t = 0 gives a, t = 1 gives b."""
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def value_colour(t: float) -> RGB:
    """Colour of the overlay scale at t in [0, 1] (clipped)."""
    t = min(1.0, max(0.0, t)) * (len(VALUE_SCALE) - 1)
    i = min(int(t), len(VALUE_SCALE) - 2)
    return _mix(VALUE_SCALE[i], VALUE_SCALE[i + 1], t - i)


def _colour(code: str) -> RGB:
    if code not in COLOUR_RGB:
        raise ValueError(f"unknown colour code {code!r}")
    return COLOUR_RGB[code]


class _Painter:
    """Draws shapes on the supersampled canvas; ``s`` is the cell side in canvas pixels."""

    def __init__(self, image: Image.Image, s: int) -> None:
        self.image = image
        self.d = ImageDraw.Draw(image)
        self.s = s

    def _box(self, x: int, y: int, margin: float = 0.0) -> tuple[float, float, float, float]:
        m = margin * self.s
        return (x * self.s + m, y * self.s + m, (x + 1) * self.s - 1 - m, (y + 1) * self.s - 1 - m)

    def terrain(self, x: int, y: int, code: str) -> None:
        s, d = self.s, self.d
        x0, y0 = x * s, y * s
        lw = max(1, s // 32)
        if code == WALL:
            d.rectangle(self._box(x, y), fill=WALL_RGB)
            d.rectangle(self._box(x, y, 0.04), outline=WALL_EDGE, width=lw)
            return
        if code == LAVA:
            d.rectangle(self._box(x, y), fill=LAVA_RGB)
            for row in (0.3, 0.55, 0.8):
                pts = [(x0 + s * i / 8, y0 + s * row + s * 0.06 * math.sin(i * math.pi / 2)) for i in range(9)]
                d.line(pts, fill=LAVA_WAVE, width=max(1, s // 20))
        elif code == UNSTEADY:
            d.rectangle(self._box(x, y), fill=UNSTEADY_RGB)
            step = s / 5
            for i in range(-5, 6):
                a = (x0 + i * step, y0 + s)
                b = (x0 + i * step + s, y0)
                d.line(
                    [_clip_point(a, b, x0, y0, s), _clip_point(b, a, x0, y0, s)],
                    fill=UNSTEADY_HATCH,
                    width=lw * 2,
                )
        elif code.startswith("G"):
            colour = _colour(code[1:])
            d.rectangle(self._box(x, y), fill=_mix(FLOOR, colour, 0.35))
            d.rectangle(self._box(x, y, 0.12), outline=colour, width=max(1, s // 16))
        elif code != EMPTY:
            raise ValueError(f"unknown terrain code {code!r} at ({x}, {y})")
        d.rectangle(self._box(x, y), outline=GRID_LINE, width=lw)

    def tint(self, overlay: Mapping[Cell, float], value_range: tuple[float, float] | None) -> None:
        finite = [v for v in overlay.values() if math.isfinite(v)]
        if not finite:
            return
        lo, hi = value_range if value_range is not None else (min(finite), max(finite))
        image = self.image
        for (x, y), v in overlay.items():
            if not math.isfinite(v):
                continue
            t = 0.5 if hi <= lo else (v - lo) / (hi - lo)
            box = tuple(round(c) for c in self._box(x, y))
            region = image.crop((box[0], box[1], box[2] + 1, box[3] + 1))
            solid = Image.new("RGB", region.size, value_colour(t))
            image.paste(Image.blend(region, solid, OVERLAY_ALPHA), (box[0], box[1]))

    def door(self, pos: Cell, colour_code: str, door_state: int) -> None:
        x, y = pos
        colour = _colour(colour_code)
        s, d = self.s, self.d
        if door_state == DOOR_OPEN:
            d.rectangle(self._box(x, y, 0.04), outline=colour, width=max(2, s // 10))
            return
        if door_state == DOOR_CLOSED:
            d.rectangle(self._box(x, y, 0.04), fill=_mix(colour, FLOOR, 0.25), outline=OUTLINE, width=max(1, s // 24))
            d.rectangle(self._box(x, y, 0.14), outline=_mix(colour, OUTLINE, 0.4), width=max(1, s // 30))
            cx, cy, r = (x + 0.75) * s, (y + 0.5) * s, s * 0.07
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=OUTLINE)
            return
        if door_state != DOOR_LOCKED:
            raise ValueError(f"unknown door state {door_state} at {pos}")
        d.rectangle(self._box(x, y, 0.04), fill=_mix(colour, OUTLINE, 0.35), outline=OUTLINE, width=max(1, s // 24))
        cx, cy, r = (x + 0.5) * s, (y + 0.42) * s, s * 0.1
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=OUTLINE)
        d.polygon([(cx - r * 0.8, cy + r * 3), (cx + r * 0.8, cy + r * 3), (cx, cy)], fill=OUTLINE)

    def rock(self, x: int, y: int) -> None:
        s = self.s
        cx, cy = (x + 0.5) * s, (y + 0.52) * s
        radii = (0.40, 0.33, 0.38, 0.30, 0.36, 0.40, 0.31, 0.37)
        pts = [
            (
                cx + s * r * math.cos(2 * math.pi * i / 8 + 0.3),
                cy + s * r * math.sin(2 * math.pi * i / 8 + 0.3),
            )
            for i, r in enumerate(radii)
        ]
        self.d.polygon(pts, fill=ROCK_RGB, outline=ROCK_EDGE, width=max(1, s // 24))

    def block(self, x: int, y: int) -> None:
        s, d = self.s, self.d
        x0, y0, x1, y1 = self._box(x, y, 0.14)
        d.rectangle((x0, y0, x1, y1), fill=BLOCK_RGB, outline=BLOCK_EDGE, width=max(2, s // 18))
        d.line([(x0, y0), (x1, y1)], fill=BLOCK_EDGE, width=max(1, s // 24))
        d.line([(x0, y1), (x1, y0)], fill=BLOCK_EDGE, width=max(1, s // 24))

    def key_icon(self, cx: float, cy: float, size: float, colour_code: str) -> None:
        """A key of width ``size`` centred at (cx, cy): ring on the left, shaft with two teeth."""
        colour = _colour(colour_code)
        d = self.d
        r = size * 0.18
        rx = cx - size * 0.28
        width = max(2, round(size * 0.09))
        d.ellipse((rx - r, cy - r, rx + r, cy + r), outline=colour, width=width)
        x_end = cx + size * 0.38
        d.line([(rx + r, cy), (x_end, cy)], fill=colour, width=width)
        for tooth in (x_end - width / 2, x_end - size * 0.17):
            d.line([(tooth, cy), (tooth, cy + size * 0.16)], fill=colour, width=width)

    def agent(self, agent: AgentState, colour_code: str, is_robot: bool, key_colours: Sequence[str]) -> None:
        s, d = self.s, self.d
        cx, cy = (agent.x + 0.5) * s, (agent.y + 0.5) * s
        fill = _colour(colour_code)
        lw = max(2, s // 24)
        tri_r = 0.30 if is_robot else 0.38
        if is_robot:
            r = 0.43 * s
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ROBOT_RING_RGB, outline=OUTLINE, width=lw)
        dx, dy = DX[agent.dir], DY[agent.dir]
        tip = (cx + dx * tri_r * s * 1.05, cy + dy * tri_r * s * 1.05)
        back = (cx - dx * tri_r * s * 0.8, cy - dy * tri_r * s * 0.8)
        half = tri_r * s * 0.85
        d.polygon(
            [tip, (back[0] - dy * half, back[1] + dx * half), (back[0] + dy * half, back[1] - dx * half)],
            fill=fill,
            outline=OUTLINE,
            width=lw,
        )
        if agent.carrying >= 0:
            kx, ky = (agent.x + 0.72) * s, (agent.y + 0.83) * s
            box = (kx - s * 0.27, ky - s * 0.16, kx + s * 0.27, ky + s * 0.16)
            d.rounded_rectangle(box, radius=s * 0.05, fill=(255, 255, 255), outline=OUTLINE, width=max(1, s // 48))
            self.key_icon(kx, ky - s * 0.03, s * 0.5, key_colours[agent.carrying])
        if agent.terminated:
            m = 0.12 * s
            x0, y0, x1, y1 = agent.x * s + m, agent.y * s + m, (agent.x + 1) * s - m, (agent.y + 1) * s - m
            w = max(3, s // 10)
            d.line([(x0, y0), (x1, y1)], fill=CROSS_RGB, width=w)
            d.line([(x0, y1), (x1, y0)], fill=CROSS_RGB, width=w)

    def cell_set_outline(self, cells: frozenset[Cell], colour: RGB, inset: float) -> None:
        """Outline the boundary of a set of cells (edges between a member and a non-member), inset a bit."""
        s, d = self.s, self.d
        m = inset * s
        w = max(2, s // 16)
        for x, y in cells:
            x0, y0, x1, y1 = x * s, y * s, (x + 1) * s - 1, (y + 1) * s - 1
            if (x, y - 1) not in cells:
                d.line([(x0, y0 + m), (x1, y0 + m)], fill=colour, width=w)
            if (x, y + 1) not in cells:
                d.line([(x0, y1 - m), (x1, y1 - m)], fill=colour, width=w)
            if (x - 1, y) not in cells:
                d.line([(x0 + m, y0), (x0 + m, y1)], fill=colour, width=w)
            if (x + 1, y) not in cells:
                d.line([(x1 - m, y0), (x1 - m, y1)], fill=colour, width=w)

    def frame(self, x: int, y: int, colour: RGB, width: int) -> None:
        self.d.rectangle(self._box(x, y), outline=colour, width=width)


def _clip_point(a: tuple[float, float], b: tuple[float, float], x0: float, y0: float, s: float) -> tuple[float, float]:
    """Move ``a`` along the segment a-b until it lies inside the square [x0, x0+s] x [y0, y0+s]."""
    (ax, ay), (bx, by) = a, b
    t = 0.0
    for lo, hi, p, q in ((x0, x0 + s - 1, ax, bx), (y0, y0 + s - 1, ay, by)):
        if p < lo and q != p:
            t = max(t, (lo - p) / (q - p))
        if p > hi and q != p:
            t = max(t, (hi - p) / (q - p))
    return (ax + (bx - ax) * min(t, 1.0), ay + (by - ay) * min(t, 1.0))


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (no system fonts needed)."""
    return ImageFont.load_default(size=size)


def _draw_labels(image: Image.Image, agents: Sequence[AgentState], cell_size: int) -> None:
    """The agent index in the top-left corner of each agent's cell (cells of 24 px and more)."""
    if cell_size < 24:
        return
    draw = ImageDraw.Draw(image)
    font = _font(max(8, cell_size // 4))
    for index, agent in enumerate(agents):
        pos = (agent.x * cell_size + 2, agent.y * cell_size + 1)
        draw.text(pos, str(index), fill=OUTLINE, font=font, stroke_width=1, stroke_fill=(255, 255, 255))


def _draw_overlay_text(image: Image.Image, overlay: Mapping[Cell, float], fmt: str, cell_size: int) -> None:
    draw = ImageDraw.Draw(image)
    font = _font(max(7, round(cell_size * 0.28)))
    for (x, y), v in overlay.items():
        text = fmt.format(v)
        centre = ((x + 0.5) * cell_size, (y + 0.97) * cell_size)
        draw.text(
            centre,
            text,
            fill=OUTLINE,
            font=font,
            anchor="md",
            stroke_width=max(1, cell_size // 24),
            stroke_fill=(255, 255, 255),
        )


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> list[str]:
    """Greedy word wrap of ``text`` to lines no wider than ``width`` pixels (explicit newlines kept)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = word if not line else f"{line} {word}"
            if line and font.getlength(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def _add_caption(image: Image.Image, caption: str, cell_size: int) -> Image.Image:
    """The image with a white caption strip below it, one row per wrapped line."""
    size = max(10, round(cell_size * 0.4))
    font = _font(size)
    pad = max(2, size // 4)
    lines = _wrap(caption, font, image.width - 2 * pad)
    line_height = round(size * 1.25)
    out = Image.new("RGB", (image.width, image.height + len(lines) * line_height + 2 * pad), (255, 255, 255))
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((pad, image.height + pad + i * line_height), line, fill=OUTLINE, font=font)
    return out


__all__ = ["COLOUR_RGB", "MIN_CELL_SIZE", "CellGoal", "RenderableGridWorld", "render_state", "value_colour"]
