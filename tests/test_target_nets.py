"""TargetNetwork: frozen eval-mode copy, per-network update intervals, snapshots."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from humanpower.learn.target_nets import TargetNetwork


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))


def bump(net: nn.Module, amount: float = 0.1) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.add_(amount)


def test_copy_is_frozen_and_eval() -> None:
    net = make_net()
    net.train()
    target = TargetNetwork(net, interval=10)
    assert target.module is not net
    assert all(not p.requires_grad for p in target.module.parameters())
    assert all(p.requires_grad for p in net.parameters())
    assert not target.module.training and net.training
    target.module.train()  # must stay in eval mode
    assert not any(m.training for m in target.module.modules())
    x = torch.randn(8, 3, requires_grad=True)
    y1, y2 = target(x), target(x)
    assert torch.equal(y1, y2)  # no dropout noise
    assert not y1.requires_grad
    net.eval()
    assert torch.allclose(y1, net(x))


def test_eval_forced_even_when_a_submodule_is_switched() -> None:
    target = TargetNetwork(make_net(), interval=1)
    dropout = next(m for m in target.module.modules() if isinstance(m, nn.Dropout))
    dropout.train()  # someone flips the dropout layer directly
    x = torch.randn(64, 3)
    assert torch.equal(target(x), target(x))
    assert not dropout.training


def test_updates_only_at_interval() -> None:
    net = make_net().eval()
    target = TargetNetwork(net, interval=3)
    x = torch.randn(4, 3)
    before = target(x).clone()
    bump(net)
    fired = [step for step in range(1, 10) if target.maybe_update(step)]
    assert fired == [3, 6, 9]
    assert target.num_updates == 3 and target.last_update_step == 9
    assert torch.allclose(target(x), net(x))
    assert not torch.allclose(before, net(x))


def test_target_unchanged_between_updates() -> None:
    net = make_net().eval()
    target = TargetNetwork(net, interval=5)
    x = torch.randn(4, 3)
    frozen = target(x).clone()
    for step in range(1, 5):
        bump(net)
        assert not target.maybe_update(step)
        assert torch.equal(target(x), frozen)
    assert target.maybe_update(5)
    assert torch.allclose(target(x), net(x))


def test_each_network_its_own_interval() -> None:
    nets = {"q_r": make_net(), "v_h_e": make_net(), "x_h": make_net()}
    intervals = {"q_r": 2, "v_h_e": 5, "x_h": 1}
    targets = {name: TargetNetwork(net, intervals[name]) for name, net in nets.items()}
    fired: dict[str, list[int]] = {name: [] for name in nets}
    for step in range(1, 11):
        for name, t in targets.items():
            if t.maybe_update(step):
                fired[name].append(step)
    assert fired == {"q_r": [2, 4, 6, 8, 10], "v_h_e": [5, 10], "x_h": list(range(1, 11))}


def test_copy_survives_pickling() -> None:
    target = TargetNetwork(make_net(), interval=2)
    clone = pickle.loads(pickle.dumps(target.module))
    clone.train()
    assert not clone.training
    x = torch.randn(6, 3)
    assert torch.equal(clone(x), target(x))


def test_explicit_update_and_state_dict_round_trip() -> None:
    net = make_net().eval()
    target = TargetNetwork(net, interval=4)
    bump(net, 0.5)
    target.update(train_step=6)
    assert target.last_update_step == 6
    assert not target.maybe_update(9) and target.maybe_update(10)
    snap = target.state_dict()
    other = TargetNetwork(make_net(), interval=4)
    other.load_state_dict(snap)
    x = torch.randn(5, 3)
    assert torch.equal(other(x), target(x))
    assert (other.last_update_step, other.num_updates) == (10, 2)
    with pytest.raises(ValueError):
        TargetNetwork(net, interval=0)
