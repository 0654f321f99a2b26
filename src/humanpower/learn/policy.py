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

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from humanpower.equations import power_law_policy
from humanpower.learn.encoding import Featurizer
from humanpower.worlds.protocol import State

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
    """An index drawn from the probability vector ``probs`` with one uniform draw (inverse CDF)."""
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(probs) - 1))


class RobotPolicy:
    """The acting robot policy.

    The static methods work on Q_r values; an instance bound to a Q_r network and a featurizer also acts from
    states (network in eval mode, no gradients; the module's train/eval flag is restored afterwards).
    """

    def __init__(self, q_r: nn.Module | None = None, featurizer: Featurizer | None = None) -> None:
        if (q_r is None) != (featurizer is None):
            raise ValueError("RobotPolicy: give both q_r and featurizer, or neither")
        self.q_r = q_r
        self.featurizer = featurizer

    @staticmethod
    def distribution(q: ArrayLike | torch.Tensor, beta_r: float, epsilon: float) -> FloatArray:
        """See :func:`robot_action_distribution`."""
        return robot_action_distribution(q, beta_r, epsilon)

    @staticmethod
    def sample(q: ArrayLike | torch.Tensor, beta_r: float, epsilon: float, rng: np.random.Generator) -> int:
        """One joint robot action drawn from :meth:`distribution` for a single state's ``q`` (shape (A,))."""
        probs = robot_action_distribution(q, beta_r, epsilon)
        if probs.ndim != 1:
            raise ValueError(f"RobotPolicy.sample: expected q of shape (A,), got {probs.shape}")
        return sample_action(probs, rng)

    def q_values(self, states: Sequence[State]) -> FloatArray:
        """Q_r(s, .) for each state, (B, A) float64, from the bound network in eval mode."""
        if self.q_r is None or self.featurizer is None:
            raise RuntimeError("RobotPolicy.q_values: no Q_r network bound")
        was_training = self.q_r.training
        self.q_r.eval()
        try:
            with torch.no_grad():
                q = self.q_r(self.featurizer.batch(states))
        finally:
            self.q_r.train(was_training)
        return _as_numpy(q)

    def probabilities(self, states: Sequence[State], beta_r: float, epsilon: float) -> FloatArray:
        """Acting probabilities (B, A) for each state."""
        return robot_action_distribution(self.q_values(states), beta_r, epsilon)

    def act(self, state: State, beta_r: float, epsilon: float, rng: np.random.Generator) -> int:
        """One joint robot action for ``state`` from the bound network."""
        return sample_action(self.probabilities([state], beta_r, epsilon)[0], rng)


__all__ = ["RobotPolicy", "robot_action_distribution", "sample_action"]
