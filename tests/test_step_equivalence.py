"""The fast training step computes what the plain reference step computes.

``train_step: reference`` is the plain production step: dense feature rows, raw features gathered for every
(state, action), (state, human, goal) and successor query, a dense first layer. ``train_step: fast`` (the
default) encodes each distinct state of a batch once per network (sparse first layer on gridworlds, trunk
outputs gathered for repeated queries). From the same initial weights, replay contents and seeds both give the
same losses (to float tolerance), step after step.
"""

from __future__ import annotations

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
    fast = learner(world_name, base.replace(train_step="fast"), data)
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
