"""Output mappings shared by the neural and the tabular backends, and their inverses (for initialisation).

Every Phase 2 function has a fixed range (EQUATIONS.md, "Bounds"); both backends produce a raw real number and
map it through the same function here, so the two backends are interchangeable:

- Q_r, V_r:  ``-softplus(x) - TINY``      in (-inf, 0)
- V_h^e:     ``sigmoid(x)``              in [0, 1]
- X_h:       ``W_h * sigmoid(x) + TINY``  in (0, W_h]   (W_h = total goal weight of human h)
- U_r:       raw ``z`` (the trainer reads it as log(y - y_min), see ``learn.targets``)

``TINY = 1e-30`` keeps Q_r, V_r strictly negative and X_h strictly positive even where the float32 softplus or
sigmoid underflows to 0 (x < -103); it changes no value above ~1e-23 in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TINY = 1e-30


def negative_head(x: torch.Tensor) -> torch.Tensor:
    """Q_r / V_r mapping: ``-softplus(x) - TINY`` (strictly negative), computed as ``(-TINY) - softplus(x)``:
    the same float (negation is exact), one op less."""
    return torch.rsub(F.softplus(x), -TINY)


def probability_head(x: torch.Tensor) -> torch.Tensor:
    """V_h^e mapping: ``sigmoid(x)`` in [0, 1]."""
    return torch.sigmoid(x)


def power_head(x: torch.Tensor, total_weight: torch.Tensor) -> torch.Tensor:
    """X_h mapping: ``W_h * sigmoid(x) + TINY`` in (0, W_h]; ``total_weight`` broadcasts against ``x``."""
    return total_weight * torch.sigmoid(x) + TINY


def inverse_negative(value: float) -> float:
    """The raw x with ``-softplus(x) == value`` (value < 0): x = log(expm1(-value))."""
    if not value < 0:
        raise ValueError(f"inverse_negative: value must be < 0, got {value}")
    return math.log(math.expm1(-value))


def inverse_probability(p: float) -> float:
    """The raw x with ``sigmoid(x) == p`` (0 < p < 1): the logit."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"inverse_probability: p must be in (0, 1), got {p}")
    return math.log(p / (1.0 - p))


__all__ = [
    "TINY",
    "inverse_negative",
    "inverse_probability",
    "negative_head",
    "power_head",
    "probability_head",
]
