"""Benchmark of the learner's accuracy: learned vs exact on the bundled `trivial` world, tabular and neural.

Usage: ``python benchmarks/bench_accuracy.py [--backends tabular neural] [--seed 0] [--json]``

Each backend trains with its shipped config (``configs/trivial-<backend>.yaml``) from scratch, synchronously, and
is compared with the exact solution (``humanpower.exact.solve(world, cfg.theory(), human_prior="exact")``) by
``humanpower.learn.evaluate.compare_with_exact``: pi_r RMSE over every reachable non-terminal state x joint robot
action, argmax agreement (exact ties count), and the relative error of V_r(s0). Seconds are the wall time of
building the trainer and training (the exact solve is not included).

Bars (the issue): neural within 5 minutes wall on a 2-core machine with pi_r RMSE <= 0.08, argmax agreement
>= 85 %, V_r(s0) relative error <= 10 %; tabular (the CI test's bars) pi_r RMSE <= 0.03, argmax >= 95 %,
V_r(s0) relative error <= 3 %. With ``--json`` one object: ``<backend>_pi_r_rmse``, ``<backend>_argmax_agreement``,
``<backend>_V_r_rel_error``, ``<backend>_seconds`` (and ``<backend>_env_steps``, ``uniform_pi_r_rmse``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BARS: dict[str, tuple[float, float, float, float | None]] = {
    # backend: (max pi_r RMSE, min argmax agreement, max V_r relative error, max seconds)
    "tabular": (0.03, 0.95, 0.03, None),
    "neural": (0.08, 0.85, 0.10, 300.0),
}


def run_backend(backend: str, seed: int) -> dict[str, Any]:
    """Train ``configs/trivial-<backend>.yaml`` on `trivial` and compare with the exact solution."""
    from humanpower.encoders import grid_encoders
    from humanpower.exact import solve
    from humanpower.learn.actor import ActorOptions
    from humanpower.learn.collector import SyncCollector
    from humanpower.learn.config import Phase2Config
    from humanpower.learn.evaluate import compare_with_exact, uniform_policy_rmse
    from humanpower.learn.terms import build_loss_terms
    from humanpower.learn.trainer import Trainer, TrainingSetup
    from humanpower.worlds.grid.library import load_world

    cfg = Phase2Config.from_yaml(CONFIGS / f"trivial-{backend}.yaml").replace(seed=seed, log_every_episodes=10**9)
    world = load_world("trivial")
    sol = solve(world, cfg.theory(), human_prior="exact")
    se, ge = grid_encoders(world, cfg.include_step_count)
    setup = TrainingSetup(world=world, prior=sol.prior, state_encoder=se, goal_encoders=[ge[h] for h in world.humans])
    t0 = time.perf_counter()
    trainer = Trainer(setup, cfg, None, progress=False)
    actor = trainer.collector.actor if isinstance(trainer.collector, SyncCollector) else None
    if (
        actor is None
        or actor.options != ActorOptions.from_config(cfg)
        or trainer.learner.terms != build_loss_terms(cfg, trainer.learner.goal_sets)
    ):
        raise SystemExit(
            "bench_accuracy: Trainer must build its actor with Actor.from_config and the Learner its loss terms "
            "with build_loss_terms(cfg, ...), or the config's accuracy options are ignored (docs/LEARNER.md)"
        )
    model = trainer.train().model
    seconds = time.perf_counter() - t0
    metrics = compare_with_exact(model, sol)
    return {
        "pi_r_rmse": metrics["pi_r_rmse"],
        "argmax_agreement": metrics["argmax_agreement"],
        "V_r_rel_error": metrics["V_r_rel_error"],
        "seconds": seconds,
        "env_steps": trainer.total_steps,
        "uniform_pi_r_rmse": uniform_policy_rmse(sol),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=tuple(BARS), default=list(BARS))
    parser.add_argument("--seed", type=int, default=0, help="config seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = {backend: run_backend(backend, args.seed) for backend in args.backends}
    if args.json:
        out: dict[str, Any] = {}
        for backend, r in results.items():
            for key in ("pi_r_rmse", "argmax_agreement", "V_r_rel_error", "seconds", "env_steps"):
                out[f"{backend}_{key}"] = r[key]
            out["uniform_pi_r_rmse"] = r["uniform_pi_r_rmse"]
        print(json.dumps(out))
        return 0
    print(f"{'backend':<9}{'env steps':>10}{'seconds':>9}{'pi_r RMSE':>11}{'argmax':>8}{'V_r rel':>9}  bars")
    for backend, r in results.items():
        rmse, agree, v_r, secs = BARS[backend]
        ok = r["pi_r_rmse"] <= rmse and r["argmax_agreement"] >= agree and r["V_r_rel_error"] <= v_r
        ok = ok and (secs is None or r["seconds"] <= secs)
        bar = f"RMSE <= {rmse}, argmax >= {agree:.0%}, V_r <= {v_r:.0%}" + (f", <= {secs:.0f} s" if secs else "")
        print(
            f"{backend:<9}{r['env_steps']:>10}{r['seconds']:>9.1f}{r['pi_r_rmse']:>11.4f}"
            f"{r['argmax_agreement']:>8.1%}{r['V_r_rel_error']:>9.2%}  {'ok' if ok else 'MISSED'} ({bar})"
        )
    print(f"uniform policy pi_r RMSE: {next(iter(results.values()))['uniform_pi_r_rmse']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
