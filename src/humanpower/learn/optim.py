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

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim import optimizer as _optimizer_module
from torch.optim.adam import adam

from humanpower.learn import device
from humanpower.learn.layers import SparseInputLinear


class LazyAdam(torch.optim.Adam):
    """``torch.optim.Adam`` (L2 ``weight_decay``, no amsgrad) that updates a parameter with a sparse COO gradient
    lazily: only the rows (first dimension) present in the gradient change, with their moments.

    One Adam kernel call per parameter group steps the dense parameters and the gathered rows of the sparse ones
    together (``torch._fused_adam_``, as torch's fused Adam, with ``fused=True``: :func:`step_adams`; torch's
    functional Adam otherwise), so a row gets exactly the arithmetic it would get from ``torch.optim.Adam`` with
    the same settings and state; the rows are then written back. A sparse
    gradient is coalesced (duplicate rows summed) first. On the CPU this costs no host synchronisation; on an
    accelerator coalescing an uncoalesced gradient does (its row count is data-dependent), and so does the sparse
    layer's ``torch.unique``: use ``first_layer_updates: dense`` (the default) there.
    """

    def __init__(
        self, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0, fused: bool | None = None
    ) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay, fused=fused)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """One Adam step: lazy for sparse gradients, torch's Adam for the rest. ``closure`` is not supported."""
        if closure is not None:
            raise ValueError("LazyAdam.step: closures are not supported")
        for group in self.param_groups:
            if group["amsgrad"] or group["maximize"] or group["differentiable"]:
                raise ValueError("LazyAdam: amsgrad, maximize and differentiable are not supported")
        if all(group["fused"] for group in self.param_groups):
            step_adams([self])
            return
        for group in self.param_groups:
            work = _AdamWork()
            for p in group["params"]:
                if p.grad is not None:
                    work.add(self, group, p, sparse_ok=True)
            if work.params:
                self._functional(group, work.params, work.grads, work.exp_avgs, work.exp_avg_sqs, work.steps)
            work.write_back()

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


def _adam_state(opt: torch.optim.Optimizer, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
    """The parameter's Adam state, created as ``torch.optim.Adam`` creates it (the same tensors and dtypes)."""
    state = opt.state[p]
    if not state:
        on_device = group["fused"] or group["capturable"]
        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device if on_device else "cpu")
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


class _AdamWork:
    """The tensor lists of one Adam kernel call: dense parameters as they are, the rows present in a sparse
    gradient gathered (and written back after the kernel by :meth:`write_back`)."""

    def __init__(self) -> None:
        self.params: list[torch.Tensor] = []
        self.grads: list[torch.Tensor] = []
        self.exp_avgs: list[torch.Tensor] = []
        self.exp_avg_sqs: list[torch.Tensor] = []
        self.steps: list[torch.Tensor] = []
        self.rows_of: list[tuple[torch.Tensor, dict[str, Any], torch.Tensor, int]] = []

    def add(self, opt: torch.optim.Optimizer, group: dict[str, Any], p: torch.Tensor, sparse_ok: bool) -> None:
        grad = p.grad
        assert grad is not None
        state = _adam_state(opt, p, group)
        if grad.is_sparse:
            if not sparse_ok:
                raise RuntimeError("Adam does not support sparse gradients, please consider SparseAdam instead")
            grad = grad.coalesce()
            rows = grad._indices()[0]
            self.rows_of.append((p, state, rows, len(self.params)))
            self.params.append(p.index_select(0, rows))
            self.grads.append(grad._values())
            self.exp_avgs.append(state["exp_avg"].index_select(0, rows))
            self.exp_avg_sqs.append(state["exp_avg_sq"].index_select(0, rows))
        else:
            self.params.append(p)
            self.grads.append(grad)
            self.exp_avgs.append(state["exp_avg"])
            self.exp_avg_sqs.append(state["exp_avg_sq"])
        self.steps.append(state["step"])

    def write_back(self) -> None:
        """Copy the updated gathered rows (parameter and both moments) into their tensors."""
        for p, state, rows, i in self.rows_of:
            p.index_copy_(0, rows, self.params[i])
            state["exp_avg"].index_copy_(0, rows, self.exp_avgs[i])
            state["exp_avg_sq"].index_copy_(0, rows, self.exp_avg_sqs[i])


def _fusable(opt: torch.optim.Optimizer) -> bool:
    """Whether :func:`step_adams` may step ``opt`` itself: a ``torch.optim.Adam`` (or :class:`LazyAdam`) whose
    groups all use torch's fused kernel with plain settings (no amsgrad, maximize, differentiable, capturable,
    decoupled weight decay, tensor lr), and no step hooks (which ``opt.step()`` would run)."""
    if not isinstance(opt, torch.optim.Adam) or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks:
        return False
    if _optimizer_module._global_optimizer_pre_hooks or _optimizer_module._global_optimizer_post_hooks:
        return False
    for group in opt.param_groups:
        if not group["fused"] or isinstance(group["lr"], torch.Tensor) or group.get("decoupled_weight_decay"):
            return False
        if group["amsgrad"] or group["maximize"] or group["differentiable"] or group["capturable"]:
            return False
    return True


@torch.no_grad()
def step_adams(optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """``opt.step()`` for every optimizer, in as few kernel calls as possible (the same arithmetic).

    Fused Adam optimizers (``torch.optim.Adam(..., fused=True)`` and :class:`LazyAdam`, see :func:`_fusable`)
    are stepped together: one ``torch._foreach_add_`` for all their step counters and one ``torch._fused_adam_``
    per (lr, betas, eps, weight decay, device, dtype), which is what torch's fused Adam does for each optimizer
    on its own (its kernel is elementwise per parameter, so grouping parameters of several optimizers changes
    no value). :class:`LazyAdam`'s sparse gradients are stepped on their rows. Every other optimizer gets its
    own ``step()``. The optimizer states are torch Adam's (created as ``torch.optim.Adam`` creates them).
    """
    calls: dict[tuple[Any, ...], _AdamWork] = {}
    for opt in optimizers:
        if not _fusable(opt):
            opt.step()
            continue
        sparse_ok = isinstance(opt, LazyAdam)
        for group in opt.param_groups:
            beta1, beta2 = group["betas"]
            hyper = (float(group["lr"]), float(beta1), float(beta2), float(group["eps"]), float(group["weight_decay"]))
            for p in group["params"]:
                if p.grad is None:
                    continue
                work = calls.get((*hyper, p.device, p.dtype))
                if work is None:
                    work = calls[(*hyper, p.device, p.dtype)] = _AdamWork()
                work.add(opt, group, p, sparse_ok)
    if not calls:
        return
    torch._foreach_add_([s for work in calls.values() for s in work.steps], 1)
    for (lr, beta1, beta2, eps, weight_decay, _, _), work in calls.items():
        torch._fused_adam_(
            work.params,
            work.grads,
            work.exp_avgs,
            work.exp_avg_sqs,
            [],
            work.steps,
            amsgrad=False,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=weight_decay,
            eps=eps,
            maximize=False,
        )
        work.write_back()


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
    sparse gradients allowed: :func:`clip_grad_norms` of one parameter set."""
    clip_grad_norms([params], [max_norm])


def clip_grad_norms(param_sets: Sequence[Sequence[nn.Parameter]], max_norms: Sequence[float]) -> None:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)`` for each parameter set and its threshold, with the
    same arithmetic (bit for bit), in one pass: one ``_foreach_norm`` over every gradient.

    Each set's gradients are scaled by ``min(1, max_norm / (total_norm + 1e-6))``, where total_norm is the
    2-norm of that set's gradients together. A sparse COO gradient is coalesced first (its duplicate rows
    summed; the result replaces ``p.grad``), so its norm is the norm of the dense gradient it stands for. On the
    CPU the coefficients are computed on the host (one read of all the norms; the exact identity multiplication
    by 1 is skipped); on an accelerator each coefficient stays on the device (no host sync).
    """
    if len(param_sets) != len(max_norms):
        raise ValueError(f"clip_grad_norms: {len(param_sets)} parameter sets but {len(max_norms)} thresholds")
    grads: list[torch.Tensor] = []
    bounds: list[tuple[int, int, float]] = []
    for params, max_norm in zip(param_sets, max_norms, strict=True):
        start = len(grads)
        for p in params:
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                g = p.grad = g.coalesce()
                g = g._values()
            grads.append(g)
        if len(grads) > start:
            bounds.append((start, len(grads), float(max_norm)))
    if not grads:
        return
    norms = torch.stack(torch._foreach_norm(grads))
    totals = [torch.linalg.vector_norm(norms[a:b]) for a, b, _ in bounds]
    host = not device.accelerated(grads[0].device) and all(t.dtype == torch.float32 for t in totals)
    if not host:
        for (a, b, max_norm), total in zip(bounds, totals, strict=True):
            torch._foreach_mul_(grads[a:b], torch.clamp(max_norm / (total + 1e-6), max=1.0))
        return
    values = torch.stack(totals).tolist() if len(totals) > 1 else [totals[0].item()]
    scaled: list[torch.Tensor] = []
    coefs: list[float] = []
    for (a, b, max_norm), value in zip(bounds, values, strict=True):
        # torch's float32 arithmetic (max_norm / t is reciprocal(t) * max_norm), on the host: no tiny tensor ops.
        coef = min(
            (np.float32(1.0) / (np.float32(value) + np.float32(1e-6))) * np.float32(max_norm),
            np.float32(1.0),
        )
        if coef < 1.0:
            scaled.extend(grads[a:b])
            coefs.extend([float(coef)] * (b - a))
    if scaled:
        torch._foreach_mul_(scaled, coefs)


__all__ = ["LazyAdam", "clip_grad_norm", "clip_grad_norms", "step_adams", "use_sparse_first_layer_gradients"]
