"""How a run starts and ends: stop signals, the budget check on resume, and run-folder write failures.

* SIGINT (Ctrl-C) and SIGTERM ask the training loop to stop after the current env step; the trainer then writes a
  checkpoint, marks the run ``interrupted`` and returns (a second signal aborts at once).
* An OSError on the run folder (full disk, read-only folder) becomes one :class:`RunFolderWriteError` line naming
  the path; the run is marked ``failed`` if ``run.json`` can still be written, and stays resumable from its newest
  checkpoint (every file is written atomically).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from humanpower.errors import ConfigError
from humanpower.learn.checkpoint import RunFolder, RunFolderWriteError, describe_os_error

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Turns the first SIGINT or SIGTERM into a request to stop after the current env step.

    A second one restores the previous handlers and acts as they would (KeyboardInterrupt for Ctrl-C, the default
    termination for SIGTERM). Handlers can only be installed in the main thread; elsewhere nothing is installed.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        """The signal that asked to stop, or None."""

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

        def restore() -> None:
            for s, handler in previous.items():
                signal.signal(s, handler if handler is not None else signal.SIG_DFL)

        def handler(signum: int, frame: Any) -> None:
            if self.signal is None:
                self.signal = signum
                return
            restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(signum)

        for s in STOP_SIGNALS:
            signal.signal(s, handler)
        try:
            yield
        finally:
            restore()


@dataclass(frozen=True)
class RunStart:
    """How a train call starts: a fresh run, a resume from a checkpoint, or a finished run with nothing to do."""

    resumed_at: int | None = None
    """Env step of the checkpoint a resume starts from (0 when none was readable); None for a fresh run."""
    already_finished: bool = False


def below_done_error(num_episodes: int, episodes_done: int, steps_done: int, folder: RunFolder) -> ConfigError:
    """The one-line refusal of a resume whose ``num_episodes`` is below what the run already did."""
    return ConfigError(
        f"num_episodes: {num_episodes} is below the {episodes_done} episodes ({steps_done} env steps) that "
        f"{folder.root} already did; resume with at least that many to finish it, or more to extend it"
    )


def write_failure(folder: RunFolder, exc: OSError) -> RunFolderWriteError:
    """The error for an OSError on ``folder``, after marking the run ``failed`` if ``run.json`` can be written."""
    try:
        folder.write_status(status="failed", error=describe_os_error(exc))
        marked = "marked failed"
    except OSError:
        marked = "run.json could not be updated"
    return RunFolderWriteError(
        f"{describe_os_error(exc)} ({marked}; once fixed, resume from the newest checkpoint with: "
        f"humanpower train --resume {folder.root})"
    )
