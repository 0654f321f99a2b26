"""The fast training step computes what the plain reference step computes.

``train_step: reference`` is the plain production step: dense feature rows, raw features gathered for every
(state, action), (state, human, goal) and successor query, a dense first layer. ``train_step: fast`` (the
default) encodes each distinct state of a batch once per network (sparse first layer on gridworlds, trunk
outputs gathered for repeated queries). From the same initial weights, replay contents and seeds both give the
same losses (to float tolerance), step after step, with the same (dense) Adam updates of the first layer.

With lazy first-layer updates (``first_layer_updates: lazy``, opt-in) the fast step's optimizer moves only
the first-layer rows of the features present in a batch (see ``learn/optim.py``), so parameters drift apart from
the reference's after the first step; there the losses and the (clipped) gradients are compared at every step
from the same weights. ``tests/test_lazy_adam.py`` checks the lazy update itself against torch's Adam.
"""

from __future__ import annotations

import functools

import pytest
import torch

from humanpower.api import build_setup
from humanpower.learn.actor import Actor, ExplorationParams
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import SparseRows
from humanpower.learn.learner import Learner
from humanpower.learn.replay import Transition
from humanpower.learn.trainer import make_learner
from humanpower.worlds.grid.library import load_world
from test_learner_step import SMALL


@functools.lru_cache(maxsize=2)
def transitions(world_name: str, n: int) -> list[Transition]:
    world = load_world(world_name)
    setup = build_setup(world, Phase2Config(**SMALL), reference=False)  # type: ignore[arg-type]
    actor = Actor(world, setup.prior, goal_resample_prob=0.1, steps_per_episode=world.max_steps, seed=0)
    out = []
    for i in range(n):
        if actor.episode_done:
            actor.begin_episode()
        out.append(actor.step(None, ExplorationParams(0.0, 1.0), i))
    return out


def learner(world_name: str, cfg: Phase2Config, data: list[Transition]) -> Learner:
    setup = build_setup(load_world(world_name), cfg, reference=False)
    out = make_learner(setup, cfg)
    out.add(data)
    return out


@pytest.mark.parametrize(
    ("world_name", "extra"),
    [
        ("trivial", {}),
        ("trivial", {"u_r_use_network": True, "v_r_use_network": True, "x_h_batch_size": 24}),
        ("trivial", {"x_h_all_goals": True, "q_r_loss": "log", "probability_loss": "bce", "x_h_goal_samples": 3}),
    ],
)
def test_fast_step_losses_equal_the_reference_step(world_name: str, extra: dict[str, object]) -> None:
    data = transitions(world_name, 120)
    base = Phase2Config(**SMALL, **extra)  # type: ignore[arg-type]
    fast = learner(world_name, base.replace(train_step="fast"), data)  # dense first-layer updates (the default)
    plain = learner(world_name, base.replace(train_step="reference"), data)
    assert fast.featurizer.sparse and not plain.featurizer.sparse
    t = base.warmup_env_steps + 1  # every network trains
    for _ in range(6):
        torch.manual_seed(7)  # the same dropout masks
        got = fast.train_step(t)
        torch.manual_seed(7)
        want = plain.train_step(t)
        assert set(got) == set(want) and len(got) >= 3
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-4, abs=1e-7), name
        t += 1
    for name, module in fast.nets.named().items():
        for p, q in zip(module.parameters(), plain.nets.named()[name].parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)


def _gradients(lrn: Learner) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in lrn.nets.named().items():
        for key, p in module.named_parameters():
            if p.grad is not None:
                out[f"{name}.{key}"] = p.grad.to_dense() if p.grad.is_sparse else p.grad
    return out


@pytest.mark.parametrize("extra", [{"u_r_use_network": True, "v_r_use_network": True, "probability_loss": "bce"}])
def test_lazy_fast_step_losses_and_gradients_equal_the_reference_step(extra: dict[str, object]) -> None:
    """From the same weights (copied from the reference learner before every step), the lazy fast step computes
    the reference step's losses and clipped gradients; its gradients of the first layers are row-sparse."""
    data = transitions("trivial", 120)
    base = Phase2Config(**SMALL, **extra)  # type: ignore[arg-type]
    fast = learner("trivial", base.replace(train_step="fast", first_layer_updates="lazy"), data)
    plain = learner("trivial", base.replace(train_step="reference"), data)
    assert fast.lazy_first_layer and not plain.lazy_first_layer
    t = base.warmup_env_steps + 1
    sparse_seen = 0
    for _ in range(4):
        fast.nets.load_state_dict(plain.nets.state_dict())
        for name, target in plain.targets.items():
            fast.targets[name].load_state_dict(target.state_dict())
        torch.manual_seed(7)
        got = fast.train_step(t)
        torch.manual_seed(7)
        want = plain.train_step(t)
        assert set(got) == set(want) and len(got) >= 3
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-4, abs=1e-7), name
        grads, ref = _gradients(fast), _gradients(plain)
        assert grads.keys() == ref.keys()
        for key, g in grads.items():
            torch.testing.assert_close(g, ref[key], rtol=1e-4, atol=1e-6, msg=key)
        sparse_seen += sum(p.grad is not None and p.grad.is_sparse for p in fast.nets.q_r.parameters())
        sparse_seen += sum(
            p.grad is not None and p.grad.is_sparse
            for m in fast.nets.named().values()
            if m is not fast.nets.q_r
            for p in m.parameters()
        )
        t += 1
    assert sparse_seen == 4 * 5  # every network's first layer, every step


def test_fast_step_never_builds_dense_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its cost follows the objects in a state, not the grid area: no dense feature row is ever made."""
    data = transitions("trivial", 80)
    cfg = Phase2Config(**SMALL)  # type: ignore[arg-type]
    fast = learner("trivial", cfg, data)

    def no_dense(self: SparseRows) -> torch.Tensor:
        raise AssertionError("the fast step built dense feature rows")

    monkeypatch.setattr(SparseRows, "dense", no_dense)
    for t in range(cfg.warmup_env_steps + 1, cfg.warmup_env_steps + 5):
        fast.train_step(t)
    fast.acting_policy().q_values([fast.featurizer.state_of(0)])
