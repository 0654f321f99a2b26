"""The ``humanpower`` command. Each subcommand lives in its own module exposing ``register(subparsers)``.

Errors the user can fix (a malformed world file, an invalid config value, a corrupt checkpoint) are raised as
:class:`humanpower.errors.UserError` and printed as one line, exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from humanpower.errors import RunError, UserError

# Subcommand modules, each with register(subparsers) -> None that sets a ``func(args) -> int`` default.
COMMAND_MODULES = (
    "humanpower.cli.worlds_cmd",  # worlds, show
    "humanpower.cli.solve_cmd",  # solve
    "humanpower.cli.train_cmd",  # train
    "humanpower.cli.eval_cmd",  # eval
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="humanpower",
        description="Robot policies that softly maximize aggregate human power.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module: surface it
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"humanpower: error: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"humanpower: run failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
