"""Throughput of the synchronous loop vs the asynchronous actor-learner on the ``large`` bundled world.

    python benchmarks/bench_async.py [--seconds 30] [--modes sync,local-1,local-2,local-4,ray-2] [--json]

Each mode trains the default learner config (all networks from the first step: warm-up lengths 0, so every
env step and every training step costs what it costs in the long run) with the heuristic human prior
(``HeuristicPrior(world, GridDistances(world), beta_h)``) for ``--seconds`` of wall time, then stops it as Ctrl-C
would. Rates are measured over the metric rows after the first quarter of the run (actor start-up, Ray start-up
and the first batch excluded): env steps/s (total and per actor), training steps/s, mean policy lag and queue
fill. ``--json`` prints one JSON object. The bar (checked by ``--check``): 2 local actors collect at least
1.5x the env steps per second of the synchronous loop while the learner keeps training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from typing import Any

from humanpower.encoders import grid_encoders
from humanpower.humans import HeuristicPrior
from humanpower.learn.config import Phase2Config
from humanpower.learn.trainer import Trainer, TrainingSetup
from humanpower.worlds.grid import GridDistances, load_world

MODES = ("sync", "local-1", "local-2", "local-4", "ray-2")
BAR = 1.5


def large_setup(cfg: Phase2Config) -> TrainingSetup:
    """The ``large`` world with the heuristic human prior and the grid encoders (no exact reference)."""
    world = load_world("large")
    prior = HeuristicPrior(world, GridDistances(world), cfg.beta_h, cfg.nu_h)
    state_encoder, by_agent = grid_encoders(world, cfg.include_step_count)
    return TrainingSetup(world, prior, state_encoder, [by_agent[h] for h in world.humans])


def bench_config(mode: str, max_ratio: float | None) -> Phase2Config:
    """Default hyperparameters, no warm-up, a budget far beyond what ``--seconds`` can use."""
    cfg = Phase2Config(
        max_env_steps_per_train_step=max_ratio,
        num_episodes=1_000_000,
        warmup_v_h_e_steps=0,
        warmup_x_h_steps=0,
        warmup_u_r_steps=0,
        warmup_q_r_steps=0,
        beta_r_rampup_steps=0,
        log_every_episodes=1,
        checkpoint_every_episodes=1_000_000,
    )
    if mode == "sync":
        return cfg
    backend, actors = mode.split("-")
    return cfg.replace(async_training=True, backend=backend, num_actors=int(actors))


def run_mode(mode: str, seconds: float, max_ratio: float | None) -> dict[str, Any]:
    """Train in ``mode`` for ``seconds`` (then a SIGINT stops it cleanly) and summarise the metric rows."""
    cfg = bench_config(mode, max_ratio)
    setup = large_setup(cfg)
    trainer = Trainer(setup, cfg, None, progress=False)  # the collector follows cfg.async_training
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        result = trainer.train()
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    return summarise(mode, result.metrics, wall, seconds / 4)


def summarise(mode: str, rows: list[dict[str, Any]], wall: float, skip_s: float) -> dict[str, Any]:
    """Rates over the rows that end after ``skip_s`` seconds of logged time (each row covers one window)."""
    elapsed = 0.0
    prev_steps = prev_train = 0
    env = train = 0
    secs = 0.0
    lag: list[float] = []
    fill: list[float] = []
    per_actor: dict[str, float] = {}
    for row in rows:
        steps = row["total_steps"] - prev_steps
        window = steps / row["env_steps_per_s"] if row["env_steps_per_s"] > 0 else 0.0
        train_steps = row["train_steps"] - prev_train
        prev_steps, prev_train = row["total_steps"], row["train_steps"]
        elapsed += window
        if elapsed <= skip_s or window == 0.0:
            continue
        env, train, secs = env + steps, train + train_steps, secs + window
        for key, value in row.items():
            if key.startswith("env_steps_per_s_actor"):
                per_actor[key] = per_actor.get(key, 0.0) + value * window
        if "policy_lag_mean" in row:  # NaN in a window that received no chunk / saw no loop turn
            lag += [row["policy_lag_mean"]] if math.isfinite(row["policy_lag_mean"]) else []
            fill += [row["queue_fill"]] if math.isfinite(row["queue_fill"]) else []
    out: dict[str, Any] = {
        "mode": mode,
        "wall_s": round(wall, 1),
        "measured_s": round(secs, 1),
        "env_steps": env,
        "train_steps": train,
        "env_steps_per_s": env / secs if secs else 0.0,
        "train_steps_per_s": train / secs if secs else 0.0,
    }
    if per_actor:
        out["env_steps_per_s_per_actor"] = [v / secs for _, v in sorted(per_actor.items())]
        out["policy_lag_mean"] = sum(lag) / len(lag) if lag else None
        out["queue_fill"] = sum(fill) / len(fill) if fill else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time per mode (default 30)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument(
        "--max-env-steps-per-train-step",
        type=lambda text: None if text == "none" else float(text),
        default=Phase2Config().max_env_steps_per_train_step,
        metavar="X",
        help="the async ratio limiter (default: the config default; 'none' = unlimited)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--check", action="store_true", help=f"exit 1 unless local-2 reaches {BAR}x sync env steps/s")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"--modes: unknown {', '.join(unknown)} (choose from {', '.join(MODES)})")
    results: dict[str, Any] = {}
    for mode in modes:
        if mode.startswith("ray"):
            try:
                import ray  # noqa: F401
            except ImportError:
                results[mode] = {"mode": mode, "skipped": "ray is not installed (pip install 'humanpower[ray]')"}
                continue
        results[mode] = run_mode(mode, args.seconds, args.max_env_steps_per_train_step)
        if not args.json:
            print(json.dumps(results[mode]), file=sys.stderr, flush=True)
    report: dict[str, Any] = {
        "world": "large",
        "cores": os.cpu_count(),
        "seconds_per_mode": args.seconds,
        "max_env_steps_per_train_step": args.max_env_steps_per_train_step,
    }
    report["results"] = results
    ok = True
    if "sync" in results and "local-2" in results:
        ratio = results["local-2"]["env_steps_per_s"] / max(results["sync"]["env_steps_per_s"], 1e-9)
        report["local2_vs_sync_env_steps"] = ratio
        ok = ratio >= BAR and results["local-2"]["train_steps_per_s"] > 0
        report["bar_met"] = ok
    if args.json:
        print(json.dumps(report))
    else:
        for mode, r in results.items():
            if "skipped" in r:
                print(f"{mode:>8}: skipped ({r['skipped']})")
                continue
            extra = ""
            if "policy_lag_mean" in r:
                actors = ", ".join(f"{v:.0f}" for v in r["env_steps_per_s_per_actor"])
                lag, fill = r["policy_lag_mean"], r["queue_fill"]
                extra = f"  per actor [{actors}]  lag {lag or 0:.0f}  fill {fill or 0:.2f}"
            rates = f"{r['env_steps_per_s']:8.1f} env steps/s  {r['train_steps_per_s']:7.1f} train steps/s"
            print(f"{mode:>8}: {rates}{extra}")
        if "local2_vs_sync_env_steps" in report:
            print(f"local-2 / sync env steps: {report['local2_vs_sync_env_steps']:.2f}x (bar {BAR}x)")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
