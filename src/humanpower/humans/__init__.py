"""Human policy priors (Phase 1): exact backward induction, heuristic Boltzmann, uniform."""

from humanpower.humans.heuristic import HeuristicPrior
from humanpower.humans.joint import human_distributions, joint_human_distribution
from humanpower.humans.protocol import BatchHumanPolicyPrior, GoalDistanceModel, HumanPolicyPrior
from humanpower.humans.uniform import UniformPrior

__all__ = [
    "BatchHumanPolicyPrior",
    "GoalDistanceModel",
    "HeuristicPrior",
    "HumanPolicyPrior",
    "UniformPrior",
    "human_distributions",
    "joint_human_distribution",
]
