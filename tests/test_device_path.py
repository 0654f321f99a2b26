"""The accelerator code path of a training step, run on the CPU: no host reads of device values, pinned transfers.

On an accelerator the training step must queue its work without waiting for it: no ``.item()``, ``float(t)``,
``bool(t)``, ``.cpu()``, ``.tolist()``, no data-dependent shapes (``torch.unique``, ``nonzero``), and per-step
host-to-device copies from pinned memory with ``non_blocking=True``. Every device-kind decision goes through
``humanpower.learn.device.accelerated``; here it answers True for the CPU, ``Tensor.pin_memory`` (which needs
CUDA) records its calls, and every host read raises while the steps run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from humanpower.learn import device as devices
from humanpower.learn.config import Phase2Config
from test_learner_step import SMALL
from test_step_equivalence import learner, transitions

HOST_READS = ("item", "tolist", "cpu", "numpy", "nonzero", "__float__", "__int__", "__bool__", "__index__")


def _forbidden(name: str) -> Callable[..., Any]:
    def read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"host read of a device value in the training step: Tensor.{name}")

    return read


def test_accelerator_path_reads_nothing_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    data = transitions("trivial", 120)
    # No dropout: the accelerator path draws its masks with torch's kernel, the CPU path with its own.
    cfg = Phase2Config(**{**SMALL, "dropout": 0.0}, u_r_use_network=True)  # type: ignore[arg-type]
    t = cfg.warmup_env_steps + 1
    plain = learner("trivial", cfg, data)  # the CPU path, for the values
    want = []
    for i in range(3):
        torch.manual_seed(i)
        want.append(plain.train_step(t + i))

    pinned: list[torch.Size] = []

    def pin_memory(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        pinned.append(self.shape)
        return self

    monkeypatch.setattr(devices, "accelerated", lambda device: True)
    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    fast = learner("trivial", cfg, data)  # built as on an accelerator: no state memos
    assert all(getattr(t.module, "state_memo", None) is None for t in fast.targets.values())
    with monkeypatch.context() as guard:
        for name in HOST_READS:
            guard.setattr(torch.Tensor, name, _forbidden(name))
        guard.setattr(torch, "unique", _forbidden("unique"))
        got = []
        for i in range(3):
            torch.manual_seed(i)
            got.append(fast.step(t + i))
    assert len(pinned) >= 10  # the batch's index and feature arrays, the sampled X_h goals
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for name in w:  # the same losses as the CPU path (rows not deduplicated, no memo: same values)
            assert float(g[name]) == pytest.approx(w[name], rel=1e-4, abs=1e-7), name
    means = fast.losses.take()  # read once, at the logging interval
    for name in want[0]:
        assert means[name] == pytest.approx(np.mean([float(g[name]) for g in got]), rel=1e-6)
    assert fast.losses.take() == {}


def test_bench_learner_without_cuda_stops_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_learner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["bench_learner.py", "--device", "cuda"])
    with pytest.raises(SystemExit) as exc:
        bench_learner.main()
    assert str(exc.value) == "bench_learner.py: --device cuda: CUDA is not available on this machine"
