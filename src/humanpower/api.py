"""The Python API: load a world, solve it exactly, train and evaluate the learner.

    import humanpower as hp
    world = hp.load_world("trivial")
    exact = hp.solve(world)                                   # ExactSolution (small worlds)
    result = hp.train(world, run_dir="runs/demo", budget_minutes=3)  # config derived from the world (rule)
    result.model.action_distributions([world.initial_state()])[0]  # learned pi_r at s0

This module is wiring (like the CLI): it picks the human prior, the encoders and, for small worlds, the exact
reference solution, then hands an environment-agnostic :class:`TrainingSetup` to the learner.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from humanpower.errors import ConfigError, UserError
from humanpower.exact import ExactSolution, build_dag, solve, solve_phase1, solve_phase2
from humanpower.exact.dag import StateDag
from humanpower.humans.heuristic import HeuristicPrior
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.humans.uniform import UniformPrior
from humanpower.learn.autoconfig import AutoConfig, derive_config
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import GoalEncoder, OneHotGoalEncoder, OneHotStateEncoder, StateEncoder
from humanpower.learn.phase1.prior import LearnedHumanPrior
from humanpower.learn.phases import PROBE_SECONDS as PHASE1_PROBE_SECONDS
from humanpower.learn.phases import (
    load_learned_prior,
    plan_phase1,
    train_in_phases,
    untrained_prior,
    with_phase1_steps,
)
from humanpower.learn.trainer import Trainer, TrainingSetup, TrainResult
from humanpower.params import TheoryParams
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.grid.state import GridState
from humanpower.worlds.grid.world import GridWorld
from humanpower.worlds.protocol import SimulatorModel, State

DEFAULT_BUDGET_MINUTES = 10.0
"""Training time the default configuration rule plans for when the user gives no budget."""

SETUP_FIELDS = ("theory", "human_prior", "include_step_count", "seed", "device", "torch_threads")
"""Config fields :func:`build_setup` and the throughput probe read (taken from the overrides before deriving)."""

EXACT_STATE_LIMIT = 60_000
"""Worlds with at most this many reachable states are solved exactly when the prior is ``auto`` (Phase 1 prior
and a reference solution for learned-vs-exact metrics); larger ones use the learned Phase 1 prior."""


PHASE1_FIELDS = (
    "phase1_states_per_train_step",
    "phase1_batch_size",
    "phase1_buffer_size",
    "lr_phase1",
    "target_update_interval_phase1",
    "hidden_dim",
    "num_hidden_layers",
    "networks",
    "tabular_max_states",
)
"""Config fields the Phase 1 speed probe reads (taken from the overrides; the rest are defaults)."""


def _try_dag(world: SimulatorModel, limit: int) -> StateDag | None:
    try:
        return build_dag(world, max_states=limit, progress=False)
    except UserError:
        return None


def build_setup(
    world: SimulatorModel,
    cfg: Phase2Config,
    *,
    reference: bool = True,
    state_limit: int = EXACT_STATE_LIMIT,
    prior: HumanPolicyPrior | None = None,
    run_dir: Path | None = None,
) -> TrainingSetup:
    """The TrainingSetup for ``world``: human prior, encoders, exact reference (small worlds), rendering.

    ``cfg.human_prior``: ``exact`` (Phase 1 by backward induction; needs the state DAG), ``learned`` (Phase 1
    learned first, :mod:`humanpower.learn.phases`), ``heuristic`` (Boltzmann over shortest-path distances;
    gridworlds), ``uniform``, or ``auto`` (exact when the world has at most ``state_limit`` reachable states,
    else learned). ``prior``: the prior to use instead (a trained learned prior). ``run_dir``: a run folder whose
    frozen learned prior (``phase1/prior.pt``) is loaded when the prior is learned (eval). For ``learned`` without
    either, the setup holds an untrained :class:`LearnedHumanPrior` (what :func:`train` replaces after Phase 1;
    :func:`uses_learned_prior` tells). The reference solution is computed for the prior the setup holds.
    """
    theory = cfg.theory()
    want = cfg.human_prior
    dag = _try_dag(world, state_limit) if (want in ("exact", "auto") or reference) else None
    if want == "exact" and dag is None:
        dag = build_dag(world, max_states=10 * state_limit, progress=sys.stderr.isatty())
    state_encoder, goal_encoders, render, save_world = _encoders(world, cfg, dag, state_limit)
    if prior is None:
        prior = _make_prior(world, cfg, dag, state_encoder, goal_encoders)
        if run_dir is not None and isinstance(prior, LearnedHumanPrior):
            prior = load_learned_prior(run_dir, world, state_encoder, goal_encoders)
    solution: ExactSolution | None = None
    if reference and dag is not None:
        name = "learned" if isinstance(prior, LearnedHumanPrior) else want
        solution = solve_phase2(world, dag, prior, theory, prior_name=name)
    return TrainingSetup(world, prior, state_encoder, goal_encoders, solution, render, save_world)


def _make_prior(
    world: SimulatorModel,
    cfg: Phase2Config,
    dag: StateDag | None,
    state_encoder: StateEncoder,
    goal_encoders: list[GoalEncoder],
) -> HumanPolicyPrior:
    theory = cfg.theory()
    want = cfg.human_prior
    if want == "exact" or (want == "auto" and dag is not None):
        assert dag is not None
        return solve_phase1(world, dag, theory)
    if want in ("learned", "auto"):
        return untrained_prior(world, cfg, state_encoder, goal_encoders)
    if want == "heuristic":
        if not isinstance(world, GridWorld):
            raise ConfigError("human_prior: 'heuristic' needs a gridworld (shortest-path distances)")
        from humanpower.worlds.grid.distances import GridDistances

        return HeuristicPrior(world, GridDistances(world), theory.beta_h, theory.nu_h)
    if want == "uniform":
        return UniformPrior(world)
    raise ConfigError(f"human_prior: unknown value {want!r}")


def _encoders(
    world: SimulatorModel, cfg: Phase2Config, dag: StateDag | None, state_limit: int
) -> tuple[StateEncoder, list[GoalEncoder], Any, Any]:
    """State encoder, goal encoders (``world.humans`` order), rendering and world-file writer of ``world``."""
    if isinstance(world, GridWorld):
        from humanpower.encoders import grid_encoders
        from humanpower.worlds.grid.files import save_world_file
        from humanpower.worlds.grid.render import render_state

        state_encoder, by_agent = grid_encoders(world, cfg.include_step_count)

        def render(state: State, caption: str) -> Any:
            assert isinstance(state, GridState)
            return render_state(world, state, caption=caption)

        def save_world(path: Path) -> None:
            save_world_file(world, path)

        return state_encoder, [by_agent[h] for h in world.humans], render, save_world

    if dag is None:
        raise ConfigError(
            f"world {type(world).__name__}: non-grid worlds need an enumerable state space "
            f"(at most {state_limit} states) for one-hot encoders"
        )
    one_hot = OneHotStateEncoder(world, dag.states, cfg.include_step_count)
    goals: list[GoalEncoder] = [OneHotGoalEncoder(list(world.goal_set(h).goals)) for h in world.humans]
    return one_hot, goals, None, None


def uses_learned_prior(setup: TrainingSetup) -> bool:
    """Whether ``setup``'s prior is a learned Phase 1 prior (then :func:`train` runs Phase 1 first)."""
    return isinstance(setup.prior, LearnedHumanPrior)


def with_trained_prior(setup: TrainingSetup, cfg: Phase2Config, prior: HumanPolicyPrior) -> TrainingSetup:
    """``setup`` with ``prior`` (a trained learned prior) and its reference solution recomputed for it."""
    reference = setup.reference
    if reference is not None and reference.dag is not None:
        reference = solve_phase2(setup.world, reference.dag, prior, cfg.theory(), prior_name="learned")
    return dataclasses.replace(setup, prior=prior, reference=reference)


def _setup_config(overrides: Mapping[str, Any]) -> Phase2Config:
    """The defaults plus those overrides that :func:`build_setup` and the probe read (theory, prior, ...)."""
    names = [f.name for f in dataclasses.fields(TheoryParams)] + list(SETUP_FIELDS[1:])
    return Phase2Config.from_dict({name: overrides[name] for name in names if name in overrides}, "config")


def auto_config(
    world: SimulatorModel,
    overrides: Mapping[str, Any] | None = None,
    *,
    budget_minutes: float | None = None,
    budget_env_steps: int | None = None,
    setup: TrainingSetup | None = None,
) -> tuple[AutoConfig, TrainingSetup]:
    """The default configuration rule (``learn/autoconfig.py``, docs/LEARNER.md) for ``world``, and its setup.

    The env-step budget is, in order: ``num_episodes`` x min(``steps_per_episode``, horizon) when the overrides
    set ``num_episodes``; ``budget_env_steps``; else ``budget_minutes`` (default 10) converted with the
    learner's measured speed (a few seconds of timing); the time spent building the setup (exact prior and
    reference solution) and timing comes off that budget, and what is left is also the run's
    ``max_seconds`` (the timing only estimates the speed). Explicit ``overrides`` replace derived values.
    """
    from humanpower.learn.autoprobe import PROBE_SECONDS, derive_for_budget, world_facts

    start = time.perf_counter()
    given = dict(overrides or {})
    if setup is None:
        setup = build_setup(world, _setup_config(given))
    num_states = setup.reference.num_states if setup.reference is not None else None
    # build_setup enumerates up to EXACT_STATE_LIMIT states; without a reference the world has more
    more_than = EXACT_STATE_LIMIT if num_states is None else 0
    facts = world_facts(world, num_states, seed=int(given.get("seed", 0)), more_than=more_than)
    networks = str(given.get("networks", "neural"))
    base = _setup_config(given)
    if "num_episodes" in given:
        per_episode = min(int(given.get("steps_per_episode", facts.horizon)), facts.horizon)
        budget_env_steps = int(given["num_episodes"]) * per_episode
    if budget_env_steps is not None:
        auto = derive_config(facts, budget_env_steps, networks, base)
    else:
        minutes = DEFAULT_BUDGET_MINUTES if budget_minutes is None else budget_minutes
        if minutes <= 0:
            raise ConfigError(f"--budget-minutes: must be > 0, got {minutes}")
        # the budget covers the whole command: what setup took and the timing itself come off the loop's share
        left = 60.0 * minutes - (time.perf_counter() - start) - PROBE_SECONDS
        if uses_learned_prior(setup):  # Phase 1 takes its share of the minutes (docs/LEARNER.md)
            share = float(given.get("phase1_budget_share", Phase2Config.phase1_budget_share))
            if "phase1_train_steps" not in given:
                probe_cfg = _setup_config(given).replace(**{k: given[k] for k in PHASE1_FIELDS if k in given})
                plan = plan_phase1(world, probe_cfg, setup.state_encoder, setup.goal_encoders, share * left)
                given.update({k: v for k, v in plan.items() if k not in given})
            left = (1.0 - share) * left - PHASE1_PROBE_SECONDS
        auto, _ = derive_for_budget(setup, facts, max(left, 1.0), base, networks)
        # the timing is an estimate: the time limit makes the budget hold when the run turns out slower
        auto = dataclasses.replace(auto, config=auto.config.replace(max_seconds=max(left, 1.0)))
    try:
        cfg = auto.config.replace(**given)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (after applying explicit settings to the derived config)") from None
    return AutoConfig(cfg, auto.env_steps, auto.warnings), setup


def train(
    world: SimulatorModel | str,
    config: Phase2Config | Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    *,
    progress: bool = False,
    resume: bool = False,
    budget_minutes: float | None = None,
    setup: TrainingSetup | None = None,
) -> TrainResult:
    """Train the Phase 2 learner on ``world`` (a world object, bundled name or world-file path).

    ``config``: a full :class:`Phase2Config`, or None / a mapping of explicit settings, in which case the config
    is derived by the default rule (:func:`auto_config`, for ``budget_minutes``, default 10) and the mapping's
    keys replace derived values. ``setup``: a prebuilt :func:`build_setup` result for this world and config.

    Returns a :class:`TrainResult` with the trained :class:`~humanpower.learn.evaluate.LearnedModel`, the metric
    rows and the run folder (when ``run_dir`` is given: config, metrics, TensorBoard logs, checkpoints, policy,
    rollout GIF). With ``config.async_training`` the asynchronous actor-learner is used.

    The run folder is locked while training (another process writing it raises RunFolderBusyError); a folder that
    already holds a run is continued with ``resume=True`` (from its newest readable checkpoint; a larger
    ``num_episodes`` extends a finished run, an unchanged one returns ``already_finished``). An OSError on the folder
    (full disk, read-only) raises RunFolderWriteError naming the path, after marking the run ``failed``.
    """
    w = load_world(world) if isinstance(world, str) else world
    if isinstance(config, Phase2Config):
        cfg = config
    else:
        auto, setup = auto_config(w, config, budget_minutes=budget_minutes, setup=setup)
        cfg = auto.config
    if setup is None:
        setup = build_setup(w, cfg)
    root = Path(run_dir) if run_dir is not None else None

    def phase2(s: TrainingSetup, resume_phase2: bool) -> TrainResult:
        return Trainer(s, cfg, root, progress=progress).train(resume=resume_phase2)

    if uses_learned_prior(setup):  # Phase 1 first, then Phase 2 against its frozen prior (learn/phases.py)
        cfg = with_phase1_steps(cfg)
        base = setup
        return train_in_phases(
            w,
            cfg,
            root,
            base,
            lambda prior: with_trained_prior(base, cfg, prior),
            phase2,
            progress=progress,
            resume=resume,
        )
    return phase2(setup, resume)


__all__ = [
    "DEFAULT_BUDGET_MINUTES",
    "EXACT_STATE_LIMIT",
    "auto_config",
    "build_setup",
    "load_world",
    "solve",
    "train",
    "uses_learned_prior",
]
