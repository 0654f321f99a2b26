"""Phase 1 targets, equations (1)-(3), as pure tensor functions with the exact solver's conventions.

    (1) Q_h^m(s, g, a_h) = E_{a_-h ~ mu_-h} min_{a_r} E_{s'} [U_h(s', g) + gamma_h V_h^m(s', g)]
    (2) pi_h(s, g) = nu_h pi_h^0 + (1 - nu_h) softmax(beta_h Q_h^m(s, g, .))
    (3) V_h^m(s, g) = E_{a_h ~ pi_h(s, g)} Q_h^m(s, g, a_h)

Conventions (identical to :mod:`humanpower.exact.phase1`): a successor in g pays 1 and its continuation is 0
(the recursion stops there); a terminal successor not in g pays 0 (V_h^m = 0 at the horizon); the human rests at
an achieved goal (pi_h puts all mass on ``still``, action 0); the other humans are averaged (mu_-h uniform)
*outside* the min over the robot fleet's joint action; pi_h^0 is uniform. The learner evaluates V_h^m(s', g) from
the *target* network through (2)-(3) (:func:`state_values`).

Shapes: ``G`` goals of one human, ``A`` actions per agent, ``K`` successor nodes, ``E`` edges (one per
(distribution row, successor) pair), ``R`` distribution rows, ``B`` states, ``P = A ** num_agents`` joint action
profiles (agent 0 least significant, as :class:`humanpower.exact.kernels.ProfileTables`).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def human_policy(q: Tensor, achieved: Tensor, beta_h: float, nu_h: float) -> Tensor:
    """Equation (2) with the resting rule: ``q`` (..., G, A), ``achieved`` (..., G) bool -> pi (..., G, A).

    pi_h^0 is uniform; at an achieved goal the policy is one-hot on action 0 (``still``).
    """
    pi = torch.softmax(beta_h * q, dim=-1)
    if nu_h > 0:
        pi = nu_h / q.shape[-1] + (1.0 - nu_h) * pi
    still = torch.zeros_like(pi)
    still[..., 0] = 1.0
    return torch.where(achieved.unsqueeze(-1), still, pi)


def state_values(q: Tensor, achieved: Tensor, beta_h: float, nu_h: float) -> Tensor:
    """Equation (3): V_h^m = pi_h . Q_h^m, (..., G) from ``q`` (..., G, A)."""
    return (human_policy(q, achieved, beta_h, nu_h) * q).sum(dim=-1)


def successor_payoff(v_next: Tensor, achieved: Tensor, terminal: Tensor, gamma_h: float) -> Tensor:
    """U_h(s', g) + gamma_h V_h^m(s', g) per successor node: (K, G).

    1 where s' achieves g (continuation 0 there), 0 at a terminal s' that does not, else gamma_h V_h^m(s', g).
    ``v_next`` (K, G), ``achieved`` (K, G) bool, ``terminal`` (K,) bool.
    """
    cont = torch.where(terminal.unsqueeze(-1), torch.zeros_like(v_next), gamma_h * v_next)
    return torch.where(achieved, torch.ones_like(v_next), cont)


def row_expectations(payoff: Tensor, edge_node: Tensor, edge_prob: Tensor, edge_row: Tensor, num_rows: int) -> Tensor:
    """E_{s'}[payoff(s')] per successor distribution (row): (R, G) from ``payoff`` (K, G) and the edges."""
    out = payoff.new_zeros((num_rows, payoff.shape[1]))
    return out.index_add_(0, edge_row, edge_prob.to(payoff.dtype).unsqueeze(-1) * payoff.index_select(0, edge_node))


def q_from_rows(row_ev: Tensor, profile_rows: Tensor, split: Tensor, num_others: int, num_robot: int) -> Tensor:
    """Equation (1) from per-row expectations: (B, G, A).

    ``profile_rows`` (B, P): the row of each state's joint action profile; ``split`` (A, P / A): the profiles of
    each action of the human, ordered (other humans' flat action, robot flat action) with the robot fastest
    (:meth:`humanpower.exact.kernels.ProfileTables.split_human`). The min over the ``num_robot`` joint robot
    actions is taken first, then the mean over the ``num_others`` joint actions of the other humans (mu_-h
    uniform).
    """
    b = profile_rows.shape[0]
    a = split.shape[0]
    rows = profile_rows[:, split]  # (B, A, P / A)
    prof = row_ev.index_select(0, rows.reshape(-1)).view(b, a, num_others, num_robot, row_ev.shape[1])
    worst = prof.amin(dim=3).mean(dim=2)  # (B, A, G)
    return worst.permute(0, 2, 1)


def q_targets(
    v_next: Tensor,
    node_achieved: Tensor,
    node_terminal: Tensor,
    edge_node: Tensor,
    edge_prob: Tensor,
    edge_row: Tensor,
    num_rows: int,
    profile_rows: Tensor,
    split: Tensor,
    num_others: int,
    num_robot: int,
    gamma_h: float,
) -> Tensor:
    """The right-hand side of (1) for B states from V_h^m at their successor nodes: (B, G, A)."""
    payoff = successor_payoff(v_next, node_achieved, node_terminal, gamma_h)
    row_ev = row_expectations(payoff, edge_node, edge_prob, edge_row, num_rows)
    return q_from_rows(row_ev, profile_rows, split, num_others, num_robot)
