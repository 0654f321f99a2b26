"""Asynchronous actor-learner: scheduling, policy snapshots, convergence, failures, Ctrl-C, no orphans, Ray."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import pytest
import torch

from humanpower.api import build_setup
from humanpower.goals import Goal
from humanpower.humans.uniform import UniformPrior
from humanpower.learn.checkpoint import RunFolder
from humanpower.learn.config import Phase2Config
from humanpower.learn.distributed import ActorCrashError, ActorPoolCollector, CollectRequest, RequestScheduler
from humanpower.learn.distributed.protocol import actor_spec, policy_update
from humanpower.learn.distributed.worker import ActorWorker, PolicyMirror
from humanpower.learn.evaluate import LearnedModel, compare_with_exact, uniform_policy_rmse
from humanpower.learn.trainer import Trainer, TrainingSetup, make_learner
from humanpower.worlds.grid.library import load_world

REPO = Path(__file__).resolve().parents[1]

SMALL = dict(
    num_episodes=300,
    steps_per_episode=10,
    batch_size=16,
    buffer_size=2000,
    warmup_v_h_e_steps=100,
    warmup_x_h_steps=100,
    warmup_q_r_steps=100,
    beta_r_rampup_steps=200,
    epsilon_decay_steps=500,
    hidden_dim=16,
    log_every_episodes=20,
    checkpoint_every_episodes=100,
    async_training=True,
    num_actors=2,
    chunk_size=32,
    actor_sync_freq=20,
)


def _small(**overrides: object) -> Phase2Config:
    return Phase2Config(**{**SMALL, **overrides})  # type: ignore[arg-type]


# -- process helpers ------------------------------------------------------------------------------------------


def _actor_children(parent: int) -> list[int]:
    """Live (non-zombie) spawned multiprocessing children of ``parent``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended while we looked
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent and fields[0] != "Z" and b"spawn_main" in cmdline:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


# -- pure scheduling logic ------------------------------------------------------------------------------------


def test_scheduler_limits_env_steps_per_training_step() -> None:
    s = RequestScheduler(num_actors=2, chunk_size=10, budget=1000, max_ratio=2.0, depth=2)
    first = s.issue(train_steps=0, starving=False)
    # Initial credit = the pipeline fill: 2 actors x depth 2 x 10 steps, tickets 0..39 in order.
    assert [(a, r.first_ticket, r.num_steps) for a, r in first] == [(0, 0, 10), (1, 10, 10), (0, 20, 10), (1, 30, 10)]
    assert s.issue(train_steps=0, starving=False) == []  # pipeline full
    for actor, request in first:
        assert s.complete(actor, request.request_id) == request
    assert s.issue(train_steps=4, starving=False) == []  # credit 40 + 2 * 4 = 48 < 50
    more = s.issue(train_steps=5, starving=False)  # credit 50: one more chunk
    assert [(r.first_ticket, r.num_steps) for _, r in more] == [(40, 10)]
    # A starving learner gets data regardless; the extra credit is remembered, not paid back later.
    starved = s.issue(train_steps=5, starving=True)
    assert len(starved) == 3 and s.bonus == 30
    assert s.credit(5) == 80


def test_scheduler_budget_and_reissue_after_failure() -> None:
    s = RequestScheduler(num_actors=2, chunk_size=10, budget=25, max_ratio=None, depth=2)
    issued = s.issue(0, starving=False)
    assert [(a, r.first_ticket, r.num_steps) for a, r in issued] == [(0, 0, 10), (1, 10, 10), (0, 20, 5)]
    assert s.exhausted
    assert s.actor_failed(0) == 2 and s.in_flight == 1
    again = s.issue(0, starving=False)  # same tickets, to actor 0's next incarnation
    assert [(a, r.first_ticket, r.num_steps) for a, r in again] == [(0, 0, 10), (0, 20, 5)]
    assert s.complete(1, issued[0][1].request_id) is None  # not actor 1's request


# -- actor side, in process -----------------------------------------------------------------------------------


def _trivial_setup(cfg: Phase2Config) -> TrainingSetup:
    return build_setup(load_world("trivial"), cfg, reference=False)


def test_worker_adopts_policy_only_at_episode_boundaries() -> None:
    cfg = _small(warmup_v_h_e_steps=0, warmup_x_h_steps=0, warmup_q_r_steps=0, beta_r_rampup_steps=0)
    setup = _trivial_setup(cfg)
    learner = make_learner(setup, cfg)
    spec = actor_spec(setup, cfg, learner, episode_len=10)
    worker = ActorWorker(spec, actor_id=0, incarnation=0, seed=1, update=policy_update(learner, 0))
    first = worker.collect(CollectRequest(0, first_ticket=0, num_steps=5))
    learner.train_steps = 7
    worker.offer(policy_update(learner, 5))  # mid-episode: must wait for the boundary
    rest = worker.collect(CollectRequest(1, first_ticket=5, num_steps=20))
    transitions = first.transitions + rest.transitions
    assert [t.total_steps for t in transitions] == list(range(25))
    assert [t.policy_version for t in transitions] == [0] * 10 + [7] * 15
    assert [t.episode_step for t in transitions] == list(range(10)) * 2 + list(range(5))
    assert first.episodes_finished == 0 and rest.episodes_finished == 2
    worker.offer(policy_update(learner, 30))  # not newer than the adopted version: ignored
    learner.train_steps = 3
    worker.offer(policy_update(learner, 30))  # older: ignored
    later = worker.collect(CollectRequest(2, first_ticket=25, num_steps=10))
    assert {t.policy_version for t in later.transitions} == {7}


@pytest.mark.parametrize("networks", ["neural", "tabular"])
def test_actor_policy_copy_acts_like_the_learner(networks: str) -> None:
    """The actor's Q_r copy gives the learner's Q values, including (tabular) states the learner never saw."""
    cfg = _small(networks=networks)
    setup = _trivial_setup(cfg)
    learner = make_learner(setup, cfg)
    world = setup.world
    states = [world.initial_state()]
    for a in range(world.num_actions):
        joint = tuple([a] * world.num_agents)
        states += [s for _, s in world.transition_probabilities(states[0], joint) if s not in states]
    known, unseen = states[: len(states) // 2], states[len(states) // 2 :]
    learner.featurizer.intern(known)
    with torch.no_grad():  # "trained" values: every parameter (neural), the rows of known states (tabular)
        for p in learner.nets.q_r.parameters():
            rows = p[: len(known)] if networks == "tabular" else p
            rows.copy_(-torch.rand_like(rows) - 0.1)
    q_r = actor_spec(setup, cfg, learner, 10).q_r
    policy = PolicyMirror(q_r, setup.state_encoder, networks == "tabular", cfg.beta_r).adopt(policy_update(learner, 0))
    reference = learner.acting_policy()
    for s in states:  # the learner's q_values interns unseen states, as it would on arrival
        np.testing.assert_allclose(policy.q_values([s]), reference.q_values([s]), rtol=1e-6, err_msg=str(s))
    # Batched: the same rows as one state at a time, and the same acting distributions.
    np.testing.assert_allclose(policy.q_values(states), reference.q_values(states), rtol=1e-6)
    np.testing.assert_allclose(policy.action_distributions(states), reference.action_distributions(states), rtol=1e-6)
    if networks == "tabular":
        assert len(unseen) > 0 and learner.featurizer.num_ids > len(known)


# -- whole runs -----------------------------------------------------------------------------------------------


CONVERGENCE = dict(
    num_episodes=300,
    warmup_v_h_e_steps=500,
    warmup_x_h_steps=500,
    warmup_q_r_steps=500,
    beta_r_rampup_steps=1000,
    epsilon_decay_steps=2000,
    lr_decay_steps=2000,
    log_every_episodes=50,
    async_training=True,
    num_actors=2,
    max_env_steps_per_train_step=1.0,  # about one training step per env step, as updates_per_step=1 in sync
    max_policy_lag=1000,
)


def test_async_learns_like_sync_and_tracks_policy_versions() -> None:
    """trivial, 2 local actors, the trivial-neural config shortened to 3,000 env steps.

    Measured (final row; untrained model: v_h_e_mae 0.47, argmax agreement 0.68, pi_r RMSE 0.178; uniform
    policy RMSE 0.134). Earlier trivial-neural.yaml (no actor options): sync seeds 0-3 v_h_e_mae 0.12-0.14,
    argmax agreement 0.73-0.84, pi_r RMSE 0.12-0.16; async 6 runs 0.12-0.13, 0.74-0.83, 0.14-0.18. Current
    one (exploring starts, all goals, log Q_r loss), async 3 runs: 0.019-0.023, 0.80-0.87, 0.136-0.156.
    In so short a run the pi_r RMSE does not beat the uniform policy's reliably (it fluctuates around it), so
    the test asserts what is reliably learnt: V_h^e errors well below the untrained model's and a policy whose
    most likely action agrees with the exact one more often than the untrained model's.
    """
    cfg = Phase2Config.from_yaml(REPO / "configs" / "trivial-neural.yaml").replace(**CONVERGENCE)
    setup = build_setup(load_world("trivial"), cfg)
    untrained = compare_with_exact(LearnedModel.from_learner(make_learner(setup, cfg), setup.world), setup.reference)
    trainer = Trainer(setup, cfg, None, progress=False)
    result = trainer.train()
    final = result.metrics[-1]
    assert final["total_steps"] == cfg.total_env_steps and not result.crashes
    assert final["stage"] == 5 and trainer.learner.train_steps > cfg.total_env_steps // 2
    assert final["v_h_e_mae"] < 0.5 * untrained["v_h_e_mae"], (final["v_h_e_mae"], untrained["v_h_e_mae"])
    assert final["argmax_agreement"] > untrained["argmax_agreement"] + 0.03
    assert np.isfinite(final["pi_r_rmse"]) and uniform_policy_rmse(setup.reference) > 0.1
    # Every stored transition carries the version of the policy it was collected with, within max_policy_lag.
    items = trainer.learner.replay.storage.get(np.arange(len(trainer.learner.replay)))
    versions = np.array([it.policy_version for it in items])
    assert versions.min() >= 0 and versions.max() <= trainer.learner.train_steps and versions.max() > 0
    assert cfg.max_policy_lag is not None and 0 <= trainer.max_lag_seen <= cfg.max_policy_lag
    assert trainer.dropped_stale == 0
    for key in ("policy_lag_mean", "policy_lag_max", "queue_fill", "replay_ratio", "env_steps_per_s_actor1"):
        assert np.isfinite(final[key]), key
    assert _actor_children(os.getpid()) == []


def test_stale_transitions_are_dropped_and_counted() -> None:
    cfg = _small(
        num_episodes=60,
        max_policy_lag=1,
        actor_sync_freq=50,
        max_env_steps_per_train_step=None,
        clear_buffer_at_rampup=False,
    )
    trainer = Trainer(_trivial_setup(cfg), cfg, None, progress=False)
    trainer.train()
    assert trainer.total_steps == cfg.total_env_steps
    assert trainer.dropped_stale > 0 and trainer.max_lag_seen > 1
    items = trainer.learner.replay.storage.get(np.arange(len(trainer.learner.replay)))
    assert len(items) == trainer.total_steps - trainer.dropped_stale


def test_killed_actor_is_restarted_and_run_completes(tmp_path: Path) -> None:
    cfg = _small(num_episodes=400)
    trainer = Trainer(_trivial_setup(cfg), cfg, tmp_path, progress=False)
    killed: list[int] = []
    collector = trainer.collector
    assert isinstance(collector, ActorPoolCollector)

    def kill_one() -> None:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            pids = collector.pids()
            if pids and trainer.total_steps >= 500:
                pid = pids[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    result = trainer.train()
    killer.join()
    assert len(killed) == 1 and not _alive(killed[0])
    assert trainer.total_steps == cfg.total_env_steps and not result.interrupted
    assert [(c.actor_id, c.incarnation, c.restarted) for c in result.crashes] == [(0, 0, True)]
    assert "SIGKILL" in result.crashes[0].reason
    assert result.metrics[-1]["actor_restarts"] == 1
    status = RunFolder(tmp_path).read_status()
    assert status["status"] == "finished" and status["crashes"] == 1
    assert _actor_children(os.getpid()) == []


class FailingPrior(UniformPrior):
    """A prior that breaks once a human has taken a few steps (fault injection for actor processes)."""

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> np.ndarray:
        if self.world.step_count(state) >= 3:
            raise ValueError("injected prior failure")
        return super().action_distribution(state, human, goal)


def test_actor_errors_are_reported_with_traceback_and_restarts_are_bounded(tmp_path: Path) -> None:
    cfg = _small(num_actors=1, actor_max_restarts=1)
    setup = _trivial_setup(cfg)
    setup.prior = FailingPrior(setup.world)
    trainer = Trainer(setup, cfg, tmp_path, progress=False)
    with pytest.raises(ActorCrashError, match="crashed 2 times") as info:
        trainer.train()
    message = str(info.value)
    assert "Traceback" in message and "injected prior failure" in message and "action_distribution" in message
    assert [(c.incarnation, c.restarted) for c in trainer.crashes] == [(0, True), (1, False)]
    folder = RunFolder(tmp_path)
    assert folder.read_status()["status"] == "failed" and folder.latest_checkpoint().is_file()
    assert _actor_children(os.getpid()) == []


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from humanpower.api import build_setup
    from humanpower.learn.config import Phase2Config
    from humanpower.learn.trainer import Trainer
    from humanpower.worlds.grid.library import load_world

    if __name__ == "__main__":
        cfg = Phase2Config.from_yaml(sys.argv[2])
        setup = build_setup(load_world("trivial"), cfg, reference=False)
        result = Trainer(setup, cfg, Path(sys.argv[1]), progress=False).train()
        print("interrupted" if result.interrupted else "finished", flush=True)
    """
)


def test_ctrl_c_stops_every_process_and_leaves_a_resumable_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = _small(num_episodes=100_000, log_every_episodes=5, actor_sync_freq=5)
    cfg_path = tmp_path / "config.yaml"
    cfg.to_yaml(cfg_path)
    script = tmp_path / "train.py"
    script.write_text(CTRL_C_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), str(cfg_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C would reach it
    )
    try:
        deadline = time.monotonic() + 45
        metrics = run_dir / "metrics.csv"
        while time.monotonic() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        actors = _actor_children(proc.pid)
        assert len(actors) == 2
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.strip() == "interrupted", err
    assert not any(_alive(pid) for pid in actors)
    folder = RunFolder(run_dir)
    status = folder.read_status()
    assert status["status"] == "interrupted" and folder.latest_checkpoint().is_file()
    # Resume to a slightly longer budget: continues from the checkpoint and finishes.
    done = max(status["total_steps"] // cfg.steps_per_episode + 10, cfg.warmup_env_steps // cfg.steps_per_episode)
    resumed = Trainer(_trivial_setup(cfg), cfg.replace(num_episodes=done), run_dir, progress=False)
    start = torch.load(folder.latest_checkpoint(), weights_only=False)["state"]["total_steps"]
    result = resumed.train(resume=True)
    assert not result.interrupted and resumed.total_steps == done * cfg.steps_per_episode > start
    assert folder.read_status()["status"] == "finished"
    assert _actor_children(os.getpid()) == []


def _ray_cluster_tool():  # type: ignore[no-untyped-def]
    """tools/ray_cluster_check.py as a module (its Cluster starts and stops nodes with ``ray start``)."""
    spec = importlib.util.spec_from_file_location("ray_cluster_check", REPO / "tools" / "ray_cluster_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ray_backend_on_an_existing_cluster(tmp_path: Path) -> None:
    """``ray start --head`` outside the run, then ``humanpower train --backend ray --ray-address``: the pool joins
    that cluster, reports the asynchronous metrics and where its actors ran, and leaves the cluster running.

    The two-node version with a node lost mid-run is ``tools/ray_cluster_check.py`` (docs/ASYNC.md).
    """
    pytest.importorskip("ray", reason="the ray backend needs the optional dependency ray")
    tool = _ray_cluster_tool()
    run = tmp_path / "run"
    with tool.cluster() as cluster:
        head = cluster.start_node("head", num_cpus=2)
        args = tool.train_args(cluster.address, run, num_episodes=60)
        done = subprocess.run(args, env=cluster.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert tool.processes_mentioning(str(head))  # the cluster is still up: the run only disconnected
    assert not tool.processes_mentioning(str(cluster.root))  # and the test stopped every process of it
    status = RunFolder(run).read_status()
    assert status["status"] == "finished" and status["total_steps"] == 600 and status["crashes"] == 0
    locations = status["actor_locations"]
    assert sorted(e["actor"] for e in locations) == [0, 1] and len(tool.ray_nodes(status)) == 1
    rows = (run / "metrics.csv").read_text().splitlines()
    final = dict(zip(rows[0].split(","), rows[-1].split(","), strict=True))
    for key in ("policy_lag_mean", "queue_fill", "replay_ratio", "env_steps_per_s_actor0", "env_steps_per_s_actor1"):
        assert np.isfinite(float(final[key])), key
