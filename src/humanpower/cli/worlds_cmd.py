"""``humanpower worlds`` (list the bundled worlds) and ``humanpower show WORLD`` (describe, draw a world)."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from humanpower.errors import UserError
from humanpower.limits import (
    DEFAULT_MEMORY_LIMIT_GB,
    PROCESS_BYTES,
    RENDER_BYTES_PER_PIXEL,
    RENDER_MAX_PIXELS,
    memory_limit_bytes,
    memory_refusal,
)
from humanpower.worlds.grid.files import safe_name
from humanpower.worlds.grid.library import list_worlds, load_world
from humanpower.worlds.grid.render import MIN_CELL_SIZE, render_state

DEFAULT_CELL_SIZE = 48


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``worlds`` and ``show`` subcommands."""
    worlds = subparsers.add_parser("worlds", help="list the bundled worlds", description="List the bundled worlds.")
    worlds.set_defaults(func=run_worlds)

    show = subparsers.add_parser(
        "show",
        help="describe a world and draw its initial state",
        description="Print a world's description and write a PNG of its initial state.",
    )
    show.add_argument("world", metavar="WORLD", help="a bundled world name or a world file (YAML)")
    show.add_argument("--out", metavar="PNG", type=Path, help="image path (default: <name>.png here)")
    show.add_argument("--goals", action="store_true", help="outline the cells of the humans' possible goals")
    show.add_argument(
        "--cell-size",
        type=int,
        default=None,
        metavar="PX",
        help=f"pixels per cell (default {DEFAULT_CELL_SIZE}, smaller for worlds too large for the memory limit)",
    )
    show.add_argument(
        "--memory-limit-gb",
        type=float,
        default=DEFAULT_MEMORY_LIMIT_GB,
        metavar="GB",
        help=f"refuse images that need more memory than this (default {DEFAULT_MEMORY_LIMIT_GB:g})",
    )
    show.set_defaults(func=run_show)


def run_worlds(args: argparse.Namespace) -> int:
    """Print one line per bundled world: name, size, agents, purpose."""
    rows = []
    for name, description in list_worlds():
        world = load_world(name)
        size = f"{world.layout.width}x{world.layout.height}"
        agents = f"{len(world.humans)}h {len(world.robots)}r"
        purpose = description.strip().splitlines()[0] if description.strip() else ""
        rows.append((name, size, agents, purpose))
    header = ("NAME", "SIZE", "AGENTS", "PURPOSE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def _default_image_name(world_name: str) -> Path:
    """``<name>.png`` with characters unsafe in file names replaced (:func:`safe_name`)."""
    return Path(f"{safe_name(world_name)}.png")


def render_bytes(width: int, height: int, cell_size: int) -> int:
    """Estimated peak bytes of ``show`` drawing a ``width`` x ``height`` world at ``cell_size`` px per cell."""
    return PROCESS_BYTES + width * height * cell_size * cell_size * RENDER_BYTES_PER_PIXEL


def choose_cell_size(width: int, height: int, requested: int | None, limit_gb: float) -> int:
    """The cell size to draw with.

    ``requested`` is used if its estimate fits the memory limit, else refused with the estimate (UserError).
    Without a request: :data:`DEFAULT_CELL_SIZE`, or the largest smaller size whose image has at most
    :data:`~humanpower.limits.RENDER_MAX_PIXELS` pixels and fits the limit (refused if even the smallest does
    not fit).
    """
    if requested is not None:
        if requested < MIN_CELL_SIZE:
            raise UserError(f"--cell-size: must be >= {MIN_CELL_SIZE}, got {requested}")
        what = f"--cell-size: a {width}x{height} world drawn at {requested} px per cell"
        refusal = memory_refusal(what, render_bytes(width, height, requested), limit_gb, "--memory-limit-gb")
        if refusal is not None:
            raise UserError(refusal)
        return requested
    budget = memory_limit_bytes(limit_gb)
    size = DEFAULT_CELL_SIZE
    while size > MIN_CELL_SIZE and (
        width * height * size * size > RENDER_MAX_PIXELS or render_bytes(width, height, size) > budget
    ):
        size -= 1
    what = f"a {width}x{height} world drawn at the smallest cell size ({MIN_CELL_SIZE} px)"
    refusal = memory_refusal(what, render_bytes(width, height, size), limit_gb, "--memory-limit-gb")
    if refusal is not None:
        raise UserError(refusal)
    return size


def run_show(args: argparse.Namespace) -> int:
    """Print ``world.describe()`` and write the initial state as a PNG; prints the image path."""
    if args.cell_size is not None and args.cell_size < MIN_CELL_SIZE:
        raise UserError(f"--cell-size: must be >= {MIN_CELL_SIZE}, got {args.cell_size}")
    if not args.memory_limit_gb > 0:
        raise UserError(f"--memory-limit-gb: must be > 0, got {args.memory_limit_gb}")
    out: Path | None = args.out
    if out is not None and out.suffix.lower() != ".png":
        raise UserError(f"--out: {out}: the image must be a .png file")
    world = load_world(args.world)
    cell_size = choose_cell_size(world.layout.width, world.layout.height, args.cell_size, args.memory_limit_gb)
    print(world.describe())
    if out is None:
        out = _default_image_name(world.name)
    image = render_state(world, world.initial_state(), cell_size=cell_size, show_goals=args.goals)
    try:
        Image.fromarray(image).save(out)
    except OSError as exc:
        raise UserError(f"--out: cannot write {out}: {exc.strerror or exc}") from exc
    note = (
        ""
        if cell_size == (args.cell_size or DEFAULT_CELL_SIZE)
        else f" ({cell_size} px per cell, smaller than {DEFAULT_CELL_SIZE} to bound memory and time)"
    )
    print(f"wrote {out}{note}")
    return 0
