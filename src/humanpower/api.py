"""The Python API: load a world, solve it exactly, train and evaluate the learner.

    import humanpower as hp
    world = hp.load_world("trivial")
    exact = hp.solve(world)                                   # ExactSolution (small worlds)
    result = hp.train(world, hp.Phase2Config(num_episodes=500), run_dir="runs/demo")
    result.model.distribution(world.initial_state())           # learned pi_r at s0

This module is wiring (like the CLI): it picks the human prior, the encoders and, for small worlds, the exact
reference solution, then hands an environment-agnostic :class:`TrainingSetup` to the learner.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from humanpower.errors import ConfigError, UserError
from humanpower.exact import ExactSolution, build_dag, solve, solve_phase1, solve_phase2
from humanpower.exact.dag import StateDag
from humanpower.humans.heuristic import HeuristicPrior
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.humans.uniform import UniformPrior
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import OneHotGoalEncoder, OneHotStateEncoder
from humanpower.learn.trainer import SyncTrainer, TrainingSetup, TrainResult
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.grid.state import GridState
from humanpower.worlds.grid.world import GridWorld
from humanpower.worlds.protocol import SimulatorModel, State

EXACT_STATE_LIMIT = 60_000
"""Worlds with at most this many reachable states are solved exactly when the prior is ``auto`` (Phase 1 prior
and a reference solution for learned-vs-exact metrics); larger ones use the heuristic prior."""


def _try_dag(world: SimulatorModel, limit: int) -> StateDag | None:
    try:
        return build_dag(world, max_states=limit, progress=False)
    except UserError:
        return None


def build_setup(
    world: SimulatorModel, cfg: Phase2Config, *, reference: bool = True, state_limit: int = EXACT_STATE_LIMIT
) -> TrainingSetup:
    """The TrainingSetup for ``world``: human prior, encoders, exact reference (small worlds), rendering.

    ``cfg.human_prior``: ``exact`` (Phase 1 by backward induction; needs the state DAG), ``heuristic``
    (Boltzmann over shortest-path distances; gridworlds), ``uniform``, or ``auto`` (exact when the world has at
    most ``state_limit`` reachable states, else heuristic).
    """
    theory = cfg.theory()
    want = cfg.human_prior
    dag = _try_dag(world, state_limit) if (want in ("exact", "auto") or reference) else None
    if want == "exact" and dag is None:
        dag = build_dag(world, max_states=10 * state_limit, progress=sys.stderr.isatty())
    prior: HumanPolicyPrior
    if want == "exact" or (want == "auto" and dag is not None):
        assert dag is not None
        prior = solve_phase1(world, dag, theory)
    elif want in ("heuristic", "auto"):
        if not isinstance(world, GridWorld):
            raise ConfigError("human_prior: 'heuristic' needs a gridworld (shortest-path distances)")
        from humanpower.worlds.grid.distances import GridDistances

        prior = HeuristicPrior(world, GridDistances(world), theory.beta_h, theory.nu_h)
    elif want == "uniform":
        prior = UniformPrior(world)
    else:
        raise ConfigError(f"human_prior: unknown value {want!r}")

    solution: ExactSolution | None = None
    if reference and dag is not None:
        solution = solve_phase2(world, dag, prior, theory, prior_name=want)

    if isinstance(world, GridWorld):
        from humanpower.encoders import grid_encoders
        from humanpower.worlds.grid.files import save_world_file
        from humanpower.worlds.grid.render import render_state

        state_encoder, by_agent = grid_encoders(world, cfg.include_step_count)
        goal_encoders = [by_agent[h] for h in world.humans]

        def render(state: State, caption: str) -> Any:
            assert isinstance(state, GridState)
            return render_state(world, state, caption=caption)

        def save_world(path: Path) -> None:
            save_world_file(world, path)

        return TrainingSetup(world, prior, state_encoder, goal_encoders, solution, render, save_world)

    if dag is None:
        raise ConfigError(
            f"world {type(world).__name__}: non-grid worlds need an enumerable state space "
            f"(at most {state_limit} states) for one-hot encoders"
        )
    one_hot = OneHotStateEncoder(world, dag.states, cfg.include_step_count)
    goals = [OneHotGoalEncoder(list(world.goal_set(h).goals)) for h in world.humans]
    return TrainingSetup(world, prior, one_hot, goals, solution)


def train(
    world: SimulatorModel | str,
    config: Phase2Config | Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    *,
    progress: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Train the Phase 2 learner on ``world`` (a world object, bundled name or world-file path).

    Returns a :class:`TrainResult` with the trained :class:`~humanpower.learn.evaluate.LearnedModel`, the metric
    rows and the run folder (when ``run_dir`` is given: config, metrics, TensorBoard logs, checkpoints, policy,
    rollout GIF). With ``config.async_training`` the asynchronous actor-learner is used.

    The run folder is locked while training (another process writing it raises RunFolderBusyError); a folder that
    already holds a run is continued with ``resume=True`` (from its newest readable checkpoint; a larger
    ``num_episodes`` extends a finished run, an unchanged one returns ``already_finished``). An OSError on the folder
    (full disk, read-only) raises RunFolderWriteError naming the path, after marking the run ``failed``.
    """
    w = load_world(world) if isinstance(world, str) else world
    if config is None:
        cfg = Phase2Config()
    elif isinstance(config, Phase2Config):
        cfg = config
    else:
        cfg = Phase2Config.from_dict(dict(config), "config")
    setup = build_setup(w, cfg)
    root = Path(run_dir) if run_dir is not None else None
    if cfg.async_training:
        from humanpower.learn.distributed import AsyncTrainer

        return AsyncTrainer(setup, cfg, root, progress=progress).train(resume=resume)
    return SyncTrainer(setup, cfg, root, progress=progress).train(resume=resume)


__all__ = ["EXACT_STATE_LIMIT", "build_setup", "load_world", "solve", "train"]
