"""Benchmark of the exact solver: states/s of the DAG build, Phase 1 and Phase 2, and peak memory.

Usage: ``python benchmarks/bench_exact.py [--worlds trivial warehouse] [--json] [--dag-only] [--no-baseline]
[--baseline-src DIR] [--max-steps N]``

The DAG build is timed twice in each world's subprocess: with the world's batch transition hook (the default
path) and, as the baseline, with one ``transition_probabilities`` call per joint action
(``build_dag(..., batch=False)``); both DAGs are checked to be identical. Figures are states per second of wall
time and per CPU second (``time.process_time``; comparable on a shared machine), and the speedup of the batch
path over the baseline. ``--dag-only`` skips Phase 1 and 2. ``--baseline-src DIR`` also times the DAG build of
another source tree (e.g. a checkout of the code before the batch hook: ``--baseline-src /path/to/old/src``) in
its own subprocess of the same command, reported as ``dag_old_states_per_cpu_s`` and ``dag_speedup_vs_old``.
``--max-steps N`` builds each world with horizon N instead of its own (quick comparisons on a smaller DAG).
``--repeat N`` times the batch build (and the ``--baseline-src`` one) N times, alternating, and reports the best
rate of each (the runs in ``*_runs``): on a shared machine a run is slowed by whatever shares its core, the best of
a few is the steadier figure.

Each world runs in its own subprocess so that its peak resident memory (``ru_maxrss``) is its own. Memory per
state is (peak RSS after solving - RSS after imports and loading the world) / states; the estimate for
1,000,000 states is the baseline plus one million times that (the arrays and Python state objects all grow
linearly with the state count; per-level temporaries are bounded by the chunk size).
The DAG build's own memory is reported too: ``dag_bytes_per_state`` is (peak RSS right after the batch build -
RSS before it) / states, taken before any other build (``dag_old_bytes_per_state`` for ``--baseline-src``), and
``configurations``, the number of distinct states without their step count.
Bars: Phase 1 + Phase 2 >= 5,000 states/s on the >= 100k-state world; < 4 GB estimated for 1M states.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, cast

DEFAULT_WORLDS = ("trivial", "warehouse")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def _same_dag(a: Any, b: Any) -> bool:
    import numpy as np

    fields = ("level_offsets", "terminal", "row_of", "state_row_offsets", "row_offsets", "succ", "prob")
    return bool(a.states == b.states and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields))


def _with_baseline(out: dict[str, Any], world: Any, dag: Any, baseline: bool) -> dict[str, Any]:
    """Add the per-joint-action build's figures (timed after every memory reading, since both DAGs are held)."""
    from humanpower.exact import build_dag

    n = dag.num_states
    dag_cpu = n / out["dag_states_per_cpu_s"]
    if baseline:
        c0 = time.process_time()
        generic = build_dag(world, progress=False, batch=False)
        generic_cpu = time.process_time() - c0
        if not _same_dag(dag, generic):
            raise SystemExit(f"{out['world']}: the batch and per-joint-action DAGs differ")
        del generic
        out["dag_generic_states_per_cpu_s"] = n / generic_cpu
        out["dag_speedup"] = generic_cpu / dag_cpu
    return out


def run_one(
    name: str, prior: str, dag_only: bool = False, baseline: bool = True, max_steps: int | None = None
) -> dict[str, Any]:
    """Build (batch path, then the per-joint-action baseline), Phase 1 and Phase 2 on one bundled world (with
    horizon ``max_steps`` when given)."""
    from humanpower.exact import build_dag, make_prior, solve_phase2
    from humanpower.params import TheoryParams
    from humanpower.worlds.grid.distances import GridDistances
    from humanpower.worlds.grid.library import load_world

    world = load_world(name)
    if max_steps is not None:
        from humanpower.cli.solve_cmd import with_horizon

        world = with_horizon(world, max_steps)
    params = TheoryParams()
    base_mb = _rss_mb()
    c0 = time.process_time()
    t0 = time.perf_counter()
    dag = build_dag(world, progress=False)
    t1 = time.perf_counter()
    dag_cpu = time.process_time() - c0
    dag_peak_mb = _rss_mb()
    n = dag.num_states
    out: dict[str, Any] = {
        "world": name,
        "states": n,
        "profiles": dag.num_profiles,
        "rows": dag.num_rows,
        "dag_seconds": t1 - t0,
        "dag_states_per_s": n / (t1 - t0),
        "dag_states_per_cpu_s": n / dag_cpu,
        "dag_peak_mb": dag_peak_mb,
        "dag_bytes_per_state": (dag_peak_mb - base_mb) * 2**20 / n,
        # The states without their step count: the gridworld's table memo computes one table per configuration.
        "configurations": len({s[1:] for s in cast("list[tuple[Any, ...]]", dag.states)}),
    }
    if dag_only:
        return _with_baseline(out, world, dag, baseline)
    t1 = time.perf_counter()
    distances = GridDistances(world) if prior == "heuristic" else None
    human_prior, prior_name = make_prior(world, dag, params, prior, distances)  # type: ignore[arg-type]
    t2 = time.perf_counter()
    solve_phase2(world, dag, human_prior, params, prior_name=prior_name)
    t3 = time.perf_counter()
    peak_mb = _rss_mb()
    per_state = (peak_mb - base_mb) * 2**20 / n
    out = {
        **out,
        "prior": prior,
        "phase1_seconds": t2 - t1,
        "phase2_seconds": t3 - t2,
        "phase1_states_per_s": n / max(t2 - t1, 1e-9),
        "phase2_states_per_s": n / max(t3 - t2, 1e-9),
        "phase12_states_per_s": n / max(t3 - t1, 1e-9),
        "peak_mb": peak_mb,
        "baseline_mb": base_mb,
        "bytes_per_state": per_state,
        "est_mb_1m_states": base_mb + per_state * 1e6 / 2**20,
    }
    return _with_baseline(out, world, dag, baseline)


def _single(name: str, flags: list[str], src: str | None = None) -> dict[str, Any] | None:
    """:func:`run_one` for ``name`` in a subprocess of its own (``src``: the source tree on its ``PYTHONPATH``);
    None, with its stderr printed, when it failed."""
    env = {**os.environ, "PYTHONPATH": src} if src is not None else None
    proc = subprocess.run(
        [sys.executable, __file__, "--single", name, *flags], capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", nargs="+", default=list(DEFAULT_WORLDS), help="bundled world names")
    parser.add_argument("--prior", choices=("exact", "heuristic", "uniform"), default="exact")
    parser.add_argument("--json", action="store_true", help="print one JSON object keyed by world")
    parser.add_argument("--dag-only", action="store_true", help="time only the DAG build (batch and baseline)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the per-joint-action baseline build")
    parser.add_argument("--baseline-src", metavar="DIR", help="also time the DAG build of this source tree")
    parser.add_argument("--max-steps", type=int, metavar="N", help="horizon N instead of each world's own")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="time the DAG builds N times, alternating trees; best of N"
    )
    parser.add_argument("--single", metavar="WORLD", help=argparse.SUPPRESS)  # internal: one world, JSON out
    args = parser.parse_args(argv)
    if args.single:
        print(json.dumps(run_one(args.single, args.prior, args.dag_only, not args.no_baseline, args.max_steps)))
        return 0
    flags = ["--dag-only"] * args.dag_only + ["--no-baseline"] * args.no_baseline
    horizon = ["--max-steps", str(args.max_steps)] if args.max_steps is not None else []
    results: dict[str, dict[str, Any]] = {}
    for name in args.worlds:
        result = _single(name, [*flags, "--prior", args.prior, *horizon])
        if result is None:
            return 1
        results[name] = result
        own_rates = [result["dag_states_per_cpu_s"]]
        old_rates: list[float] = []
        for repeat in range(args.repeat):
            if repeat > 0:  # the batch build again, alone: best of the runs
                again = _single(name, ["--dag-only", "--no-baseline", *horizon])
                if again is None:
                    return 1
                own_rates.append(again["dag_states_per_cpu_s"])
            if args.baseline_src:
                old = _single(name, ["--dag-only", "--no-baseline", *horizon], args.baseline_src)
                if old is None:
                    return 1
                old_rates.append(old["dag_states_per_cpu_s"])
                result.setdefault("dag_old_bytes_per_state", old["dag_bytes_per_state"])
        result["dag_states_per_cpu_s"] = max(own_rates)
        if args.repeat > 1:
            result["dag_states_per_cpu_s_runs"] = own_rates
        if old_rates:
            result["dag_old_states_per_cpu_s"] = max(old_rates)
            result["dag_speedup_vs_old"] = max(own_rates) / max(old_rates)
            if args.repeat > 1:
                result["dag_old_states_per_cpu_s_runs"] = old_rates
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results.values():
        line = (
            f"{r['world']}: DAG build {r['states']} states, {r['dag_states_per_cpu_s']:.0f} per CPU s, "
            f"{r['dag_bytes_per_state']:.0f} B per state, {r['configurations']} configurations"
        )
        if "dag_speedup" in r:
            line += (
                f", per-joint-action baseline {r['dag_generic_states_per_cpu_s']:.0f} "
                f"({r['dag_speedup']:.2f}x, identical DAG)"
            )
        if "dag_speedup_vs_old" in r:
            line += (
                f"; {args.baseline_src}: {r['dag_old_states_per_cpu_s']:.0f} ({r['dag_speedup_vs_old']:.2f}x), "
                f"{r['dag_old_bytes_per_state']:.0f} B per state"
            )
        print(line)
    if args.dag_only:
        return 0
    header = f"{'world':<12}{'states':>9}{'P':>5}{'dag st/s':>11}{'ph1 st/s':>11}{'ph2 st/s':>11}"
    header += f"{'ph1+2 st/s':>12}{'peak MB':>9}{'B/state':>9}{'MB @1M':>9}"
    print(header)
    for r in results.values():
        print(
            f"{r['world']:<12}{r['states']:>9}{r['profiles']:>5}{r['dag_states_per_s']:>11.0f}"
            f"{r['phase1_states_per_s']:>11.0f}{r['phase2_states_per_s']:>11.0f}{r['phase12_states_per_s']:>12.0f}"
            f"{r['peak_mb']:>9.0f}{r['bytes_per_state']:>9.0f}{r['est_mb_1m_states']:>9.0f}"
        )
    big = [r for r in results.values() if r["states"] >= 100_000]
    for r in big:
        ok_speed = r["phase12_states_per_s"] >= 5000
        ok_mem = r["est_mb_1m_states"] < 4096
        print(
            f"{r['world']}: Phase 1 + 2 {r['phase12_states_per_s']:.0f} states/s (bar 5,000: "
            f"{'ok' if ok_speed else 'MISSED'}); estimated {r['est_mb_1m_states'] / 1024:.2f} GB for 1M "
            f"states "
            f"(bar 4 GB: {'ok' if ok_mem else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
