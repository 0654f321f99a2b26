"""The ``humanpower`` command. Each subcommand lives in its own module exposing ``register(subparsers)``.

Errors the user can fix (a malformed world file, an invalid config value, a corrupt checkpoint) are raised as
:class:`humanpower.errors.UserError` and printed as one line, exit status 2, never a traceback. Warnings about
input (:class:`humanpower.errors.InputWarning`, e.g. a world-file goal that lies on a wall) are printed as one
line each. A closed stdout (``humanpower train ... | head -2``) ends the command quietly with status 141, as a
process killed by SIGPIPE would.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from humanpower import __version__
from humanpower.errors import InputWarning, RunError, UserError

# Subcommand modules, each with register(subparsers) -> None that sets a ``func(args) -> int`` default.
COMMAND_MODULES = (
    "humanpower.cli.worlds_cmd",  # worlds, show
    "humanpower.cli.solve_cmd",  # solve
    "humanpower.cli.train_cmd",  # train
    "humanpower.cli.eval_cmd",  # eval
)
EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``PROG: error: MESSAGE (see PROG --help)``), exit 2.

    Subcommand parsers inherit the class (``add_subparsers`` uses the parent's class). Negative numbers in
    scientific notation (``--terminal-v-r -1e3``) are values, not options (argparse's own pattern only knows
    ``-1`` and ``-1.5``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="humanpower",
        description="Robot policies that softly maximize aggregate human power.",
    )
    parser.add_argument("--version", action="version", version=f"humanpower {__version__}")
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


def command_names(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommand names of ``parser``."""
    names: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            names += list(action.choices)
    return names


def unknown_command(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The error line for a first argument that is not a command (with the closest name), or ``None``."""
    first = next(iter(argv), None)
    if first is None or first.startswith("-") or first in names:
        return None
    close = difflib.get_close_matches(first, names, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown command {first!r}{hint}; commands: {', '.join(names)}"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Input warnings as one line ``humanpower: warning: ...``; other warnings as Python prints them."""
    if issubclass(category, InputWarning):
        print(f"humanpower: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    problem = unknown_command(args_list, command_names(parser))
    if problem is not None:
        print(f"humanpower: error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return code
    except UserError as exc:
        print(f"humanpower: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except RunError as exc:
        print(f"humanpower: run failed: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
