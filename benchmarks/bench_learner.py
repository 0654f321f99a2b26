"""Throughput of the Phase 2 learner's training step and of the actor, on a bundled gridworld.

What is measured (defaults: ``trivial``, hidden 256, 2 hidden layers, batch 64, dropout 0.5, 1 torch thread):

1. The learner is built exactly as training builds it (``trainer.make_learner``: featurizer, networks, target
   copies, optimizers) with the exact Phase 1 human prior, and an :class:`~humanpower.learn.actor.Actor` fills
   replay with ``--fill`` transitions (acting with the live Q_r at the nominal beta_r, stage-5 style).
2. ``Learner.train_step`` is timed at a stage-5 env step (every network active, learning rates decaying):
   ``--steps`` consecutive steps per round, the best of ``--repeat`` rounds (other processes share the
   machine, so the best round is the least disturbed one). Configurations: the default networks (Q_r, V_h^e,
   X_h), all five (``u_r_use_network`` and ``v_r_use_network`` on), and the tabular backend.
3. ``Actor.step`` (behaviour + target draw + exact successors for every joint robot action) is timed the same
   way, acting with the live Q_r network at the nominal beta_r (``env_steps_per_s``) and uniformly without a
   network (``env_steps_per_s_uniform``, the warm-up stages).

    python benchmarks/bench_learner.py [--world trivial] [--hidden 256] [--layers 2] [--batch 64]
                                       [--steps 300] [--repeat 5] [--fill 3000] [--threads 1] [--json]

``--json`` prints one JSON object (``train_steps_per_s``, ``train_steps_per_s_all_networks``,
``tabular_train_steps_per_s``, ``env_steps_per_s``, ``env_steps_per_s_uniform``, plus the settings and the
1-minute load average at the start).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import torch

from humanpower.encoders import grid_encoders
from humanpower.exact import solve
from humanpower.learn.actor import Actor, ExplorationParams
from humanpower.learn.config import Phase2Config
from humanpower.learn.learner import Learner
from humanpower.learn.trainer import TrainingSetup, make_learner
from humanpower.worlds.grid.library import load_world


def build(world_name: str, cfg: Phase2Config) -> tuple[Learner, Actor]:
    """Learner (via ``make_learner``) and a seeded actor for ``world_name`` with the exact human prior."""
    world = load_world(world_name)
    sol = solve(world, cfg.theory(), human_prior="exact")
    state_enc, goal_enc = grid_encoders(world, cfg.include_step_count)
    setup = TrainingSetup(
        world=world, prior=sol.prior, state_encoder=state_enc, goal_encoders=[goal_enc[h] for h in world.humans]
    )
    learner = make_learner(setup, cfg)
    actor = Actor(
        world,
        sol.prior,
        goal_resample_prob=cfg.goal_resample_prob,
        steps_per_episode=min(cfg.steps_per_episode, world.max_steps),
        seed=cfg.seed,
    )
    return learner, actor


def run_actor(actor: Actor, learner: Learner | None, explore: ExplorationParams, n: int, t0: int) -> list[Any]:
    """``n`` actor steps (new episodes as needed), acting with the learner's live Q_r when given."""
    policy = learner.acting_policy() if learner is not None else None
    out = []
    for i in range(n):
        if actor.episode_done:
            actor.begin_episode()
        out.append(actor.step(policy, explore, t0 + i))
    return out


def best_rate(fn: Any, n: int, repeats: int) -> float:
    """Best of ``repeats`` rounds of ``fn(n)`` in calls per second."""
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        fn(n)
        best = max(best, n / (time.perf_counter() - t))
    return best


def bench_config(world: str, cfg: Phase2Config, args: argparse.Namespace) -> dict[str, float]:
    """Train-step rate (and actor rates) for one configuration."""
    learner, actor = build(world, cfg)
    t5 = cfg.warmup_env_steps + 1
    explore = ExplorationParams(beta_r=cfg.beta_r, epsilon=cfg.epsilon_end)
    learner.add(run_actor(actor, learner, explore, args.fill, t5))
    if not learner.ready():
        raise RuntimeError("replay cannot serve a batch after filling")
    stage = learner.stages.stage_at(t5)
    active = sorted(learner.loss_params(t5).active)

    def train(n: int) -> None:
        for _ in range(n):
            learner.train_step(t5)

    train(10)  # warm-up (allocator, lazy optimizer state)
    out = {"train_steps_per_s": best_rate(train, args.steps, args.repeat), "stage": stage}
    out["active"] = active  # type: ignore[assignment]
    if cfg.networks == "neural":
        out["env_steps_per_s"] = best_rate(
            lambda n: run_actor(actor, learner, explore, n, t5), args.env_steps, args.repeat
        )
        out["env_steps_per_s_uniform"] = best_rate(
            lambda n: run_actor(actor, None, ExplorationParams(0.0, 1.0), n, 0), args.env_steps, args.repeat
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="trivial")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=300, help="training steps per timed round")
    ap.add_argument("--env-steps", type=int, default=2000, help="actor steps per timed round")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (best is reported)")
    ap.add_argument("--fill", type=int, default=3000, help="transitions put into replay before timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    base = Phase2Config(
        hidden_dim=args.hidden,
        num_hidden_layers=args.layers,
        batch_size=args.batch,
        dropout=args.dropout,
        torch_threads=args.threads,
        networks="neural",
    )
    default = bench_config(args.world, base, args)
    all_nets = bench_config(
        args.world, dataclasses.replace(base, u_r_use_network=True, v_r_use_network=True), args
    )
    tabular = bench_config(args.world, dataclasses.replace(base, networks="tabular"), args)
    result = {
        "world": args.world,
        "hidden": args.hidden,
        "layers": args.layers,
        "batch": args.batch,
        "threads": args.threads,
        "load_avg_1min": round(load, 2),
        "train_steps_per_s": round(default["train_steps_per_s"], 1),
        "train_steps_per_s_all_networks": round(all_nets["train_steps_per_s"], 1),
        "tabular_train_steps_per_s": round(tabular["train_steps_per_s"], 1),
        "env_steps_per_s": round(default["env_steps_per_s"], 1),
        "env_steps_per_s_uniform": round(default["env_steps_per_s_uniform"], 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"world {args.world}, hidden {args.hidden} x {args.layers}, batch {args.batch}, "
          f"{args.threads} torch thread(s), load avg {load:.2f}; best of {args.repeat} rounds")
    rows = [
        (f"train_step, default networks {default['active']}", default["train_steps_per_s"]),
        (f"train_step, all networks {all_nets['active']}", all_nets["train_steps_per_s"]),
        ("train_step, tabular backend", tabular["train_steps_per_s"]),
        ("Actor.step, Q_r policy at nominal beta_r", default["env_steps_per_s"]),
        ("Actor.step, uniform robot (warm-up)", default["env_steps_per_s_uniform"]),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'per s':>9}  {'ms each':>8}")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:9.1f}  {1000 / rate:8.3f}")


if __name__ == "__main__":
    main()
