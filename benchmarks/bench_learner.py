"""Throughput of the Phase 2 learner's training step and of the actor, on a bundled gridworld.

What is measured (defaults: ``trivial``, hidden 256, 2 hidden layers, batch 64, dropout 0.5, 1 torch thread):

1. The learner is built exactly as training builds it (``api.build_setup`` with the config's ``human_prior``,
   ``auto`` by default: the exact Phase 1 prior where the world's state DAG fits, the heuristic prior otherwise;
   the prior used is printed; ``trainer.make_learner``: featurizer, networks, target copies, optimizers), and an
   :class:`~humanpower.learn.actor.Actor` fills replay with ``--fill`` transitions (acting with the live Q_r at
   the nominal beta_r, stage-5 style).
2. ``Learner.train_step`` is timed at a stage-5 env step (every network active, learning rates decaying):
   ``--steps`` consecutive steps per round, the best of ``--repeat`` rounds (other processes share the
   machine, so the best round is the least disturbed one); the configurations' rounds are interleaved
   (round-robin), so a ratio between two configurations compares rounds taken under the same load.
   Configurations: the default networks (Q_r, V_h^e,
   X_h) with the fast step (``train_step: fast``), the same with the plain reference step (``train_step:
   reference``, the step the equivalence tests compare against) and their ratio ``speedup_vs_reference``, the
   fast step with lazy first-layer Adam updates (``lazy``: ``first_layer_updates: lazy``), all
   five networks (``u_r_use_network`` and ``v_r_use_network`` on), and the tabular backend. Each
   configuration builds its own learner from the same seed and replays the same ``--fill`` transitions
   (collected once, by the first configuration's actor).
3. ``Actor.step`` (behaviour + target draw + exact successors for every joint robot action) is timed the same
   way, acting with the live Q_r network at the nominal beta_r (``env_steps_per_s``) and uniformly without a
   network (``env_steps_per_s_uniform``, the warm-up stages); ``--env-steps 0`` skips it.

    python benchmarks/bench_learner.py [--world trivial] [--config YAML] [--hidden 256] [--layers 2]
        [--batch 64] [--dropout 0.5] [--steps 100] [--repeat 3] [--fill 1000] [--threads 1]
        [--configs default,reference,all,tabular] [--env-steps 300] [--device cpu] [--profile N] [--json]

``--device cuda`` runs the learner on the GPU (the step then reads no device value on the host; rates are per
wall-clock second of the synchronised rounds and per CPU second of this process); it stops with one line when
CUDA is absent. ``--config`` starts from a config file (e.g. ``configs/trivial-neural.yaml``) instead of the
built-in defaults; the size flags override it. ``--profile N`` instead runs ``N`` training steps of the first
configuration of ``--configs`` under cProfile and prints the functions with the most own time (``--profile-sort
cumtime``: by cumulative time).

Every rate is reported twice: per wall-clock second (``*_per_s``) and per CPU second of this process
(``*_per_cpu_s``, user + system time, ``time.process_time``). With other processes competing for the cores the
wall-clock rate drops while the CPU-time rate stays close to what a quiet machine shows; the load average at
the start is printed.

``--json`` prints one JSON object (``train_steps_per_s``, ``reference_train_steps_per_s``,
``lazy_first_layer_train_steps_per_s``,
``train_steps_per_s_all_networks``, ``tabular_train_steps_per_s``, ``env_steps_per_s``,
``env_steps_per_s_uniform``, each also as ``*_per_cpu_s``, ``speedup_vs_reference`` (the CPU-time ratio),
``human_prior`` (the prior used), plus the settings and the 1-minute load average at the start).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time
from typing import Any

import torch

from humanpower.api import build_setup
from humanpower.learn.actor import Actor, ActorOptions, ExplorationParams
from humanpower.learn.config import Phase2Config
from humanpower.learn.learner import Learner
from humanpower.learn.trainer import TrainingSetup, make_learner
from humanpower.worlds.grid.library import load_world


def prior_name(setup: TrainingSetup) -> str:
    """The human prior ``build_setup`` chose, by class (ExactHumanPrior, HeuristicPrior, UniformPrior)."""
    return type(setup.prior).__name__


def build(cfg: Phase2Config, setup: TrainingSetup) -> tuple[Learner, Actor]:
    """Learner (as training builds it: ``trainer.make_learner`` from ``setup``) and a seeded actor."""
    world = setup.world
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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so a round's wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def filled_learner(
    cfg: Phase2Config, setup: TrainingSetup, args: argparse.Namespace, shared: list[Any]
) -> tuple[Learner, Actor, ExplorationParams, int]:
    """A learner whose replay holds ``--fill`` stage-5 transitions, its actor, the exploration and the env step.

    The first call collects the transitions (its actor acting with its learner's live Q_r) into ``shared``;
    later calls replay the same transitions, so every configuration trains on the same data.
    """
    learner, actor = build(cfg, setup)
    t5 = cfg.warmup_env_steps + 1
    explore = ExplorationParams(beta_r=cfg.beta_r, epsilon=cfg.epsilon_end)
    if not shared:
        shared.extend(run_actor(actor, learner, explore, args.fill, t5))
    learner.add(shared)
    if not learner.ready():
        raise RuntimeError("replay cannot serve a batch after filling")
    return learner, actor, explore, t5


def bench_configs(
    cfgs: dict[str, Phase2Config], setup: TrainingSetup, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Train-step rates (and the default configuration's actor rates) for several configurations.

    Every configuration's learner is built and warmed up first; then the timed rounds go round-robin (one
    round of each configuration in turn, ``--repeat`` times), so that load changes from other processes hit
    every configuration alike and the same-process ratios are fair; the best round of each is reported.
    """
    shared: list[Any] = []
    built = {name: filled_learner(cfg, setup, args, shared) for name, cfg in cfgs.items()}
    trains = {}
    out: dict[str, dict[str, Any]] = {}
    for name, (learner, _, _, t5) in built.items():

        def train(n: int, learner: Learner = learner, t5: int = t5) -> None:
            for _ in range(n):
                learner.step(t5)  # losses stay on the device (what the training loop does)
            synchronize(learner.device)

        train(10)  # warm-up (allocator, lazy optimizer state)
        trains[name] = train
        stage = learner.stages.stage_at(t5)
        out[name] = {"stage": stage, "active": sorted(term.network for term in learner.active_terms(t5))}
    best = {name: (0.0, 0.0) for name in built}
    for _ in range(args.repeat):
        for name, train in trains.items():
            wall, cpu = best_rate(train, args.steps, 1)
            best[name] = (max(best[name][0], wall), max(best[name][1], cpu))
    for name in built:
        out[name]["train"] = best[name]
    default = cfgs.get("default")
    if default is not None and default.networks == "neural" and default.train_step == "fast" and args.env_steps > 0:
        learner, actor, explore, t5 = built["default"]
        out["default"]["env"] = best_rate(
            lambda n: run_actor(actor, learner, explore, n, t5), args.env_steps, args.repeat
        )
        out["default"]["env_uniform"] = best_rate(
            lambda n: run_actor(actor, None, ExplorationParams(0.0, 1.0), n, 0), args.env_steps, args.repeat
        )
    return out


def profile_config(cfg: Phase2Config, setup: TrainingSetup, args: argparse.Namespace) -> None:
    """``--profile`` steps of ``Learner.train_step`` under cProfile; prints the top functions by own time."""
    learner, _, _, t5 = filled_learner(cfg, setup, args, [])
    for _ in range(10):  # warm-up, as for the timed rounds
        learner.step(t5)
    prof = cProfile.Profile()
    c = time.process_time()
    prof.enable()
    for _ in range(args.profile):
        learner.step(t5)
    synchronize(learner.device)
    prof.disable()
    cpu = time.process_time() - c
    print(f"{args.profile} training steps under cProfile: {1000 * cpu / args.profile:.1f} CPU ms per step")
    pstats.Stats(prof).sort_stats(args.profile_sort).print_stats(args.profile_top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="trivial")
    ap.add_argument("--config", default=None, help="base config YAML (default: the built-in defaults)")
    ap.add_argument("--hidden", type=int, default=None, help="hidden_dim (default: from the base config, 256)")
    ap.add_argument("--layers", type=int, default=None, help="num_hidden_layers (default: base config, 2)")
    ap.add_argument("--batch", type=int, default=None, help="batch_size (default: base config, 64)")
    ap.add_argument("--dropout", type=float, default=None, help="dropout (default: base config, 0.5)")
    ap.add_argument("--steps", type=int, default=100, help="training steps per timed round")
    ap.add_argument("--env-steps", type=int, default=300, help="actor steps per timed round (0: no actor timing)")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds (best is reported)")
    ap.add_argument("--fill", type=int, default=1000, help="transitions put into replay before timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="learner device: cpu, cuda or cuda:N")
    ap.add_argument(
        "--configs",
        default="default,reference,all,tabular",
        help="comma list of default, reference, lazy, all, tabular",
    )
    ap.add_argument("--profile", type=int, default=0, help="profile this many steps of the first --configs entry")
    ap.add_argument("--profile-top", type=int, default=25, help="functions listed by --profile")
    ap.add_argument("--profile-sort", default="tottime", help="pstats sort key of --profile (tottime, cumtime)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"bench_learner.py: --device {args.device}: CUDA is not available on this machine")
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    sizes = {"hidden_dim": args.hidden, "num_hidden_layers": args.layers, "batch_size": args.batch}
    sizes["dropout"] = args.dropout
    base = Phase2Config.from_yaml(args.config) if args.config else Phase2Config()
    base = base.replace(
        **{k: v for k, v in sizes.items() if v is not None},
        torch_threads=args.threads,
        networks="neural",
        device=args.device,
    )
    configs = {
        "default": base.replace(train_step="fast"),
        "reference": base.replace(train_step="reference"),
        "lazy": base.replace(train_step="fast", first_layer_updates="lazy"),
        "all": base.replace(train_step="fast", u_r_use_network=True, v_r_use_network=True),
        "tabular": base.replace(networks="tabular"),
    }
    wanted = args.configs.split(",")
    unknown = sorted(set(wanted) - set(configs))
    if unknown:
        ap.error(f"--configs: unknown {unknown}; choose from {sorted(configs)}")
    # The prior and encoders as training builds them (api.build_setup's rule for cfg.human_prior).
    setup = build_setup(load_world(args.world), base, reference=False)
    prior = prior_name(setup)
    if not args.json:
        print(f"human prior: {base.human_prior} -> {prior}", flush=True)
    if args.profile:
        profile_config(configs[wanted[0]], setup, args)
        return
    res = bench_configs({name: configs[name] for name in configs if name in wanted}, setup, args)
    result: dict[str, Any] = {
        "world": args.world,
        "device": args.device,
        "config": args.config or "defaults",
        "human_prior": prior,
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
        ("reference", "train", "reference_train_steps_per_s", "train_step, plain reference step, default networks"),
        ("lazy", "train", "lazy_first_layer_train_steps_per_s", "train_step, fast, lazy first-layer Adam"),
        ("all", "train", "train_steps_per_s_all_networks", f"train_step, all networks {active.get('all')}"),
        ("tabular", "train", "tabular_train_steps_per_s", "train_step, tabular backend"),
        ("default", "env", "env_steps_per_s", "Actor.step, Q_r policy at nominal beta_r"),
        ("default", "env_uniform", "env_steps_per_s_uniform", "Actor.step, uniform robot (warm-up)"),
    ]
    for config, what, key, label in keys:
        if config in res and what in res[config]:
            wall, cpu = res[config][what]
            result[key] = round(wall, 1)
            result[key.replace("_per_s", "_per_cpu_s")] = round(cpu, 1)
            rows.append((label, (wall, cpu)))
    if "default" in res and "reference" in res:
        result["speedup_vs_reference"] = round(res["default"]["train"][1] / res["reference"]["train"][1], 2)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"world {args.world}, device {args.device}, config {args.config or 'defaults'}, hidden {base.hidden_dim} x "
        f"{base.num_hidden_layers}, batch {base.batch_size}, dropout {base.dropout}, "
        f"{args.threads} torch thread(s), load avg {load:.2f}; best of {args.repeat} rounds"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'per s':>9}  {'ms each':>8}  {'per CPU s':>9}")
    for name, (wall, cpu) in rows:
        print(f"{name:<{width}}  {wall:9.1f}  {1000 / wall:8.3f}  {cpu:9.1f}")
    if "speedup_vs_reference" in result:
        print(f"fast step / reference step, per CPU second: {result['speedup_vs_reference']}x")


if __name__ == "__main__":
    main()
