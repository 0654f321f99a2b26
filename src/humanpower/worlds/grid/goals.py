"""Gridworld goals: a human wants to stand in a given cell or rectangle of cells.

A :class:`RectGoal` is reached in every state where its human's position lies in the (inclusive)
rectangle ``x1 <= x <= x2, y1 <= y <= y2``. A cell goal is a rectangle of one cell. ``str(goal)`` is the
world-file form: ``"x,y"`` for a cell, ``"x1,y1, x2,y2"`` for a rectangle.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass

from humanpower.worlds.grid.state import GridState

_INT = r"\s*(-?\d+)\s*"
_CELL_RE = re.compile(rf"^{_INT},{_INT}$")
_RECT_RE = re.compile(rf"^{_INT},{_INT},{_INT},{_INT}$")

Rect = tuple[int, int, int, int]
"""An inclusive rectangle (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2."""


def parse_goal_text(text: str) -> Rect:
    """Parse the file form of a goal (``"x,y"`` or ``"x1,y1, x2,y2"``) into an ordered rectangle.

    Corners given in any order are normalised (``"3,2, 1,1"`` is the rectangle 1..3 x 1..2).
    Raises ValueError with the reason when the text is not of either form.
    """
    m = _CELL_RE.match(text)
    if m:
        x, y = int(m.group(1)), int(m.group(2))
        return (x, y, x, y)
    m = _RECT_RE.match(text)
    if m:
        xa, ya, xb, yb = (int(g) for g in m.groups())
        return (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))
    raise ValueError(f"goal {text!r} is neither 'x,y' nor 'x1,y1, x2,y2'")


def rect_text(rect: Rect) -> str:
    """The file form of a rectangle: ``"x,y"`` for one cell, else ``"x1,y1, x2,y2"``."""
    x1, y1, x2, y2 = rect
    if x1 == x2 and y1 == y2:
        return f"{x1},{y1}"
    return f"{x1},{y1}, {x2},{y2}"


@dataclass(frozen=True)
class RectGoal:
    """Human ``human`` stands in the inclusive rectangle (x1, y1)-(x2, y2); a cell when the corners agree."""

    human: int
    x1: int
    y1: int
    x2: int
    y2: int

    def __post_init__(self) -> None:
        if self.x1 > self.x2 or self.y1 > self.y2:
            raise ValueError(f"RectGoal corners must be ordered (x1 <= x2, y1 <= y2), got {self.rect}")

    @classmethod
    def cell(cls, human: int, x: int, y: int) -> RectGoal:
        """The goal of standing in cell (x, y)."""
        return cls(human, x, y, x, y)

    @classmethod
    def parse(cls, human: int, text: str) -> RectGoal:
        """A goal for ``human`` from its file form (see :func:`parse_goal_text`)."""
        return cls(human, *parse_goal_text(text))

    @property
    def rect(self) -> Rect:
        """(x1, y1, x2, y2)."""
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def is_cell(self) -> bool:
        """True for a one-cell goal."""
        return self.x1 == self.x2 and self.y1 == self.y2

    def contains(self, x: int, y: int) -> bool:
        """True when cell (x, y) lies in the rectangle."""
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y2

    def is_achieved(self, state: Hashable) -> bool:
        """True when the human's position in ``state`` (a GridState) lies in the rectangle."""
        assert isinstance(state, GridState)
        agent = state.agents[self.human]
        return self.x1 <= agent.x <= self.x2 and self.y1 <= agent.y <= self.y2

    def cells(self) -> tuple[tuple[int, int], ...]:
        """All cells (x, y) of the rectangle, row by row."""
        return tuple((x, y) for y in range(self.y1, self.y2 + 1) for x in range(self.x1, self.x2 + 1))

    def __str__(self) -> str:
        return rect_text(self.rect)


__all__ = ["Rect", "RectGoal", "parse_goal_text", "rect_text"]
