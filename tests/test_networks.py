"""Phase 2 networks (neural and tabular): ranges, shapes, batching, dedup, containers, round trips."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from humanpower.api import build_setup
from humanpower.errors import CheckpointError, ConfigError
from humanpower.goals import GoalSet, StateSetGoal
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import Featurizer, OneHotGoalEncoder, OneHotStateEncoder, StateBatch
from humanpower.learn.evaluate import LearnedModel, compare_with_exact
from humanpower.learn.heads import inverse_negative, inverse_probability, negative_head, power_head
from humanpower.learn.networks import (
    Phase2Networks,
    QRNetwork,
    VHENetwork,
    VRNetwork,
    build_networks,
    goal_feature_tables,
)
from humanpower.learn.tabular import TabularQR, TabularVHE, TabularXH
from humanpower.learn.trainer import make_learner
from humanpower.worlds.tabular import random_tabular_world

STATES = [(t, x) for t in range(4) for x in range(5)]


@dataclass
class FakeWorld:
    """Two humans (agents 0, 2) with 3 and 2 weighted goals, two robots with 3 actions (9 joint actions)."""

    num_agents: int = 4
    humans: tuple[int, ...] = (0, 2)
    robots: tuple[int, ...] = (1, 3)
    num_actions: int = 3
    max_steps: int = 3

    def step_count(self, state: object) -> int:
        assert isinstance(state, tuple)
        return int(state[0])

    def goal_set(self, human: int) -> GoalSet:
        if human == 0:
            goals = [StateSetGoal(f"x={x}", frozenset(s for s in STATES if s[1] == x)) for x in range(3)]
            return GoalSet.of(goals, [1.0, 2.0, 1.0])
        goals = [StateSetGoal(f"x>={x}", frozenset(s for s in STATES if s[1] >= x)) for x in (3, 4)]
        return GoalSet.of(goals)


WORLD = FakeWorld()
TOTAL_WEIGHTS = (4.0, 2.0)
NUM_GOALS = (3, 2)


def small_cfg(**kw: object) -> Phase2Config:
    base: dict[str, object] = {
        "hidden_dim": 16,
        "num_hidden_layers": 2,
        "dropout": 0.5,
        "u_r_use_network": True,
    }
    base.update(kw)
    return Phase2Config(v_r_use_network=True, **base)  # type: ignore[arg-type]


def setup(backend: str, **kw: object) -> tuple[Phase2Networks, Featurizer]:
    enc = OneHotStateEncoder(WORLD, STATES)
    goal_enc = {h: OneHotGoalEncoder(WORLD.goal_set(h).goals) for h in WORLD.humans}
    nets = build_networks(WORLD, small_cfg(**kw), enc.dim, goal_feature_tables(WORLD, goal_enc), backend, max_states=64)
    return nets, Featurizer(enc)


def batch_with_duplicates(f: Featurizer) -> StateBatch:
    idx = [0, 5, 7, 5, 19, 0, 12]
    return f.batch([STATES[i] for i in idx])


@pytest.fixture(params=["neural", "tabular"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def randomise(nets: Phase2Networks, scale: float = 3.0) -> None:
    """Spread the parameters so outputs differ between states (tabular tables start constant)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in (p for m in nets.named().values() for p in m.parameters()):
            p.add_(scale * torch.randn(p.shape, generator=gen) / max(1, p.shape[-1]) ** 0.5)


def test_shapes_and_ranges(backend: str) -> None:
    nets, f = setup(backend)
    randomise(nets, scale=30.0)  # extreme raw values must still respect the ranges
    b = batch_with_duplicates(f)
    n = len(b)
    nets.train()
    q = nets.q_r(b)
    assert q.shape == (n, 9) and bool((q < 0).all())
    humans = torch.tensor([0, 1, 0, 1, 0, 1, 1])
    goals = torch.tensor([2, 1, 0, 0, 1, 1, 0])
    v = nets.v_h_e(b, humans, goals)
    assert v.shape == (n,) and bool(((v >= 0) & (v <= 1)).all())
    x_all = nets.x_h.forward_all(b)
    assert x_all.shape == (n, 2)
    w = torch.tensor(TOTAL_WEIGHTS)
    assert bool(((x_all > 0) & (x_all <= w)).all())
    assert nets.x_h(b, humans).shape == (n,)
    assert nets.v_h_e.forward_all_goals(b, 0).shape == (n, 3)
    assert nets.v_h_e.forward_all_goals(b, 1).shape == (n, 2)
    assert nets.u_r is not None and nets.u_r(b).shape == (n,)
    assert nets.v_r is not None
    vr = nets.v_r(b)
    assert vr.shape == (n,) and bool((vr < 0).all())


def test_heads_stay_in_range_when_saturated() -> None:
    x = torch.tensor([-200.0, -50.0, 0.0, 50.0])
    assert bool((negative_head(x) < 0).all())
    px = power_head(x, torch.tensor(3.0))
    assert bool((px > 0).all()) and bool((px <= 3.0).all())
    assert negative_head(torch.tensor(inverse_negative(-2.5))).item() == pytest.approx(-2.5, rel=1e-6)
    assert torch.sigmoid(torch.tensor(inverse_probability(0.2))).item() == pytest.approx(0.2, rel=1e-6)


def test_batched_equals_per_sample_in_eval_mode(backend: str) -> None:
    nets, f = setup(backend)
    randomise(nets)
    nets.eval()
    b = batch_with_duplicates(f)
    humans = torch.tensor([0, 1, 0, 1, 0, 1, 1])
    goals = torch.tensor([2, 1, 0, 0, 1, 1, 0])
    with torch.no_grad():
        q, v = nets.q_r(b), nets.v_h_e(b, humans, goals)
        x, v0, v1 = (
            nets.x_h.forward_all(b),
            nets.v_h_e.forward_all_goals(b, 0),
            nets.v_h_e.forward_all_goals(b, 1),
        )
        assert nets.u_r is not None and nets.v_r is not None
        u, vr = nets.u_r(b), nets.v_r(b)
        for i in range(len(b)):
            one = b.select(torch.tensor([i]))
            torch.testing.assert_close(nets.q_r(one)[0], q[i])
            torch.testing.assert_close(nets.v_h_e(one, humans[i : i + 1], goals[i : i + 1])[0], v[i])
            torch.testing.assert_close(nets.x_h.forward_all(one)[0], x[i])
            torch.testing.assert_close(nets.u_r(one)[0], u[i])
            torch.testing.assert_close(nets.v_r(one)[0], vr[i])
            for g in range(3):
                torch.testing.assert_close(v0[i, g], nets.v_h_e(one, torch.tensor([0]), torch.tensor([g]))[0])
            for g in range(2):
                torch.testing.assert_close(v1[i, g], nets.v_h_e(one, torch.tensor([1]), torch.tensor([g]))[0])
        torch.testing.assert_close(nets.x_h(b, humans), x.gather(1, humans.view(-1, 1)).squeeze(1))
        # Rows of the same state agree, and a batch without dedup info (torch.unique path) gives the same.
        torch.testing.assert_close(q[0], q[5])
        plain = StateBatch(b.features.clone(), b.ids.clone())
        torch.testing.assert_close(nets.q_r(plain), q)
        torch.testing.assert_close(nets.v_h_e(plain, humans, goals), v)
    assert len({round(float(t), 6) for t in q[:, 0]}) > 1  # outputs really depend on the state


def test_dropout_active_only_in_train_mode() -> None:
    nets, f = setup("neural", dropout=0.5)
    b = f.batch(STATES)
    nets.train()
    torch.manual_seed(0)
    assert not torch.equal(nets.q_r(b), nets.q_r(b))
    nets.eval()
    assert torch.equal(nets.q_r(b), nets.q_r(b))


def test_initial_outputs(backend: str) -> None:
    nets, f = setup(backend, dropout=0.0, zeta=2.0)
    b = f.batch(STATES[:4])
    with torch.no_grad():
        v = nets.v_h_e.forward_all_goals(b, 0)
        x = nets.x_h.forward_all(b)
        q = nets.q_r(b)
    if backend == "tabular":  # exact initial values
        torch.testing.assert_close(v, torch.full_like(v, 0.5))
        torch.testing.assert_close(x, torch.tensor(TOTAL_WEIGHTS).expand(4, 2) * 0.25)
        torch.testing.assert_close(q, torch.full_like(q, -1.0))
    else:  # biases set the level, small random weights spread it
        assert abs(float(v.mean()) - 0.5) < 0.1
        assert abs(float(q.mean()) + 1.0) < 0.3


def test_tabular_state_dict_round_trip_and_capacity() -> None:
    nets, f = setup("tabular")
    randomise(nets)
    b = batch_with_duplicates(f)
    other, _ = setup("tabular")
    other.load_state_dict(copy.deepcopy(nets.state_dict()))
    for (name, m1), (_, m2) in zip(nets, other, strict=True):
        for (k, t1), t2 in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
            assert torch.equal(t1, t2), (name, k)
    assert torch.equal(nets.q_r(b), other.q_r(b))
    humans, goals = torch.tensor([1] * 7), torch.tensor([1] * 7)
    assert torch.equal(nets.v_h_e(b, humans, goals), other.v_h_e(b, humans, goals))

    table = TabularQR(num_actions=2, max_states=3)
    with pytest.raises(ConfigError, match="max_states=3"):
        table(StateBatch(torch.zeros(1, 1), torch.tensor([3])))


def test_tabular_gradient_touches_only_batch_rows() -> None:
    nets, f = setup("tabular")
    b = f.batch([STATES[3], STATES[8]])
    nets.q_r(b).sum().backward()
    assert isinstance(nets.q_r, TabularQR)
    grad = nets.q_r.table.grad
    assert grad is not None
    touched = torch.nonzero(grad.abs().sum(dim=1)).flatten().tolist()
    assert touched == sorted(b.ids.tolist())


def test_neural_state_dict_round_trip_and_errors() -> None:
    nets, f = setup("neural")
    other, _ = setup("neural", seed=123)
    b = f.batch(STATES)
    nets.eval(), other.eval()
    assert not torch.equal(nets.q_r(b), other.q_r(b))
    other.load_state_dict(nets.state_dict())
    assert torch.equal(nets.q_r(b), other.q_r(b))
    assert torch.equal(nets.v_h_e.forward_all_goals(b, 1), other.v_h_e.forward_all_goals(b, 1))
    fewer, _ = setup("neural", u_r_use_network=False)
    with pytest.raises(CheckpointError, match="do not match"):
        fewer.load_state_dict(nets.state_dict())
    wider, _ = setup("neural", hidden_dim=8)
    with pytest.raises(CheckpointError, match="does not fit"):
        wider.load_state_dict(nets.state_dict())


def test_container_and_factory() -> None:
    nets, _ = setup("neural", u_r_use_network=False)
    assert list(nets.named()) == ["q_r", "v_h_e", "x_h", "v_r"]
    groups = nets.parameter_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids))
    q = QRNetwork(4, 2, 8, 1, 0.0)
    v = VRNetwork(4, 8, 1, 0.0)
    v.trunk = q.trunk
    with pytest.raises(ValueError, match="shared"):
        Phase2Networks(q_r=q, v_h_e=nets.v_h_e, x_h=nets.x_h, v_r=v)

    # Seeded, reproducible, and torch's global RNG untouched.
    state = torch.random.get_rng_state()
    a, _ = setup("neural")
    assert torch.equal(torch.random.get_rng_state(), state)
    c, _ = setup("neural")
    assert all(torch.equal(p1, p2) for p1, p2 in zip(a.q_r.parameters(), c.q_r.parameters(), strict=True))

    enc = OneHotStateEncoder(WORLD, STATES)
    by_agent = {h: np.eye(g, dtype=np.float32) for h, g in zip(WORLD.humans, NUM_GOALS, strict=True)}
    built = build_networks(WORLD, small_cfg(), enc.dim, by_agent, "neural")
    assert built.v_h_e.num_goals == NUM_GOALS
    with pytest.raises(ValueError, match="keys"):
        build_networks(WORLD, small_cfg(), enc.dim, {5: by_agent[0], 6: by_agent[2]}, "neural")
    with pytest.raises(ValueError, match="table"):
        build_networks(WORLD, small_cfg(), enc.dim, [by_agent[2], by_agent[0]], "neural")
    with pytest.raises(ConfigError, match="networks"):
        build_networks(WORLD, small_cfg(), enc.dim, by_agent, "lookup")
    tab = build_networks(WORLD, replace(small_cfg(), networks="tabular"), enc.dim, by_agent, max_states=10)
    assert isinstance(tab.q_r, TabularQR) and tab.q_r.max_states == 10


def test_tabular_sgd_step_is_entry_averaging() -> None:
    """Tabular + SGD on the duplicate-averaging loss: entry <- entry + lr * (mean target - entry)."""
    from humanpower.learn.losses import regression_loss

    nets, f = setup("tabular")
    b = f.batch([STATES[0], STATES[1], STATES[0]])  # state 0 twice
    h, g = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    before = nets.v_h_e(b, h, g).detach().clone()
    target = torch.tensor([0.9, 0.1, 0.5])
    opt = torch.optim.SGD(nets.v_h_e.parameters(), lr=0.5)
    opt.zero_grad()
    regression_loss(nets.v_h_e(b, h, g), target, b.ids).backward()
    opt.step()
    after = nets.v_h_e(b, h, g).detach()
    mean0 = (0.9 + 0.5) / 2
    torch.testing.assert_close(after[0], before[0] + 0.5 * (mean0 - before[0]))
    torch.testing.assert_close(after[1], before[1] + 0.5 * (0.1 - before[1]))
    # convex updates keep Q_r strictly negative
    qb = f.batch(STATES[:2])
    opt_q = torch.optim.SGD(nets.q_r.parameters(), lr=1.0)
    opt_q.zero_grad()
    regression_loss(nets.q_r(qb), torch.full((2, nets.q_r.num_actions), -1e-10), qb.ids).backward()
    opt_q.step()
    assert bool((nets.q_r(qb) < 0).all())


def test_forward_all_pairs_is_every_humans_goals_with_one_trunk_pass() -> None:
    """``VHENetwork.forward_all_pairs`` equals the per-human ``forward_all_goals`` side by side, computing the state
    trunk once (for any number of humans) instead of once per human."""
    nets, f = setup("neural")
    randomise(nets)
    nets.eval()
    vhe = nets.v_h_e
    assert isinstance(vhe, VHENetwork)
    b = batch_with_duplicates(f)
    calls = []
    original = vhe.trunk_codes

    def counted(states: Any, **kw: Any) -> torch.Tensor:
        calls.append(len(states))
        return original(states, **kw)

    vhe.trunk_codes = counted  # type: ignore[method-assign]
    with torch.no_grad():
        pairs = vhe.forward_all_pairs(b)
        assert len(calls) == 1
        per_human = torch.cat([vhe.forward_all_goals(b, 0), vhe.forward_all_goals(b, 1)], dim=1)
    assert len(calls) == 3
    assert pairs.shape == (len(b), 5)
    torch.testing.assert_close(pairs, per_human, rtol=1e-6, atol=1e-7)


def test_tabular_tables_loaded_for_evaluation_answer_unseen_states_with_their_initial_rows() -> None:
    """Ids beyond a table raise while it trains; in a model loaded for evaluation they get the initial row."""
    q = TabularQR(num_actions=2, max_states=3, init=-1.0)
    xh = TabularXH(TOTAL_WEIGHTS, max_states=3, init_fraction=0.5)
    vhe = TabularVHE(NUM_GOALS, max_states=3, init=0.5)
    with torch.no_grad():
        for t in (q, xh, vhe):
            t.table.mul_(0.5)  # every trained entry differs from the initial value
    batch = StateBatch(torch.zeros(3, 1), torch.tensor([0, 5, 2]))
    with pytest.raises(ConfigError, match="max_states=3"):
        q(batch)
    with pytest.raises(ConfigError, match="max_states=3"):
        xh(batch, torch.tensor([1, 1, 1]))
    for t in (q, xh, vhe):
        t.answers_unseen = True
    assert torch.equal(q(batch), torch.tensor([[-0.5, -0.5], [-1.0, -1.0], [-0.5, -0.5]]))
    assert torch.equal(xh.forward_all(batch), torch.tensor([[1.0, 0.5], [2.0, 1.0], [1.0, 0.5]]))
    assert torch.equal(xh(batch, torch.tensor([0, 1, 1])), torch.tensor([1.0, 1.0, 0.5]))
    assert torch.equal(vhe(batch, torch.tensor([0, 1, 0]), torch.tensor([2, 1, 0])), torch.tensor([0.25, 0.5, 0.25]))


def test_a_tabular_policy_file_evaluates_states_its_table_never_held(tmp_path: Path) -> None:
    """A tabular run without an exact reference has ``tabular_max_states`` rows; its saved policy is evaluated on
    every reachable state (``compare_with_exact``), most of them never seen: they answer with untrained values."""
    world = random_tabular_world(4, num_nodes=6, num_humans=1, num_robots=1, num_actions=2, max_steps=4)
    cfg = Phase2Config(networks="tabular", tabular_max_states=2, batch_size=4)
    setup = build_setup(world, cfg, reference=False)
    learner = make_learner(setup, cfg)
    assert isinstance(learner.nets.q_r, TabularQR) and learner.nets.q_r.max_states == 2
    LearnedModel.from_learner(learner, world).save(tmp_path / "policy.pt")
    model = LearnedModel.load(tmp_path / "policy.pt", world, setup.state_encoder, setup.goal_encoders)
    solution = build_setup(world, cfg).reference
    assert solution is not None and len(solution.states) > 2
    metrics = compare_with_exact(model, solution)
    assert metrics["states_compared"] > 2
    fresh = make_learner(build_setup(world, cfg), cfg)  # tables sized by the exact reference, all untrained
    untrained = compare_with_exact(LearnedModel.from_learner(fresh, world), solution)
    assert metrics["pi_r_rmse"] == pytest.approx(untrained["pi_r_rmse"], abs=1e-7)
