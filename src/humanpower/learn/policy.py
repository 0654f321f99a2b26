"""The robot's acting policy: the power law (5) mixed with epsilon-uniform exploration.

What is implemented exactly (the seed's "epsilon-greedy" in the sense of epsilon-uniform mixing):

    pi(a) = (1 - epsilon) * pi_r(a) + epsilon / A,     pi_r(a) proportional to (-Q_r(s, a))^(-beta_r)

i.e. with probability epsilon the fleet takes a uniformly random joint action, otherwise it samples from the
power law (5) (computed as softmax(-beta_r * log(-Q_r)) by :func:`humanpower.equations.power_law_policy`).
There is no argmax ("greedy") step: beta_r is finite by design, so the exploited part is the power law itself.
beta_r = 0 gives the uniform policy for every epsilon (Q_r is then not checked). Sampling uses one uniform
draw (inverse CDF of the mixed distribution), which has exactly the two-stage distribution above.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from humanpower.equations import power_law_policy

FloatArray = NDArray[np.float64]


def _as_numpy(q: ArrayLike | torch.Tensor) -> FloatArray:
    if isinstance(q, torch.Tensor):
        return q.detach().to("cpu", torch.float64).numpy()
    return np.asarray(q, dtype=np.float64)


def robot_action_distribution(q: ArrayLike | torch.Tensor, beta_r: float, epsilon: float) -> FloatArray:
    """Acting probabilities ``(1 - epsilon) * power_law(Q, beta_r) + epsilon / A`` over the last axis.

    ``q`` holds Q_r(s, .) for every joint robot action, shape (A,) or (B, A), all < 0 (ValueError otherwise).
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"robot policy: epsilon must be in [0, 1], got {epsilon}")
    if not beta_r >= 0.0:
        raise ValueError(f"robot policy: beta_r must be >= 0, got {beta_r}")
    q_arr = _as_numpy(q)
    n_actions = q_arr.shape[-1]
    probs = np.full_like(q_arr, 1.0 / n_actions) if beta_r == 0.0 else power_law_policy(q_arr, beta_r)
    if epsilon > 0.0:
        probs = (1.0 - epsilon) * probs + epsilon / n_actions
    return probs


def sample_action(probs: FloatArray, rng: np.random.Generator) -> int:
    """An index drawn from the probability vector ``probs`` (need not be normalised) with one uniform draw.

    The inverse CDF: the first index whose cumulative sum exceeds ``u * sum(probs)``, u ~ U[0, 1); the actor
    draws every robot and human action with it.
    """
    return int(min(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right"), len(probs) - 1))


__all__ = ["robot_action_distribution", "sample_action"]
