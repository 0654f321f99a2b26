"""Training losses accumulated on the device between two metric rows (no host read per training step)."""

from __future__ import annotations

import torch


class LossMeter:
    """Running sums of each network's training loss since the last :meth:`take`, kept on the losses' device.

    :meth:`add` costs no host synchronisation (a device-side add per loss); :meth:`take` reads the means once per
    logging interval. Sums are float64 (float32 on devices without it).
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        """Add one step's losses (0-dim tensors)."""
        for name, value in losses.items():
            total = self.sums.get(name)
            if total is None:
                dtype = torch.float32 if value.device.type == "mps" else torch.float64
                self.sums[name] = value.detach().to(dtype=dtype, copy=True)
                self.counts[name] = 1
            else:
                total.add_(value.detach())
                self.counts[name] += 1

    def take(self) -> dict[str, float]:
        """The mean loss per network since the last call (networks without a step since then are absent), and
        start a new window."""
        out = {name: float(total) / self.counts[name] for name, total in self.sums.items()}
        self.sums.clear()
        self.counts.clear()
        return out

    def state_dict(self) -> dict[str, tuple[float, int]]:
        """``{name: (sum, count)}`` (host values)."""
        return {name: (float(total), self.counts[name]) for name, total in self.sums.items()}

    def load_state_dict(self, d: dict[str, tuple[float, int]], device: torch.device) -> None:
        self.sums = {
            name: torch.tensor(total, dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
            for name, (total, _) in d.items()
        }
        self.counts = {name: int(count) for name, (_, count) in d.items()}


__all__ = ["LossMeter"]
