"""Joint distribution of all humans' actions under a prior (humans independent)."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping

import numpy as np

from humanpower.goals import Goal
from humanpower.humans.protocol import FloatArray, HumanPolicyPrior
from humanpower.worlds.protocol import WorldModel


def human_distributions(
    world: WorldModel, prior: HumanPolicyPrior, state: Hashable, goals: Mapping[int, Goal] | None = None
) -> list[FloatArray]:
    """Per human (``world.humans`` order): its action distribution, goal-conditioned where ``goals`` names
    a goal for that human (keyed by agent index), else the goal-marginal."""
    out = []
    for h in world.humans:
        if goals is not None and h in goals:
            out.append(np.asarray(prior.action_distribution(state, h, goals[h]), dtype=np.float64))
        else:
            out.append(np.asarray(prior.marginal_distribution(state, h), dtype=np.float64))
    return out


def joint_human_distribution(
    world: WorldModel, prior: HumanPolicyPrior, state: Hashable, goals: Mapping[int, Goal] | None = None
) -> list[tuple[float, tuple[int, ...]]]:
    """The joint distribution of the humans' actions as ``[(prob, human_actions)]``.

    ``human_actions`` is in ``world.humans`` order. Humans act independently; each follows the goal-marginal
    policy sum_g w(g) pi_h(s, g) (normalised weights) when ``goals`` is None, else pi_h(s, goals[h]).
    Zero-probability combinations are left out.
    """
    dists = human_distributions(world, prior, state, goals)
    out: list[tuple[float, tuple[int, ...]]] = []
    for combo in itertools.product(range(world.num_actions), repeat=len(dists)):
        p = 1.0
        for d, a in zip(dists, combo, strict=True):
            p *= float(d[a])
        if p > 0.0:
            out.append((p, combo))
    return out
