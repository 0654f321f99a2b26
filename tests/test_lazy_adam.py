"""LazyAdam: torch's Adam on the rows present in a sparse gradient, nothing elsewhere; clipping of sparse gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humanpower.learn.encoding import SparseRows
from humanpower.learn.layers import SparseInputLinear
from humanpower.learn.optim import LazyAdam, clip_grad_norm, clip_grad_norms, step_adams

ROWS, COLS = 12, 5


def _row_grad(rows: list[int], values: torch.Tensor) -> torch.Tensor:
    index = torch.tensor([rows])
    return torch.sparse_coo_tensor(index, values, (ROWS, COLS), check_invariants=True).coalesce()


@pytest.mark.parametrize("fused", [True, False])
def test_lazy_adam_is_torch_adam_on_the_rows_present(fused: bool) -> None:
    """Rows present at every step: torch's Adam bit for bit. Rows present at some steps: Adam with moments frozen
    in between and the global step in the bias correction. Rows never present: unchanged. Dense parameters of
    the same optimizer: torch's Adam bit for bit."""
    gen = torch.Generator().manual_seed(0)
    w0, b0 = torch.randn(ROWS, COLS, generator=gen), torch.randn(COLS, generator=gen)
    lazy_w, lazy_b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    dense_w, dense_b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    lr, wd, (beta1, beta2), eps = 0.01, 0.1, (0.9, 0.999), 1e-8
    lazy = LazyAdam([lazy_w, lazy_b], lr=lr, weight_decay=wd, fused=fused)
    dense = torch.optim.Adam([dense_w, dense_b], lr=lr, weight_decay=wd, fused=fused)
    always, sometimes, never = [0, 3], [5], [1, 2, 4, 6, 7, 8, 9, 10, 11]
    # The oracle for the row present at steps 1 and 3 only (float64, Adam's formulas with the global step).
    m = np.zeros(COLS)
    v = np.zeros(COLS)
    w5 = w0[5].double().numpy().copy()
    for step in range(1, 5):
        rows = always + (sometimes if step in (1, 3) else [])
        g_rows = torch.randn(len(rows), COLS, generator=gen)
        g_b = torch.randn(COLS, generator=gen)
        lazy_w.grad, lazy_b.grad = _row_grad(rows, g_rows), g_b.clone()
        dense_w.grad, dense_b.grad = _row_grad(rows, g_rows).to_dense(), g_b.clone()
        lazy.step()
        dense.step()
        if 5 in rows:
            g = g_rows[rows.index(5)].double().numpy() + wd * w5
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            w5 = w5 - lr / (1 - beta1**step) * m / (np.sqrt(v) / np.sqrt(1 - beta2**step) + eps)
        assert torch.equal(lazy_w[always], dense_w[always])
        assert torch.equal(lazy_b, dense_b)
        assert torch.equal(lazy_w[never], w0[never])
        assert not torch.equal(dense_w[never], w0[never])  # dense Adam moves rows without data (weight decay)
        np.testing.assert_allclose(lazy_w[5].detach().double().numpy(), w5, rtol=1e-5, atol=1e-6)
    state = lazy.state[lazy_w]
    assert torch.equal(state["exp_avg"][never], torch.zeros(len(never), COLS))
    assert float(state["step"]) == 4.0
    # Torch Adam's state format: a checkpoint of one loads into the other.
    again = torch.optim.Adam([dense_w, dense_b], lr=lr, weight_decay=wd, fused=fused)
    again.load_state_dict(lazy.state_dict())
    assert torch.equal(again.state[dense_w]["exp_avg"], state["exp_avg"])


def test_sparse_layer_gradient_is_the_coalesced_dense_gradient() -> None:
    torch.manual_seed(0)
    layer = SparseInputLinear(ROWS, COLS)
    twin = SparseInputLinear(ROWS, COLS)
    twin.load_state_dict(layer.state_dict())
    layer.sparse_grad = True
    rows = SparseRows(
        torch.tensor([[1, 4, 4], [7, 1, 0]]),
        torch.tensor([[1.0, 0.5, 2.0], [1.0, 3.0, 0.0]]),
        torch.tensor([2, 9]),
        torch.tensor([1.0, 1.0]),
        ROWS,
    )
    upstream = torch.randn(2, COLS)
    (layer.forward_sparse(rows) * upstream).sum().backward()
    (twin.forward_sparse(rows) * upstream).sum().backward()
    grad = layer.weight_t.grad
    assert grad is not None and grad.is_sparse
    assert sorted(grad._indices()[0].tolist()) == [0, 1, 2, 4, 7, 9]  # the rows read (padding column 0 included)
    assert twin.weight_t.grad is not None and not twin.weight_t.grad.is_sparse
    torch.testing.assert_close(grad.to_dense(), twin.weight_t.grad)
    # Clipping sees the dense gradient's norm and scales the sparse one like the dense one.
    clip_grad_norm([layer.weight_t, layer.bias], 0.1)
    clip_grad_norm([twin.weight_t, twin.bias], 0.1)
    assert layer.weight_t.grad is not None and layer.weight_t.grad.is_coalesced()
    assert layer.weight_t.grad is not None and layer.bias.grad is not None and twin.bias.grad is not None
    torch.testing.assert_close(layer.weight_t.grad.to_dense(), twin.weight_t.grad)
    torch.testing.assert_close(layer.bias.grad, twin.bias.grad)


def _adam_params(gen: torch.Generator, shapes: list[tuple[int, ...]]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.randn(*shape, generator=gen)) for shape in shapes]


def test_step_adams_is_each_optimizers_own_step_bit_for_bit() -> None:
    """Several optimizers stepped together (one fused kernel per hyper-parameter set) give exactly what each
    optimizer's own ``step()`` gives: torch's fused Adam with two lrs, LazyAdam (sparse and dense gradients), an
    unfused Adam and SGD (stepped on their own); a parameter without a gradient is left alone."""
    gen = torch.Generator().manual_seed(1)
    shapes = [(ROWS, COLS), (COLS,), (3, 4)]

    def build(params: list[list[torch.nn.Parameter]]) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(params[0], lr=0.01, weight_decay=0.1, fused=True),
            torch.optim.Adam(params[1], lr=0.003, weight_decay=0.1, fused=True),
            LazyAdam(params[2], lr=0.01, weight_decay=0.1, fused=True),
            torch.optim.Adam(params[3], lr=0.01, weight_decay=0.1),
            torch.optim.SGD(params[4], lr=0.1, weight_decay=0.1),
        ]

    together = [_adam_params(gen, shapes) for _ in range(5)]
    alone = [[torch.nn.Parameter(p.detach().clone()) for p in ps] for ps in together]
    opts_together, opts_alone = build(together), build(alone)
    for step in range(4):
        for k, (ps, qs) in enumerate(zip(together, alone, strict=True)):
            for i, (p, q) in enumerate(zip(ps, qs, strict=True)):
                if i == 2 and step == 1:  # no gradient at this step
                    p.grad = q.grad = None
                    continue
                g = torch.randn(p.shape, generator=gen)
                if k == 2 and i == 0:  # LazyAdam's row-sparse gradient
                    rows = [0, 3] if step % 2 else [1, 3, 7]
                    p.grad = q.grad = _row_grad(rows, g[: len(rows)])
                else:
                    p.grad, q.grad = g.clone(), g.clone()
        step_adams(opts_together)
        for opt in opts_alone:
            opt.step()
        for ps, qs in zip(together, alone, strict=True):
            for p, q in zip(ps, qs, strict=True):
                assert torch.equal(p, q)
    for a, b in zip(opts_together, opts_alone, strict=True):
        for p, q in zip(
            (p for g in a.param_groups for p in g["params"]),
            (q for g in b.param_groups for q in g["params"]),
            strict=True,
        ):
            assert a.state[p].keys() == b.state[q].keys()
            for key, value in a.state[p].items():
                if isinstance(value, torch.Tensor):
                    assert torch.equal(value, b.state[q][key]) and value.dtype == b.state[q][key].dtype, key


def test_clip_grad_norms_is_torch_per_set_bit_for_bit() -> None:
    """One pass over several parameter sets clips each set by its own norm and threshold, as torch's
    ``clip_grad_norm_`` on each set does (sets with no gradient are skipped, sparse gradients count densely)."""
    gen = np.random.default_rng(3)
    for _ in range(30):
        sets = [[torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(3))] for _ in range(3)]
        twins = [[torch.nn.Parameter(torch.zeros_like(p)) for p in ps] for ps in sets]
        for ps, ts in zip(sets, twins, strict=True):
            scale = float(np.exp(gen.uniform(-3, 3)))
            for p, t in zip(ps, ts, strict=True):
                g = torch.as_tensor(gen.normal(size=p.shape) * scale, dtype=torch.float32)
                p.grad, t.grad = g.clone(), g.clone()
        sets[1][1].grad = twins[1][1].grad = None
        thresholds = [float(np.exp(gen.uniform(-2, 2))) for _ in sets]
        clip_grad_norms(sets, thresholds)
        for ts, max_norm in zip(twins, thresholds, strict=True):
            torch.nn.utils.clip_grad_norm_(ts, max_norm)
        for ps, ts in zip(sets, twins, strict=True):
            for p, t in zip(ps, ts, strict=True):
                assert (p.grad is None) == (t.grad is None)
                if p.grad is not None:
                    assert torch.equal(p.grad, t.grad)
    with pytest.raises(ValueError, match="thresholds"):
        clip_grad_norms([[]], [])
