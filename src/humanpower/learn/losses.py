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

With the all-human-actions edges (config ``v_h_e_all_goals``, see actor.py and batch.py) the human-action part
of the expectations is exact instead of one draw: for human h (other humans at their target-draw actions)

    V_h^e(s, g) <- sum_{a_h} pi_h(a_h | s, g) sum_{a_r} pi_r(a_r | s) sum_{s'} P(s' | s, a_h, a_-h, a_r) [...]  (6)
                   for EVERY goal g of h at once
    Q_r(s, a_r) <- gamma_r mean_h sum_{a_h} pibar_h(a_h | s) sum_{s'} P(s' | s, a_h, a_-h, a_r) V_r'(s')          (4)

with pibar_h = sum_g w(g) pi_h(s, g) / W the goal-marginal (each human's term is unbiased for (4); the mean over
humans only lowers the variance; with one human both targets are exact given the target networks). With
``x_h_all_goals`` the X_h target is the exact weighted sum (7) over every goal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from humanpower.goals import GoalSet
from humanpower.learn import targets as T
from humanpower.learn.batch import Batch
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import StateBatch
from humanpower.learn.networks import Phase2Networks, VHEModel, XHModel
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
    x_h_all_goals: bool = False
    """X_h target as the exact weighted goal sum of (7) instead of ``x_h_goal_samples`` sampled goals."""
    q_r_loss: str = "mse"
    """Neural Q_r loss: "mse" (plain squared error) or "log" (:func:`log_policy_loss`)."""
    q_r_loss_beta_r: float = 0.0
    """The beta_r weighting the policy term of the "log" loss (the nominal beta_r)."""
    probability_loss: str = "mse"
    """Neural V_h^e and X_h / W_h loss: "mse" or "bce" (:func:`probability_loss`)."""

    @classmethod
    def from_config(
        cls, cfg: Phase2Config, *, beta_r: float, active: frozenset[str], average_duplicates: bool
    ) -> LossParams:
        """The loss parameters of ``cfg`` at the current beta_r and with the active networks of the stage."""
        return cls(
            beta_r=beta_r,
            gamma_r=cfg.gamma_r,
            gamma_h=cfg.gamma_h,
            zeta=cfg.zeta,
            xi=cfg.xi,
            eta=cfg.eta,
            terminal_v_r=cfg.terminal_v_r,
            active=active,
            x_h_goal_samples=cfg.x_h_goal_samples,
            u_r_human_sample_size=cfg.u_r_human_sample_size,
            u_r_use_network=cfg.u_r_use_network,
            v_r_use_network=cfg.v_r_use_network,
            average_duplicates=average_duplicates,
            x_h_all_goals=cfg.x_h_all_goals,
            q_r_loss=cfg.q_r_loss,
            q_r_loss_beta_r=cfg.beta_r,
            probability_loss=cfg.probability_loss,
        )


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


def probability_loss(pred: torch.Tensor, target: torch.Tensor, keys: torch.Tensor | None, kind: str) -> torch.Tensor:
    """Loss of a [0, 1]-valued prediction (V_h^e, X_h / W_h): :func:`regression_loss` or soft-target cross-entropy.

    ``kind == "bce"`` (neural backend only, i.e. ``keys`` None): binary cross-entropy with the soft target,
    ``-(t log p + (1 - t) log(1 - p))``. Like the squared error it is a proper scoring rule (its minimiser is the
    mean target, so (6) and (7) stay exact in expectation), but its gradient with respect to the sigmoid's logit
    is ``p - t`` instead of ``(p - t) p (1 - p)``: a saturated output (p ~ 0 while the target is 0.7) still
    learns.
    """
    if kind == "bce" and keys is None:
        return F.binary_cross_entropy(pred.clamp(0.0, 1.0), target.clamp(0.0, 1.0))
    return regression_loss(pred, target, keys)


def log_policy_loss(
    pred: torch.Tensor, target: torch.Tensor, beta_r: float, level_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Q_r loss in the coordinates the power law (5) uses: e = log(-pred) - log(-target) per (state, action).

    With e_bar the mean of e over a state's actions, the loss is mean_s [ w_s e_bar^2 + beta_r^2 mean_a (e - e_bar)^2 ]:
    the second term is the squared error of the policy's logits -beta_r log(-Q_r) up to their common shift
    (exactly what (5) sees), the first the squared error of the state's log value level, weighted by
    ``level_weight`` w_s (default 1). The learner passes w_s = (pi_r . Q_r / V_r)^2 from the target networks: to
    first order a log-level error e_bar of Q_r changes V_r = U_r + pi_r . Q_r by the relative amount
    e_bar pi_r . Q_r / V_r, so the level is fitted as precisely as V_r needs it (one step before the horizon Q_r
    ~ terminal_v_r is negligible next to U_r and its level hardly matters; at the start it is most of V_r).
    Scale invariant, like (5), so states whose Q_r is ~terminal_v_r count as much as states whose Q_r is ~ -10
    in the policy term. The weights come from the target networks, not from the sampled target, so for every
    state the minimiser is still the mean of log(-target):
    exact when the target is deterministic given the target networks (one human with ``v_h_e_all_goals``),
    otherwise the geometric mean of the sampled targets (biased towards zero by about half their relative
    variance).
    """
    e = torch.log(-pred) - torch.log(-target)
    e_bar = e.mean(dim=-1, keepdim=True)
    level = e_bar.squeeze(-1) ** 2
    if level_weight is not None:
        level = level_weight * level
    return level.mean() + beta_r**2 * ((e - e_bar) ** 2).mean()


def robot_policy(q_r: torch.Tensor, beta_r: float) -> torch.Tensor:
    """pi_r from Q_r by the power law (5); exactly uniform when beta_r = 0."""
    if beta_r == 0.0:
        return torch.full_like(q_r, 1.0 / q_r.shape[-1])
    return T.power_law_policy(q_r, beta_r)


def y_min(goal_sets: list[GoalSet], xi: float) -> float:
    """Smallest possible y = mean_h X_h^(-xi) (every X_h at its maximum W_h); the U_r net predicts log(y - y_min)."""
    return T.y_min_from_weights([gs.total_weight for gs in goal_sets], xi)


def _v_h_e_net(tgt: Mapping[str, TargetNetwork]) -> VHEModel:
    """The V_h^e target copy, typed (``TargetNetwork.module`` is a plain ``nn.Module``)."""
    return cast(VHEModel, tgt["v_h_e"].module)


def _x_h_net(tgt: Mapping[str, TargetNetwork]) -> XHModel:
    """The X_h target copy, typed."""
    return cast(XHModel, tgt["x_h"].module)


def u_r_values(nodes: StateBatch, tgt: Mapping[str, TargetNetwork], p: LossParams, ymin: float) -> torch.Tensor:
    """U_r(s) from the target networks: the U_r network if used, else directly from X_h (8)."""
    if p.u_r_use_network:
        y = T.y_from_u_r_net_output(tgt["u_r"](nodes), ymin)
        return T.u_r_from_y(y, p.eta)
    return T.u_r_from_x(_x_h_net(tgt).forward_all(nodes), p.xi, p.eta)


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

    if "v_h_e" in p.active and batch.humans is not None:  # (6), every goal, exact over each human's actions
        losses["v_h_e"] = _v_h_e_all_goals_loss(batch, nets, tgt, p, state_keys)
    elif "v_h_e" in p.active:  # (6)
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
        losses["v_h_e"] = probability_loss(pred.reshape(-1), target.reshape(-1), keys, p.probability_loss)

    if "x_h" in p.active and p.x_h_all_goals:  # (7), the exact weighted sum over every goal
        with torch.no_grad():
            target = torch.stack(
                [
                    T.x_h_from_v(
                        _v_h_e_net(tgt).forward_all_goals(x_states, i),
                        torch.tensor(gs.weights, dtype=torch.float32, device=x_states.features.device),
                        p.zeta,
                    )
                    for i, gs in enumerate(goal_sets)
                ],
                dim=-1,
            )
        losses["x_h"] = _x_h_loss(nets, x_states, target, x_keys, goal_sets, p)
    elif "x_h" in p.active:  # (7) with fresh goals from the sampler
        n, k = x_states.features.shape[0], p.x_h_goal_samples
        with torch.no_grad():
            cols = []
            for i, gs in enumerate(goal_sets):
                g = torch.as_tensor(
                    rng.choice(len(gs), size=n * k, p=gs.probabilities), device=x_states.features.device
                )
                human = torch.full_like(g, i)
                v = tgt["v_h_e"](x_states.select(torch.arange(n, device=g.device).repeat_interleave(k)), human, g)
                cols.append(T.x_h_target(v.view(n, k), torch.full((n, k), gs.total_weight, device=v.device), p.zeta))
            target = torch.stack(cols, dim=-1)
        losses["x_h"] = _x_h_loss(nets, x_states, target, x_keys, goal_sets, p)

    if "u_r" in p.active and nets.u_r is not None:  # (8), MSE on y (not on log y, not Huber)
        with torch.no_grad():
            x = _x_h_net(tgt).forward_all(states)
            if p.u_r_human_sample_size is not None and p.u_r_human_sample_size < x.shape[1]:
                cols_idx = torch.as_tensor(rng.choice(x.shape[1], p.u_r_human_sample_size, replace=False))
                x = x[:, cols_idx.to(x.device)]
            y = T.y_from_x(x, p.xi)
        losses["u_r"] = regression_loss(T.y_from_u_r_net_output(nets.u_r(states), ymin), y, state_keys)

    if "q_r" in p.active:  # (4) for every joint robot action at once
        with torch.no_grad():
            v_nodes = v_r_values(batch.nodes, batch.node_terminal, tgt, p, ymin)
            if batch.humans is not None:  # exact over each human's goal-marginal action, mean over humans
                per_human = []
                for he in batch.humans:
                    rows = b * he.num_actions * a
                    ev = T.expect(v_nodes, he.edge_node, he.edge_prob, he.edge_row, rows).view(b, he.num_actions, a)
                    per_human.append(torch.einsum("bh,bhr->br", he.marginal, ev))
                target = torch.stack(per_human).mean(dim=0)
            else:
                target = T.expect(v_nodes, batch.edge_node, batch.edge_prob, batch.edge_row, b * a).view(b, a)
            target = p.gamma_r * target
        if p.q_r_loss == "log" and state_keys is None:
            with torch.no_grad():  # share of pi_r . Q_r in V_r(s): how much Q_r's level matters for V_r
                q_t = tgt["q_r"](states)
                pq = (robot_policy(q_t, p.beta_r) * q_t).sum(dim=-1)
                share = pq / (u_r_values(states, tgt, p, ymin) + pq)
            losses["q_r"] = log_policy_loss(nets.q_r(states), target, p.q_r_loss_beta_r, share**2)
        else:
            losses["q_r"] = regression_loss(nets.q_r(states), target, state_keys)

    if "v_r" in p.active and nets.v_r is not None:  # (9) from its components
        with torch.no_grad():
            q = tgt["q_r"](states)
            target = T.v_r_from(u_r_values(states, tgt, p, ymin), robot_policy(q, p.beta_r), q)
        losses["v_r"] = regression_loss(nets.v_r(states), target, state_keys)

    return losses


def _v_h_e_all_goals_loss(
    batch: Batch,
    nets: Phase2Networks,
    tgt: Mapping[str, TargetNetwork],
    p: LossParams,
    state_keys: torch.Tensor | None,
) -> torch.Tensor:
    """(6) for every goal of every human from the all-human-actions edges (see the module docs)."""
    assert batch.humans is not None
    states = batch.states()
    b, a_r = batch.size, batch.num_robot_actions
    preds, targets, keys = [], [], []
    with torch.no_grad():
        pi_s = robot_policy(tgt["q_r"](states), p.beta_r)  # (B, A_r)
    offset = 0
    total_goals = sum(int(he.policy.shape[1]) for he in batch.humans)
    for i, he in enumerate(batch.humans):
        g = int(he.policy.shape[1])
        with torch.no_grad():
            v_next = _v_h_e_net(tgt).forward_all_goals(batch.nodes, i).index_select(0, he.edge_node)  # (E, G)
            edge_value = T.v_h_e_edge_value(
                he.edge_achieved, he.edge_terminal.unsqueeze(-1).expand_as(v_next), v_next, p.gamma_h
            )
            rows = b * he.num_actions * a_r
            y = T.expect_edges(edge_value, he.edge_prob, he.edge_row, rows).view(b, he.num_actions, a_r, g)
            targets.append(torch.einsum("bga,br,barg->bg", he.policy, pi_s, y))
        preds.append(nets.v_h_e.forward_all_goals(states, i))
        if state_keys is not None:  # one table entry per (state, human, goal)
            cols = torch.arange(offset, offset + g, device=state_keys.device)
            keys.append(state_keys.unsqueeze(1) * total_goals + cols)
        offset += g
    pred = torch.cat(preds, dim=1).reshape(-1)
    target = torch.cat(targets, dim=1).reshape(-1)
    return probability_loss(pred, target, torch.cat(keys, dim=1).reshape(-1) if keys else None, p.probability_loss)


def _x_h_loss(
    nets: Phase2Networks,
    x_states: StateBatch,
    target: torch.Tensor,
    keys: torch.Tensor | None,
    goal_sets: list[GoalSet],
    p: LossParams,
) -> torch.Tensor:
    """(7)'s regression of X_h; with the cross-entropy loss on X_h / W_h (in (0, 1]) per human."""
    pred = nets.x_h.forward_all(x_states)
    if p.probability_loss == "bce" and keys is None:
        w = torch.tensor([gs.total_weight for gs in goal_sets], dtype=pred.dtype, device=pred.device)
        return probability_loss(pred / w, target / w, None, "bce")
    return regression_loss(pred, target, keys)
