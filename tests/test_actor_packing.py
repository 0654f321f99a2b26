"""Chunks cross the process boundary packed (a state table and numpy columns) and unpack to equal transitions."""

from __future__ import annotations

import pickle

import pytest

from humanpower.humans import HeuristicPrior
from humanpower.learn.actor import Actor, ActorOptions, ExplorationParams
from humanpower.learn.distributed.packing import PackedChunk, pack_chunk
from humanpower.learn.distributed.protocol import Chunk
from humanpower.worlds.grid import GridDistances, load_world


def chunk_of(world_name: str, options: ActorOptions, steps: int) -> Chunk:
    world = load_world(world_name)
    prior = HeuristicPrior(world, GridDistances(world), 10.0, 0.0)
    actor = Actor(world, prior, goal_resample_prob=0.1, steps_per_episode=6, seed=5, options=options)
    out = []
    for i in range(steps):
        if actor.episode_done:
            actor.begin_episode()
        out.append(actor.step(None, ExplorationParams(beta_r=0.5, epsilon=0.1), 100 + i))
    return Chunk(actor_id=1, incarnation=2, request_id=3, transitions=tuple(out), episodes_finished=4, seconds=0.5)


@pytest.mark.parametrize(
    ("world_name", "options"),
    [("large", ActorOptions()), ("two_humans", ActorOptions(all_human_actions=True)), ("unsteady", ActorOptions())],
)
def test_packed_chunk_unpacks_to_equal_transitions(world_name: str, options: ActorOptions) -> None:
    chunk = chunk_of(world_name, options, 20)
    packed = pack_chunk(chunk)
    wire = pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)
    back = pickle.loads(wire)
    assert isinstance(back, PackedChunk)
    assert back.unpack() == chunk
    assert pickle.loads(pickle.dumps(back)).unpack() == chunk


def test_empty_chunk_round_trips() -> None:
    chunk = Chunk(actor_id=0, incarnation=0, request_id=7, transitions=(), episodes_finished=0, seconds=0.0)
    assert pack_chunk(chunk).unpack() == chunk
