"""How far a human policy prior is from the exact Phase 1 prior: total-variation distance over the DAG.

The exact prior pi_h(s, g) of equations (1)-(3) (:class:`~humanpower.exact.phase1.ExactHumanPrior`) is the
reference. Any other prior (heuristic, uniform, learned) is compared with it on the **reachable (state, goal)
pairs** of each human h: every non-terminal state s of the reachable state DAG, and every goal g of h's goal
set that is not achieved at s. Achieved goals are left out because every prior rests there (all mass on
``still``) by convention, and terminal states because no action is taken there. At each pair

    TV_h(s, g) = 1/2 sum_a |pi_h(s, g, a) - pi*_h(s, g, a)|      (in [0, 1]).

Summaries (:class:`TvSummary`), per human and pooled over the humans:

- ``mean`` and ``p95``: every pair counts equally (pooled: every pair of every human);
- ``mean_on_policy`` and ``p95_on_policy``: pair (s, g) weighted by d(s) w(g), normalised per human to sum 1,
  where d(s) is the probability that an episode visits s under the exact robot policy with the exact prior
  (:func:`humanpower.exact.visit_probabilities`) and w(g) the goal's normalised weight. This is the weight the
  robot's equations (4) and (6) give pi_h(s, g) at the states it actually reaches: (4) averages every goal with
  its prior weight w(g) at each state. Pooled, every human gets total weight 1/H.

A percentile is the inverted-CDF one: the smallest TV such that pairs of at least that share of the (weighted)
total have a TV at most that large (:func:`weighted_quantile`).

The other prior is read as a table: directly for an exact or tabulated prior of the same DAG, in chunks of
states through ``action_distributions`` for a :class:`~humanpower.humans.protocol.BatchHumanPolicyPrior`
(the heuristic and learned priors), else once per (state, goal) through ``action_distribution``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from humanpower.errors import UserError
from humanpower.exact.dag import StateDag, achieved_matrix
from humanpower.exact.evaluate import visit_probabilities
from humanpower.exact.phase1 import ExactHumanPrior, solve_phase1
from humanpower.exact.phase2 import TabulatedPrior, prior_table, solve_phase2
from humanpower.exact.result import ExactSolution
from humanpower.humans.protocol import BatchHumanPolicyPrior, HumanPolicyPrior
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import WorldModel

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

QUANTILE = 0.95
"""The upper percentile reported next to the mean (``p95``)."""
BATCH_STATES = 4096
"""States per ``action_distributions`` call of a batch prior."""


def weighted_quantile(values: FloatArray, weights: FloatArray, q: float) -> float:
    """The smallest v in ``values`` such that the weights of the values <= v make up at least ``q`` of the total.

    With equal weights this is ``np.percentile(values, 100 q, method="inverted_cdf")``. Entries of weight 0
    never become the answer unless every weight is 0 (NaN then), as does an empty input.
    """
    keep = weights > 0.0
    if not keep.any():
        return float("nan")
    v, w = values[keep], weights[keep]
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order])
    k = int(np.searchsorted(cum, q * cum[-1] * (1.0 - 1e-12), side="left"))
    return float(v[order][min(k, len(v) - 1)])


@dataclass(frozen=True)
class TvSummary:
    """TV distance over a set of reachable (state, goal) pairs (module docs)."""

    pairs: int
    """Number of (state, goal) pairs summarised."""
    mean: float
    """Mean TV, every pair equally."""
    p95: float
    """95th percentile of TV, every pair equally."""
    mean_on_policy: float
    """Mean TV, pairs weighted by exact visit probability times goal weight."""
    p95_on_policy: float
    """95th percentile of TV under the same weights."""

    @classmethod
    def of(cls, tv: FloatArray, weights: FloatArray) -> TvSummary:
        """Summary of the TV values ``tv`` with on-policy ``weights`` (any positive scale; normalised here)."""
        total = float(weights.sum())
        return cls(
            pairs=int(tv.size),
            mean=float(tv.mean()) if tv.size else float("nan"),
            p95=weighted_quantile(tv, np.ones_like(tv), QUANTILE),
            mean_on_policy=float(weights @ tv / total) if total > 0 else float("nan"),
            p95_on_policy=weighted_quantile(tv, weights, QUANTILE),
        )


@dataclass(frozen=True)
class PriorFidelity:
    """A prior's TV distance from the exact prior: pooled and per human (``world.humans`` order)."""

    pooled: TvSummary
    per_human: tuple[TvSummary, ...]

    def as_dict(self, prefix: str) -> dict[str, float | int | list[float]]:
        """JSON keys ``{prefix}_mean``, ``_p95``, ``_mean_on_policy``, ``_p95_on_policy`` (pooled),
        ``{prefix}_mean_per_human`` / ``_mean_on_policy_per_human`` (lists) and ``{prefix}_pairs``."""
        p = self.pooled
        return {
            f"{prefix}_mean": p.mean,
            f"{prefix}_p95": p.p95,
            f"{prefix}_mean_on_policy": p.mean_on_policy,
            f"{prefix}_p95_on_policy": p.p95_on_policy,
            f"{prefix}_mean_per_human": [s.mean for s in self.per_human],
            f"{prefix}_mean_on_policy_per_human": [s.mean_on_policy for s in self.per_human],
            f"{prefix}_pairs": p.pairs,
        }


def reachable_pairs(world: WorldModel, dag: StateDag, human: int) -> BoolArray:
    """(N, G_h) mask of the reachable (state, goal) pairs of ``human``: non-terminal s, g not achieved at s."""
    out: BoolArray = ~dag.terminal[:, None] & ~achieved_matrix(world, dag, human)
    return out


def prior_tables(
    world: WorldModel, dag: StateDag, prior: HumanPolicyPrior, human: int, ids: NDArray[np.int64]
) -> FloatArray:
    """pi_h(s, g) of ``prior`` as an (len(ids), G_h, A) array for the DAG states ``ids`` (module docs)."""
    if isinstance(prior, ExactHumanPrior | TabulatedPrior) and prior.dag is dag:
        out: FloatArray = prior.pi[world.humans.index(human)][ids]
        return out
    if isinstance(prior, BatchHumanPolicyPrior):
        shape = (len(world.goal_set(human)), world.num_actions)
        parts = []
        for start in range(0, len(ids), BATCH_STATES):
            chunk = [dag.states[int(i)] for i in ids[start : start + BATCH_STATES]]
            part = np.asarray(prior.action_distributions(chunk, human), dtype=np.float64)
            if part.shape != (len(chunk), *shape):
                raise UserError(
                    f"human prior {type(prior).__name__}: action_distributions returned shape {part.shape}, "
                    f"expected {(len(chunk), *shape)}"
                )
            parts.append(part)
        return np.concatenate(parts) if parts else np.empty((0, *shape))
    pi, _ = prior_table(world, dag, prior, ids, human, achieved_matrix(world, dag, human))
    return pi


class FidelityReference:
    """The exact prior, its reachable pairs and on-policy weights on one DAG: measures any prior against it.

    Built from the exact solution *with the exact prior* (:meth:`from_solution`); :meth:`measure` then costs one
    table of the other prior per human plus a few vector operations.
    """

    def __init__(self, world: WorldModel, exact: ExactHumanPrior, visits: FloatArray) -> None:
        self.world = world
        self.exact = exact
        self.dag = exact.dag
        self.visits = visits
        """(N,) visit probabilities of the exact policy with the exact prior."""
        if visits.shape != (self.dag.num_states,):
            raise ValueError(f"visits: shape {visits.shape}, expected ({self.dag.num_states},)")
        self.masks = [reachable_pairs(world, self.dag, h) for h in world.humans]
        self.weights = []
        for h, mask in zip(world.humans, self.masks, strict=True):
            w = visits[:, None] * world.goal_set(h).probabilities[None, :] * mask
            total = float(w.sum())
            self.weights.append(w / total if total > 0 else w)

    @classmethod
    def from_solution(cls, world: WorldModel, solution: ExactSolution) -> FidelityReference:
        """The reference of an exact solution whose human prior is the exact Phase 1 prior of its DAG."""
        prior = solution.prior
        if not isinstance(prior, ExactHumanPrior) or solution.dag is None or prior.dag is not solution.dag:
            raise UserError(
                "prior fidelity: the reference must be an exact solution with the exact Phase 1 prior of its DAG "
                f"(got prior {type(prior).__name__})"
            )
        return cls(world, prior, visit_probabilities(world, solution.dag, prior, solution))

    def tv(self, prior: HumanPolicyPrior, human: int) -> tuple[FloatArray, FloatArray]:
        """TV distances of ``prior`` at the reachable pairs of ``human`` and their normalised on-policy weights.

        Both are 1-D over the pairs in (state id, goal index) order.
        """
        hi = self.world.humans.index(human)
        mask = self.masks[hi]
        ids = np.flatnonzero(mask.any(axis=1)).astype(np.int64)
        other = prior_tables(self.world, self.dag, prior, human, ids)
        diff: FloatArray = 0.5 * np.abs(other - self.exact.pi[hi][ids]).sum(axis=-1)  # (n, G)
        sub = mask[ids]
        return diff[sub], self.weights[hi][ids][sub]

    def measure(self, prior: HumanPolicyPrior) -> PriorFidelity:
        """TV summaries of ``prior`` against the exact prior, per human and pooled (module docs)."""
        per_human, tvs, weights = [], [], []
        humans: Sequence[int] = self.world.humans
        for h in humans:
            tv, w = self.tv(prior, h)
            per_human.append(TvSummary.of(tv, w))
            tvs.append(tv)
            weights.append(w / len(humans))
        pooled = TvSummary.of(np.concatenate(tvs), np.concatenate(weights))
        return PriorFidelity(pooled, tuple(per_human))


__all__ = [
    "QUANTILE",
    "FidelityReference",
    "PriorFidelity",
    "TvSummary",
    "exact_prior_solution",
    "prior_tables",
    "reachable_pairs",
    "weighted_quantile",
]


def exact_prior_solution(
    world: WorldModel, dag: StateDag, params: TheoryParams, prior: HumanPolicyPrior | None = None
) -> ExactSolution:
    """The exact solution *with the exact Phase 1 prior* on ``dag``: the reference for policy quality and prior
    fidelity whatever prior a run trained with. ``prior`` is reused when it already is the exact prior of
    ``dag`` (solved with the same ``params``), else Phase 1 is solved here."""
    exact = prior if isinstance(prior, ExactHumanPrior) and prior.dag is dag else solve_phase1(world, dag, params)
    return solve_phase2(world, dag, exact, params, prior_name="exact")
