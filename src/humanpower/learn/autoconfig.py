"""The default configuration rule: a :class:`Phase2Config` derived from what a world says about itself.

``humanpower train WORLD`` without ``--config`` (and :func:`humanpower.train` without a config) uses this rule
instead of fixed numbers, so that one command works on worlds nobody tuned it for. Everything here is a pure
function of :class:`WorldFacts` (horizon, agents, actions, goals, reachable state count) and an env-step budget;
the I/O around it (gathering the facts, timing the learner to turn minutes into env steps) lives in
:mod:`humanpower.learn.autoprobe`. ``docs/LEARNER.md`` ("The default configuration rule") states the rule in
words; the constants below are its only numbers.

Accuracy options (:func:`accuracy_options`) follow from the cost of the exact expectations they buy:

* ``v_h_e_all_goals`` when one env step then needs at most :data:`MAX_ALL_ACTION_CALLS` transition calls
  (humans x human actions x joint robot actions);
* ``x_h_all_goals`` when every human has at most :data:`MAX_EXACT_GOALS` goals;
* exploring starts with probability 1 when the budget can visit every reachable non-terminal state
  :data:`COVERAGE_VISITS` times, else :data:`PARTIAL_EXPLORING_PROB` (half the data stays on the policy's own
  states);
* always (model-based targets make them safe): the replay buffer is kept across the beta_r ramp, no dropout,
  the ``log`` Q_r loss and the ``bce`` probability loss (neural backend).

Schedules (:func:`schedule`) follow from the horizon H and the env-step budget T (one training step per env
step): a value needs H target-network copies to travel from the horizon back to the start, so each warm-up
stage lasts H x K env steps, where K (training steps between target copies) is the largest value in
[:data:`MIN_TARGET_INTERVAL`, :data:`MAX_TARGET_INTERVAL`] that keeps the whole warm-up (three stages plus a
ramp of two) within :data:`WARMUP_SHARE` of T. A budget too short even for K = MIN_TARGET_INTERVAL is
compressed to :data:`MAX_WARMUP_SHARE` of T (K = stage length / H) with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from humanpower.learn.config import Phase2Config

MAX_ALL_ACTION_CALLS = 128
"""Most transition calls per env step for which ``v_h_e_all_goals`` is switched on."""
MAX_EXACT_GOALS = 64
"""Most goals per human for which ``x_h_all_goals`` (exact goal sum in (7)) is switched on."""
COVERAGE_VISITS = 4
"""Env steps per reachable non-terminal state above which every episode is an exploring one."""
PARTIAL_EXPLORING_PROB = 0.5
"""Exploring-starts probability when the budget cannot cover the reachable states COVERAGE_VISITS times."""
WARMUP_SHARE = 0.25
"""Share of the env-step budget the warm-up stages 0-4 aim for (the rest trains at the nominal beta_r)."""
MAX_WARMUP_SHARE = 0.5
"""Largest share of the budget the warm-up may take when the budget is short (then with a warning)."""
MIN_TARGET_INTERVAL = 10
"""Fewest training steps between target-network copies."""
MAX_TARGET_INTERVAL = 100
"""Most training steps between target-network copies (the seed's value)."""
STAGE_UNITS = 5
"""Warm-up length in stage lengths: V_h^e, X_h and Q_r stages of one each, a beta_r ramp of two."""
FINAL_LR_FACTOR_SQ = 16
"""The learning rate ends at base / sqrt(FINAL_LR_FACTOR_SQ) = base / 4 at the end of the budget."""
NEURAL_LR = 3e-3
"""Adam learning rate of every network (neural backend)."""
TABULAR_LR_EXACT = 1.0
"""Tabular step size when every target is deterministic given the target networks (set entry to target)."""
TABULAR_LR_NOISY = 0.5
"""Tabular step size when targets are sampled (several humans or sampled goals), decayed like the neural lr."""
BATCH_SIZE = 64
"""Transitions per training batch."""
MIN_HIDDEN, MAX_HIDDEN = 64, 256
"""Bounds of the MLP width, which otherwise is the power of two at or above sqrt(reachable states)."""
REPLAY_DISTRIBUTIONS = 4_000_000
"""Cached successor distributions the replay buffer may hold (bounds its memory)."""
MIN_BUFFER = 10_000
"""Smallest replay capacity the memory bound may lead to."""
LOG_ROWS = 20
"""Metric rows per run (each compares with the exact solution on small worlds)."""
CHECKPOINTS = 4
"""Periodic checkpoints per run."""


@dataclass(frozen=True)
class WorldFacts:
    """What the rule needs to know about a world (gathered by :func:`humanpower.learn.autoprobe.world_facts`)."""

    horizon: int
    """max_steps: a state whose step count equals it is terminal; >= 1."""
    num_humans: int
    """Number of humans; >= 1."""
    num_robots: int
    """Number of robots in the fleet; >= 1."""
    num_actions: int
    """Actions per agent; >= 1."""
    goals_per_human: tuple[int, ...]
    """Size of each human's goal set."""
    num_states: int
    """Reachable states: exact when ``states_exact``, else an estimate; >= 1."""
    states_exact: bool = False
    """Whether ``num_states`` is an exact count (state DAG) rather than an estimate."""

    def __post_init__(self) -> None:
        for name in ("horizon", "num_humans", "num_robots", "num_actions", "num_states"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldFacts.{name} must be >= 1, got {getattr(self, name)}")
        if len(self.goals_per_human) != self.num_humans or min(self.goals_per_human) < 1:
            raise ValueError(f"WorldFacts.goals_per_human: one count >= 1 per human, got {self.goals_per_human}")

    @property
    def robot_actions(self) -> int:
        """Joint robot actions A_r = num_actions ** num_robots."""
        return int(self.num_actions**self.num_robots)

    @property
    def all_action_calls(self) -> int:
        """Transition calls per env step with ``v_h_e_all_goals``: humans x actions x joint robot actions."""
        return self.num_humans * self.num_actions * self.robot_actions

    @property
    def nonterminal_states(self) -> int:
        """Reachable states that are not at the horizon, estimated as num_states x H / (H + 1) (at least 1)."""
        return max(1, self.num_states * self.horizon // (self.horizon + 1))


@dataclass(frozen=True)
class AutoConfig:
    """The derived config, the env-step budget it was sized for, and warnings for the user (one line each)."""

    config: Phase2Config
    env_steps: int
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line naming the derived schedule and options (printed by ``humanpower train``)."""
        c = self.config
        on = [n for n in ("v_h_e_all_goals", "x_h_all_goals") if getattr(c, n)]
        return (
            f"{c.num_episodes} episodes x {c.steps_per_episode} steps, warm-up {c.warmup_env_steps} env steps "
            f"(stage {c.warmup_v_h_e_steps}, target copies every {c.target_update_interval_q_r} training steps), "
            f"exploring starts {c.exploring_starts_prob:g}, hidden {c.hidden_dim}, "
            f"{' + '.join(on) if on else 'sampled targets'}"
        )


def deterministic_targets(facts: WorldFacts) -> bool:
    """True when every target is an exact expectation given the target networks (one human, both all-goals)."""
    return (
        facts.num_humans == 1
        and facts.all_action_calls <= MAX_ALL_ACTION_CALLS
        and max(facts.goals_per_human) <= MAX_EXACT_GOALS
    )


def hidden_width(num_states: int) -> int:
    """The power of two at or above sqrt(num_states), within [MIN_HIDDEN, MAX_HIDDEN].

    A two-layer MLP of width w has about w^2 weights, so the weights grow in proportion to the states.
    """
    width = 1 << max(0, math.ceil(math.log2(math.sqrt(max(num_states, 1)))))
    return min(MAX_HIDDEN, max(MIN_HIDDEN, width))


def accuracy_options(facts: WorldFacts, networks: str = "neural") -> dict[str, Any]:
    """The config fields of the rule that do not depend on the budget (options, network size, learning rates)."""
    all_actions = facts.all_action_calls <= MAX_ALL_ACTION_CALLS
    out: dict[str, Any] = {
        "networks": networks,
        "v_h_e_all_goals": all_actions,
        "x_h_all_goals": max(facts.goals_per_human) <= MAX_EXACT_GOALS,
        "clear_buffer_at_rampup": False,
        "dropout": 0.0,
        "batch_size": BATCH_SIZE,
        "steps_per_episode": facts.horizon,
        "updates_per_step": 1,
    }
    if networks == "tabular":
        lr = TABULAR_LR_EXACT if deterministic_targets(facts) else TABULAR_LR_NOISY
        out.update(weight_decay=0.0, grad_clip=1000.0, grad_clip_reference_lr=lr)
    else:
        lr = NEURAL_LR
        out.update(
            q_r_loss="log",
            probability_loss="bce",
            hidden_dim=hidden_width(facts.num_states),
            num_hidden_layers=2,
            grad_clip_reference_lr=lr,
        )
    out.update({f"lr_{n}": lr for n in ("q_r", "v_h_e", "x_h", "u_r", "v_r")})
    return out


def buffer_capacity(facts: WorldFacts, all_actions: bool, env_steps: int) -> int:
    """Replay capacity: the whole run (targets are model-based, old data stays valid), bounded in memory.

    A transition caches A_r successor distributions, plus humans x (actions - 1) x A_r with all human actions.
    """
    per = facts.robot_actions * (1 + (facts.num_humans * (facts.num_actions - 1) if all_actions else 0))
    cap = max(MIN_BUFFER, REPLAY_DISTRIBUTIONS // per)
    return max(BATCH_SIZE, min(env_steps, cap))


def schedule(facts: WorldFacts, env_steps: int, all_actions: bool) -> tuple[dict[str, Any], list[str]]:
    """Episode count, warm-up stages, target intervals and decays for ``env_steps`` env steps (module docs).

    Returns the config fields and the warnings (a budget too short for a full-length warm-up).
    """
    if env_steps < 1:
        raise ValueError(f"env_steps must be >= 1, got {env_steps}")
    horizon = facts.horizon
    num_episodes = max(1, math.ceil(env_steps / horizon))
    total = num_episodes * horizon
    warnings: list[str] = []
    interval = int(WARMUP_SHARE * total // (STAGE_UNITS * horizon))
    interval = min(MAX_TARGET_INTERVAL, max(MIN_TARGET_INTERVAL, interval))
    stage = horizon * interval
    if STAGE_UNITS * stage > MAX_WARMUP_SHARE * total:
        stage = max(1, int(MAX_WARMUP_SHARE * total // STAGE_UNITS))
        interval = max(1, stage // horizon)
        warnings.append(
            f"budget of {total} env steps is short for the warm-up: each stage gets {stage} env steps, fewer than "
            f"the {horizon * MIN_TARGET_INTERVAL} (horizon {horizon} x {MIN_TARGET_INTERVAL} training steps per "
            "target copy) that values need to cross the horizon; give a larger budget for accurate results"
        )
    warmup = STAGE_UNITS * stage
    fields: dict[str, Any] = {
        "num_episodes": num_episodes,
        "warmup_v_h_e_steps": stage,
        "warmup_x_h_steps": stage,
        "warmup_u_r_steps": stage,
        "warmup_q_r_steps": stage,
        "beta_r_rampup_steps": 2 * stage,
        "epsilon_decay_steps": warmup,
        "lr_decay_steps": max(1, (total - warmup) // (FINAL_LR_FACTOR_SQ - 1)),
        "buffer_size": buffer_capacity(facts, all_actions, total),
        "log_every_episodes": max(1, num_episodes // LOG_ROWS),
        "checkpoint_every_episodes": max(1, num_episodes // CHECKPOINTS),
        "exploring_starts_prob": (
            1.0 if total >= COVERAGE_VISITS * facts.nonterminal_states else PARTIAL_EXPLORING_PROB
        ),
    }
    fields.update({f"target_update_interval_{n}": interval for n in ("q_r", "v_h_e", "x_h", "u_r", "v_r")})
    return fields, warnings


def derive_config(
    facts: WorldFacts, env_steps: int, networks: str = "neural", base: Phase2Config | None = None
) -> AutoConfig:
    """The rule's config for ``facts`` and a budget of ``env_steps`` env steps (one training step each).

    ``base`` supplies every field the rule does not set (theory parameters, seed, device...; default: the
    config defaults).
    """
    options = accuracy_options(facts, networks)
    fields, warnings = schedule(facts, env_steps, bool(options["v_h_e_all_goals"]))
    cfg = (base or Phase2Config()).replace(**options, **fields)
    return AutoConfig(cfg, cfg.num_episodes * cfg.steps_per_episode, tuple(warnings))


def env_steps_for_budget(seconds: float, env_step_s: float, train_step_s: float, loop_share: float = 0.9) -> int:
    """Env steps that fit in ``seconds`` of the synchronous loop (one training step per env step).

    ``loop_share`` of the time goes to the loop itself; the rest is left for metric rows, checkpoints and the
    rollout GIF.
    """
    if seconds <= 0 or env_step_s < 0 or train_step_s < 0:
        raise ValueError(f"need seconds > 0 and step costs >= 0, got {seconds}, {env_step_s}, {train_step_s}")
    per_step = max(env_step_s + train_step_s, 1e-6)
    return max(1, int(seconds * loop_share / per_step))
