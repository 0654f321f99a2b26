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
    if not accelerated(device):
        if isinstance(x, np.ndarray) and x.flags.writeable and x.dtype.isnative and min(x.strides, default=0) >= 0:
            # torch.from_numpy wraps the array without a dispatched torch op (torch.as_tensor costs two); a dtype
            # change is numpy's conversion (the same IEEE rounding as torch's).
            want = _NUMPY_DTYPES.get(dtype) if dtype is not None else x.dtype
            if want is not None:
                host = torch.from_numpy(x if x.dtype == want else x.astype(want))
                return host if host.device == device else host.to(device)
        host = torch.as_tensor(x, dtype=dtype)
        return host if host.device == device else host.to(device)
    return torch.as_tensor(x, dtype=dtype).pin_memory().to(device, non_blocking=True)


_NUMPY_DTYPES: dict[torch.dtype | None, np.dtype] = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.int64: np.dtype(np.int64),
    torch.int32: np.dtype(np.int32),
    torch.bool: np.dtype(np.bool_),
}
"""The torch dtypes :func:`to_device` converts with numpy on the CPU (others go through ``torch.as_tensor``)."""


__all__ = ["accelerated", "to_device"]
