"""Theory parameters of equations (1)-(9), with their defaults in one place.

The exact solver and the learner's config both take their defaults from :class:`TheoryParams`, so the two
always solve the same equations unless a user changes a value on purpose.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


class ParameterError(ValueError):
    """An invalid parameter value; the message names the field and the reason."""


@dataclass(frozen=True)
class TheoryParams:
    """Parameters of the power metric and of the human model (EQUATIONS.md)."""

    beta_r: float = 10.0
    """Robot power-law exponent in (5): pi_r(a) ~ (-Q_r(s, a))^(-beta_r). 0 = uniform; finite and normative."""
    gamma_r: float = 0.99
    """Robot discount factor in (4), in (0, 1]."""
    beta_h: float = 10.0
    """Human rationality (Boltzmann inverse temperature) in the Phase 1 prior (2), >= 0."""
    gamma_h: float = 0.99
    """Human discount factor in (1), (3) and (6), in (0, 1]."""
    zeta: float = 2.0
    """Reliability exponent in (7): X_h = sum_g w(g) V_h^e(s, g)^zeta, > 0 (>= 1 rewards reliability)."""
    xi: float = 1.0
    """Inequality aversion in (8): U_r = -(mean_h X_h^(-xi))^eta, > 0."""
    eta: float = 1.1
    """Intertemporal inequality aversion in (8), > 0."""
    nu_h: float = 0.0
    """Share of the habitual default policy pi_h^0 in the human prior (2), in [0, 1]."""
    terminal_v_r: float = -1e-10
    """V_r at a terminal state (the horizon), a tiny negative constant; absolute, not rescaled by goal weights."""

    def __post_init__(self) -> None:
        checks: dict[str, tuple[bool, str]] = {
            "beta_r": (self.beta_r >= 0, "must be >= 0"),
            "gamma_r": (0 < self.gamma_r <= 1, "must be in (0, 1]"),
            "beta_h": (self.beta_h >= 0, "must be >= 0"),
            "gamma_h": (0 < self.gamma_h <= 1, "must be in (0, 1]"),
            "zeta": (self.zeta > 0, "must be > 0"),
            "xi": (self.xi > 0, "must be > 0"),
            "eta": (self.eta > 0, "must be > 0"),
            "nu_h": (0 <= self.nu_h <= 1, "must be in [0, 1]"),
            "terminal_v_r": (self.terminal_v_r < 0, "must be < 0"),
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ParameterError(f"{f.name}: must be a finite number, got {value!r}")
        for name, (ok, reason) in checks.items():
            if not ok:
                raise ParameterError(f"{name}: {reason}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


THEORY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TheoryParams))
