"""The Phase 2 losses: equations (4)-(9) as regression targets, all in one place.

Read this file top to bottom to see the whole algorithm of one training step. Every target is built with the
*target* networks (frozen copies, eval mode) and model-based expectations over the successor distributions cached
at collection time; every prediction comes from the *main* network being trained.

    V_h^e(s, g_h) <- sum_{a_r} pi_r(a_r | s) sum_{s'} P(s' | s, a_H, a_r) [1 if s' in g_h
                                                                        else 0 if s' terminal
                                                                        else gamma_h V_h^e'(s', g_h)]   (6)
    X_h(s)        <- mean_k  W_h V_h^e'(s, g_k)^zeta,  g_k ~ goal sampler (fresh goals)                  (7)
    y(s)          <- mean_h X_h'(s)^(-xi)       (U_r network only; U_r = -y^eta)                       (8)
    Q_r(s, a_r)   <- gamma_r sum_{s'} P(s' | s, a_H, a_r) V_r'(s')      for every a_r at once           (4)
    V_r'(s')      =  terminal_v_r at the horizon, else U_r'(s') + pi_r(s') . Q_r'(s')                 (9)
    pi_r          =  power law (5) at the current beta_r (uniform while beta_r = 0)

(a_H is the transition's target draw: fresh goals from the prior, actions from pi_h; see actor.py.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from humanpower.goals import GoalSet
from humanpower.learn import targets as T
from humanpower.learn.batch import Batch
from humanpower.learn.encoding import StateBatch
from humanpower.learn.networks import Phase2Networks
from humanpower.learn.target_nets import TargetNetwork


@dataclass(frozen=True)
class LossParams:
    """The equation parameters and switches one training step needs."""

    beta_r: float
    gamma_r: float
    gamma_h: float
    zeta: float
    xi: float
    eta: float
    terminal_v_r: float
    active: frozenset[str]
    x_h_goal_samples: int
    u_r_human_sample_size: int | None
    u_r_use_network: bool
    v_r_use_network: bool
    average_duplicates: bool = False
    """Tabular backend: average the targets of duplicate entries within a batch (see :func:`regression_loss`)."""


def regression_loss(pred: torch.Tensor, target: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
    """MSE of pred vs target (rows = first axis).

    With ``keys`` (one integer per row naming the table entry it trains), rows that train the same entry are
    averaged: the loss is 1/2 sum_rows (pred - target)^2 / count(key), so one SGD step with rate lr moves each
    entry by lr * (mean target - value). That is the tabular backend's update; networks use plain MSE.
    """
    if keys is None:
        return F.mse_loss(pred, target)
    _, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    weight = (1.0 / counts[inverse].to(pred.dtype)).view(-1, *([1] * (pred.dim() - 1)))
    return 0.5 * (weight * (pred - target) ** 2).sum()


def robot_policy(q_r: torch.Tensor, beta_r: float) -> torch.Tensor:
    """pi_r from Q_r by the power law (5); exactly uniform when beta_r = 0."""
    if beta_r == 0.0:
        return torch.full_like(q_r, 1.0 / q_r.shape[-1])
    return T.power_law_policy(q_r, beta_r)


def y_min(goal_sets: list[GoalSet], xi: float) -> float:
    """Smallest possible y = mean_h X_h^(-xi) (every X_h at its maximum W_h); the U_r network predicts log(y - y_min)."""
    return T.y_min_from_weights([gs.total_weight for gs in goal_sets], xi)


def u_r_values(
    nodes: StateBatch, tgt: Mapping[str, TargetNetwork], p: LossParams, ymin: float
) -> torch.Tensor:
    """U_r(s) from the target networks: the U_r network if used, else directly from X_h (8)."""
    if p.u_r_use_network:
        y = T.y_from_u_r_net_output(tgt["u_r"](nodes), ymin)
        return T.u_r_from_y(y, p.eta)
    return T.u_r_from_x(tgt["x_h"].module.forward_all(nodes), p.xi, p.eta)


def v_r_values(
    nodes: StateBatch, terminal: torch.Tensor, tgt: Mapping[str, TargetNetwork], p: LossParams, ymin: float
) -> torch.Tensor:
    """V_r(s) (9) at every node from the target networks; the absolute terminal constant at the horizon."""
    if p.v_r_use_network:
        v = tgt["v_r"](nodes)
    else:
        q = tgt["q_r"](nodes)
        v = T.v_r_from(u_r_values(nodes, tgt, p, ymin), robot_policy(q, p.beta_r), q)
    return torch.where(terminal, torch.full_like(v, p.terminal_v_r), v)


def _vhe_queries(
    net: torch.nn.Module, nodes: StateBatch, node_index: torch.Tensor, goals: torch.Tensor
) -> torch.Tensor:
    """V_h^e for every (row, human) pair: rows are ``node_index``, goals (R, H) per row; returns (R, H)."""
    r, h = goals.shape
    humans = torch.arange(h, device=goals.device).repeat(r)
    out: torch.Tensor = net(nodes.select(node_index.repeat_interleave(h)), humans, goals.reshape(-1))
    return out.view(r, h)


def phase2_losses(
    batch: Batch,
    x_states: StateBatch,
    nets: Phase2Networks,
    tgt: Mapping[str, TargetNetwork],
    goal_sets: list[GoalSet],
    p: LossParams,
    rng: np.random.Generator,
) -> dict[str, torch.Tensor]:
    """The loss of every active network for one batch (a dict name -> scalar tensor)."""
    losses: dict[str, torch.Tensor] = {}
    states = batch.states()
    state_keys = states.ids if p.average_duplicates else None
    x_keys = x_states.ids if p.average_duplicates else None
    b, a = batch.size, batch.num_robot_actions
    ymin = y_min(goal_sets, p.xi)

    if "v_h_e" in p.active:  # (6)
        with torch.no_grad():
            edge_goals = batch.goals[batch.edge_row // a]
            v_next = _vhe_queries(tgt["v_h_e"].module, batch.nodes, batch.edge_node, edge_goals)
            edge_value = T.v_h_e_edge_value(
                batch.edge_achieved, batch.edge_terminal.unsqueeze(-1).expand_as(v_next), v_next, p.gamma_h
            )
            per_action = T.expect_edges(edge_value, batch.edge_prob, batch.edge_row, b * a).view(b, a, -1)
            pi_s = robot_policy(tgt["q_r"](states), p.beta_r)
            target = torch.einsum("ba,bah->bh", pi_s, per_action)
        pred = _vhe_queries(nets.v_h_e, batch.nodes, batch.state_node, batch.goals)
        keys = None
        if state_keys is not None:  # one table entry per (state, human, goal)
            h = batch.goals.shape[1]
            g_max = int(batch.goals.max()) + 1
            humans = torch.arange(h, device=batch.goals.device)
            keys = ((state_keys.unsqueeze(1) * h + humans) * g_max + batch.goals).reshape(-1)
        losses["v_h_e"] = regression_loss(pred.reshape(-1), target.reshape(-1), keys)

    if "x_h" in p.active:  # (7) with fresh goals from the sampler
        n, k = x_states.features.shape[0], p.x_h_goal_samples
        with torch.no_grad():
            cols = []
            for i, gs in enumerate(goal_sets):
                g = torch.as_tensor(rng.choice(len(gs), size=n * k, p=gs.probabilities), device=x_states.features.device)
                human = torch.full_like(g, i)
                v = tgt["v_h_e"](x_states.select(torch.arange(n, device=g.device).repeat_interleave(k)), human, g)
                cols.append(T.x_h_target(v.view(n, k), torch.full((n, k), gs.total_weight, device=v.device), p.zeta))
            target = torch.stack(cols, dim=-1)
        losses["x_h"] = regression_loss(nets.x_h.forward_all(x_states), target, x_keys)

    if "u_r" in p.active and nets.u_r is not None:  # (8), MSE on y (not on log y, not Huber)
        with torch.no_grad():
            x = tgt["x_h"].module.forward_all(states)
            if p.u_r_human_sample_size is not None and p.u_r_human_sample_size < x.shape[1]:
                cols_idx = torch.as_tensor(rng.choice(x.shape[1], p.u_r_human_sample_size, replace=False))
                x = x[:, cols_idx.to(x.device)]
            y = T.y_from_x(x, p.xi)
        losses["u_r"] = regression_loss(T.y_from_u_r_net_output(nets.u_r(states), ymin), y, state_keys)

    if "q_r" in p.active:  # (4) for every joint robot action at once
        with torch.no_grad():
            v_nodes = v_r_values(batch.nodes, batch.node_terminal, tgt, p, ymin)
            target = T.expect(v_nodes, batch.edge_node, batch.edge_prob, batch.edge_row, b * a).view(b, a)
            target = p.gamma_r * target
        losses["q_r"] = regression_loss(nets.q_r(states), target, state_keys)

    if "v_r" in p.active and nets.v_r is not None:  # (9) from its components
        with torch.no_grad():
            q = tgt["q_r"](states)
            target = T.v_r_from(u_r_values(states, tgt, p, ymin), robot_policy(q, p.beta_r), q)
        losses["v_r"] = regression_loss(nets.v_r(states), target, state_keys)

    return losses
