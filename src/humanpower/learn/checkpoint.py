"""Atomic checkpoints and the run folder layout.

A run folder holds::

    config.yaml        the resolved Phase2Config
    world.yaml         the world (when the world can be saved; written by the caller)
    run.json           status (running / interrupted / finished), counters, latest checkpoint name
    metrics.csv        one row per logged episode
    tb/                TensorBoard event files
    checkpoints/       ckpt-<total_steps>.pt (the newest ``keep_checkpoints`` are kept)
    policy.pt          the final policy (networks + featurizer + config)
    rollout.gif        a rollout of the final policy (when the world can be rendered)

Every file is written to a temporary name in the same folder and renamed into place, so a crash or Ctrl-C at
any moment leaves the previous version intact and the folder resumable.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from humanpower.errors import CheckpointError

CHECKPOINT_FORMAT = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
        raise CheckpointError(
            f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a humanpower checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return obj


class RunFolder:
    """Paths and status of one training run folder."""

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

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(exist_ok=True)

    def read_status(self) -> dict[str, Any]:
        if not self.status_path.is_file():
            raise CheckpointError(f"{self.root}: not a humanpower run folder (run.json missing)")
        try:
            status: dict[str, Any] = json.loads(self.status_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{self.status_path}: corrupt run status ({exc})") from exc
        return status

    def write_status(self, **fields: Any) -> None:
        status = self.read_status() if self.status_path.is_file() else {}
        status.update(fields)
        atomic_write_text(self.status_path, json.dumps(status, indent=2, sort_keys=True) + "\n")

    def save_checkpoint(self, state: dict[str, Any], total_steps: int, keep: int) -> Path:
        path = self.checkpoint_dir / f"ckpt-{total_steps:010d}.pt"
        save_torch(path, state)
        self.write_status(latest_checkpoint=path.name, total_steps=total_steps)
        for old in sorted(self.checkpoint_dir.glob("ckpt-*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def latest_checkpoint(self) -> Path:
        name = self.read_status().get("latest_checkpoint")
        if not name:
            raise CheckpointError(f"{self.root}: no checkpoint to resume from")
        return self.checkpoint_dir / str(name)
