"""Actor throughput on a bundled world: successor sets per CPU second and env steps per CPU second, old vs new.

    python benchmarks/bench_actor.py [--world large] [--steps 400] [--json]

Two figures, each timed for the old path and the new one in the same run (``time.process_time``, so the figures
are per CPU second of this process and comparable on a shared machine):

1. **Successor sets.** States and target-draw human actions from a seeded actor rollout; for each, the exact
   successor distribution of every joint robot action. Old: one ``transition_probabilities`` call per joint robot
   action (``generic_transition_table``). New: one batch call (``GridWorld.transition_table``: no actor memo, the
   world's table memo of the last two steps applies). Both are checked to give equal distributions.
2. **Actor steps.** ``Actor.step`` with the default config and the heuristic human prior (the prior training uses
   on ``large``), robot uniform (beta_r = 0, the warm-up stages; a network policy adds its forward pass). Old:
   ``ActorOptions(batch_transitions=False, successor_cache_size=0)``. New: the defaults (batch hook, memo).
   Both actors use the same seed and produce identical transitions (checked).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any

from humanpower.humans import HeuristicPrior
from humanpower.learn.actor import Actor, ActorOptions, ExplorationParams
from humanpower.learn.config import Phase2Config
from humanpower.worlds.grid import GridDistances, load_world
from humanpower.worlds.protocol import generic_transition_table, robot_choices


def make_actor(world_name: str, options: ActorOptions, seed: int = 0) -> Actor:
    cfg = Phase2Config()
    world = load_world(world_name)
    prior = HeuristicPrior(world, GridDistances(world), cfg.beta_h, cfg.nu_h)
    actor = Actor(
        world,
        prior,
        goal_resample_prob=cfg.goal_resample_prob,
        steps_per_episode=min(cfg.steps_per_episode, world.max_steps),
        seed=seed,
        options=options,
    )
    return actor


def run_steps(actor: Actor, steps: int) -> tuple[float, list[Any]]:
    explore = ExplorationParams(beta_r=0.0, epsilon=0.0)
    out = []
    t0 = time.process_time()
    for i in range(steps):
        if actor.episode_done:
            actor.begin_episode()
        out.append(actor.step(None, explore, i))
    return time.process_time() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="large")
    parser.add_argument("--steps", type=int, default=400, help="env steps per timed run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    new_opts = ActorOptions()
    old_opts = replace(new_opts, batch_transitions=False, successor_cache_size=0)
    old_s, old_tr = run_steps(make_actor(args.world, old_opts), args.steps)
    new_s, new_tr = run_steps(make_actor(args.world, new_opts), args.steps)
    assert old_tr == new_tr, "old and new actors disagree"

    world = load_world(args.world)
    pairs = [(t.state, t.human_actions) for t in new_tr]
    t0 = time.process_time()
    old_sets = [generic_transition_table(world, s, robot_choices(world, h)) for s, h in pairs]
    t_old = time.process_time() - t0
    t0 = time.process_time()
    new_sets = [world.transition_table(s, robot_choices(world, h)) for s, h in pairs]
    t_new = time.process_time() - t0
    for a, b in zip(old_sets, new_sets, strict=True):
        assert [a[j] for j in range(len(a))] == [b[j] for j in range(len(b))]

    result = {
        "world": args.world,
        "steps": args.steps,
        "successor_sets_per_cpu_s_old": len(pairs) / t_old,
        "successor_sets_per_cpu_s_new": len(pairs) / t_new,
        "successor_sets_speedup": t_old / t_new,
        "env_steps_per_cpu_s_old": args.steps / old_s,
        "env_steps_per_cpu_s": args.steps / new_s,
        "env_steps_speedup": old_s / new_s,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value:.1f}" if isinstance(value, float) else f"{key:32} {value}")
        print(f"bar env_steps_per_cpu_s >= 1,000: {'ok' if result['env_steps_per_cpu_s'] >= 1000 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
