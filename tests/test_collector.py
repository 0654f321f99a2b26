"""One trainer loop, two collectors: the pacing rules, and valid runs with the synchronous collector and a local
actor pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from humanpower.api import build_setup
from humanpower.learn.checkpoint import RunFolder
from humanpower.learn.collector import Pacing, SyncCollector
from humanpower.learn.config import Phase2Config
from humanpower.learn.distributed import ActorPoolCollector
from humanpower.learn.trainer import Trainer
from humanpower.worlds.grid.library import load_world

SMALL = dict(
    num_episodes=12,
    steps_per_episode=10,
    batch_size=16,
    buffer_size=500,
    warmup_v_h_e_steps=10,
    warmup_x_h_steps=10,
    warmup_q_r_steps=10,
    beta_r_rampup_steps=20,
    epsilon_decay_steps=50,
    hidden_dim=16,
    log_every_episodes=4,
    checkpoint_every_episodes=6,
    num_actors=1,
    chunk_size=10,  # one chunk = one episode: the asynchronous episode count is exact too
)


def test_pacing_is_derived_from_the_config() -> None:
    sync = Pacing.from_config(Phase2Config(updates_per_step=3))
    assert sync.lockstep and sync.updates_after(1) == 3 and sync.updates_after(2) == 6
    assert not sync.publish_due(100) and sync.keeps(10**9)  # the live network: never published, never stale
    # The budget counts finished episodes.
    assert sync.work_left(4, 10**6, num_episodes=5, episode_len=10) and not sync.work_left(5, 0, 5, 10)
    assert sync.beyond(6, 0, 5, 10) and not sync.beyond(5, 10**6, 5, 10)
    free = Pacing.from_config(
        Phase2Config(async_training=True, actor_sync_freq=20, max_policy_lag=7, max_env_steps_per_train_step=4.0)
    )
    assert not free.lockstep and free.updates_after(64) == 0 and free.max_env_steps_per_train_step == 4.0
    assert free.publish_due(40) and not free.publish_due(41)
    assert free.keeps(7) and not free.keeps(8)
    # The budget counts env steps (num_episodes * episode length).
    assert free.work_left(99, 49, 5, 10) and not free.work_left(0, 50, 5, 10) and free.beyond(0, 51, 5, 10)


@pytest.mark.parametrize("async_training", [False, True])
def test_one_trainer_loop_with_either_collector(tmp_path: Path, async_training: bool) -> None:
    cfg = Phase2Config(**SMALL, async_training=async_training)  # type: ignore[arg-type]
    trainer = Trainer(build_setup(load_world("trivial"), cfg, reference=False), cfg, tmp_path, progress=False)
    assert isinstance(trainer.collector, ActorPoolCollector if async_training else SyncCollector)
    result = trainer.train()
    status = RunFolder(tmp_path).read_status()
    assert status["status"] == "finished" and status["total_steps"] == trainer.total_steps == cfg.total_env_steps
    assert trainer.episode == cfg.num_episodes == status["episode"] and trainer.learner.train_steps > 0
    assert not result.crashes and status["crashes"] == 0 and (tmp_path / "policy.pt").is_file()
    # Where the actor ran: this process (synchronous), another process (the local pool).
    (where,) = status["actor_locations"]
    assert where["actor"] == 0 and where["incarnation"] == 0
    assert (int(where["location"].rsplit("/", 1)[1]) == os.getpid()) != async_training
    # The same metric rows from the same loop; the pool adds its own columns.
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    for key in ("total_steps", "train_steps", "loss_v_h_e", "policy_lag_mean", "replay_ratio", "dropped_stale"):
        assert key in header, key
    assert ("queue_fill" in header) == async_training and ("env_steps_per_s_actor0" in header) == async_training
    assert [int(line.split(",")[header.index("total_steps")]) for line in lines[1:]] == [40, 80, 120]
    assert [row["episode"] for row in result.metrics] == [4, 8, 12]
    if not async_training:  # acting with the live network: every transition is current
        assert all(row["policy_lag_max"] == 0 for row in result.metrics)
