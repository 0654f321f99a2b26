"""The robot's acting policy: power law (5) mixed with epsilon-uniform exploration; one RobotPolicy protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humanpower.api import build_setup
from humanpower.exact import evaluate_policy
from humanpower.learn.config import Phase2Config
from humanpower.learn.distributed.protocol import actor_spec, policy_update
from humanpower.learn.distributed.worker import PolicyMirror
from humanpower.learn.evaluate import LearnedModel
from humanpower.learn.policy import robot_action_distribution, sample_action
from humanpower.learn.trainer import make_learner
from humanpower.worlds.protocol import RobotPolicy, action_distribution
from humanpower.worlds.tabular import random_tabular_world


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
    np.testing.assert_allclose(robot_action_distribution(q, 1.0, 0.3), 0.7 * np.array([4, 2, 1]) / 7 + 0.1, rtol=1e-7)
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


def test_every_robot_policy_is_one_protocol_and_they_agree() -> None:
    """Exact solution, trained model, the learner's live Q_r policy and an actor's copy: one RobotPolicy protocol.

    Each gives (N, A_r) probability rows over the same states; the learner's and the actor's policies at the
    nominal beta_r without exploration are the model's pi_r, and the exact evaluation accepts each of them.
    """
    world = random_tabular_world(3, num_nodes=5, num_humans=1, num_robots=2, num_actions=2, max_steps=3)
    cfg = Phase2Config(hidden_dim=8, beta_r=3.0, batch_size=4)
    setup = build_setup(world, cfg)
    sol = setup.reference
    assert sol is not None and sol.prior is not None and sol.dag is not None
    learner = make_learner(setup, cfg)
    gen = torch.Generator().manual_seed(0)  # the test's own draw, whatever ran before it
    with torch.no_grad():  # a Q_r that is not flat, so that the policies are not all uniform
        for p in learner.nets.q_r.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    model = LearnedModel.from_learner(learner, world)
    mirror = PolicyMirror(actor_spec(setup, cfg, learner, 3).q_r, setup.state_encoder, False, cfg.beta_r)
    actor_policy = mirror.adopt(policy_update(learner, 0))
    live = [s for s, end in zip(sol.states, sol.terminal, strict=True) if not end]
    a_r = 4
    rows = {}
    policies = {"exact": sol, "model": model, "learner": learner.acting_policy(), "actor": actor_policy}
    for name, policy in policies.items():
        assert isinstance(policy, RobotPolicy), name
        got = policy.action_distributions(live)
        assert got.shape == (len(live), a_r) and got.dtype == np.float64, name
        assert np.all(got >= 0) and np.allclose(got.sum(axis=1), 1.0, atol=1e-12), name
        np.testing.assert_allclose(action_distribution(policy, live[1]), got[1], rtol=1e-5, atol=1e-12)
        rows[name] = got
    np.testing.assert_allclose(rows["learner"], rows["model"], rtol=1e-12)
    # The actor's mirror and model.evaluate run in float32: probabilities below ~1e-38 come out as 0 or
    # subnormals there, hence the absolute floor.
    np.testing.assert_allclose(rows["actor"], rows["model"], rtol=1e-5, atol=1e-30)
    np.testing.assert_allclose(model.evaluate(live)["pi_r"], rows["model"], rtol=1e-5, atol=1e-30)
    assert np.abs(rows["model"] - 1 / a_r).max() > 1e-3  # not trivially uniform
    np.testing.assert_array_equal(rows["exact"], sol.pi_r[~sol.terminal])
    # Exploration is part of the acting policy: epsilon 1 is uniform, beta_r 0 too.
    for beta_r, epsilon in ((cfg.beta_r, 1.0), (0.0, 0.3)):
        explored = learner.acting_policy().with_exploration(beta_r, epsilon).action_distributions(live)
        np.testing.assert_allclose(explored, np.full((len(live), a_r), 1 / a_r), rtol=1e-12)
    # The exact evaluation takes any of them: the learned model's pi_r is what it evaluates.
    for policy in (model, actor_policy):
        ev = evaluate_policy(world, policy, sol.prior, cfg.theory(), sol.dag, name="learned")
        np.testing.assert_allclose(ev.pi_r[~sol.terminal], rows["model"], rtol=1e-5, atol=1e-30)
