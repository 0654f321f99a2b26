"""The device path of a training step: which shortcuts are worth a host read, and how host data reaches the device.

On the CPU, reading a tensor's value on the host (``.item()``, ``int(t)``, a data-dependent shape such as
``torch.unique``'s) is free, and the learner uses such reads to skip work: deduplicating the states of a query,
remembering target values per state (:class:`~humanpower.learn.layers.StateMemo`), a host-side clip
coefficient, lazy first-layer updates. On an accelerator each such read waits for every queued kernel (a host
sync), which costs more than the work it saves, so there the step does none of them (:func:`accelerated`), and
every per-step host-to-device copy comes from pinned memory without blocking (:func:`to_device`).

Everything that depends on the device kind asks :func:`accelerated`, so a test can run the accelerator path on
the CPU by replacing it (``tests/test_device_path.py``).
"""

from __future__ import annotations

import numpy as np
import torch


def accelerated(device: torch.device) -> bool:
    """Whether ``device`` is an accelerator, where reading a device value on the host costs a sync (every device
    but the CPU)."""
    return device.type != "cpu"


def to_device(x: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Host array ``x`` as a tensor on ``device`` (of ``dtype``).

    On the CPU: ``torch.as_tensor`` (no copy where none is needed). On an accelerator: a host tensor in pinned
    (page-locked) memory copied with ``non_blocking=True``, so the host queues the copy and moves on (torch's
    pinned allocator keeps the buffer alive until the copy is done).
    """
    host = torch.as_tensor(x, dtype=dtype)
    if not accelerated(device):
        return host if host.device == device else host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


__all__ = ["accelerated", "to_device"]
