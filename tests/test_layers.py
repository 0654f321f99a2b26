"""Speed building blocks of the neural backend: the CPU dropout mask and the per-state memo of frozen networks."""

from __future__ import annotations

import copy
from typing import Any, TypeVar

import numpy as np
import pytest
import torch

from humanpower.learn.encoding import StateBatch
from humanpower.learn.layers import FastDropout, StateMemo, composition_free, dropout_mask
from humanpower.learn.networks import Phase2Network, QRNetwork, VHENetwork, XHNetwork

DIM = 12
NetT = TypeVar("NetT", bound=Phase2Network)


def make_batch(ids: list[int], table: torch.Tensor) -> StateBatch:
    """A batch whose feature rows are ``table[ids]`` (so equal ids have equal rows, as the Featurizer ensures)."""
    idx = torch.tensor(ids, dtype=torch.long)
    return StateBatch(table[idx], idx)


def feature_table(n: int = 50, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, DIM), generator=gen) * (torch.rand((n, DIM), generator=gen) < 0.4)


def frozen(net: NetT, memo: bool, **kw: Any) -> NetT:
    """An eval-mode copy (like a target network), with or without the state memo."""
    copy_ = copy.deepcopy(net).eval()
    if memo:
        copy_.enable_state_memo(**kw)
    return copy_


def memo_of(net: Phase2Network) -> StateMemo:
    assert net.state_memo is not None
    return net.state_memo


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_mask_distribution(p: float) -> None:
    torch.manual_seed(0)
    m = dropout_mask(torch.Size((400, 250)), p, torch.float32, torch.device("cpu"))
    scale = 1.0 / (1.0 - p)
    assert m.shape == (400, 250) and m.dtype == torch.float32
    values = torch.unique(m).tolist()
    assert values == [0.0, pytest.approx(scale)]
    kept = (m > 0).double()
    assert abs(float(kept.mean()) - (1 - p)) < 0.01  # 100k draws: 6+ standard deviations
    # neighbouring entries (bits of one random byte for p = 0.5) are independent
    both = float((kept[:, :-1] * kept[:, 1:]).mean())
    assert abs(both - (1 - p) ** 2) < 0.01
    rows = kept.mean(dim=1)
    assert float(rows.min()) > (1 - p) - 0.15 and float(rows.max()) < (1 - p) + 0.15


def test_fast_dropout_semantics() -> None:
    x = torch.randn(64, 33, requires_grad=True)
    drop = FastDropout(0.5)
    assert isinstance(drop, torch.nn.Dropout)
    drop.eval()
    assert drop(x) is x
    drop.train()
    torch.manual_seed(3)
    y = drop(x)
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)  # reproducible from torch's seed
    mask = y.detach() / x.detach()
    assert set(torch.unique(mask.round()).tolist()) <= {0.0, 2.0}
    y.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, mask, rtol=1e-6, atol=1e-6)  # gradient = the mask
    assert torch.equal(FastDropout(0.0).train()(x), x)


def test_memo_serves_the_same_values_and_counts_hits() -> None:
    torch.manual_seed(0)
    net = QRNetwork(DIM, 5, hidden_dim=16, num_hidden_layers=2, dropout=0.5)
    plain, memo = frozen(net, False), frozen(net, True)
    table = feature_table()
    b1, b2 = make_batch([3, 1, 3, 7, 9], table), make_batch([7, 9, 1, 2, 2, 2], table)
    with torch.no_grad():
        for b in (b1, b2, b1):
            torch.testing.assert_close(memo(b), plain(b), rtol=1e-6, atol=1e-7)
    st = memo_of(memo)
    assert st.misses == 5  # distinct ids computed: 3, 1, 7, 9, then 2
    assert st.hits == 0 + 3 + 5  # rows served from the memo


def test_memo_is_bypassed_in_train_mode_and_with_gradients() -> None:
    net = XHNetwork(DIM, [1.0, 2.0], hidden_dim=8, num_hidden_layers=1, dropout=0.0)
    m = frozen(net, True)
    b = make_batch([0, 1, 2], feature_table())
    out = m.forward_all(b)  # gradients enabled: computed directly
    assert out.requires_grad and memo_of(m).hits + memo_of(m).misses == 0
    m.train()
    with torch.no_grad():
        m.forward_all(b)
    assert memo_of(m).hits + memo_of(m).misses == 0


@pytest.mark.parametrize("change", ["in_place", "load_state_dict"])
def test_memo_follows_weight_changes(change: str) -> None:
    torch.manual_seed(1)
    net = QRNetwork(DIM, 3, hidden_dim=16, num_hidden_layers=2, dropout=0.5)
    m = frozen(net, True)
    b = make_batch([4, 5, 6], feature_table())
    with torch.no_grad():
        before = m(b)
        if change == "in_place":
            m.head.bias.add_(1.0)
        else:
            other = QRNetwork(DIM, 3, hidden_dim=16, num_hidden_layers=2, dropout=0.5)
            m.load_state_dict(other.state_dict())
        after = m(b)
        m.state_memo = None
        fresh = m(b)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh, rtol=1e-6, atol=1e-7)


def test_memo_refills_recent_states_after_a_weight_change() -> None:
    torch.manual_seed(2)
    table = feature_table()
    net = XHNetwork(DIM, [1.0], hidden_dim=16, num_hidden_layers=2, dropout=0.5)
    m = frozen(net, True, features_of=lambda ids: StateBatch(table[ids], ids), refill=3)
    with torch.no_grad():
        m.forward_all(make_batch([10, 11, 12, 13, 14], table))
        m.head.bias.add_(0.5)
        out = m.forward_all(make_batch([12, 13, 14], table))  # the 3 most recent states: refilled, no miss
        st = memo_of(m)
        assert st.refilled == 3 and st.misses == 5
        m.state_memo = None
        torch.testing.assert_close(out, m.forward_all(make_batch([12, 13, 14], table)), rtol=1e-6, atol=1e-7)


def test_memo_capacity_is_respected() -> None:
    net = QRNetwork(DIM, 2, hidden_dim=8, num_hidden_layers=1, dropout=0.0)
    plain, m = frozen(net, False), frozen(net, True, capacity=4)
    table = feature_table()
    with torch.no_grad():
        for ids in ([0, 1, 2], [3, 4, 5], list(range(10)), [1, 2]):
            b = make_batch(ids, table)
            torch.testing.assert_close(m(b), plain(b), rtol=1e-6, atol=1e-7)
            assert memo_of(m).fill <= 4


def test_row_values_do_not_depend_on_the_batch() -> None:
    """What keeps training with a history-dependent memo exactly reproducible (and resumable)."""
    torch.manual_seed(4)
    net = QRNetwork(DIM, 4, hidden_dim=32, num_hidden_layers=2, dropout=0.5).eval()
    table = feature_table(200)
    with torch.no_grad():
        full = composition_free(net.eval_values, make_batch(list(range(200)), table))
        rng = np.random.default_rng(0)
        for m in (1, 3, 17, 40, 77, 130):
            idx = rng.choice(200, size=m, replace=False)
            assert torch.equal(composition_free(net.eval_values, make_batch(idx.tolist(), table)), full[idx])


def test_vhe_memo_table_matches_direct_evaluation() -> None:
    torch.manual_seed(5)
    goals = [np.eye(3, dtype=np.float32), np.eye(2, dtype=np.float32)]
    net = VHENetwork(DIM, goals, hidden_dim=16, num_hidden_layers=2, dropout=0.5)
    plain, m = frozen(net, False), frozen(net, True)
    table = feature_table()
    b = make_batch([5, 6, 5, 8], table)
    humans = torch.tensor([0, 1, 0, 1])
    goal_idx = torch.tensor([2, 1, 0, 0])
    with torch.no_grad():
        for _ in range(2):
            torch.testing.assert_close(m(b, humans, goal_idx), plain(b, humans, goal_idx), rtol=1e-6, atol=1e-7)
            for h in (0, 1):
                torch.testing.assert_close(
                    m.forward_all_goals(b, h), plain.forward_all_goals(b, h), rtol=1e-6, atol=1e-7
                )
    values = memo_of(m).values
    assert memo_of(m).misses == 3 and values is not None
    assert values.shape[1] == 5  # every (human, goal) value per state


def test_eval_values_equal_eval_mode_forward_without_switching_mode() -> None:
    torch.manual_seed(6)
    net = QRNetwork(DIM, 4, hidden_dim=16, num_hidden_layers=2, dropout=0.5)
    b = make_batch([1, 2, 3], feature_table())
    with torch.no_grad():
        fast = net.eval_values(b)
        assert net.training
        net.eval()
        torch.testing.assert_close(fast, net(b), rtol=0, atol=0)


def test_state_memo_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="capacity"):
        StateMemo(capacity=0)
    with pytest.raises(ValueError, match="p must be"):
        dropout_mask(torch.Size((2,)), 1.0, torch.float32, torch.device("cpu"))
