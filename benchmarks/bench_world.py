"""Throughput of the gridworld's exact transition model (``GridWorld.transition_probabilities``).

What is measured, per world (``trivial`` and ``large``):

1. A seeded random rollout (uniform joint actions, restarting at terminal states) collects ``--states``
   non-terminal states.
2. For each state one action per human is sampled uniformly; then the full successor distribution is
   computed for *every* joint robot action (``num_actions ** num_robots`` calls per state), as the learner
   does when it caches successors at collection time.
3. One (state, joint robot action) call is a *pair*; the figure is pairs per second of wall-clock time,
   the best of ``--repeat`` runs.

The headline figures (``*_pairs_per_s``) use the default world, i.e. with the opt-in transition memo
disabled. The ``*_cached_pairs_per_s`` figures use ``transition_cache_size`` large enough for all pairs and
time a second pass over the same pairs (every call a cache hit): an upper bound for repeated queries, not
a replacement for the headline.

Usage: ``python benchmarks/bench_world.py [--states 2000] [--repeat 3] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from humanpower.worlds.grid import GridState, GridWorld, load_world
from humanpower.worlds.protocol import compose_joint_action, num_robot_actions


def rollout_states(world: GridWorld, n: int, seed: int) -> list[GridState]:
    """``n`` non-terminal states from a seeded uniformly random rollout."""
    rng = np.random.default_rng(seed)
    state = world.reset(seed=seed)
    out: list[GridState] = []
    while len(out) < n:
        if world.is_terminal(state):
            state = world.reset()
        assert isinstance(state, GridState)
        out.append(state)
        state = world.step(tuple(int(a) for a in rng.integers(0, world.num_actions, world.num_agents)))
    return out


def joint_actions(world: GridWorld, states: list[GridState], seed: int) -> list[list[tuple[int, ...]]]:
    """Per state: every joint robot action composed with one uniformly sampled action per human."""
    rng = np.random.default_rng(seed + 1)
    out = []
    for _ in states:
        humans = [int(a) for a in rng.integers(0, world.num_actions, len(world.humans))]
        out.append([compose_joint_action(world, humans, r) for r in range(num_robot_actions(world))])
    return out


def time_pairs(world: GridWorld, states: list[GridState], actions: list[list[tuple[int, ...]]]) -> float:
    """Seconds for one pass over all pairs."""
    tp = world.transition_probabilities
    t0 = time.perf_counter()
    for state, joints in zip(states, actions, strict=True):
        for joint in joints:
            tp(state, joint)
    return time.perf_counter() - t0


def measure(name: str, n_states: int, repeat: int, seed: int) -> dict[str, float]:
    world = load_world(name)
    states = rollout_states(world, n_states, seed)
    actions = joint_actions(world, states, seed)
    pairs = sum(len(j) for j in actions)
    best = min(time_pairs(world, states, actions) for _ in range(repeat))
    cached = GridWorld(
        world.layout,
        world.initial_state(),
        world.max_steps,
        world.actions,
        world.stumble_probability,
        transition_cache_size=pairs + 1,
    )
    time_pairs(cached, states, actions)  # fill the memo
    best_cached = min(time_pairs(cached, states, actions) for _ in range(repeat))
    successors = sum(
        len(world.transition_probabilities(s, j)) for s, js in zip(states, actions, strict=True) for j in js
    )
    return {
        "pairs": pairs,
        "pairs_per_s": pairs / best,
        "cached_pairs_per_s": pairs / best_cached,
        "mean_successors": successors / pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--states", type=int, default=2000, help="rollout states per world")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    results = {name: measure(name, args.states, args.repeat, args.seed) for name in ("trivial", "large")}
    if args.json:
        out = {}
        for name, r in results.items():
            out[f"{name}_pairs_per_s"] = round(r["pairs_per_s"], 1)
            out[f"{name}_cached_pairs_per_s"] = round(r["cached_pairs_per_s"], 1)
        print(json.dumps(out))
        return
    print(f"{'world':<10} {'pairs':>8} {'pairs/s':>12} {'cached pairs/s':>15} {'successors/pair':>16}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['pairs']:>8} {r['pairs_per_s']:>12,.0f} {r['cached_pairs_per_s']:>15,.0f}"
            f" {r['mean_successors']:>16.2f}"
        )


if __name__ == "__main__":
    main()
