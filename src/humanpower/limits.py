"""Input limits: the memory budget of a command and the magnitude bounds of the theory parameters.

The memory rule (docs/CONFIG.md, README "Reliability"): every number a user gives that makes a command allocate
in proportion to it (``show --cell-size``, ``buffer_size``, ``hidden_dim`` x ``num_hidden_layers``,
``tabular_max_states``, ``x_h_goal_samples``, ``exploring_starts_pool``, ``num_actors``) is checked up front
against an estimate of the bytes it needs (``torch_threads`` has a plain cap). An estimate above the budget
(:data:`DEFAULT_MEMORY_LIMIT_GB`, 2 GB, raised with the ``memory_limit_gb`` config field or
``show --memory-limit-gb``) is refused with one line that names the field, the estimate and the budget
(:func:`memory_refusal`).

Estimates count only what the named value allocates, with the undercounting byte counts below (``show`` adds an
allowance for the process itself), so a refusal is not a false alarm about that allocation. One exception: the
tabular tables are checked at ``tabular_max_states`` rows although a world that is solved exactly sizes them by
its state count.

The rationality exponents have upper bounds (:data:`THEORY_MAXIMA`) beyond which double precision overflows in
the equations, which would otherwise surface as a misleading "X_h = 0" much later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

DEFAULT_MEMORY_LIMIT_GB = 2.0
"""Memory budget of one command unless raised explicitly (GB = 10^9 bytes)."""

GB = 1_000_000_000

RENDER_BYTES_PER_PIXEL = 52
"""Bytes per output pixel of :func:`humanpower.worlds.grid.render.render_state` with the PNG written: the
3x3-supersampled Pillow canvas (Pillow stores RGB in 4 bytes per pixel), the downsampled image, the numpy copy
and the encoder's buffers. Measured: ``show trivial --cell-size 800`` (15.4 M pixels) peaked 780 MB above
``--cell-size 8``, 51 bytes per pixel."""

RENDER_MAX_PIXELS = 16_000_000
"""Most output pixels ``show`` draws when no ``--cell-size`` is given (it picks a smaller cell size): also a
time bound, drawing costs about 1 s of CPU per million pixels."""

PROCESS_BYTES = 250_000_000
"""Allowance for the process itself (interpreter, libraries, the loaded world) added to a command's
estimate."""

REPLAY_SLOT_BYTES = 24
"""Bytes preallocated per replay slot: an object pointer and two int64 columns (``learn.replay.ReplayStorage``)."""

REPLAY_ITEM_BYTES = 300
"""Lower bound of the bytes one stored transition holds (its Python objects: states, successor tuples). Measured:
2.65 kB of distinct objects per stored transition on ``trivial`` with the bundled ``trivial-tabular`` config,
so this undercounts on purpose."""

NETWORK_COPIES = 5 * 4
"""Parameter copies of the learner: 5 networks (Q_r, V_h^e, X_h, U_r, V_r), each with its target copy and two
Adam moment buffers."""

PARAM_BYTES = 4
"""float32 parameters."""

TABULAR_MIN_WIDTH = 1
"""Columns of the narrowest tabular table (one value per state); wider tables only need more."""

GOAL_SAMPLE_BYTES = 16
"""Bytes per sampled goal of an X_h target row: the int64 goal index numpy draws and its torch copy (the
state features selected per sample come on top)."""

STATE_BYTES = 200
"""Lower bound of the bytes of one stored gridworld state (a GridState tuple with one AgentState)."""

ACTOR_PROCESS_BYTES = 150_000_000
"""Lower bound of the resident memory of one actor process (a Python interpreter with torch imported)."""

TORCH_THREADS_MAX = 256
"""Most intra-op threads a config may ask for; torch allocates per-thread buffers, and more threads than cores
only slow a run down (``torch_threads: 100000`` ran out of memory inside torch)."""

THEORY_MAXIMA: Mapping[str, float] = {"beta_r": 1e6, "beta_h": 1e6}
"""Largest value of the rationality exponents. beta_r multiplies log(-Q_r) inside the exponential of (5) and
beta_h the values inside the Boltzmann policy (2): ``beta_r: 1e308`` overflowed the logits, made the robot
policy NaN and stopped the solver with a misleading "X_h = 0". 1e6 already gives the greedy policy to double
precision, so larger values add nothing."""


def format_bytes(n: float) -> str:
    """``1.5 GB``, ``320 MB``, ``12 kB``, ``800 B`` (powers of 1000); ``inf`` for infinity."""
    if not math.isfinite(n):
        return "inf"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 1e4 else f"{value:.3e} {unit}"
    return f"{int(n)} B"


def memory_limit_bytes(limit_gb: float) -> float:
    """The budget in bytes for a limit in GB."""
    return limit_gb * GB


def memory_refusal(what: str, estimate: float, limit_gb: float, override: str) -> str | None:
    """The refusal text when ``estimate`` bytes exceed ``limit_gb``; ``None`` when within budget.

    ``what`` says what needs the memory (e.g. ``"the replay buffer (buffer_size 10^12 transitions)"``),
    ``override`` how to raise the budget (e.g. ``"memory_limit_gb"``).
    """
    if estimate <= memory_limit_bytes(limit_gb):
        return None
    return (
        f"{what} needs about {format_bytes(estimate)}, more than the memory limit of {limit_gb:g} GB "
        f"(lower the value, or raise {override} if this machine has the memory)"
    )


def theory_magnitude_error(name: str, value: float) -> str | None:
    """Why ``value`` is too large for the theory parameter ``name``, or ``None``."""
    bound = THEORY_MAXIMA.get(name)
    if bound is None or value <= bound:
        return None
    return (
        f"must be <= {bound:g}, got {value!r} (larger values overflow double precision in the policy "
        f"exponentials; {bound:g} is already greedy)"
    )


__all__ = [
    "ACTOR_PROCESS_BYTES",
    "DEFAULT_MEMORY_LIMIT_GB",
    "GB",
    "GOAL_SAMPLE_BYTES",
    "NETWORK_COPIES",
    "PARAM_BYTES",
    "PROCESS_BYTES",
    "RENDER_BYTES_PER_PIXEL",
    "RENDER_MAX_PIXELS",
    "REPLAY_ITEM_BYTES",
    "REPLAY_SLOT_BYTES",
    "STATE_BYTES",
    "TABULAR_MIN_WIDTH",
    "THEORY_MAXIMA",
    "TORCH_THREADS_MAX",
    "format_bytes",
    "memory_limit_bytes",
    "memory_refusal",
    "theory_magnitude_error",
]
