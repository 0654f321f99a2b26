"""Atomic checkpoints, the run folder layout and its lock.

A run folder holds::

    run.lock           lock file: the process training in the folder holds an exclusive OS lock on it
    config.yaml        the resolved Phase2Config (rewritten when a resume extends num_episodes)
    world.yaml         the world (when the world can be saved; written by the caller)
    run.json           status (running / interrupted / finished / failed), counters, latest checkpoint name
    metrics.csv        one row per logged episode
    tb/                TensorBoard event files
    checkpoints/       ckpt-<total_steps>.pt (the newest ``keep_checkpoints`` are kept; a corrupt one found on resume
                       is renamed ckpt-<total_steps>.pt.corrupt)
    policy.pt          the final policy (networks + featurizer + config)
    rollout.gif        a rollout of the final policy (when the world can be rendered)

Every file is written to a temporary name in the same folder and renamed into place, so a crash, kill -9 or Ctrl-C
at any moment leaves the previous version intact and the folder resumable. The checkpoints are found by listing
``checkpoints/`` (not from ``run.json``), so a deleted or corrupt newest file leaves the older ones usable.

One process at a time writes a run folder: it holds an exclusive ``flock`` on ``run.lock`` for the whole run (the
OS releases it when the process ends, even by kill -9). A second writer gets :class:`RunFolderBusyError`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from humanpower.errors import CheckpointError, RunError

CHECKPOINT_FORMAT = 1
POLICY_KIND = "humanpower-policy"
"""The ``kind`` of a policy file (``policy.pt``)."""
LOCK_NAME = "run.lock"
LOCK_PATIENCE_S = 1.0
"""How long taking the lock retries: :meth:`RunFolder.is_busy` (eval, a resume's early check) holds a shared lock
for an instant, which must not turn a starting run away; a real writer holds it for the whole run."""
CHECKPOINT_GLOB = "ckpt-*.pt"


class RunFolderBusyError(CheckpointError):
    """Another process is training in this run folder (it holds the folder's lock)."""


class RunFolderWriteError(RunError):
    """The run folder could not be written or read (full disk, read-only folder...); the message names the path."""


def with_path(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file name (a failed ``write`` does not say which file it was writing)."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` for an OSError (one line)."""
    reason = exc.strerror or (errno.errorcode.get(exc.errno, "") if exc.errno else "") or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename.

    An OSError (full disk, read-only folder) names ``path`` and leaves the previous version of the file intact.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise with_path(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise with_path(exc, path) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_torch(path: Path, obj: dict[str, Any]) -> None:
    """torch.save into memory, then an atomic write."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **obj}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_torch(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_torch`; any problem is one CheckpointError naming the file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file; report them all the same way
        reason = " ".join(str(exc).split())
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}: {reason})") from exc
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a humanpower checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return obj


def policy_from_checkpoint(path: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The policy-file contents (as :meth:`LearnedModel.to_checkpoint` writes) inside a training checkpoint."""
    try:
        state = ckpt["state"]
        learner = state["learner"]
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": POLICY_KIND,
            "config": state["config"],
            "nets": learner["nets"],
            "featurizer": learner["featurizer"],
        }
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a training checkpoint (missing {exc})") from exc


def create_run_dir(parent: Path, name: str) -> Path:
    """Create and return a new empty folder ``parent/name``, or ``name-2``, ``name-3``... when taken.

    ``mkdir`` fails atomically when the folder exists, so two runs started in the same second get two folders.
    """
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            candidate = parent / (name if n == 1 else f"{name}-{n}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
    except OSError as exc:
        raise RunFolderWriteError(f"cannot create a run folder: {describe_os_error(exc)}") from exc
    raise RunFolderWriteError(f"{parent}: no free run folder name {name}-N (N < 10000)")


@dataclass(frozen=True)
class FoundCheckpoint:
    """The newest readable checkpoint of a run folder."""

    path: Path
    data: dict[str, Any]


class RunFolder:
    """Paths, status, lock and checkpoints of one training run folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def world_path(self) -> Path:
        return self.root / "world.yaml"

    @property
    def status_path(self) -> Path:
        return self.root / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def tb_dir(self) -> Path:
        return self.root / "tb"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def policy_path(self) -> Path:
        return self.root / "policy.pt"

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(exist_ok=True)

    # -- the lock -----------------------------------------------------------------------------------------------
    def _busy(self, fd: int) -> RunFolderBusyError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        return RunFolderBusyError(
            f"{self.root}: another humanpower process (pid {holder}) is training in this run folder; "
            "wait for it to end or use another folder"
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's exclusive lock (creating the folder and ``run.lock`` if needed) for the block.

        Raises RunFolderBusyError if another process holds it, OSError if the folder cannot be written.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + LOCK_PATIENCE_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise self._busy(fd) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    def check_not_busy(self) -> None:
        """Raise RunFolderBusyError if a process holds the folder's lock now (a quick check before a resume)."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._busy(fd) from None
        finally:
            os.close(fd)

    def is_busy(self) -> bool:
        """Whether a process holds the folder's lock now (is training in it)."""
        try:
            self.check_not_busy()
        except RunFolderBusyError:
            return True
        return False

    # -- status -------------------------------------------------------------------------------------------------
    def read_status(self) -> dict[str, Any]:
        if not self.status_path.is_file():
            raise CheckpointError(f"{self.root}: not a humanpower run folder (run.json missing)")
        try:
            status: dict[str, Any] = json.loads(self.status_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{self.status_path}: corrupt run status ({exc})") from exc
        return status

    def write_status(self, **fields: Any) -> None:
        """Update fields of ``run.json`` (a field given as None is removed)."""
        status = self.read_status() if self.status_path.is_file() else {}
        status.update(fields)
        status = {k: v for k, v in status.items() if v is not None}
        atomic_write_text(self.status_path, json.dumps(status, indent=2, sort_keys=True) + "\n")

    # -- checkpoints --------------------------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], total_steps: int, keep: int) -> Path:
        path = self.checkpoint_dir / f"ckpt-{total_steps:010d}.pt"
        save_torch(path, state)
        self.write_status(latest_checkpoint=path.name, total_steps=total_steps)
        for old in self.checkpoints()[keep:]:
            old.unlink(missing_ok=True)
        return path

    def checkpoints(self) -> list[Path]:
        """The checkpoint files in ``checkpoints/``, newest (most env steps) first."""
        if not self.checkpoint_dir.is_dir():
            return []
        return sorted(self.checkpoint_dir.glob(CHECKPOINT_GLOB), reverse=True)

    def latest_checkpoint(self) -> Path:
        """The newest checkpoint file (CheckpointError if there is none)."""
        found = self.checkpoints()
        if not found:
            raise CheckpointError(f"{self.root}: no checkpoint to resume from")
        return found[0]

    def newest_readable_checkpoint(self, *, set_aside: bool) -> tuple[FoundCheckpoint | None, list[str]]:
        """The newest checkpoint that loads, and one line per newer one that does not.

        With ``set_aside`` (a resume, under the lock) each unreadable file is renamed ``<name>.corrupt`` so that
        later checkpoints and the pruning of old ones ignore it.
        """
        skipped: list[str] = []
        for path in self.checkpoints():
            try:
                return FoundCheckpoint(path, load_torch(path)), skipped
            except CheckpointError as exc:
                if set_aside:
                    aside = path.with_name(path.name + ".corrupt")
                    os.replace(path, aside)
                    skipped.append(f"{exc}; moved it to {aside.name}")
                else:
                    skipped.append(str(exc))
        return None, skipped

    def remove_stale_temp_files(self) -> None:
        """Delete the temporary files of writes cut short by a kill (call only while holding the lock)."""
        for folder in (self.root, self.checkpoint_dir):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class PolicySource:
    """The policy ``humanpower eval`` evaluates: its file, the policy-file contents and a note on where it came from."""

    path: Path
    policy: dict[str, Any]
    note: str | None


def newest_policy(folder: RunFolder) -> PolicySource:
    """The final policy of a run that ended (finished or interrupted), else its newest readable checkpoint.

    A run killed (kill -9, power loss) leaves ``run.json`` at ``running`` with no process holding the lock and no
    ``policy.pt``: its newest readable checkpoint is used and the note says so. CheckpointError if there is none.
    """
    status = str(folder.read_status().get("status", "unknown"))
    if status in ("finished", "interrupted") and folder.policy_path.is_file():
        return PolicySource(folder.policy_path, load_torch(folder.policy_path), None)
    if status == "running":
        why = (
            "the run is still training"
            if folder.is_busy()
            else "the run was killed (run.json says running, but no process holds the folder)"
        )
    elif status == "failed":
        why = "the run failed"
    else:
        why = f"the run has no final policy (status {status})"
    found, skipped = folder.newest_readable_checkpoint(set_aside=False)
    if found is None:
        raise CheckpointError(
            f"{folder.root}: {why} before writing a readable checkpoint; nothing to evaluate "
            f"(resume it with: humanpower train --resume {folder.root})"
        )
    state = found.data.get("state", {})
    note = (
        f"{why}; evaluating its newest readable checkpoint {found.path.name} "
        f"(episode {state.get('episode', '?')}, env step {state.get('total_steps', '?')})"
    )
    if skipped:
        note += f"; skipped {len(skipped)} unreadable newer checkpoint(s)"
    return PolicySource(found.path, policy_from_checkpoint(found.path, found.data), note)
