"""``humanpower eval RUN_DIR``: rollouts, human power, goal-reach rates, learned-vs-exact errors and plots.

Writes into ``RUN_DIR/eval/``: ``rollout.gif`` (or ``.mp4``) with per-step X_h and V_r in the caption and an X_h
tint over the human's cell, ``learning_curves.png`` (losses and speeds over env steps) and, when the run logged
exact comparisons, ``exact_errors.png`` (pi_r RMSE, argmax agreement, V_r(s0) error over env steps).
``--json`` prints one JSON object and nothing else on stdout. For worlds solved exactly, the policy quality keys
of :func:`humanpower.learn.evaluate.policy_quality` (exact V_r(s0) of the learned, exact and uniform robot,
``policy_gap_closed``, W_h(s0) and goal reach per human, on-policy pi_r errors, ``discriminates``) join the
learned-vs-exact errors, and so do the prior-fidelity keys (``prior_tv_*`` for the run's human prior,
``heuristic_prior_tv_*`` for the heuristic one; :mod:`humanpower.exact.prior_fidelity`).

The exact reference is always the exact solution *with the exact Phase 1 prior*, whatever prior the run trained
with (heuristic, uniform, learned): a policy is judged by what it achieves for the humans the equations
describe. It exists where the state DAG fits (at most ``EXACT_STATE_LIMIT`` states, or the DAG the run's exact
prior was solved on).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from humanpower.errors import UserError

if TYPE_CHECKING:
    from humanpower.exact import ExactSolution
    from humanpower.exact.prior_fidelity import FidelityReference
    from humanpower.humans.protocol import HumanPolicyPrior
    from humanpower.params import TheoryParams
    from humanpower.worlds.grid.world import GridWorld


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a trained run (rollouts, human power, comparison with the exact solver)",
        description="Evaluate the final policy of a run folder: rollouts with value overlays, mean human power "
        "W_h and goal-reach rates per human, and (small worlds) errors against the exact solution.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `humanpower train`")
    p.add_argument("--episodes", type=int, default=50, help="rollouts for the statistics (default 50)")
    p.add_argument("--video", choices=("gif", "mp4"), default="gif", help="rollout video format (default gif)")
    p.add_argument("--seed", type=int, default=0, help="rollout seed (default 0)")
    p.add_argument("--no-exact", action="store_true", help="skip the exact solver even for small worlds")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    rows = []
    with path.open() as f:
        for row in csv.DictReader(f):
            parsed: dict[str, float] = {}
            for k, v in row.items():
                try:
                    parsed[k] = float(v)
                except (TypeError, ValueError):
                    continue
            rows.append(parsed)
    return rows


def _plot(rows: list[dict[str, float]], keys: list[str], title: str, path: Path, log: bool = False) -> bool:
    present = [k for k in keys if any(k in r and math.isfinite(r[k]) for r in rows)]
    if not present:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(present), 1, figsize=(7, 2.2 * len(present)), sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], present, strict=True):
        pts = [(r["total_steps"], r[key]) for r in rows if key in r and math.isfinite(r[key])]
        ax.plot([p[0] for p in pts], [p[1] for p in pts])
        ax.set_ylabel(key, fontsize=8)
        if log and all(p[1] > 0 for p in pts):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("env steps (total_steps)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _print_exact_comparison(result: dict[str, Any], humans: list[int]) -> None:
    """The learned-vs-exact lines of the table (keys of compare_with_exact and policy_quality)."""
    print(
        f"  V_r(s0) network = {result['V_r_s0']:.5f} vs exact {result['V_r_s0_exact']:.5f} "
        f"(relative error {result['V_r_rel_error']:.2%})"
    )
    print(
        f"  policy quality: exact V_r(s0) of the learned policy {result['V_r_s0_policy']:.5f}, exact policy "
        f"{result['V_r_s0_exact']:.5f}, uniform {result['V_r_s0_uniform']:.5f}; "
        f"gap closed {result['policy_gap_closed']:.3f}"
    )
    if not result["discriminates"]:
        print(
            "  note: the uniform robot is within 1% of the exact V_r(s0) here: this world does not discriminate "
            "between policies (do not use it for accuracy bars)"
        )
    for i, h in enumerate(humans):
        print(
            f"  human {h}: W_h(s0) = {result['W_h_s0_policy'][i]:.3f} bits learned / "
            f"{result['W_h_s0_exact'][i]:.3f} exact; goal reach {result['goal_reach_policy'][i]:.1%} learned / "
            f"{result['goal_reach_exact'][i]:.1%} exact"
        )
    print(
        f"  pi_r RMSE = {result['pi_r_rmse']:.4f} (uniform {result['uniform_pi_r_rmse']:.4f}), argmax agreement "
        f"= {result['argmax_agreement']:.1%} over {result['states_compared']} reachable non-terminal states"
    )
    print(
        f"  on-policy (states weighted by visit probability under the exact policy): pi_r RMSE = "
        f"{result['pi_r_rmse_on_policy']:.4f} (uniform {result['uniform_pi_r_rmse_on_policy']:.4f}), argmax "
        f"agreement = {result['argmax_agreement_on_policy']:.1%}"
    )


def _print_prior_fidelity(result: dict[str, Any]) -> None:
    """The prior-fidelity lines of the table (keys of ``PriorFidelity.as_dict``)."""
    for prefix, label in (("prior_tv", f"run's prior ({result['human_prior']})"), ("heuristic_prior_tv", "heuristic")):
        print(
            f"  human prior vs exact Phase 1, {label}: TV mean {result[prefix + '_mean']:.4f}, p95 "
            f"{result[prefix + '_p95']:.4f}; on-policy mean {result[prefix + '_mean_on_policy']:.4f}, p95 "
            f"{result[prefix + '_p95_on_policy']:.4f} over {result[prefix + '_pairs']} reachable (state, goal) pairs"
        )


def exact_reference(world: GridWorld, theory: TheoryParams, prior: HumanPolicyPrior) -> ExactSolution | None:
    """The exact solution with the exact Phase 1 prior, or None when the state DAG does not fit.

    The DAG of ``prior`` when it is an exact prior (the run solved it), else one of at most
    ``EXACT_STATE_LIMIT`` states; Phase 1 is reused from an exact ``prior``.
    """
    from humanpower.api import EXACT_STATE_LIMIT
    from humanpower.exact import build_dag
    from humanpower.exact.phase1 import ExactHumanPrior
    from humanpower.exact.prior_fidelity import exact_prior_solution

    if isinstance(prior, ExactHumanPrior):
        dag = prior.dag
    else:
        try:
            dag = build_dag(world, max_states=EXACT_STATE_LIMIT, progress=False)
        except UserError:  # more reachable states than the limit: no exact reference, as for training
            return None
    return exact_prior_solution(world, dag, theory, prior)


def prior_fidelity(
    world: GridWorld, theory: TheoryParams, prior: HumanPolicyPrior, fidelity: FidelityReference
) -> dict[str, Any]:
    """TV distance to the exact prior of ``fidelity`` of the run's ``prior`` (``prior_tv_*``) and of the heuristic
    prior (``heuristic_prior_tv_*``); :meth:`humanpower.exact.prior_fidelity.PriorFidelity.as_dict`."""
    from humanpower.humans.heuristic import HeuristicPrior
    from humanpower.worlds.grid.distances import GridDistances

    heuristic = HeuristicPrior(world, GridDistances(world), theory.beta_h, theory.nu_h)
    out: dict[str, Any] = {}
    out.update(fidelity.measure(prior).as_dict("prior_tv"))
    out.update(fidelity.measure(heuristic).as_dict("heuristic_prior_tv"))
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from humanpower.api import build_setup
    from humanpower.exact.prior_fidelity import FidelityReference
    from humanpower.learn.checkpoint import RunFolder, newest_policy
    from humanpower.learn.config import Phase2Config
    from humanpower.learn.evaluate import LearnedModel, compare_with_exact, policy_quality
    from humanpower.learn.rollout import rollout_statistics, run_episode
    from humanpower.worlds.grid.library import load_world
    from humanpower.worlds.grid.render import render_state
    from humanpower.worlds.grid.state import GridState
    from humanpower.worlds.video import write_video

    if args.episodes < 1:
        raise UserError("--episodes: must be >= 1")
    folder = RunFolder(Path(args.run_dir))
    source = newest_policy(folder)  # policy.pt, or the newest checkpoint of a killed / running / failed run
    if source.note:
        print(f"humanpower eval: {source.note}", file=sys.stderr)
    cfg = Phase2Config.from_yaml(folder.config_path).replace(device="cpu")
    world = load_world(str(folder.world_path))
    setup = build_setup(world, cfg, reference=False, run_dir=folder.root)  # the run's prior (learned: rebuilt)
    reference = None if args.no_exact else exact_reference(world, cfg.theory(), setup.prior)
    model = LearnedModel.from_policy(source.policy, source.path, world, setup.state_encoder, setup.goal_encoders)

    out_dir = folder.root / "eval"
    out_dir.mkdir(exist_ok=True)
    stats = rollout_statistics(model, world, setup.prior, args.episodes, seed=args.seed)
    result: dict[str, Any] = {
        "V_r_s0": float(model.evaluate([world.initial_state()])["v_r"][0]),
        "W_h": stats["W_h"],
        "goal_reach_rate": stats["goal_reach_rate"],
        "episodes": args.episodes,
    }
    if reference is not None:
        result.update(compare_with_exact(model, reference))
        result["states_compared"] = int(result["states_compared"])
        fidelity = FidelityReference.from_solution(world, reference)  # visit probabilities, shared
        result.update(policy_quality(model, reference, world, visits=fidelity.visits))
        result["human_prior"] = cfg.human_prior
        result.update(prior_fidelity(world, cfg.theory(), setup.prior, fidelity))

    # Rollout video: caption with X_h / V_r, tint of the first human's X_h on its cell.
    world.reset(seed=args.seed)
    ep = run_episode(model, world, setup.prior, np.random.default_rng(args.seed))
    frames = []
    for t, (s, x, v) in enumerate(zip(ep.states, ep.x_h, ep.v_r, strict=True)):
        xs = " ".join(f"X{h}={val:.2f}" for h, val in zip(world.humans, x, strict=True))
        assert isinstance(s, GridState)
        cells = {world.agent_position(s, h): float(val) for h, val in zip(world.humans, x, strict=True)}
        frames.append(render_state(world, s, overlay=cells, caption=f"t={t} {xs} V_r={v:.3f}"))
    video = write_video(frames, out_dir / f"rollout.{args.video}", fps=3)
    rows = _read_metrics(folder.metrics_path)
    plots = []
    if _plot(
        rows,
        ["loss_v_h_e", "loss_x_h", "loss_q_r", "loss_u_r", "loss_v_r"],
        "losses",
        out_dir / "learning_curves.png",
        log=True,
    ):
        plots.append("learning_curves.png")
    if _plot(
        rows,
        ["pi_r_rmse", "argmax_agreement", "V_r_rel_error", "x_h_mae", "v_h_e_mae"],
        "learned vs exact",
        out_dir / "exact_errors.png",
    ):
        plots.append("exact_errors.png")
    result["files"] = [str(video.relative_to(folder.root))] + [f"eval/{p}" for p in plots]

    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    print(f"run {folder.root}  world {world.name}  ({args.episodes} rollouts)")
    for i, h in enumerate(world.humans):
        print(f"  human {h}: mean W_h = {stats['W_h'][i]:.3f} bits, goal reached in {stats['goal_reach_rate'][i]:.0%}")
    print(f"  V_r(s0) learned = {result['V_r_s0']:.5f}")
    if reference is not None:
        _print_exact_comparison(result, list(world.humans))
        _print_prior_fidelity(result)
    for f in result["files"]:
        print(f"  wrote {folder.root / f}")
    return 0
