"""The learner's optimizer mechanics: lazy (row-sparse) Adam for the sparse first layers, and gradient clipping.

**Why lazy Adam.** A sparse-input first layer (:class:`~humanpower.learn.layers.SparseInputLinear`) reads only
the weight rows of the input features present in a batch: on ``large`` about 200 of its 3,006 rows per step.
With a dense gradient, torch's Adam still steps all 3,006 x 256 weights, their moments and their weight decay
every step, three times (Q_r, V_h^e, X_h); on the CPU that, zero-filling the dense gradient and its norm were
about 40% of a ``large`` step (docs/PERFORMANCE.md). :class:`LazyAdam` is torch's Adam for every parameter
with a dense gradient, and *lazy Adam* for a parameter whose gradient is a sparse COO tensor of rows (the first
layer with ``sparse_grad`` on): only the rows present in the gradient are updated, with torch's Adam arithmetic
(the same kernel) on those rows, L2 weight decay included; every other row keeps its weights and both moments.

**How it differs from dense Adam** (``first_layer_updates: dense``). Dense Adam also moves a row whose feature
is absent from the batch: its gradient is then ``weight_decay * w`` alone, and its moments decay. So under dense
Adam the rows of features not seen for a while keep drifting with their old momentum and shrink by weight decay
(with Adam's normalisation a gradient of ``weight_decay * w`` alone moves a weight by up to ``lr`` per step,
towards 0); under lazy Adam they wait unchanged until their feature appears again, and then their moments are
the ones they had when last seen (the bias correction uses the global step count, as in TensorFlow's LazyAdam
and torch's ``SparseAdam``). Rows present at every step (the constant layout of a world) get exactly dense
Adam's updates. The loss, the gradient and the clipping are the same either way (``tests/test_lazy_adam.py``
checks the update against ``torch.optim.Adam`` row by row; ``tests/test_step_equivalence.py`` the losses and
gradients against the reference step). The optimizer state has torch Adam's format (``step``, ``exp_avg``,
``exp_avg_sq`` per parameter), so a checkpoint can be resumed with either setting.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam

from humanpower.learn import device
from humanpower.learn.layers import SparseInputLinear


class LazyAdam(torch.optim.Adam):
    """``torch.optim.Adam`` (L2 ``weight_decay``, no amsgrad) that updates a parameter with a sparse COO gradient
    lazily: only the rows (first dimension) present in the gradient change, with their moments.

    One Adam kernel call per parameter group steps the dense parameters and the gathered rows of the sparse ones
    together (``torch._fused_adam_``, as torch's fused Adam, with ``fused=True``; torch's functional Adam
    otherwise), so a row gets exactly the arithmetic it would get from ``torch.optim.Adam`` with the same
    settings and state; the rows are then written back. A sparse
    gradient is coalesced (duplicate rows summed) first. On the CPU this costs no host synchronisation; on an
    accelerator coalescing an uncoalesced gradient does (its row count is data-dependent), and so does the sparse
    layer's ``torch.unique``: use ``first_layer_updates: dense`` (the default) there.
    """

    def __init__(
        self, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0, fused: bool | None = None
    ) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay, fused=fused)

    def _state(self, p: nn.Parameter, group: dict[str, Any]) -> dict[str, Any]:
        """The parameter's Adam state, created as ``torch.optim.Adam`` creates it."""
        state = self.state[p]
        if not state:
            on_device = group["fused"] or group["capturable"]
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device if on_device else "cpu")
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """One Adam step: lazy for sparse gradients, torch's Adam for the rest. ``closure`` is not supported."""
        if closure is not None:
            raise ValueError("LazyAdam.step: closures are not supported")
        for group in self.param_groups:
            if group["amsgrad"] or group["maximize"] or group["differentiable"]:
                raise ValueError("LazyAdam: amsgrad, maximize and differentiable are not supported")
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            exp_avgs: list[torch.Tensor] = []
            exp_avg_sqs: list[torch.Tensor] = []
            steps: list[torch.Tensor] = []
            rows_of: list[tuple[nn.Parameter, dict[str, Any], torch.Tensor, int]] = []
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                state = self._state(p, group)
                if grad.is_sparse:
                    grad = grad.coalesce()
                    rows = grad._indices()[0]
                    rows_of.append((p, state, rows, len(params)))
                    params.append(p.index_select(0, rows))
                    grads.append(grad._values())
                    exp_avgs.append(state["exp_avg"].index_select(0, rows))
                    exp_avg_sqs.append(state["exp_avg_sq"].index_select(0, rows))
                else:
                    params.append(p)
                    grads.append(grad)
                    exp_avgs.append(state["exp_avg"])
                    exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            beta1, beta2 = group["betas"]
            if group["fused"] and params:
                # What torch's fused Adam does for one device and dtype (every network's parameters), minus its
                # per-call dispatch: one kernel over the dense parameters and the gathered rows.
                torch._foreach_add_(steps, 1)
                torch._fused_adam_(
                    params,
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    [],
                    steps,
                    amsgrad=False,
                    lr=group["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group["weight_decay"],
                    eps=group["eps"],
                    maximize=False,
                )
            else:
                self._functional(group, params, grads, exp_avgs, exp_avg_sqs, steps)
            for p, state, rows, i in rows_of:  # write the updated rows back
                p.index_copy_(0, rows, params[i])
                state["exp_avg"].index_copy_(0, rows, exp_avgs[i])
                state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sqs[i])

    @staticmethod
    def _functional(
        group: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        exp_avgs: list[torch.Tensor],
        exp_avg_sqs: list[torch.Tensor],
        steps: list[torch.Tensor],
    ) -> None:
        """torch's functional Adam (the unfused kernels) with the group's settings."""
        beta1, beta2 = group["betas"]
        adam(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            foreach=group["foreach"],
            capturable=group["capturable"],
            fused=group["fused"],
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )


def use_sparse_first_layer_gradients(modules: Iterable[nn.Module]) -> int:
    """Make every :class:`SparseInputLinear` in ``modules`` produce sparse (row) weight gradients from sparse
    inputs (for :class:`LazyAdam`); returns how many layers were switched."""
    count = 0
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, SparseInputLinear):
                layer.sparse_grad = True
                count += 1
    return count


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)`` with the same arithmetic, minus its overhead, and
    sparse gradients allowed.

    Scales the gradients by ``min(1, max_norm / (total_norm + 1e-6))``, where total_norm is the 2-norm of all
    gradients together. A sparse COO gradient is coalesced first (its duplicate rows summed; the result replaces
    ``p.grad``), so its norm is the norm of the dense gradient it stands for. On the CPU the (then exact
    identity) multiplication by 1 is skipped; on an accelerator the coefficient stays on the device (no host
    sync).
    """
    grads: list[torch.Tensor] = []
    for p in params:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            g = p.grad = g.coalesce()
            g = g._values()
        grads.append(g)
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if not device.accelerated(grads[0].device) and total.dtype == torch.float32:
        # torch's float32 arithmetic (max_norm / t is reciprocal(t) * max_norm), on the host: no tiny tensor ops.
        coef = min(
            (np.float32(1.0) / (np.float32(total.item()) + np.float32(1e-6))) * np.float32(max_norm),
            np.float32(1.0),
        )
        if coef < 1.0:
            torch._foreach_mul_(grads, float(coef))
        return
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


__all__ = ["LazyAdam", "clip_grad_norm", "use_sparse_first_layer_gradients"]
