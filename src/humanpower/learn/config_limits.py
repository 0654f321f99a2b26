"""Size and magnitude limits of :class:`~humanpower.learn.config.Phase2Config` (the rule is in
:mod:`humanpower.limits`): lower-bound memory estimates of what a config allocates, checked against
``memory_limit_gb``; the ``torch_threads`` cap; the bounds of the theory exponents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from humanpower.errors import ConfigError
from humanpower.limits import (
    ACTOR_PROCESS_BYTES,
    GOAL_SAMPLE_BYTES,
    NETWORK_COPIES,
    PARAM_BYTES,
    REPLAY_ITEM_BYTES,
    REPLAY_SLOT_BYTES,
    STATE_BYTES,
    TABULAR_MIN_WIDTH,
    TORCH_THREADS_MAX,
    memory_refusal,
    theory_magnitude_error,
)

if TYPE_CHECKING:
    from humanpower.learn.config import Phase2Config


def memory_estimates(c: Phase2Config) -> list[tuple[str, str, float]]:
    """``(field, what, bytes)`` lower-bound estimates of the allocations that grow with a config value.

    World-independent: each counts only what the named value allocates by itself (see :mod:`humanpower.limits`
    for the byte counts), so a world adds to them but never makes them smaller.
    """
    stored = min(c.buffer_size, c.total_env_steps)
    out: list[tuple[str, str, float]] = [
        (
            "buffer_size",
            f"the replay buffer ({c.buffer_size} slots, up to {stored} transitions stored)",
            c.buffer_size * REPLAY_SLOT_BYTES + stored * REPLAY_ITEM_BYTES,
        )
    ]
    if c.networks == "neural":
        networks = 3 + int(c.u_r_use_network) + int(c.v_r_use_network)
        per_net = (c.num_hidden_layers - 1) * c.hidden_dim**2 + 2 * c.hidden_dim
        out.append(
            (
                "hidden_dim",
                f"{networks} networks of {c.num_hidden_layers} hidden layers x {c.hidden_dim} units "
                f"(parameters, target copies and Adam moments)",
                float(networks * per_net * NETWORK_COPIES * PARAM_BYTES),
            )
        )
    else:
        out.append(
            (
                "tabular_max_states",
                f"the tabular tables ({c.tabular_max_states} rows each)",
                float(3 * c.tabular_max_states * TABULAR_MIN_WIDTH * PARAM_BYTES * 3),
            )
        )
    if not c.x_h_all_goals:
        rows, k = c.effective_x_h_batch_size, c.x_h_goal_samples
        out.append(
            (
                "x_h_goal_samples",
                f"the X_h targets of one batch ({rows} rows x {k} sampled goals)",
                float(rows * k * GOAL_SAMPLE_BYTES),
            )
        )
    if c.exploring_starts_prob > 0:
        pool = min(c.exploring_starts_pool, c.total_env_steps)
        out.append(("exploring_starts_pool", f"the exploring-starts pool ({pool} states)", pool * STATE_BYTES))
    if c.async_training:
        out.append(("num_actors", f"{c.num_actors} actor processes", float(c.num_actors * ACTOR_PROCESS_BYTES)))
    return out


def validate_limits(c: Phase2Config, theory_names: Sequence[str]) -> None:
    """Magnitude limits (:mod:`humanpower.limits`): theory exponents, threads and the memory budget."""
    for name in theory_names:
        reason = theory_magnitude_error(name, getattr(c, name))
        if reason is not None:
            raise ConfigError(f"{name}: {reason}")
    if c.torch_threads > TORCH_THREADS_MAX:
        raise ConfigError(
            f"torch_threads: must be <= {TORCH_THREADS_MAX}, got {c.torch_threads} (more threads than cores "
            f"only slow a run down)"
        )
    if not c.memory_limit_gb > 0:
        raise ConfigError(f"memory_limit_gb: must be > 0, got {c.memory_limit_gb!r}")
    for name, what, estimate in memory_estimates(c):
        refusal = memory_refusal(what, estimate, c.memory_limit_gb, "memory_limit_gb")
        if refusal is not None:
            raise ConfigError(f"{name}: {refusal}")


__all__ = ["memory_estimates", "validate_limits"]
