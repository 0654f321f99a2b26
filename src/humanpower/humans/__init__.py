"""Human policy priors (Phase 1): exact backward induction, heuristic Boltzmann, uniform."""

from humanpower.humans.protocol import GoalDistanceModel, HumanPolicyPrior

__all__ = ["GoalDistanceModel", "HumanPolicyPrior"]
