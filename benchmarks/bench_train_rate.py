"""Env steps per CPU second of ``humanpower train WORLD`` (synchronous, no config file), for this source tree
and optionally a baseline tree, back to back.

Each tree trains twice, ``--short`` and ``--long`` episodes, in fresh ``python -m humanpower.cli.main train``
processes; the rate is the marginal one, ``episode length x (long - short) / (CPU(long) - CPU(short))``, with
CPU = user + system time of the child process, so start-up (world, prior, exploring-starts pool) cancels out.
The default config rule derives the schedule from the budget, so short budgets have short warm-ups and target
copies every training step; ``--stage5`` instead sets every warm-up stage and the beta_r ramp to 40 env steps,
so that the timed episodes are all in stage 5 (every network training).
The human prior is ``--human-prior heuristic`` by default: the one both trees use on ``large`` (``auto`` now learns
Phase 1 first there, whose cost grows with the episode count too and would mix into the Phase 2 rate).

    python benchmarks/bench_train_rate.py [--world large] [--short 2] [--long 8] [--stage5]
        [--human-prior heuristic] [--baseline-src /path/to/other/src]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import humanpower
from humanpower.worlds.grid.library import load_world

STAGE5 = ["--warmup-v-h-e-steps", "40", "--warmup-x-h-steps", "40", "--warmup-u-r-steps", "40"]
STAGE5 += ["--warmup-q-r-steps", "40", "--beta-r-rampup-steps", "40"]


def cpu_of_run(src: Path, world: str, episodes: int, extra: list[str]) -> float:
    """CPU seconds (user + system) of one ``humanpower train`` process run with ``src`` first on the path."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = tempfile.mkdtemp(prefix="hp-rate-")
    cmd = [sys.executable, "-m", "humanpower.cli.main", "train", world, "--num-episodes", str(episodes)]
    cmd += ["--out", out, "--no-progress", *extra]
    subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(src)), check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="large")
    ap.add_argument("--short", type=int, default=2)
    ap.add_argument("--long", type=int, default=8)
    ap.add_argument("--stage5", action="store_true", help="warm-ups and ramp of 40 env steps each")
    ap.add_argument("--human-prior", default="heuristic", help="passed to train (default heuristic)")
    ap.add_argument("--baseline-src", type=Path, default=None, help="another source tree, timed first")
    args = ap.parse_args()
    if args.long <= args.short:
        ap.error("--long must exceed --short")
    episode = load_world(args.world).max_steps
    extra = [*(STAGE5 if args.stage5 else []), "--human-prior", args.human_prior]
    trees = {"baseline": args.baseline_src} if args.baseline_src else {}
    trees["this tree"] = Path(humanpower.__file__).resolve().parents[1]
    rates = {}
    for name, src in trees.items():
        a = cpu_of_run(src, args.world, args.short, extra)
        b = cpu_of_run(src, args.world, args.long, extra)
        rates[name] = episode * (args.long - args.short) / (b - a)
        print(
            f"{name}: {args.short} episodes {a:.1f} CPU s, {args.long} episodes {b:.1f} CPU s -> "
            f"{rates[name]:.1f} env steps per CPU s",
            flush=True,
        )
    if len(rates) == 2:
        print(f"this tree / baseline: {rates['this tree'] / rates['baseline']:.2f}x")


if __name__ == "__main__":
    main()
