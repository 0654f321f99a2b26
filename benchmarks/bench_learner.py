"""Throughput of the Phase 2 learner's training step and of the actor, on a bundled gridworld.

What is measured (defaults: ``trivial``, hidden 256, 2 hidden layers, batch 64, dropout 0.5, 1 torch thread):

1. The learner is built exactly as training builds it (``api.build_setup`` with the exact Phase 1 human prior,
   ``trainer.make_learner``: featurizer, networks, target copies, optimizers), and an
   :class:`~humanpower.learn.actor.Actor` fills replay with ``--fill`` transitions (acting with the live Q_r at
   the nominal beta_r, stage-5 style).
2. ``Learner.train_step`` is timed at a stage-5 env step (every network active, learning rates decaying):
   ``--steps`` consecutive steps per round, the best of ``--repeat`` rounds (other processes share the
   machine, so the best round is the least disturbed one). Configurations: the default networks (Q_r, V_h^e,
   X_h), all five (``u_r_use_network`` and ``v_r_use_network`` on), and the tabular backend.
3. ``Actor.step`` (behaviour + target draw + exact successors for every joint robot action) is timed the same
   way, acting with the live Q_r network at the nominal beta_r (``env_steps_per_s``) and uniformly without a
   network (``env_steps_per_s_uniform``, the warm-up stages).

    python benchmarks/bench_learner.py [--world trivial] [--config YAML] [--hidden 256] [--layers 2]
        [--batch 64] [--dropout 0.5] [--steps 300] [--repeat 5] [--fill 3000] [--threads 1]
        [--configs default,all,tabular] [--json]

``--config`` starts from a config file (e.g. ``configs/trivial-neural.yaml``) instead of the built-in defaults;
the size flags override it.

Every rate is reported twice: per wall-clock second (``*_per_s``) and per CPU second of this process
(``*_per_cpu_s``, user + system time). With other processes competing for the cores the wall-clock rate drops
while the CPU-time rate stays close to what a quiet machine shows; the load average at the start is printed.

``--json`` prints one JSON object (``train_steps_per_s``, ``train_steps_per_s_all_networks``,
``tabular_train_steps_per_s``, ``env_steps_per_s``, ``env_steps_per_s_uniform``, each also as ``*_per_cpu_s``,
plus the settings and the 1-minute load average at the start). ``--configs`` picks a subset of the
configurations (``default,all,tabular``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import torch

from humanpower.api import build_setup
from humanpower.learn.actor import Actor, ActorOptions, ExplorationParams
from humanpower.learn.config import Phase2Config
from humanpower.learn.learner import Learner
from humanpower.learn.trainer import make_learner
from humanpower.worlds.grid.library import load_world


def build(world_name: str, cfg: Phase2Config) -> tuple[Learner, Actor]:
    """Learner (as training builds it: ``api.build_setup`` + ``trainer.make_learner``) and a seeded actor."""
    world = load_world(world_name)
    setup = build_setup(world, cfg, reference=False)
    learner = make_learner(setup, cfg)
    actor = Actor(
        world,
        setup.prior,
        goal_resample_prob=cfg.goal_resample_prob,
        steps_per_episode=min(cfg.steps_per_episode, world.max_steps),
        seed=cfg.seed,
        options=ActorOptions.from_config(cfg),
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


def best_rate(fn: Any, n: int, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` rounds of ``fn(n)``: (calls per wall-clock second, calls per CPU second).

    The CPU-time rate (this process's user + system time) is what a quiet machine would show: it is barely
    affected by other processes competing for the cores, unlike the wall-clock rate.
    """
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn(n)
        best_wall = max(best_wall, n / max(time.perf_counter() - w, 1e-9))
        best_cpu = max(best_cpu, n / max(time.process_time() - c, 1e-9))
    return best_wall, best_cpu


def bench_config(world: str, cfg: Phase2Config, args: argparse.Namespace) -> dict[str, Any]:
    """Train-step rate (and actor rates) for one configuration."""
    learner, actor = build(world, cfg)
    t5 = cfg.warmup_env_steps + 1
    explore = ExplorationParams(beta_r=cfg.beta_r, epsilon=cfg.epsilon_end)
    learner.add(run_actor(actor, learner, explore, args.fill, t5))
    if not learner.ready():
        raise RuntimeError("replay cannot serve a batch after filling")
    stage = learner.stages.stage_at(t5)
    active = sorted(term.network for term in learner.active_terms(t5))

    def train(n: int) -> None:
        for _ in range(n):
            learner.train_step(t5)

    train(10)  # warm-up (allocator, lazy optimizer state)
    out: dict[str, Any] = {"stage": stage, "active": active}
    out["train"] = best_rate(train, args.steps, args.repeat)
    if cfg.networks == "neural":
        out["env"] = best_rate(lambda n: run_actor(actor, learner, explore, n, t5), args.env_steps, args.repeat)
        out["env_uniform"] = best_rate(
            lambda n: run_actor(actor, None, ExplorationParams(0.0, 1.0), n, 0), args.env_steps, args.repeat
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="trivial")
    ap.add_argument("--config", default=None, help="base config YAML (default: the built-in defaults)")
    ap.add_argument("--hidden", type=int, default=None, help="hidden_dim (default: from the base config, 256)")
    ap.add_argument("--layers", type=int, default=None, help="num_hidden_layers (default: base config, 2)")
    ap.add_argument("--batch", type=int, default=None, help="batch_size (default: base config, 64)")
    ap.add_argument("--dropout", type=float, default=None, help="dropout (default: base config, 0.5)")
    ap.add_argument("--steps", type=int, default=300, help="training steps per timed round")
    ap.add_argument("--env-steps", type=int, default=2000, help="actor steps per timed round")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (best is reported)")
    ap.add_argument("--fill", type=int, default=3000, help="transitions put into replay before timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", default="default,all,tabular", help="comma list of default, all, tabular")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    sizes = {"hidden_dim": args.hidden, "num_hidden_layers": args.layers, "batch_size": args.batch}
    sizes["dropout"] = args.dropout
    base = Phase2Config.from_yaml(args.config) if args.config else Phase2Config()
    base = base.replace(
        **{k: v for k, v in sizes.items() if v is not None},
        torch_threads=args.threads,
        networks="neural",
        human_prior="exact",
    )
    configs = {
        "default": base,
        "all": dataclasses.replace(base, u_r_use_network=True, v_r_use_network=True),
        "tabular": dataclasses.replace(base, networks="tabular"),
    }
    wanted = args.configs.split(",")
    unknown = sorted(set(wanted) - set(configs))
    if unknown:
        ap.error(f"--configs: unknown {unknown}; choose from {sorted(configs)}")
    res = {name: bench_config(args.world, configs[name], args) for name in configs if name in wanted}
    result: dict[str, Any] = {
        "world": args.world,
        "config": args.config or "defaults",
        "hidden": base.hidden_dim,
        "layers": base.num_hidden_layers,
        "batch": base.batch_size,
        "dropout": base.dropout,
        "threads": args.threads,
        "load_avg_1min": round(load, 2),
    }
    rows: list[tuple[str, tuple[float, float]]] = []
    active = {name: r["active"] for name, r in res.items()}
    keys = [
        ("default", "train", "train_steps_per_s", f"train_step, default networks {active.get('default')}"),
        ("all", "train", "train_steps_per_s_all_networks", f"train_step, all networks {active.get('all')}"),
        ("tabular", "train", "tabular_train_steps_per_s", "train_step, tabular backend"),
        ("default", "env", "env_steps_per_s", "Actor.step, Q_r policy at nominal beta_r"),
        ("default", "env_uniform", "env_steps_per_s_uniform", "Actor.step, uniform robot (warm-up)"),
    ]
    for config, what, key, label in keys:
        if config in res:
            wall, cpu = res[config][what]
            result[key] = round(wall, 1)
            result[key.replace("_per_s", "_per_cpu_s")] = round(cpu, 1)
            rows.append((label, (wall, cpu)))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"world {args.world}, config {args.config or 'defaults'}, hidden {base.hidden_dim} x "
        f"{base.num_hidden_layers}, batch {base.batch_size}, dropout {base.dropout}, "
        f"{args.threads} torch thread(s), load avg {load:.2f}; best of {args.repeat} rounds"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'per s':>9}  {'ms each':>8}  {'per CPU s':>9}")
    for name, (wall, cpu) in rows:
        print(f"{name:<{width}}  {wall:9.1f}  {1000 / wall:8.3f}  {cpu:9.1f}")


if __name__ == "__main__":
    main()
