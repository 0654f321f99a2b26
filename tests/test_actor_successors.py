"""The actor's successor sets from the batch transition hook (and its memo) equal the per-action ones."""

from __future__ import annotations

from dataclasses import replace

import pytest

from humanpower.humans import HeuristicPrior
from humanpower.learn.actor import Actor, ActorOptions, ExplorationParams
from humanpower.learn.replay import Transition
from humanpower.worlds.grid import GridDistances, load_world
from humanpower.worlds.protocol import compose_joint_action


def rollout(world_name: str, options: ActorOptions, steps: int) -> list[Transition]:
    world = load_world(world_name)
    prior = HeuristicPrior(world, GridDistances(world), 10.0, 0.0)
    actor = Actor(world, prior, goal_resample_prob=0.1, steps_per_episode=8, seed=3, options=options)
    out = []
    for i in range(steps):
        if actor.episode_done:
            actor.begin_episode()
        out.append(actor.step(None, ExplorationParams(beta_r=0.0, epsilon=0.0), i))
    return out


@pytest.mark.parametrize("world_name", ["large", "two_humans", "unsteady"])
def test_batch_successors_equal_per_action_ones(world_name: str) -> None:
    world = load_world(world_name)
    new = rollout(world_name, ActorOptions(successor_cache_size=2), 24)
    for t in new:
        for r, dist in enumerate(t.successors):
            joint = compose_joint_action(world, t.human_actions, r)
            assert list(dist) == world.transition_probabilities(t.state, joint)
    old = rollout(world_name, ActorOptions(batch_transitions=False, successor_cache_size=0), 24)
    assert new == old


def test_all_human_actions_unchanged() -> None:
    opts = ActorOptions(all_human_actions=True)
    assert rollout("two_humans", opts, 12) == rollout(
        "two_humans", replace(opts, batch_transitions=False, successor_cache_size=0), 12
    )


def test_successor_cache_size_validated() -> None:
    with pytest.raises(ValueError, match="successor_cache_size"):
        ActorOptions(successor_cache_size=-1)
