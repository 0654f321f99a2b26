"""The robot's acting policy: power law (5) mixed with epsilon-uniform exploration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humanpower.learn.policy import robot_action_distribution, sample_action


def test_power_law_values_from_the_spec() -> None:
    # EQUATIONS.md: Q = (-1, -2) and (-10, -20) both give (0.9697, 0.0303) at beta_r = 5 (= 32/33, 1/33).
    for q in ([-1.0, -2.0], [-10.0, -20.0]):
        np.testing.assert_allclose(robot_action_distribution(q, 5.0, 0.0), [32 / 33, 1 / 33], rtol=1e-12)
    # Not shift invariant: (-2, -3) -> (0.884, 0.116); (-3, -4) -> (0.808, 0.192).
    np.testing.assert_allclose(robot_action_distribution([-2.0, -3.0], 5.0, 0.0), [0.884, 0.116], atol=5e-4)
    np.testing.assert_allclose(robot_action_distribution([-3.0, -4.0], 5.0, 0.0), [0.808, 0.192], atol=5e-4)


def test_scale_invariance_of_the_power_law_part() -> None:
    q = np.array([[-0.3, -1.7, -0.9, -4.0], [-2.0, -2.0, -1.0, -8.0]])
    for beta in (0.5, 3.0, 10.0):
        for eps in (0.0, 0.25):
            base = robot_action_distribution(q, beta, eps)
            for c in (1e-3, 0.7, 42.0):
                np.testing.assert_allclose(robot_action_distribution(c * q, beta, eps), base, rtol=1e-10)


def test_epsilon_mixing_exact_probabilities() -> None:
    # (1 - 0.2) * (32/33, 1/33) + 0.2 / 2, hand-computed.
    np.testing.assert_allclose(
        robot_action_distribution(np.array([-1.0, -2.0]), 5.0, 0.2), [0.8 * 32 / 33 + 0.1, 0.8 / 33 + 0.1]
    )
    q = torch.tensor([-1.0, -2.0, -4.0])  # torch input, three actions: weights 1, 1/2, 1/4 at beta_r = 1
    np.testing.assert_allclose(
        robot_action_distribution(q, 1.0, 0.3), 0.7 * np.array([4, 2, 1]) / 7 + 0.1, rtol=1e-7
    )
    np.testing.assert_allclose(robot_action_distribution(q, 7.0, 1.0), [1 / 3] * 3)


def test_beta_zero_is_uniform() -> None:
    q = np.array([[-0.1, -5.0, -100.0, -1.0]])
    for eps in (0.0, 0.5, 1.0):
        np.testing.assert_array_equal(robot_action_distribution(q, 0.0, eps), np.full((1, 4), 0.25))


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        robot_action_distribution([-1.0, -2.0], 1.0, 1.5)
    with pytest.raises(ValueError, match="beta_r"):
        robot_action_distribution([-1.0, -2.0], -1.0, 0.0)
    with pytest.raises(ValueError, match="Q_r"):
        robot_action_distribution([-1.0, 0.0], 1.0, 0.0)


def test_sampling_frequencies_and_reproducibility() -> None:
    q = np.array([-1.0, -2.0, -4.0])
    probs = robot_action_distribution(q, 1.0, 0.3)
    rng = np.random.default_rng(7)
    n = 20_000
    counts = np.bincount([sample_action(probs, rng) for _ in range(n)], minlength=3)
    assert np.all(np.abs(counts / n - probs) < 4 * np.sqrt(probs * (1 - probs) / n))
    a = [sample_action(probs, np.random.default_rng(3)) for _ in range(5)]
    assert len(set(a)) == 1
    assert sample_action(np.array([0.0, 1.0, 0.0]), np.random.default_rng(0)) == 1
    # unnormalised weights (the actor passes the prior's distributions as they come): the same draw
    assert sample_action(3.0 * probs, np.random.default_rng(3)) == a[0]
