"""User-facing errors: one clear line naming the file, field and reason."""

from __future__ import annotations


class UserError(Exception):
    """An error in user input (world file, config, checkpoint, command line). Printed as one line by the CLI."""


class WorldFileError(UserError):
    """A malformed world file. The message starts with ``FILE:LINE:`` when the line is known."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class InputWarning(UserWarning):
    """Input that is accepted but probably not what the user meant (e.g. a world-file goal on a wall).

    The CLI prints it as one line ``humanpower: warning: ...``; the message names the file and line.
    """


class ConfigError(UserError):
    """An invalid configuration value; the message names the field."""


class CheckpointError(UserError):
    """A missing or corrupt checkpoint or run folder."""


class RunError(Exception):
    """A run that failed for a reason the message reports in full (e.g. an actor that kept crashing).

    The CLI prints the message (which may include a worker's traceback) and exits with status 1.
    """
