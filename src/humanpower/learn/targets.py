"""Pure torch functions building every Phase 2 target from equations (4)-(9) (EQUATIONS.md).

No networks, no state: callers pass tensors produced by the *target* networks. Functions broadcast over
leading batch dimensions; "last axis" means actions for the policy, humans for U_r, goals for X_h.
Numpy twins of (5), (7), (8), (9) live in :mod:`humanpower.equations`; a test checks they agree.

Successor expectations use a flat edge list: edge ``e`` goes from row ``row[e]`` (a (transition, robot
action) pair) to node ``node_index[e]`` (a distinct successor state) with probability ``prob[e]``.

Terminal handling (the horizon) matches the exact solver: V_h^e pays 1 for a goal reached by the last step
and 0 afterwards; V_r at a terminal node is the absolute constant ``terminal_v_r``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor
Scalar = float | Tensor


def power_law_policy(q_r: Tensor, beta_r: Scalar) -> Tensor:
    """Equation (5): pi_r(a) proportional to (-Q_r(a))^(-beta_r) over the last axis.

    Computed as softmax(-beta_r * log(-Q_r)); scale invariant in Q_r; beta_r = 0 gives the uniform policy.
    Q_r must be < 0; values >= 0 (e.g. an underflowed -softplus) are treated as the tiniest negative number.
    ``beta_r`` may be a tensor broadcasting against ``q_r`` (e.g. shape (B, 1)).
    """
    neg = (-q_r).clamp_min(torch.finfo(q_r.dtype).tiny)
    return torch.softmax(-beta_r * torch.log(neg), dim=-1)


def robot_policy(q_r: Tensor, beta_r: float) -> Tensor:
    """pi_r from Q_r by the power law (5); exactly uniform when beta_r = 0 (Q_r is then not read)."""
    if beta_r == 0.0:
        return torch.full_like(q_r, 1.0 / q_r.shape[-1])
    return power_law_policy(q_r, beta_r)


def x_h_from_v(v_h_e: Tensor, weights: Tensor, zeta: float) -> Tensor:
    """Equation (7): X_h = sum_g w(g) V_h^e(s, g)^zeta over the last axis (goals); V clipped to [0, 1]."""
    return (weights * v_h_e.clamp(0.0, 1.0).pow(zeta)).sum(dim=-1)


def y_from_x(x_h: Tensor, xi: float) -> Tensor:
    """y = mean_h X_h^(-xi) over the last axis (humans); requires X_h > 0."""
    return x_h.pow(-xi).mean(dim=-1)


def u_r_from_y(y: Tensor, eta: float) -> Tensor:
    """Equation (8) from y: U_r = -y^eta."""
    return -y.pow(eta)


def u_r_from_x(x_h: Tensor, xi: float, eta: float) -> Tensor:
    """Equation (8): U_r = -(mean_h X_h^(-xi))^eta, the MEAN over the last axis (humans)."""
    return u_r_from_y(y_from_x(x_h, xi), eta)


def v_r_from(u_r: Tensor, pi_r: Tensor, q_r: Tensor) -> Tensor:
    """Equation (9): V_r = U_r + sum_a pi_r(a) Q_r(a) (last axis = robot actions)."""
    return u_r + (pi_r * q_r).sum(dim=-1)


def expect_edges(edge_values: Tensor, prob: Tensor, row: Tensor, num_rows: int) -> Tensor:
    """sum over edges of ``prob[e] * edge_values[e]`` grouped by ``row[e]``: shape (num_rows, ...)."""
    p = prob.to(edge_values.dtype).reshape(-1, *([1] * (edge_values.dim() - 1)))
    out = edge_values.new_zeros((num_rows, *edge_values.shape[1:]))
    return out.index_add_(0, row, p * edge_values)


def expect(values_at_nodes: Tensor, node_index: Tensor, prob: Tensor, row: Tensor, num_rows: int) -> Tensor:
    """E[value(s')] per row: ``sum_e prob[e] * values_at_nodes[node_index[e]]`` grouped by ``row[e]``.

    ``values_at_nodes`` (U, ...), ``node_index``/``prob``/``row`` (E,); returns (num_rows, ...). Rows with no
    edges get 0.
    """
    return expect_edges(values_at_nodes.index_select(0, node_index), prob, row, num_rows)


def v_h_e_edge_value(achieved_next: Tensor, terminal_next: Tensor, v_next: Tensor, gamma_h: float) -> Tensor:
    """Per successor edge, U_h(s', g) + gamma_h V_h^e(s', g) of (6) with the horizon handled exactly.

    1 where the goal is achieved at s' (also when s' is terminal: reaching it on the last step counts), else 0
    where s' is terminal, else ``gamma_h * v_next``. The masks have ``v_next``'s shape or broadcast against it.
    """
    return (gamma_h * v_next).masked_fill_(terminal_next, 0.0).masked_fill_(achieved_next, 1.0)


def x_h_target(v_h_e_sampled: Tensor, importance_weight: Tensor, zeta: float) -> Tensor:
    """Goal-sampler estimate of (7): mean_k w_k * V_h^e(s, g_k)^zeta over the last axis (K samples).

    With goals drawn with probability w(g)/W and importance weight W this is unbiased for sum_g w(g) V^zeta.
    V is clipped to [0, 1].
    """
    return (importance_weight * v_h_e_sampled.clamp(0.0, 1.0).pow(zeta)).mean(dim=-1)


def y_min_from_weights(total_weights: Sequence[float] | Tensor, xi: float) -> float:
    """Smallest possible y = mean_h W_h^(-xi), W_h the total goal weight of human h (X_h <= W_h)."""
    w = torch.as_tensor(total_weights, dtype=torch.float64)
    return float(w.pow(-xi).mean())


def y_from_u_r_net_output(z: Tensor, y_min: Scalar) -> Tensor:
    """The U_r network's output z read as z = log(y - y_min): y = y_min + exp(z) (always > y_min).

    The seed's log(y - 1) for unit goal weights; y_min is :func:`y_min_from_weights`.
    """
    return y_min + torch.exp(z)
