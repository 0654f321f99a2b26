"""Equations (5), (7), (8), (9) as pure numpy functions, shared by the exact solver and the tests.

The learner has torch twins of these in :mod:`humanpower.learn.targets`; a test checks that both agree.
All functions broadcast over leading batch dimensions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def power_law_policy(q_r: FloatArray, beta_r: float) -> FloatArray:
    """Equation (5): pi_r(a) proportional to (-Q_r(a))^(-beta_r), over the last axis.

    Computed stably as softmax(-beta_r * log(-Q_r)). Requires Q_r < 0. beta_r = 0 gives the uniform policy.
    """
    q = np.asarray(q_r, dtype=np.float64)
    if np.any(q >= 0):
        raise ValueError("power_law_policy: Q_r must be < 0 everywhere")
    logits = -beta_r * np.log(-q)
    logits -= logits.max(axis=-1, keepdims=True)
    w = np.exp(logits)
    result: FloatArray = w / w.sum(axis=-1, keepdims=True)
    return result


def x_h_from_v(v_h_e: FloatArray, weights: FloatArray, zeta: float) -> FloatArray:
    """Equation (7): X_h = sum_g w(g) V_h^e(s, g)^zeta, summing the last axis (goals)."""
    v = np.clip(np.asarray(v_h_e, dtype=np.float64), 0.0, 1.0)
    result: FloatArray = (np.power(v, zeta) * weights).sum(axis=-1)
    return result


def u_r_from_x(x_h: FloatArray, xi: float, eta: float) -> FloatArray:
    """Equation (8): U_r = -(mean_h X_h^(-xi))^eta, the mean over the last axis (humans). Requires X_h > 0."""
    x = np.asarray(x_h, dtype=np.float64)
    y = np.power(x, -xi).mean(axis=-1)
    result: FloatArray = -np.power(y, eta)
    return result


def v_r_from(u_r: FloatArray, pi_r: FloatArray, q_r: FloatArray) -> FloatArray:
    """Equation (9): V_r = U_r + sum_a pi_r(a) Q_r(a)."""
    result: FloatArray = np.asarray(u_r) + (np.asarray(pi_r) * np.asarray(q_r)).sum(axis=-1)
    return result
