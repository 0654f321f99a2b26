"""The robot's acting policy: the power law (5) mixed with epsilon-uniform exploration.

What is implemented exactly (the seed's "epsilon-greedy" in the sense of epsilon-uniform mixing):

    pi(a) = (1 - epsilon) * pi_r(a) + epsilon / A,     pi_r(a) proportional to (-Q_r(s, a))^(-beta_r)

i.e. with probability epsilon the fleet takes a uniformly random joint action, otherwise it samples from the
power law (5) (computed as softmax(-beta_r * log(-Q_r)) by :func:`humanpower.equations.power_law_policy`).
There is no argmax ("greedy") step: beta_r is finite by design, so the exploited part is the power law itself.
beta_r = 0 gives the uniform policy for every epsilon (Q_r is then not checked). Sampling uses one uniform
draw (inverse CDF of the mixed distribution), which has exactly the two-stage distribution above.

:class:`QPolicy` is this policy over a Q_r network: the one
:class:`~humanpower.worlds.protocol.RobotPolicy` implementation that the learner (its live network), the
actors (their frozen copies) and :class:`~humanpower.learn.evaluate.LearnedModel` (nominal beta_r, no
exploration) act with. What differs between them is only how states become a network batch (a ``StateBatcher``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from humanpower.equations import power_law_policy
from humanpower.learn.networks import QRNetwork
from humanpower.learn.state_batch import StateBatch
from humanpower.worlds.protocol import State

FloatArray = NDArray[np.float64]
StateBatcher = Callable[[Sequence[State]], StateBatch]
"""Turns states into the batch a Q_r module reads (the learner's featurizer, an actor's encoder or id mirror)."""


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

    Short float64 vectors (fewer than 8 entries: action distributions) take a pure-Python path with the same
    floats: numpy adds fewer than 8 float64 values left to right from 0.0, so ``probs.sum()`` is the last running
    sum of ``np.cumsum(probs)``, and ``bisect_right`` is ``searchsorted(side="right")``.
    """
    if len(probs) < 8 and probs.dtype == np.float64:
        running = list(itertools.accumulate(probs.tolist()))
        return min(bisect.bisect_right(running, rng.random() * running[-1]), len(probs) - 1)
    return int(min(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right"), len(probs) - 1))


class QPolicy:
    """``(1 - epsilon) * power_law(Q_r(s, .), beta_r) + epsilon / A``: a RobotPolicy over a Q_r module.

    Q_r is evaluated as in eval mode (no dropout) and without gradients, whatever mode the module is in (the
    learner's live network keeps training). ``version`` is the learner's training step count the weights belong
    to (stamped on every transition collected with the policy; -1 when unknown).
    """

    def __init__(
        self, q_r: torch.nn.Module, batch_of: StateBatcher, version: int, beta_r: float, epsilon: float = 0.0
    ) -> None:
        self.q_r = q_r
        self.batch_of = batch_of
        self.version = version
        self.beta_r = beta_r
        self.epsilon = epsilon

    def with_exploration(self, beta_r: float, epsilon: float) -> QPolicy:
        """The same network and version at other policy parameters (the actor's schedule values of a step)."""
        return QPolicy(self.q_r, self.batch_of, self.version, beta_r, epsilon)

    def q_values(self, states: Sequence[State]) -> FloatArray:
        """Q_r(s, .) for every state, (N, A) float64, all < 0."""
        batch = self.batch_of(states)
        with torch.no_grad():
            if isinstance(self.q_r, QRNetwork):  # eval-mode values without switching the live network's mode
                q = self.q_r.eval_values(batch)
            else:
                was_training = self.q_r.training
                self.q_r.eval()
                q = self.q_r(batch)
                self.q_r.train(was_training)
        out: FloatArray = q.double().cpu().numpy()
        return out

    def action_distributions(self, states: Sequence[State]) -> FloatArray:
        """(N, A) acting probabilities: :func:`robot_action_distribution` of :meth:`q_values`."""
        return robot_action_distribution(self.q_values(states), self.beta_r, self.epsilon)


__all__ = ["QPolicy", "StateBatcher", "robot_action_distribution", "sample_action"]
