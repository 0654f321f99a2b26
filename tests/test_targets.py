"""Pure target builders vs hand-computed numbers, and agreement with the numpy twins in equations.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humanpower import equations as E
from humanpower.learn import targets as T

D = torch.float64


def t(values: object, dtype: torch.dtype = D) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def close(a: torch.Tensor, b: object, tol: float = 1e-9) -> bool:
    return torch.allclose(a, torch.as_tensor(b, dtype=a.dtype), atol=tol, rtol=0)


def test_power_law_policy_hand_values() -> None:
    # (-1)^-5 : (-2)^-5 = 32 : 1
    assert close(T.power_law_policy(t([-1.0, -2.0]), 5.0), [32 / 33, 1 / 33])
    assert close(T.power_law_policy(t([-10.0, -20.0]), 5.0), [32 / 33, 1 / 33])  # scale invariant
    # not shift invariant: 3^5 : 2^5 = 243 : 32
    assert close(T.power_law_policy(t([-2.0, -3.0]), 5.0), [243 / 275, 32 / 275])
    assert close(T.power_law_policy(t([-3.0, -4.0]), 5.0), [1024 / 1267, 243 / 1267])
    assert close(T.power_law_policy(t([-0.1, -7.0, -3.0]), 0.0), [1 / 3] * 3)
    # per-row beta_r broadcasting
    pi = T.power_law_policy(t([[-1.0, -2.0], [-1.0, -2.0]]), t([[5.0], [1.0]]))
    assert close(pi, [[32 / 33, 1 / 33], [2 / 3, 1 / 3]])
    # an underflowed Q_r = 0 stays finite (treated as the tiniest negative number)
    pi0 = T.power_law_policy(t([0.0, -1.0], torch.float32), 2.0)
    assert torch.isfinite(pi0).all() and pi0[0] > 0.999


def test_x_h_y_u_r_hand_values() -> None:
    assert close(T.x_h_from_v(t([1.0, 0.5]), t([1.0, 1.0]), 2.0), 1.25)
    assert close(T.x_h_from_v(t([1.0, 0.5]), t([2.0, 4.0]), 2.0), 3.0)
    assert close(T.x_h_from_v(t([1.2, -0.1]), t([1.0, 1.0]), 2.0), 1.0)  # clipped to [0, 1]
    x = t([2.0, 4.0])
    assert close(T.y_from_x(x, 1.0), 0.375)  # mean(1/2, 1/4)
    assert close(T.u_r_from_y(t(0.375), 2.0), -0.140625)
    assert close(T.u_r_from_x(x, 1.0, 2.0), -0.140625)
    assert close(T.u_r_from_x(t([[2.0, 2.0], [1.0, 4.0]]), 2.0, 1.0), [-0.25, -(1 + 1 / 16) / 2])


def test_intertemporal_aversion_example() -> None:
    # EQUATIONS.md: powers in bits W = (1, 2) then (2, 1) versus (1, 1) then (2, 2); X = 2^W.
    def total(bits: list[list[float]], eta: float) -> float:
        return float(T.u_r_from_x(2.0 ** t(bits), 1.0, eta).sum())

    assert total([[1, 2], [2, 1]], 1.0) == pytest.approx(-0.75)
    assert total([[1, 1], [2, 2]], 1.0) == pytest.approx(-0.75)
    assert total([[1, 2], [2, 1]], 1.1) == pytest.approx(-0.67993, abs=1e-5)
    assert total([[1, 1], [2, 2]], 1.1) == pytest.approx(-0.68415, abs=1e-5)


def test_v_r_from_hand_values() -> None:
    assert close(T.v_r_from(t(-1.0), t([0.25, 0.75]), t([-2.0, -4.0])), -4.5)


def test_expect_over_edges() -> None:
    values = t([10.0, 20.0, 30.0])
    node = torch.tensor([0, 2, 1, 2, 0])
    prob = t([0.5, 0.5, 1.0, 0.25, 0.75])
    row = torch.tensor([0, 0, 1, 3, 3])
    assert close(T.expect(values, node, prob, row, 4), [20.0, 20.0, 0.0, 15.0])
    # trailing dimensions are carried along
    values2 = torch.stack([values, -values], dim=-1)
    assert close(T.expect(values2, node, prob, row, 4), [[20, -20], [20, -20], [0, 0], [15, -15]])
    # edge-valued expectation
    assert close(T.expect_edges(t([1.0, 3.0, 5.0]), t([0.5, 0.5, 1.0]), torch.tensor([1, 1, 0]), 2), [5.0, 2.0])


def test_v_h_e_edge_value_terminal_handling() -> None:
    achieved = torch.tensor([True, True, False, False])
    terminal = torch.tensor([False, True, True, False])
    v_next = t([0.3, 0.4, 0.5, 0.6])
    # achieved -> 1 (also at the horizon), terminal -> 0, else gamma_h * V
    assert close(T.v_h_e_edge_value(achieved, terminal, v_next, 0.9), [1.0, 1.0, 0.0, 0.54])


def test_x_h_target_hand_value_and_unbiasedness() -> None:
    assert close(T.x_h_target(t([[1.0, 0.5]]), t([[2.0, 2.0]]), 2.0), [1.25])
    # goals with weights (1, 3), V = (0.5, 1): X = 1 * 0.25 + 3 * 1 = 3.25; sampler p = (1/4, 3/4), W = 4
    gen = torch.Generator().manual_seed(0)
    k = 200_000
    goal = (torch.rand(k, generator=gen, dtype=D) < 0.75).long()
    v = t([0.5, 1.0])[goal].view(1, k)
    est = T.x_h_target(v, torch.full((1, k), 4.0, dtype=D), 2.0)
    assert float(est) == pytest.approx(3.25, abs=0.02)
    assert float(est) == pytest.approx(float(T.x_h_from_v(t([0.5, 1.0]), t([1.0, 3.0]), 2.0)), abs=0.02)


def test_u_r_network_output_parametrisation() -> None:
    assert T.y_min_from_weights([1.0, 2.0], 1.0) == pytest.approx(0.75)
    assert T.y_min_from_weights([1.0, 1.0, 1.0], 2.0) == pytest.approx(1.0)  # the seed's log(y - 1)
    # z = log(y - y_min): y = y_min + e^z, always above y_min
    assert close(T.y_from_u_r_net_output(t([0.0, 1.0]), 0.5), [1.5, 0.5 + math.e])
    assert close(T.y_from_u_r_net_output(t([-800.0]), 0.5), [0.5])


def test_robot_policy_is_uniform_at_beta_zero_and_the_power_law_otherwise() -> None:
    q = t([[-0.1, -5.0, 0.0]])  # an invalid Q_r (0) is not even read at beta_r = 0
    assert torch.equal(T.robot_policy(q, 0.0), torch.full((1, 3), 1 / 3, dtype=D))
    q = t([[-1.0, -2.0]])
    assert torch.equal(T.robot_policy(q, 5.0), T.power_law_policy(q, 5.0))


def test_scale_invariance_of_v_h_e() -> None:
    # V_h^e * b multiplies U_r by b^(-zeta xi eta)
    zeta, xi, eta, b = 2.0, 1.0, 1.1, 0.5
    v = t([[0.9, 0.4, 0.7], [0.2, 0.6, 0.3]])  # 2 humans x 3 goals
    w = t([1.0, 1.0, 1.0])
    u1 = T.u_r_from_x(T.x_h_from_v(v, w, zeta), xi, eta)
    u2 = T.u_r_from_x(T.x_h_from_v(b * v, w, zeta), xi, eta)
    assert close(u2 / u1, b ** (-zeta * xi * eta), tol=1e-12)


def test_numpy_twins_agree() -> None:
    rng = np.random.default_rng(0)
    q = -rng.uniform(0.01, 5.0, size=(7, 4))
    for beta in (0.0, 0.5, 10.0):
        np.testing.assert_allclose(T.power_law_policy(torch.from_numpy(q), beta).numpy(), E.power_law_policy(q, beta))
    v = rng.uniform(-0.1, 1.1, size=(5, 3, 6))
    w = rng.uniform(0.5, 2.0, size=6)
    np.testing.assert_allclose(
        T.x_h_from_v(torch.from_numpy(v), torch.from_numpy(w), 1.7).numpy(), E.x_h_from_v(v, w, 1.7)
    )
    x = rng.uniform(0.1, 4.0, size=(5, 3))
    np.testing.assert_allclose(T.u_r_from_x(torch.from_numpy(x), 1.3, 1.1).numpy(), E.u_r_from_x(x, 1.3, 1.1))
    u = -rng.uniform(0.1, 2.0, size=7)
    pi = E.power_law_policy(q, 2.0)
    np.testing.assert_allclose(T.v_r_from(*(torch.from_numpy(a) for a in (u, pi, q))).numpy(), E.v_r_from(u, pi, q))
