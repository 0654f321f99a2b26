"""The learned Phase 1 prior: pure targets, the tabular fixed point vs the exact solver, a short neural run vs the
uniform and heuristic priors, resume per phase, the prior protocols and config errors."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from humanpower.api import build_setup, load_world, train
from humanpower.errors import ConfigError
from humanpower.exact import build_dag, solve_phase1
from humanpower.humans.heuristic import HeuristicPrior
from humanpower.humans.protocol import BatchHumanPolicyPrior, HumanPolicyPrior
from humanpower.learn.checkpoint import RunFolder, load_torch
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import OneHotGoalEncoder, OneHotStateEncoder
from humanpower.learn.learner import Learner
from humanpower.learn.lifecycle import StopRequest
from humanpower.learn.phase1 import targets as T
from humanpower.learn.phase1.data import RandomWalkCollector, compile_state
from humanpower.learn.phase1.learner import Phase1Learner, Phase1Settings
from humanpower.learn.phase1.prior import LearnedHumanPrior
from humanpower.learn.phases import (
    PRIOR_FILE,
    STEP_CAP_FACTOR,
    Phase1Trainer,
    derived_phase1_steps,
    frozen_prior,
    phase1_folder,
    plan_phase1,
)
from humanpower.params import TheoryParams
from humanpower.worlds.grid.distances import GridDistances
from humanpower.worlds.protocol import SimulatorModel
from humanpower.worlds.tabular import random_tabular_world

TWO_HUMANS_SMALL = """\
metadata:
  name: two_small
  description: "Two humans in a corridor, the robot below the middle cell."
map: |
  We We We We We
  We Ay .. Ay We
  We We Ae We We
  We We We We We
max_steps: 5
orientations: ['e', 'w', 'n']
actions: small
possible_goals:
  - "1,1"
  - "2,1"
  - "3,1"
  - "2,2"
"""


def _two_small(tmp_path: Path) -> SimulatorModel:
    path = tmp_path / "two_small.yaml"
    path.write_text(TWO_HUMANS_SMALL)
    return load_world(str(path))


# -- pure targets ----------------------------------------------------------------------------------------------
def test_policy_rests_at_achieved_goals_and_mixes_the_habitual_policy() -> None:
    q = torch.tensor([[[0.0, 1.0], [0.5, 0.5]]], dtype=torch.float64)  # (1 state, 2 goals, 2 actions)
    achieved = torch.tensor([[False, True]])
    pi = T.human_policy(q, achieved, beta_h=2.0, nu_h=0.5)
    soft = torch.softmax(2.0 * q[0, 0], dim=-1)
    assert torch.allclose(pi[0, 0], 0.25 + 0.5 * soft)
    assert pi[0, 1].tolist() == [1.0, 0.0]  # rests on still
    v = T.state_values(q, achieved, 2.0, 0.5)
    assert torch.allclose(v[0, 0], (pi[0, 0] * q[0, 0]).sum()) and v[0, 1] == 0.5


def test_successor_payoff_pays_one_at_the_goal_and_nothing_at_the_horizon() -> None:
    v = torch.full((3, 1), 0.5, dtype=torch.float64)
    achieved = torch.tensor([[True], [False], [False]])
    terminal = torch.tensor([True, True, False])
    assert T.successor_payoff(v, achieved, terminal, 0.9).ravel().tolist() == [1.0, 0.0, 0.45]


def test_q_takes_the_min_over_robots_then_the_mean_over_other_humans() -> None:
    # agents: human 0, human 1, robot 2, two actions each: profile digits (a0, a1, a2), agent 0 least significant
    from humanpower.exact.kernels import ProfileTables

    tables = ProfileTables.build(3, 2, (0, 1), (2,))
    split = torch.from_numpy(tables.split_human(0))
    row_ev = torch.arange(8, dtype=torch.float64).view(8, 1) / 8  # one row per profile, value = profile / 8
    q = T.q_from_rows(row_ev, torch.arange(8).view(1, 8), split, num_others=2, num_robot=2)
    # a0 = 0: profiles (a1, a2) -> 0, 2 (a1 = 1), 4, 6 (a2 = 1): min over a2 per a1 = 0, 2; mean = 1 -> 1/8
    assert q.shape == (1, 1, 2)
    assert torch.allclose(q[0, 0], torch.tensor([1 / 8, 2 / 8], dtype=torch.float64))


# -- tabular backend: the targets iterate to the exact fixed point ----------------------------------------------
def _tabular_learner(world: SimulatorModel, nu_h: float) -> tuple[Phase1Learner, Any, list[Any], list[int]]:
    dag = build_dag(world, progress=False)
    params = TheoryParams(beta_h=3.0, gamma_h=0.9, nu_h=nu_h)
    exact = solve_phase1(world, dag, params, keep_q=True)
    ids = [i for i in range(dag.num_states) if not dag.terminal[i]]
    settings = Phase1Settings(
        "tabular", 3.0, 0.9, nu_h, 1, len(ids), len(ids), 1.0, 1, 0.0, 1e9, 1.0, 8, 1, dag.num_states, 0, "cpu", None
    )
    goals = [OneHotGoalEncoder(list(world.goal_set(h).goals)) for h in world.humans]
    learner = Phase1Learner(world, settings, OneHotStateEncoder(world, dag.states), goals)
    for net, target in zip(learner.nets, learner.targets, strict=True):
        net.double()
        target.module.double()
    goal_sets = [world.goal_set(h) for h in world.humans]
    learner.add([compile_state(world, dag.states[i], goal_sets) for i in ids], 0)
    for _ in range(dag.num_levels):  # full-batch sweeps with lr 1 and target copies every step: value iteration
        learner.train_step()
    return learner, exact, dag.states, ids


@pytest.mark.parametrize(("name", "nu_h"), [("trivial", 0.3), ("two_small", 0.0), ("random", 0.1)])
def test_tabular_targets_reach_the_exact_fixed_point(name: str, nu_h: float, tmp_path: Path) -> None:
    world: SimulatorModel
    if name == "two_small":
        world = _two_small(tmp_path)
    elif name == "random":
        world = random_tabular_world(3, num_nodes=6, num_humans=2, num_robots=1, num_actions=3, max_steps=4)
    else:
        world = load_world(name)
    learner, exact, states, ids = _tabular_learner(world, nu_h)
    assert exact.q_m is not None
    rows = torch.as_tensor(learner.featurizer.intern([states[i] for i in ids]))
    checked = 0
    for hi, h in enumerate(world.humans):
        net = learner.nets[hi]
        q = net.table.detach()[rows].view(len(ids), -1, world.num_actions).numpy()
        achieved = np.array([world.goal_set(h).achieved_mask(states[i]) for i in ids])
        err = np.abs(q - exact.q_m[hi][ids])[~achieved]
        assert err.max() < 1e-6
        checked += err.size
    assert checked > 0


# -- the walk prefers states it has not compiled -----------------------------------------------------------------
def test_walk_prefers_new_states_and_restarts_at_the_frontier() -> None:
    world = load_world("locked_in")
    collector = RandomWalkCollector(world, [world.goal_set(h) for h in world.humans], seed=0)
    seen = {collector.step().state for _ in range(3000)}
    assert len(seen) >= 1150
    assert len(collector.frontier) > 0
    assert not any(collector.compiled(s) for s in collector.frontier.items)
    assert all(not world.is_terminal(s) for s in collector.frontier.items)
    restored = RandomWalkCollector(world, collector.goal_sets, seed=1)
    restored.load_state_dict(collector.state_dict())
    assert restored.frontier.items == collector.frontier.items and restored.state == collector.state


# -- a short neural run beats the uniform and the heuristic prior -----------------------------------------------
def _mean_tv(prior: Any, exact: Any, dag: Any, world: SimulatorModel, human_pos: int) -> float:
    """Mean TV over reachable non-terminal (state, goal) pairs whose goal is not achieved."""
    h = world.humans[human_pos]
    ids = [i for i in range(dag.num_states) if not dag.terminal[i]]
    states = [dag.states[i] for i in ids]
    goals = world.goal_set(h).goals
    if isinstance(prior, BatchHumanPolicyPrior):
        pi = prior.action_distributions(states, h)
    else:
        pi = np.array([[prior.action_distribution(s, h, g) for g in goals] for s in states])
    achieved = np.array([world.goal_set(h).achieved_mask(s) for s in states])
    return float((0.5 * np.abs(pi - exact.pi[human_pos][ids]).sum(-1))[~achieved].mean())


@pytest.mark.parametrize(("name", "steps"), [("trivial", 800), ("two_small", 300)])
def test_short_neural_run_beats_uniform_and_heuristic(name: str, steps: int, tmp_path: Path) -> None:
    world = _two_small(tmp_path) if name == "two_small" else load_world(name)
    cfg = Phase2Config(
        human_prior="learned",
        phase1_train_steps=steps,
        phase1_batch_size=128,
        target_update_interval_phase1=20,
        lr_phase1=1e-2,
        hidden_dim=64,
    )
    setup = build_setup(world, cfg, reference=False)
    trainer = Phase1Trainer(world, cfg, setup.state_encoder, setup.goal_encoders, progress=False)
    assert trainer.train(StopRequest())
    prior = frozen_prior(trainer.learner)
    dag = build_dag(world, progress=False)
    exact = solve_phase1(world, dag, cfg.theory())
    heuristic = HeuristicPrior(world, GridDistances(world), cfg.beta_h, cfg.nu_h)
    a = world.num_actions
    for hi, h in enumerate(world.humans):
        learned = _mean_tv(prior, exact, dag, world, hi)
        uniform = _mean_tv(_Uniform(a), exact, dag, world, hi)
        assert learned < uniform, (h, learned, uniform)
        assert learned < _mean_tv(heuristic, exact, dag, world, hi), h


class _Uniform:
    def __init__(self, a: int) -> None:
        self.a = a

    def action_distribution(self, state: Any, human: int, goal: Any) -> np.ndarray:
        return np.full(self.a, 1.0 / self.a)


# -- the prior objects ------------------------------------------------------------------------------------------
def test_priors_implement_the_batch_protocol_in_goal_set_order(tmp_path: Path) -> None:
    world = _two_small(tmp_path)
    cfg = Phase2Config(human_prior="learned", hidden_dim=16)
    setup = build_setup(world, cfg, reference=False)
    dag = build_dag(world, progress=False)
    exact = solve_phase1(world, dag, cfg.theory())
    assert isinstance(setup.prior, LearnedHumanPrior)
    states = dag.states[:7]
    for prior in (setup.prior, exact):
        assert isinstance(prior, HumanPolicyPrior) and isinstance(prior, BatchHumanPolicyPrior)
        for h in world.humans:
            gs = world.goal_set(h)
            batch = prior.action_distributions(states, h)
            assert batch.shape == (len(states), len(gs), world.num_actions)
            for n, s in enumerate(states):
                for k, g in enumerate(gs.goals):
                    assert np.allclose(batch[n, k], prior.action_distribution(s, h, g))
                assert np.allclose(prior.marginal_distribution(s, h), gs.probabilities @ batch[n])


def test_a_tabular_prior_answers_states_beyond_its_table_with_untrained_values(tmp_path: Path) -> None:
    """The frozen prior never trains: a state beyond its tables (e.g. on a world over tabular_max_states, measured
    over every reachable state) gets the initial rows, as an untrained entry would, not an error."""
    world = _two_small(tmp_path)
    dag = build_dag(world, progress=False)
    small = build_setup(
        world, Phase2Config(human_prior="learned", networks="tabular", tabular_max_states=2), reference=False
    )
    big = build_setup(world, Phase2Config(human_prior="learned", networks="tabular"), reference=False)
    assert isinstance(small.prior, LearnedHumanPrior) and isinstance(big.prior, LearnedHumanPrior)
    states = dag.states[:7]
    for h in world.humans:
        np.testing.assert_array_equal(
            small.prior.action_distributions(states, h), big.prior.action_distributions(states, h)
        )


# -- one run, two phases: resume per phase, eval rebuilds the prior --------------------------------------------
TINY: dict[str, Any] = {
    "human_prior": "learned",
    "num_episodes": 6,
    "steps_per_episode": 10,
    "warmup_v_h_e_steps": 10,
    "warmup_x_h_steps": 10,
    "warmup_q_r_steps": 10,
    "beta_r_rampup_steps": 20,
    "batch_size": 8,
    "hidden_dim": 16,
    "phase1_train_steps": 40,
    "phase1_batch_size": 16,
    "log_every_episodes": 3,
    "rollout_gif": False,
}


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, cls: Any, calls: int, method: str = "train_step") -> None:
    """SIGINT to this process at the ``calls``-th ``cls.<method>`` call (the trainers stop cleanly)."""
    original = getattr(cls, method)
    count = {"n": 0}

    def step(self: Any, *args: Any) -> Any:
        count["n"] += 1
        if count["n"] == calls:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args)

    monkeypatch.setattr(cls, method, step)


def test_resume_continues_the_phase_it_was_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = load_world("trivial")
    cfg = Phase2Config.from_dict(TINY)
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_after(m, Phase1Learner, 5)
        first = train(world, cfg, run)
    assert first.interrupted
    p1 = phase1_folder(RunFolder(run))
    assert p1.read_status()["status"] == "interrupted" and not (p1.root / PRIOR_FILE).exists()
    assert not RunFolder(run).status_path.exists()  # Phase 2 has not started
    ckpt = load_torch(p1.checkpoints()[0])["state"]
    assert ckpt["learner"]["train_steps"] == 5 and len(ckpt["learner"]["nets"]) == len(world.humans)

    resumed_cfg = Phase2Config.from_yaml(RunFolder(run).config_path)
    with monkeypatch.context() as m:
        _interrupt_after(m, Learner, 3, "step")  # the Phase 2 trainer calls Learner.step
        second = train(world, resumed_cfg, run, resume=True)
    assert second.interrupted
    assert p1.read_status()["status"] == "finished" and p1.read_status()["train_steps"] == 40
    assert RunFolder(run).read_status()["status"] == "interrupted"

    def no_phase1(self: Any, *args: Any, **kwargs: Any) -> bool:
        raise AssertionError("Phase 1 must not run again once its prior is frozen")

    monkeypatch.setattr(Phase1Trainer, "train", no_phase1)
    third = train(world, resumed_cfg, run, resume=True)
    assert not third.interrupted and RunFolder(run).read_status()["status"] == "finished"

    # eval's setup rebuilds the run's prior from the folder
    rebuilt = build_setup(world, resumed_cfg, reference=False, run_dir=run).prior
    frozen = load_torch(p1.root / PRIOR_FILE)["prior"]
    assert isinstance(rebuilt, LearnedHumanPrior)
    for net, saved in zip(rebuilt.nets, frozen["nets"], strict=True):
        for key, value in net.state_dict().items():
            assert torch.equal(value, saved[key])


class _FakeClock:
    """A clock that advances ``tick`` seconds at every reading."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_time_limit_ends_phase1_and_its_lr_decay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = load_world("trivial")
    cfg = Phase2Config.from_dict({**TINY, "phase1_train_steps": 10**6, "phase1_max_seconds": 30.0})
    setup = build_setup(world, cfg, reference=False)
    run = tmp_path / "run"
    first = Phase1Trainer(world, cfg, setup.state_encoder, setup.goal_encoders, run, clock=_FakeClock(1.0))
    stop = StopRequest()
    with monkeypatch.context() as m, stop.installed():
        _interrupt_after(m, Phase1Learner, 5)
        assert not first.train(stop)  # stopped by the signal: the spent time is in the checkpoint
    spent = first.clock_seconds
    assert 5 <= spent < 30
    second = Phase1Trainer(world, cfg, setup.state_encoder, setup.goal_encoders, run, clock=_FakeClock(1.0))
    assert second.train(StopRequest(), resume=True)  # the limit, not the 10**6 steps, ends Phase 1
    assert second.clock_seconds == pytest.approx(30.0) and second.out_of_time
    steps = second.learner.train_steps
    assert 30 - spent - 3 <= steps - first.learner.train_steps <= 30 - spent  # one clock second per loop turn
    assert (phase1_folder(RunFolder(run)).root / PRIOR_FILE).is_file()
    # the lr decay ran on the time share: the last step's lr is base / 3, as at the end of a step budget
    assert second.learner.lr_at(steps) == pytest.approx(cfg.lr_phase1 / 3.0)


def test_plan_phase1_gives_a_time_limit_and_a_generous_step_cap() -> None:
    world = load_world("trivial")
    cfg = Phase2Config.from_dict({**TINY, "phase1_train_steps": None})
    setup = build_setup(world, cfg, reference=False)
    plan = plan_phase1(world, cfg, setup.state_encoder, setup.goal_encoders, 60.0, clock=_FakeClock(0.5))
    assert plan["phase1_max_seconds"] == 60.0
    # the probe reads the fake clock about once per timed step: about 0.5 s per step
    assert plan["phase1_train_steps"] == pytest.approx(STEP_CAP_FACTOR * 60.0 / 0.5, rel=0.2)
    assert Phase2Config.from_dict({**TINY, **plan}).phase1_max_seconds == 60.0


def test_derived_phase1_budget_follows_the_share() -> None:
    no_warmup = {f"warmup_{n}_steps": 0 for n in ("v_h_e", "x_h", "q_r")}
    cfg = Phase2Config(num_episodes=100, steps_per_episode=10, beta_r_rampup_steps=0, **no_warmup)
    assert derived_phase1_steps(cfg) == 334  # ceil(1000 / 3)
    assert derived_phase1_steps(cfg.replace(phase1_budget_share=0.5)) == 1000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"phase1_budget_share": 1.0}, "phase1_budget_share: must be in (0, 1)"),
        ({"phase1_train_steps": 0}, "phase1_train_steps: must be >= 1 or none"),
        ({"phase1_max_seconds": 0.0}, "phase1_max_seconds: must be > 0 or none"),
        ({"phase1_states_per_train_step": 0}, "phase1_states_per_train_step: must be >= 1"),
        ({"phase1_batch_size": 64, "phase1_buffer_size": 10}, "phase1_batch_size: must be <= phase1_buffer_size"),
        ({"lr_phase1": 0.0}, "lr_phase1: must be > 0"),
        ({"target_update_interval_phase1": 0}, "target_update_interval_phase1: must be >= 1"),
        ({"human_prior": "learnt"}, "human_prior: must be one of auto, exact, learned"),
    ],
)
def test_bad_phase1_values_give_one_line(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Phase2Config.from_dict(overrides)
    assert message in str(info.value) and "\n" not in str(info.value)
