"""The exact solver: backward induction over the reachable state DAG (the ground truth for the learner).

``solve(world)`` builds the DAG (:mod:`.dag`), computes the human prior (Phase 1, :mod:`.phase1`, or a
heuristic / uniform prior) and then equations (4)-(9) (:mod:`.phase2`), returning an :class:`ExactSolution`.
:func:`evaluate_policy` (:mod:`.evaluate`) gives the same values for any fixed robot policy.
Environment-agnostic: works for any :class:`humanpower.worlds.protocol.WorldModel`.
"""

from __future__ import annotations

import time
from typing import Literal

from humanpower.errors import UserError
from humanpower.exact.dag import BatchTransitionModel, StateDag, achieved_matrix, build_dag
from humanpower.exact.evaluate import (
    RobotPolicySpec,
    evaluate_policy,
    goal_reach,
    policy_table,
    visit_probabilities,
)
from humanpower.exact.phase1 import ExactHumanPrior, solve_phase1
from humanpower.exact.phase2 import prior_table, solve_phase2
from humanpower.exact.result import POWER_LAW, ExactSolution
from humanpower.exact.rollout import RolloutStep, hitting_probability, sample_rollout
from humanpower.humans.heuristic import HeuristicPrior
from humanpower.humans.protocol import GoalDistanceModel, HumanPolicyPrior
from humanpower.humans.uniform import UniformPrior
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import WorldModel

PriorName = Literal["exact", "heuristic", "uniform"]


def make_prior(
    world: WorldModel,
    dag: StateDag,
    params: TheoryParams,
    human_prior: PriorName | HumanPolicyPrior,
    distances: GoalDistanceModel | None = None,
) -> tuple[HumanPolicyPrior, str]:
    """The human prior named by ``human_prior`` (or the given prior object) and its display name."""
    if isinstance(human_prior, str):
        if human_prior == "exact":
            return solve_phase1(world, dag, params), "exact"
        if human_prior == "heuristic":
            if distances is None:
                raise UserError("human prior 'heuristic' needs a goal distance model (distances=...)")
            return HeuristicPrior(world, distances, params.beta_h, params.nu_h), "heuristic"
        if human_prior == "uniform":
            return UniformPrior(world), "uniform"
        raise UserError(f"human prior: unknown name {human_prior!r} (exact, heuristic or uniform)")
    if isinstance(human_prior, HumanPolicyPrior):
        return human_prior, type(human_prior).__name__
    raise UserError(f"human prior: expected a name or a HumanPolicyPrior, got {type(human_prior).__name__}")


def solve(
    world: WorldModel,
    params: TheoryParams = TheoryParams(),  # noqa: B008 - frozen dataclass, safe default
    human_prior: PriorName | HumanPolicyPrior = "exact",
    distances: GoalDistanceModel | None = None,
    max_states: int = 2_000_000,
    progress: bool = False,
    dag: StateDag | None = None,
) -> ExactSolution:
    """Solve equations (1)-(9) exactly on every reachable state of ``world``.

    Args:
        world: any finite-horizon world model.
        params: theory parameters (defaults from :class:`TheoryParams`).
        human_prior: ``"exact"`` (Phase 1 backward induction with params.beta_h, gamma_h, nu_h),
            ``"heuristic"`` (Boltzmann over ``distances``), ``"uniform"``, or any ``HumanPolicyPrior``.
        distances: the goal distance model for the heuristic prior.
        max_states: refuse worlds with more reachable states (UserError).
        progress: show a progress bar for the DAG build (stderr, only on a terminal).
        dag: a DAG already built for ``world`` (skips the build).
    """
    t0 = time.perf_counter()
    if dag is None:
        dag = build_dag(world, max_states=max_states, progress=progress)
    t1 = time.perf_counter()
    prior, name = make_prior(world, dag, params, human_prior, distances)
    t2 = time.perf_counter()
    solution = solve_phase2(world, dag, prior, params, prior_name=name)
    t3 = time.perf_counter()
    solution.timings.update({"dag": t1 - t0, "phase1": t2 - t1, "phase2": t3 - t2, "total": t3 - t0})
    return solution


__all__ = [
    "POWER_LAW",
    "BatchTransitionModel",
    "ExactHumanPrior",
    "ExactSolution",
    "RobotPolicySpec",
    "RolloutStep",
    "StateDag",
    "achieved_matrix",
    "build_dag",
    "evaluate_policy",
    "goal_reach",
    "hitting_probability",
    "make_prior",
    "policy_table",
    "prior_table",
    "sample_rollout",
    "solve",
    "solve_phase1",
    "solve_phase2",
    "visit_probabilities",
]
