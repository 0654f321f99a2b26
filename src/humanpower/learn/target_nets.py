"""Target networks: frozen, always-eval copies of a main network, refreshed by a full state-dict copy.

Targets are used only on the right-hand side of the losses (DQN style): no gradients, no dropout, and a
periodic hard update every ``interval`` training steps (each network has its own interval).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class _EvalOnlyTrain:
    """Replacement for ``train`` on a target copy: always switches the whole copy to eval mode (picklable)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, mode: bool = True) -> nn.Module:
        return nn.Module.train(self.module, False)


class TargetNetwork:
    """A frozen copy of ``module`` updated every ``interval`` training steps.

    * ``module`` (attribute) is the copy: ``requires_grad`` False on every parameter, always in eval mode
      (``train()`` on it is a no-op that keeps eval mode).
    * ``maybe_update(train_step)`` copies the source's state dict when ``interval`` training steps have passed
      since the last copy (at ``interval, 2 * interval, ...`` when called every step).
    * Calling the target runs the copy under ``torch.no_grad()``.
    """

    def __init__(self, module: nn.Module, interval: int) -> None:
        if interval < 1:
            raise ValueError(f"target update interval must be >= 1, got {interval}")
        self.source = module
        self.interval = int(interval)
        self.module: nn.Module = copy.deepcopy(module)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.module.train = _EvalOnlyTrain(self.module)  # type: ignore[method-assign]
        self.module.eval()
        self.last_update_step = 0
        self.num_updates = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Forward through the frozen copy (no gradients, eval mode)."""
        if any(m.training for m in self.module.modules()):
            self.module.eval()
        with torch.no_grad():
            return self.module(*args, **kwargs)

    def update(self, train_step: int | None = None) -> None:
        """Copy the source's full state dict now (records ``train_step`` as the last update when given)."""
        self.module.load_state_dict(self.source.state_dict())
        self.num_updates += 1
        if train_step is not None:
            self.last_update_step = int(train_step)

    def maybe_update(self, train_step: int) -> bool:
        """Update if ``interval`` training steps passed since the last update; returns whether it did."""
        if train_step - self.last_update_step >= self.interval:
            self.update(train_step)
            return True
        return False

    def to(self, device: torch.device | str) -> TargetNetwork:
        """Move the copy to ``device`` (the source is not touched)."""
        self.module.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """The copy's weights and the update bookkeeping."""
        return {
            "module": self.module.state_dict(),
            "last_update_step": self.last_update_step,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.last_update_step = int(state["last_update_step"])
        self.num_updates = int(state["num_updates"])
