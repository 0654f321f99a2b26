"""The sparse first layer: the same function, parameters and state dict as the dense ``nn.Linear``.

A gridworld state encoding is a constant row (the static layout) plus a few active entries;
:class:`SparseInputLinear` computes the first layer as an embedding-bag sum of weight columns with the constant
row folded into the bias. These tests show equality with the dense layer (values and gradients), with the dense
encoder and with the Linear's checkpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from humanpower.encoders import GridStateEncoder
from humanpower.learn.encoding import Featurizer, SparseRows, SparseStateEncoder
from humanpower.learn.layers import SparseInputLinear
from humanpower.learn.networks import QRNetwork
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.grid.state import GridState


def random_rows(n: int, dim: int, k: int, seed: int) -> SparseRows:
    """Rows with a constant part, ``k`` entries each (some of value 0 = padding, some not 1), repeats allowed."""
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, dim, (n, k), generator=gen)
    value = torch.rand((n, k), generator=gen) * 2.0
    value[:, -1] = 0.0  # padding entries
    value[: n // 2, 0] = 1.0
    constant_index = torch.randperm(dim, generator=gen)[: dim // 4]
    constant_value = torch.ones(constant_index.shape[0])
    return SparseRows(index, value, constant_index, constant_value, dim)


def test_sparse_forward_and_gradients_equal_the_dense_layer() -> None:
    torch.manual_seed(0)
    layer = SparseInputLinear(40, 8)
    rows = random_rows(13, 40, 5, seed=1)
    dense = rows.dense()
    grad_out = torch.randn(13, 8)

    out_sparse = layer.forward_sparse(rows)
    (out_sparse * grad_out).sum().backward()
    g_sparse = (layer.weight_t.grad.clone(), layer.bias.grad.clone())  # type: ignore[union-attr]
    layer.zero_grad()
    out_dense = layer(dense)
    (out_dense * grad_out).sum().backward()
    torch.testing.assert_close(out_sparse, out_dense, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_sparse[0], layer.weight_t.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_sparse[1], layer.bias.grad, rtol=1e-5, atol=1e-5)
    ref = nn.functional.linear(dense, layer.weight, layer.bias)
    torch.testing.assert_close(out_sparse, ref, rtol=1e-5, atol=1e-5)


def test_sparse_layer_without_constant_row() -> None:
    layer = SparseInputLinear(10, 3)
    rows = random_rows(4, 10, 3, seed=2)
    rows = SparseRows(rows.index, rows.value, torch.zeros(0, dtype=torch.long), torch.zeros(0), 10)
    torch.testing.assert_close(layer.forward_sparse(rows), layer(rows.dense()), rtol=1e-5, atol=1e-5)


def test_sparse_layer_has_the_linear_init_and_state_dict() -> None:
    torch.manual_seed(3)
    linear = nn.Linear(12, 5)
    torch.manual_seed(3)
    layer = SparseInputLinear(12, 5)
    assert torch.equal(layer.weight, linear.weight) and torch.equal(layer.bias, linear.bias)
    sd = layer.state_dict()
    assert list(sd) == ["weight", "bias"] and sd["weight"].shape == (5, 12)
    assert torch.equal(sd["weight"], linear.weight.detach())
    other = nn.Linear(12, 5)
    layer.load_state_dict(other.state_dict())  # a Linear checkpoint loads, and keeps the transposed layout
    assert torch.equal(layer.weight, other.weight) and layer.weight_t.is_contiguous()
    with pytest.raises(RuntimeError, match="size mismatch"):
        layer.load_state_dict(nn.Linear(11, 5).state_dict())
    with pytest.raises(ValueError, match="width"):
        layer.forward_sparse(random_rows(2, 13, 2, seed=0))


def grid_states(name: str, n: int) -> list[GridState]:
    """``n`` distinct states reached by random joint actions from the start of a bundled world."""
    world = load_world(name)
    rng = np.random.default_rng(0)
    states: dict[GridState, None] = {}
    frontier = [world.initial_state()]
    while len(states) < n and frontier:
        s = frontier.pop(0)
        if s in states:
            continue
        states[s] = None
        if world.is_terminal(s):
            continue
        for _ in range(3):
            joint = tuple(int(a) for a in rng.integers(0, world.num_actions, size=len(s.agents)))
            succ = world.transition_probabilities(s, joint)
            frontier.append(succ[int(rng.integers(len(succ)))][1])
    return list(states)


@pytest.mark.parametrize("name", ["trivial", "large"])
def test_grid_encoder_sparse_entries_rebuild_the_dense_rows(name: str) -> None:
    world = load_world(name)
    enc = GridStateEncoder(world)
    assert isinstance(enc, SparseStateEncoder)
    states = grid_states(name, 40)
    cols, vals = enc.encode_active(states)
    assert cols.shape == vals.shape == (len(states), enc.max_active)
    c_cols, c_vals = enc.constant()
    dense = np.zeros((len(states), enc.dim), dtype=np.float32)
    dense[:, c_cols] = c_vals
    np.add.at(dense, (np.repeat(np.arange(len(states)), enc.max_active), cols.reshape(-1)), vals.reshape(-1))
    np.testing.assert_array_equal(dense, enc.encode(states))
    # Far fewer entries than columns: the first layer's cost follows the objects, not the grid area.
    assert enc.max_active * 20 < enc.dim


def test_fast_featurizer_batches_give_the_dense_network_outputs() -> None:
    world = load_world("trivial")
    enc = GridStateEncoder(world)
    states = grid_states("trivial", 30)
    fast, plain = Featurizer(enc, fast=True), Featurizer(enc)
    assert fast.sparse and not plain.sparse
    b_fast, b_plain = fast.batch(states + states[:7]), plain.batch(states + states[:7])
    assert b_fast.sparse is not None and b_plain.sparse is None
    torch.testing.assert_close(b_fast.features, b_plain.features, rtol=0, atol=0)
    torch.manual_seed(4)
    net = QRNetwork(enc.dim, 5, hidden_dim=16, num_hidden_layers=2, dropout=0.0)
    torch.testing.assert_close(net(b_fast), net(b_plain), rtol=1e-5, atol=1e-6)
