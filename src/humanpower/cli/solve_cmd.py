"""``humanpower solve WORLD``: solve a (small) gridworld exactly and report the values at the initial state.

Prints a table (or, with ``--json``, one JSON object and nothing else on stdout); ``--out DIR`` also writes
``solution.npz`` (see :mod:`humanpower.exact.result`), ``rollout.gif`` (a seeded rollout under the exact
robot policy, humans sampled from the prior with goals drawn from their goal sets) and ``x_h_heatmap.png``.
Theory defaults come from :class:`humanpower.params.TheoryParams`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from humanpower.errors import UserError
from humanpower.exact import ExactSolution, sample_rollout, solve
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.limits import theory_magnitude_error
from humanpower.params import ParameterError, TheoryParams
from humanpower.worlds.grid.distances import GridDistances
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.grid.render import render_state
from humanpower.worlds.grid.state import GridState
from humanpower.worlds.grid.world import GridWorld
from humanpower.worlds.protocol import robot_action_name
from humanpower.worlds.video import write_gif

# (flag, TheoryParams field) of the theory parameters settable on the command line.
PARAM_FLAGS = (
    ("--beta-r", "beta_r"),
    ("--gamma-r", "gamma_r"),
    ("--beta-h", "beta_h"),
    ("--gamma-h", "gamma_h"),
    ("--zeta", "zeta"),
    ("--xi", "xi"),
    ("--eta", "eta"),
    ("--nu-h", "nu_h"),
    ("--terminal-v-r", "terminal_v_r"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``solve`` subcommand."""
    defaults = TheoryParams()
    p = subparsers.add_parser(
        "solve",
        help="solve a small world exactly (backward induction)",
        description="Solve equations (1)-(9) exactly on every reachable state of a world and print the "
        "values at the initial state.",
    )
    p.add_argument("world", metavar="WORLD", help="a bundled world name or a world file (YAML)")
    for flag, name in PARAM_FLAGS:
        p.add_argument(
            flag, dest=name, type=float, default=None, metavar="X", help=f"default {getattr(defaults, name)}"
        )
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="override the world's horizon")
    p.add_argument(
        "--human-prior",
        choices=("exact", "heuristic", "uniform"),
        default="exact",
        help="human policy prior: exact Phase 1 (default), heuristic Boltzmann over distances, uniform",
    )
    p.add_argument("--max-states", type=int, default=2_000_000, metavar="N", help="refuse larger worlds")
    p.add_argument("--json", action="store_true", help="print one JSON object (nothing else on stdout)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="write solution.npz, rollout.gif, ...")
    p.add_argument("--seed", type=int, default=0, help="seed of the rollout written with --out (default 0)")
    p.set_defaults(func=run_solve)


def params_from_args(args: argparse.Namespace) -> TheoryParams:
    """TheoryParams with the values given on the command line (the rest from the defaults)."""
    given = {f.name: getattr(args, f.name) for f in fields(TheoryParams) if getattr(args, f.name, None) is not None}
    try:
        params = TheoryParams(**given)
    except ParameterError as exc:
        flag = next((fl for fl, name in PARAM_FLAGS if str(exc).startswith(name + ":")), None)
        raise UserError(f"{flag or 'parameter'}: {exc}") from exc
    for flag, name in PARAM_FLAGS:
        reason = theory_magnitude_error(name, getattr(params, name))
        if reason is not None:
            raise UserError(f"{flag}: {reason}")
    return params


def with_horizon(world: GridWorld, max_steps: int) -> GridWorld:
    """A copy of ``world`` with another horizon."""
    if max_steps < 1:
        raise UserError(f"--max-steps: must be >= 1, got {max_steps}")
    return GridWorld(
        world.layout,
        world.initial_state(),
        max_steps,
        actions=world.actions,
        stumble_probability=world.stumble_probability,
        goals=None if world.default_goals else list(world.goal_rects),
        goal_weights=world.goal_weights,
        name=world.name,
        description=world.description,
        source=world.source,
    )


def summary(world: GridWorld, sol: ExactSolution, seconds: float) -> dict[str, Any]:
    """The JSON object of ``--json``: values at the initial state."""
    v = sol.values_at(world.initial_state())
    return {
        "states": sol.num_states,
        "V_r": v["V_r"],
        "U_r": v["U_r"],
        "Q_r": v["Q_r"],
        "pi_r": v["pi_r"],
        "X_h": v["X_h"],
        "V_h_e": v["V_h_e"],
        "actions": [robot_action_name(world, a) for a in range(sol.num_robot_actions)],
        "params": sol.params.to_dict(),
        "seconds": seconds,
    }


def print_table(world: GridWorld, sol: ExactSolution, data: dict[str, Any]) -> None:
    print(
        f"world: {world.name}   states: {data['states']}   human prior: {sol.human_prior}   "
        f"seconds: {data['seconds']:.2f}"
    )
    print("params: " + ", ".join(f"{k}={v:g}" for k, v in data["params"].items()))
    print(f"initial state:  V_r = {data['V_r']:.6g}   U_r = {data['U_r']:.6g}")
    width = max(12, *(len(a) for a in data["actions"]))
    print(f"  {'robot action'.ljust(width)}  {'Q_r':>12}  {'pi_r':>8}")
    for name, q, p in zip(data["actions"], data["Q_r"], data["pi_r"], strict=True):
        print(f"  {name.ljust(width)}  {q:12.6g}  {p:8.4f}")
    print(f"  {'human':<6} {'X_h':>10} {'W_h (bits)':>11}")
    for h, x in zip(world.humans, data["X_h"], strict=True):
        print(f"  {h:<6} {x:10.4f} {math.log2(x):11.4f}")
    for h, per_goal in zip(world.humans, data["V_h_e"], strict=True):
        print(f"  V_h^e of human {h}: " + "  ".join(f"[{g}] {v:.3f}" for g, v in per_goal.items()))


def heatmap_values(world: GridWorld, sol: ExactSolution, human_index: int) -> dict[tuple[int, int], float]:
    """X_h of one human per cell it can stand in, with the other agents in their initial cells.

    Only the initial state has step 0, so for each cell this uses the reachable non-terminal states with the
    fewest steps in which the human stands in the cell and every other agent in its initial cell (objects and
    directions may differ), averaged over those states.
    """
    init = world.initial_state()
    h = world.humans[human_index]
    start_cells = [(a.x, a.y) for a in init.agents]
    best: dict[tuple[int, int], tuple[int, list[float]]] = {}
    for i, s in enumerate(sol.states):
        if sol.terminal[i] or not isinstance(s, GridState):
            continue
        if any((s.agents[k].x, s.agents[k].y) != start_cells[k] for k in range(len(s.agents)) if k != h):
            continue
        cell = (s.agents[h].x, s.agents[h].y)
        x = float(sol.x_h[i, human_index])
        known = best.get(cell)
        if known is None or s.step < known[0]:
            best[cell] = (s.step, [x])
        elif s.step == known[0]:
            known[1].append(x)
    return {cell: float(np.mean(xs)) for cell, (_, xs) in best.items()}


def _hstack(images: list[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    height = max(im.shape[0] for im in images)
    padded = []
    for im in images:
        canvas = np.full((height, im.shape[1] + 8, 3), 255, dtype=np.uint8)
        canvas[: im.shape[0], : im.shape[1]] = im
        padded.append(canvas)
    return np.concatenate(padded, axis=1)


def write_outputs(world: GridWorld, sol: ExactSolution, prior: HumanPolicyPrior, out: Path, seed: int) -> list[Path]:
    """solution.npz, rollout.gif and x_h_heatmap.png in ``out`` (created if missing)."""
    from PIL import Image

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out: cannot create {out}: {exc.strerror or exc}") from exc
    paths = [out / "solution.npz", out / "rollout.gif", out / "x_h_heatmap.png"]
    sol.save(paths[0])
    steps, goals = sample_rollout(world, sol, prior, np.random.default_rng(seed))
    goal_text = ", ".join(f"h{h}->{g}" for h, g in goals.items())
    frames = []
    for step in steps:
        v = sol.values_at(step.state)
        xs = " ".join(f"{x:.2f}" for x in v["X_h"])
        vr = f"{v['V_r']:.3g}"
        action = "" if step.robot_action is None else f"  robot: {robot_action_name(world, step.robot_action)}"
        caption = f"step {world.step_count(step.state)}  X_h: {xs}  V_r: {vr}{action}  goals: {goal_text}"
        assert isinstance(step.state, GridState)
        frames.append(render_state(world, step.state, caption=caption))
    write_gif(frames, paths[1], fps=2)
    images = []
    for hi, h in enumerate(world.humans):
        overlay = heatmap_values(world, sol, hi)
        caption = f"X_h of human {h} by its cell (other agents in their start cells, earliest reachable step)"
        images.append(render_state(world, world.initial_state(), overlay=overlay, caption=caption))
    Image.fromarray(_hstack(images)).save(paths[2])
    return paths


def run_solve(args: argparse.Namespace) -> int:
    """Solve the world and print the values at the initial state."""
    params = params_from_args(args)
    if args.max_states < 1:
        raise UserError(f"--max-states: must be >= 1, got {args.max_states}")
    world = load_world(args.world)
    if args.max_steps is not None:
        world = with_horizon(world, args.max_steps)
    if world.is_terminal(world.initial_state()):
        raise UserError(f"{args.world}: max_steps is 0, the initial state is terminal; nothing to solve")
    t0 = time.perf_counter()
    distances = GridDistances(world) if args.human_prior == "heuristic" else None
    try:
        sol = solve(
            world,
            params,
            human_prior=args.human_prior,
            distances=distances,
            max_states=args.max_states,
            progress=True,
        )
    except UserError as exc:  # e.g. X_h = 0 at some state: say which world it was
        raise UserError(f"{world.source or world.name}: {exc}") from None
    seconds = time.perf_counter() - t0
    data = summary(world, sol, seconds)
    if args.json:
        print(json.dumps(data))
    else:
        print_table(world, sol, data)
    if args.out is not None:
        assert sol.prior is not None
        for path in write_outputs(world, sol, sol.prior, args.out, args.seed):
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
