"""Training schedules: pure functions of ``total_steps`` (cumulative env steps, never training steps).

* :class:`StageTable`: the six warm-up stages and which networks train in each.
* :func:`beta_r_at`: 0 until the ramp, a normalised sigmoid ramp to the nominal beta_r, nominal afterwards.
* :func:`epsilon_at`: linear decay from ``epsilon_start`` to ``epsilon_end``, then constant.
* :func:`lr_at`: constant through warm-up (stages 0-4), then ``base / sqrt(1 + (t - t_5) / lr_decay_steps)``.
* :func:`grad_clip_at`: the gradient-norm clip scaled with the current learning rate.

Stage boundaries: stage ``k`` covers ``starts[k] <= total_steps < starts[k + 1]``; a stage of zero length is
skipped (never returned by :meth:`StageTable.stage_at`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from humanpower.learn.config import Phase2Config

NETWORK_NAMES: tuple[str, ...] = ("v_h_e", "x_h", "u_r", "q_r", "v_r")
"""Names of the five Phase 2 networks (keys of :meth:`StageTable.active_networks`)."""

NUM_STAGES = 6


@dataclass(frozen=True)
class StageTable:
    """Start env step of each warm-up stage 0..5 and the network switches that decide who trains.

    Stage 0: V_h^e. Stage 1: + X_h. Stage 2: + U_r (zero length when ``u_r_use_network`` is false).
    Stage 3: + Q_r (and V_r when ``v_r_use_network``), beta_r = 0. Stage 4: all, beta_r ramps up.
    Stage 5: all, learning rates decay.
    """

    starts: tuple[int, int, int, int, int, int]
    """Env step at which each stage 0..5 starts; non-decreasing, ``starts[0] == 0``."""
    u_r_use_network: bool = False
    """Whether a U_r network exists (else stage 2 has zero length and "u_r" is never active)."""
    v_r_use_network: bool = False
    """Whether a V_r network exists (it trains together with Q_r)."""

    def __post_init__(self) -> None:
        s = self.starts
        if len(s) != NUM_STAGES or s[0] != 0 or any(b < a for a, b in itertools.pairwise(s)):
            raise ValueError(f"StageTable: starts must be 6 non-decreasing steps from 0, got {s}")
        if not self.u_r_use_network and s[2] != s[3]:
            raise ValueError("StageTable: stage 2 must have zero length without a U_r network")

    @classmethod
    def from_config(cls, cfg: Phase2Config) -> StageTable:
        """Stage starts from the warm-up lengths of ``cfg`` (``warmup_u_r_steps`` only with a U_r network)."""
        lengths = (
            cfg.warmup_v_h_e_steps,
            cfg.warmup_x_h_steps,
            cfg.warmup_u_r_steps if cfg.u_r_use_network else 0,
            cfg.warmup_q_r_steps,
            cfg.beta_r_rampup_steps,
        )
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        s = tuple(starts)
        assert len(s) == NUM_STAGES
        return cls((s[0], s[1], s[2], s[3], s[4], s[5]), cfg.u_r_use_network, cfg.v_r_use_network)

    @property
    def rampup_start(self) -> int:
        """Env step at which the beta_r ramp (stage 4) starts."""
        return self.starts[4]

    @property
    def rampup_end(self) -> int:
        """Env step at which the beta_r ramp ends and stage 5 (full training, lr decay) starts."""
        return self.starts[5]

    def stage_at(self, total_steps: int) -> int:
        """The stage (0..5) in force at ``total_steps``; zero-length stages are skipped."""
        if total_steps < 0:
            raise ValueError(f"total_steps must be >= 0, got {total_steps}")
        stage = 0
        for k in range(NUM_STAGES):
            if self.starts[k] <= total_steps:
                stage = k
        return stage

    def active_networks(self, stage: int) -> frozenset[str]:
        """Networks trained in ``stage`` (subset of :data:`NETWORK_NAMES`)."""
        if not 0 <= stage < NUM_STAGES:
            raise ValueError(f"stage must be in 0..5, got {stage}")
        active = {"v_h_e"}
        if stage >= 1:
            active.add("x_h")
        if stage >= 2 and self.u_r_use_network:
            active.add("u_r")
        if stage >= 3:
            active.add("q_r")
            if self.v_r_use_network:
                active.add("v_r")
        return frozenset(active)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def sigmoid_ramp(progress: float, sharpness: float) -> float:
    """Normalised sigmoid from exactly 0 at ``progress <= 0`` to exactly 1 at ``progress >= 1``.

    ``(sigmoid(k (p - 1/2)) - sigmoid(-k/2)) / (sigmoid(k/2) - sigmoid(-k/2))`` with ``k = sharpness > 0``.
    """
    if sharpness <= 0:
        raise ValueError(f"sharpness must be > 0, got {sharpness}")
    if progress <= 0.0:
        return 0.0
    if progress >= 1.0:
        return 1.0
    lo, hi = _sigmoid(-sharpness / 2), _sigmoid(sharpness / 2)
    return (_sigmoid(sharpness * (progress - 0.5)) - lo) / (hi - lo)


def beta_r_at(
    total_steps: int,
    schedule: Phase2Config | StageTable,
    beta_r: float | None = None,
    sharpness: float | None = None,
) -> float:
    """The robot's beta_r at ``total_steps``.

    0 before the ramp (warm-up stages 0-3, uniform robot policy), a sigmoid ramp normalised to be exactly 0
    at ``rampup_start`` and exactly nominal at ``rampup_end``, nominal afterwards. ``schedule`` is either a
    config (``beta_r`` and ``sharpness`` default to its values) or a :class:`StageTable` (then ``beta_r`` is
    required and ``sharpness`` defaults to 10).
    """
    if isinstance(schedule, Phase2Config):
        table = StageTable.from_config(schedule)
        nominal = schedule.beta_r if beta_r is None else beta_r
        k = schedule.beta_r_rampup_sharpness if sharpness is None else sharpness
    else:
        if beta_r is None:
            raise TypeError("beta_r_at: pass the nominal beta_r with a StageTable")
        table, nominal, k = schedule, beta_r, 10.0 if sharpness is None else sharpness
    start, end = table.rampup_start, table.rampup_end
    if total_steps < start:
        return 0.0
    if total_steps >= end:
        return float(nominal)
    return float(nominal) * sigmoid_ramp((total_steps - start) / (end - start), k)


def linear_schedule(total_steps: int, start: float, end: float, duration: int) -> float:
    """``start`` at step 0, linearly to ``end`` at ``duration``, then ``end`` (``duration`` 0: always end)."""
    if duration <= 0 or total_steps >= duration:
        return float(end)
    frac = max(total_steps, 0) / duration
    return float(start + (end - start) * frac)


def epsilon_at(total_steps: int, cfg: Phase2Config) -> float:
    """Epsilon-greedy probability: linear from epsilon_start to epsilon_end over epsilon_decay_steps."""
    return linear_schedule(total_steps, cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_decay_steps)


def lr_at(total_steps: int, base_lr: float, table: StageTable, lr_decay_steps: int) -> float:
    """Learning rate: ``base_lr`` through stages 0-4, then ``base_lr / sqrt(1 + (t - t_5) / lr_decay_steps)``.

    The 1/sqrt(t) decay (not 1/t) starts at ``t_5 = table.rampup_end`` and is continuous there.
    """
    if lr_decay_steps <= 0:
        raise ValueError(f"lr_decay_steps must be > 0, got {lr_decay_steps}")
    t5 = table.rampup_end
    if total_steps <= t5:
        return float(base_lr)
    return float(base_lr) / math.sqrt(1.0 + (total_steps - t5) / lr_decay_steps)


def grad_clip_at(lr: float, grad_clip: float, reference_lr: float) -> float:
    """Max gradient norm at learning rate ``lr``: ``grad_clip * lr / reference_lr`` (bounded step sizes)."""
    if reference_lr <= 0:
        raise ValueError(f"reference_lr must be > 0, got {reference_lr}")
    return grad_clip * lr / reference_lr


# --- the real env-step budget (episodes end at the world's horizon) ----------------------------------------


def episode_length(cfg: Phase2Config, horizon: int) -> int:
    """Env steps per episode: ``min(steps_per_episode, horizon)``.

    The trainers cap every episode, exploring ones included, at this length (a normal episode ends at the
    horizon; an exploring one jumps to a pool state there but still stops at the cap).
    """
    return min(cfg.steps_per_episode, horizon)


def env_step_budget(cfg: Phase2Config, horizon: int) -> int:
    """Env steps a run of ``cfg`` takes on a world with this horizon: num_episodes x :func:`episode_length`."""
    return cfg.num_episodes * episode_length(cfg, horizon)


def warmup_shortfall(cfg: Phase2Config, budget: int) -> str | None:
    """A one-line warning when ``budget`` env steps end before beta_r reaches its nominal value, else None."""
    if budget >= cfg.warmup_env_steps or cfg.beta_r == 0.0:
        return None
    table = StageTable.from_config(cfg)
    return (
        f"the run has {budget} env steps (num_episodes {cfg.num_episodes} x {budget // cfg.num_episodes} steps "
        f"per episode, capped by the horizon) but the warm-up needs {cfg.warmup_env_steps}: it will end in stage "
        f"{table.stage_at(budget)} with beta_r = {beta_r_at(budget, cfg):.3g} < {cfg.beta_r:g}"
    )


def beta_r_shortfall(cfg: Phase2Config, total_steps: int) -> str | None:
    """A one-line note when a run stopped at ``total_steps`` with beta_r below nominal, else None."""
    beta = beta_r_at(total_steps, cfg)
    if beta >= cfg.beta_r:
        return None
    stage = StageTable.from_config(cfg).stage_at(total_steps)
    return (
        f"training stopped at {total_steps} env steps in warm-up stage {stage} with beta_r = {beta:.3g} below its "
        f"nominal {cfg.beta_r:g} (warm-up needs {cfg.warmup_env_steps} env steps)"
    )
