"""The learner's optimizer mechanics give the training step of the plain per-network loop.

Reference (the straightforward algorithm): per network zero_grad, backward of its own loss,
``torch.nn.utils.clip_grad_norm_``, a non-fused optimizer step; targets evaluated directly (no state memo).
The learner does one backward through all losses, its own clipping, fused optimizer kernels and memoised
targets; both must produce the same parameters (up to float rounding) from the same batch and seeds.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from humanpower.api import build_setup
from humanpower.learn.actor import Actor, ExplorationParams
from humanpower.learn.config import Phase2Config
from humanpower.learn.learner import Learner
from humanpower.learn.networks import Phase2Network, QRNetwork
from humanpower.learn.optim import clip_grad_norm
from humanpower.learn.schedules import grad_clip_at, lr_at
from humanpower.learn.trainer import make_learner
from humanpower.worlds.grid.library import load_world

SMALL = dict(
    batch_size=16,
    buffer_size=400,
    hidden_dim=16,
    dropout=0.5,
    human_prior="uniform",
    warmup_v_h_e_steps=5,
    warmup_x_h_steps=5,
    warmup_q_r_steps=5,
    beta_r_rampup_steps=5,
    target_update_interval_q_r=2,
    target_update_interval_v_h_e=3,
    target_update_interval_x_h=2,
    target_update_interval_u_r=2,
    target_update_interval_v_r=3,
)


def filled_learner(cfg: Phase2Config) -> Learner:
    world = load_world("trivial")
    setup = build_setup(world, cfg, reference=False)
    torch.manual_seed(0)
    learner = make_learner(setup, cfg)
    actor = Actor(world, setup.prior, goal_resample_prob=0.1, steps_per_episode=world.max_steps, seed=0)
    transitions = []
    for i in range(150):
        if actor.episode_done:
            actor.begin_episode()
        transitions.append(actor.step(None, ExplorationParams(0.0, 1.0), i))
    learner.add(transitions)
    return learner


def reference_step(learner: Learner, total_steps: int) -> dict[str, float]:
    """The plain training step (one backward, clip and optimizer step per network, in turn)."""
    cfg = learner.cfg
    data = learner.sample(total_steps)
    losses = {}
    for term in learner.active_terms(total_steps):
        with torch.no_grad():
            target = term.target(learner.target_nets, data)
        losses[term.network] = term.loss(learner.nets, data, target)
    modules = learner.nets.named()
    for name, loss in losses.items():
        opt = learner.optimizers[name]
        lr = lr_at(total_steps, learner.base_lr[name], learner.stages, cfg.lr_decay_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            modules[name].parameters(), grad_clip_at(lr, cfg.grad_clip, cfg.grad_clip_reference_lr)
        )
        opt.step()
    learner.train_steps += 1
    for target in learner.targets.values():
        target.maybe_update(learner.train_steps)
    return {name: float(loss.detach()) for name, loss in losses.items()}


@pytest.mark.parametrize(("networks", "all_nets"), [("neural", False), ("neural", True), ("tabular", False)])
def test_train_step_equals_the_plain_loop(networks: str, all_nets: bool) -> None:
    cfg = Phase2Config(**SMALL, networks=networks, u_r_use_network=all_nets, v_r_use_network=all_nets)  # type: ignore[arg-type]
    fast = filled_learner(cfg)
    ref = copy.deepcopy(fast)
    for name, opt in ref.optimizers.items():  # plain (non-fused) kernels, same hyper-parameters
        group = opt.param_groups[0]
        kind = torch.optim.SGD if networks == "tabular" else torch.optim.Adam
        ref.optimizers[name] = kind(group["params"], lr=group["lr"], weight_decay=group["weight_decay"])
    for t in ref.targets.values():
        if isinstance(t.module, Phase2Network):
            t.module.state_memo = None
    t5 = cfg.warmup_env_steps + 1
    assert fast.stages.stage_at(t5) == 5
    for step in range(7):
        torch.manual_seed(100 + step)
        got = fast.train_step(t5)
        torch.manual_seed(100 + step)
        want = reference_step(ref, t5)
        assert got.keys() == want.keys()
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-4, abs=1e-7), name
    for name, module in fast.nets.named().items():
        for (key, a), b in zip(module.state_dict().items(), ref.nets.named()[name].state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=f"{name}.{key}")


def test_clip_grad_norm_is_torch_bit_for_bit() -> None:
    gen = np.random.default_rng(0)
    clipped = 0
    for _ in range(100):
        params = [torch.nn.Parameter(torch.zeros(7, 5)), torch.nn.Parameter(torch.zeros(5))]
        scale = float(np.exp(gen.uniform(-3, 3)))
        grads = [torch.as_tensor(gen.normal(size=p.shape) * scale, dtype=torch.float32) for p in params]
        twins = [torch.nn.Parameter(torch.zeros_like(p)) for p in params]
        for p, t, g in zip(params, twins, grads, strict=True):
            p.grad, t.grad = g.clone(), g.clone()
        max_norm = float(np.exp(gen.uniform(-2, 2)))
        clip_grad_norm(params, max_norm)
        norm = torch.nn.utils.clip_grad_norm_(twins, max_norm)
        clipped += int(norm > max_norm)
        for p, t in zip(params, twins, strict=True):
            assert p.grad is not None and t.grad is not None and torch.equal(p.grad, t.grad)
    assert 10 < clipped < 90  # both branches exercised
    clip_grad_norm([torch.nn.Parameter(torch.zeros(3))], 1.0)  # no gradients: nothing to do


def test_acting_policy_is_eval_mode_and_keeps_the_training_mode() -> None:
    cfg = Phase2Config(**SMALL)  # type: ignore[arg-type]
    learner = filled_learner(cfg)
    q_r = learner.nets.q_r
    assert isinstance(q_r, QRNetwork) and q_r.training
    state = learner.featurizer.state_of(3)
    torch.manual_seed(0)
    got = learner.acting_policy().q_values([state])[0]
    assert q_r.training
    q_r.eval()
    with torch.no_grad():
        want = q_r(learner.featurizer.batch([state]))[0].double().numpy()
    np.testing.assert_array_equal(got, want)


def test_each_target_memo_computes_its_new_states_in_one_batch_per_step() -> None:
    """The step evaluates the target networks at the batch nodes and states first (``Phase2Network.prefetch``):
    the later target queries of a step are memo lookups, so each memo computes new states at most once per step
    (without the prefetch Q_r' meets new states at the batch states, then at the successors)."""
    for extra in ({}, {"x_h_all_goals": True, "q_r_loss": "log"}):
        learner = filled_learner(Phase2Config(**SMALL, **extra))  # type: ignore[arg-type]
        t5 = learner.cfg.warmup_env_steps + 1
        memos = {name: t.module.state_memo for name, t in learner.targets.items()}
        assert all(m is not None for m in memos.values())
        computed = 0
        for _ in range(8):
            before = {name: m.computed for name, m in memos.items() if m is not None}
            learner.step(t5)
            for name, m in memos.items():
                assert m is not None and m.computed - before[name] <= 1, name
                computed += m.computed - before[name]
        assert computed >= 8  # new states were met (the check is not vacuous)
