"""``humanpower worlds`` (list the bundled worlds) and ``humanpower show WORLD`` (describe, draw a world)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from PIL import Image

from humanpower.errors import UserError
from humanpower.worlds.grid.library import list_worlds, load_world
from humanpower.worlds.grid.render import render_state


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``worlds`` and ``show`` subcommands."""
    worlds = subparsers.add_parser(
        "worlds", help="list the bundled worlds", description="List the bundled worlds."
    )
    worlds.set_defaults(func=run_worlds)

    show = subparsers.add_parser(
        "show",
        help="describe a world and draw its initial state",
        description="Print a world's description and write a PNG of its initial state.",
    )
    show.add_argument("world", metavar="WORLD", help="a bundled world name or a world file (YAML)")
    show.add_argument("--out", metavar="PNG", type=Path, help="image path (default: <name>.png here)")
    show.add_argument("--goals", action="store_true", help="outline the cells of the humans' possible goals")
    show.add_argument("--cell-size", type=int, default=48, metavar="PX", help="pixels per cell (default 48)")
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
    """``<name>.png`` with characters unsafe in file names replaced by ``_``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", world_name).strip("._") or "world"
    return Path(f"{safe}.png")


def run_show(args: argparse.Namespace) -> int:
    """Print ``world.describe()`` and write the initial state as a PNG; prints the image path."""
    if args.cell_size < 8:
        raise UserError(f"--cell-size: must be >= 8, got {args.cell_size}")
    out: Path | None = args.out
    if out is not None and out.suffix.lower() != ".png":
        raise UserError(f"--out: {out}: the image must be a .png file")
    world = load_world(args.world)
    print(world.describe())
    if out is None:
        out = _default_image_name(world.name)
    image = render_state(world, world.initial_state(), cell_size=args.cell_size, show_goals=args.goals)
    try:
        Image.fromarray(image).save(out)
    except OSError as exc:
        raise UserError(f"--out: cannot write {out}: {exc.strerror or exc}") from exc
    print(f"wrote {out}")
    return 0
