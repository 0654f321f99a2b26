"""The loss functions the Phase 2 terms regress their networks with (see :mod:`humanpower.learn.terms`).

* :func:`regression_loss`: MSE (neural) or the tabular backend's duplicate-averaging squared error;
* :func:`probability_loss`: the same, or soft-target cross-entropy, for [0, 1]-valued V_h^e and X_h / W_h;
* :func:`log_policy_loss`: Q_r's squared error in the log coordinates of the power law (5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
