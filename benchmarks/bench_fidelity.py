"""Fidelity suite: the learner with the configuration a user gets without ``--config``, on many exactly solvable
worlds, measured against the exact solver by the exact value of the learned *policy*.

Usage::

    python benchmarks/bench_fidelity.py [--worlds trivial locked_in ...] [--backend neural|tabular|both]
                                        [--budget-minutes 15] [--seed 0] [--human-prior NAME ...] [--json]

For every (world, backend) the suite runs ``humanpower train WORLD --out DIR --no-progress --seed SEED`` (plus
``--networks tabular`` for the tabular backend) as a child process: exactly what a user gets without
``--config``, so a change of the default configuration is measured as soon as it lands. When the train command
has a ``--budget-minutes`` option the budget is passed to it; otherwise the run is stopped like Ctrl-C
(SIGINT: it finishes the current step and saves its policy) once the budget of wall time has passed. Then:

- the exact reference is solved with the exact Phase 1 prior, whatever prior the run trained with (its setup's
  exact prior is reused when it has one: ``auto`` picks exact for worlds of at most ``EXACT_STATE_LIMIT``
  states, else the heuristic prior, which is then compared with exact Phase 1 on the full DAG);
- ``humanpower.learn.evaluate.compare_with_exact`` and ``policy_quality`` measure the saved policy: pi_r RMSE
  over all reachable non-terminal states and weighted by the exact policy's visit probabilities (with the
  uniform policy's for scale), argmax agreement, ``policy_gap_closed`` (exact V_r(s0) of the learned robot
  between the uniform robot's, 0, and the exact one's, 1) and W_h(s0) of each human under the learned and the
  exact robot.

A world where the uniform robot is within 1 % of the exact V_r(s0) does not discriminate between policies: its
rows are marked ``no`` in the ``disc`` column and they are not checked against the bars (issue 8): neural
``policy_gap_closed >= 0.9``, argmax agreement >= 90 % and pi_r RMSE <= 0.5 x uniform; tabular
``policy_gap_closed >= 0.97``. Wall seconds and CPU seconds (the child's user + system time) cover the whole
train command (world setup, exact Phase 1 prior, training); the reference solve and the evaluation are not
included. ``--json`` prints one object: ``{"command": ..., "rows": [...]}``.

``--human-prior NAME ...`` is passed to every train command (``exact``, ``heuristic``, ``uniform``, ``learned``,
...); with several names every (world, backend) is trained once per prior, and the world column says which
(``two_humans/learned``).
Whatever prior a run trained on, it is measured against the exact solution *with the exact Phase 1 prior* (the
reference of issue 11), and the row's ``prior TV`` is the mean total-variation distance of the run's prior from
the exact one (``prior_tv_mean``, docs/EVALUATION.md). So ``--human-prior learned`` against the default (exact on
these worlds) on a two-human world is the comparison "Phase 2 on the learned prior vs on the exact one":
``python benchmarks/bench_fidelity.py --worlds two_humans --backend neural --human-prior exact learned``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SUITE = [
    "trivial",
    "locked_in",
    "corridor",
    "unsteady",
    "two_humans",
    "two_robots",
    "three_humans",
    "rock_relay",
    "blocked_exit",
    "locked_in_large",
]
"""Default worlds: bundled small worlds that discriminate (``door_key`` and ``warehouse`` do not: the uniform
robot is within 1 % of the exact V_r(s0) there), the two-robot, three-human and unsteady-ground worlds, and
``locked_in_large`` (107,292 reachable states; the learner uses the heuristic prior there, its reference the
exact prior)."""
BUDGET_MINUTES = 15.0
SIGINT_GRACE_S = 120.0
"""Seconds a run may take to stop and save after SIGINT before it is killed."""
TRAIN_MAIN = "from humanpower.cli.main import main; raise SystemExit(main())"


def train_supports_budget() -> bool:
    """Whether ``humanpower train`` has a ``--budget-minutes`` option (the default-config rule)."""
    out = subprocess.run(
        [sys.executable, "-c", TRAIN_MAIN, "train", "--help"], capture_output=True, text=True, check=True
    )
    return "--budget-minutes" in out.stdout


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(usage.ru_utime + usage.ru_stime)


def _default_sigint() -> None:
    """In the child: default SIGINT handling, even when this benchmark runs in the background (where a shell
    makes SIGINT ignored, and the child would inherit that and could not be stopped like Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def train_run(
    world: str,
    backend: str,
    seed: int,
    budget_min: float,
    run_dir: Path,
    budget_flag: bool,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Run ``humanpower train`` in a child process within the budget; wall and CPU seconds, how it ended.

    ``extra`` are further train arguments (e.g. ``--human-prior learned``)."""
    argv = [sys.executable, "-c", TRAIN_MAIN, "train", world, "--out", str(run_dir), "--no-progress"]
    argv += ["--seed", str(seed), *extra]
    if backend == "tabular":
        argv += ["--networks", "tabular"]
    if budget_flag:
        argv += ["--budget-minutes", str(budget_min)]
    cpu0, t0 = child_cpu_seconds(), time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint
    )
    stopped = False
    try:
        output, _ = proc.communicate(timeout=budget_min * 60.0 + (SIGINT_GRACE_S if budget_flag else 0.0))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        stopped = True
        try:
            output, _ = proc.communicate(timeout=SIGINT_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": child_cpu_seconds() - cpu0,
        "stopped_at_budget": stopped,
        "returncode": proc.returncode,
        "output_tail": output.strip().splitlines()[-3:] if output else [],
    }


def measure(world_name: str, run_dir: Path) -> dict[str, Any]:
    """The saved policy of ``run_dir`` against the exact solution with the exact Phase 1 prior, and the TV
    distance of the run's own human prior from that prior (``prior_tv_mean``)."""
    from humanpower.api import build_setup
    from humanpower.exact import build_dag
    from humanpower.exact.phase1 import ExactHumanPrior
    from humanpower.exact.prior_fidelity import FidelityReference, exact_prior_solution
    from humanpower.learn.checkpoint import RunFolder
    from humanpower.learn.config import Phase2Config
    from humanpower.learn.evaluate import LearnedModel, compare_with_exact, policy_quality
    from humanpower.worlds.grid.library import load_world

    folder = RunFolder(run_dir)
    status = folder.read_status()
    cfg = Phase2Config.from_yaml(folder.config_path).replace(device="cpu")
    world = load_world(world_name)
    setup = build_setup(world, cfg, reference=False, run_dir=run_dir)
    prior = setup.prior
    dag = prior.dag if isinstance(prior, ExactHumanPrior) else build_dag(world, progress=False)
    solution = exact_prior_solution(world, dag, cfg.theory(), prior)
    model = LearnedModel.load(folder.policy_path, world, setup.state_encoder, setup.goal_encoders)
    metrics: dict[str, Any] = {"states": dag.num_states, "env_steps": int(status.get("total_steps", 0))}
    metrics.update(compare_with_exact(model, solution))
    metrics.update(policy_quality(model, solution, world))
    metrics["human_prior"] = cfg.human_prior
    metrics["prior_tv_mean"] = FidelityReference.from_solution(world, solution).measure(prior).pooled.mean
    return metrics


def meets_bars(backend: str, row: dict[str, Any]) -> bool:
    if backend == "tabular":
        return bool(row["policy_gap_closed"] >= 0.97)
    return bool(
        row["policy_gap_closed"] >= 0.9
        and row["argmax_agreement"] >= 0.9
        and row["pi_r_rmse"] <= 0.5 * row["uniform_pi_r_rmse"]
    )


def run_one(
    world: str, backend: str, seed: int, budget_min: float, budget_flag: bool, extra: Sequence[str] = ()
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hp-fidelity-") as tmp:
        run_dir = Path(tmp) / "run"
        row: dict[str, Any] = {"world": world, "backend": backend}
        row.update(train_run(world, backend, seed, budget_min, run_dir, budget_flag, extra))
        if not (run_dir / "policy.pt").is_file():
            row["error"] = "no policy saved (run failed or budget shorter than the setup)"
            return row
        row.update(measure(world, run_dir))
    row["meets_bars"] = meets_bars(backend, row) if row["discriminates"] else None
    return row


def _fmt_list(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _label(row: dict[str, Any]) -> str:
    """The world, with the ``--human-prior`` name the row was trained with when one was given."""
    return f"{row['world']}/{row['prior_flag']}" if row.get("prior_flag") else str(row["world"])


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'world':<16} {'backend':<7} {'states':>7} {'env steps':>9} {'wall s':>7} {'CPU s':>7} {'RMSE':>6} "
        f"{'on-pol':>6} {'unif':>6} {'unif op':>7} {'argmax':>6} {'gap':>6} {'disc':>4} {'bars':>4} "
        f"{'prior TV':>8}  W_h learned | exact (bits)"
    )
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{_label(r):<16} {r['backend']:<7} error: {r['error']}: {' | '.join(r['output_tail'])}")
            continue
        bars = "-" if r["meets_bars"] is None else ("yes" if r["meets_bars"] else "no")
        print(
            f"{_label(r):<16} {r['backend']:<7} {r['states']:>7} {r['env_steps']:>9} {r['wall_s']:>7.0f} "
            f"{r['cpu_s']:>7.0f} {r['pi_r_rmse']:>6.3f} {r['pi_r_rmse_on_policy']:>6.3f} "
            f"{r['uniform_pi_r_rmse']:>6.3f} {r['uniform_pi_r_rmse_on_policy']:>7.3f} "
            f"{r['argmax_agreement']:>6.1%} {r['policy_gap_closed']:>6.3f} "
            f"{'yes' if r['discriminates'] else 'NO':>4} {bars:>4} {r['prior_tv_mean']:>8.4f}  "
            f"{_fmt_list(r['W_h_s0_policy'])} | {_fmt_list(r['W_h_s0_exact'])}"
        )
    if any(not r.get("discriminates", True) for r in rows):
        print("NO in disc: the uniform robot is within 1% of the exact V_r(s0); not used for the bars")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", nargs="+", default=SUITE, help="world names or files (default: the suite)")
    parser.add_argument("--backend", choices=("neural", "tabular", "both"), default="both")
    parser.add_argument(
        "--budget-minutes", type=float, default=BUDGET_MINUTES, help="wall-time budget per run (default 15)"
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument(
        "--human-prior",
        nargs="+",
        default=[None],
        metavar="NAME",
        help="passed to every train command; several names: one run per prior (default: train's default, auto)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.budget_minutes > 0:
        parser.error("--budget-minutes must be > 0")
    backends = ["neural", "tabular"] if args.backend == "both" else [args.backend]
    budget_flag = train_supports_budget()
    rows = []
    for world in args.worlds:
        for backend in backends:
            for prior in args.human_prior:
                extra = ["--human-prior", prior] if prior else []
                row = run_one(world, backend, args.seed, args.budget_minutes, budget_flag, extra)
                row["prior_flag"] = prior
                rows.append(row)
                if not args.json:
                    print(f"done {world} {backend} {prior or ''}", file=sys.stderr, flush=True)
    command = "python benchmarks/bench_fidelity.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
        print(json.dumps({"command": command.strip(), "budget_flag": budget_flag, "rows": clean}, indent=2))
    else:
        print_table(rows)
        print(f"command: {command.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
