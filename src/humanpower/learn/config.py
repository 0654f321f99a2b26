"""``Phase2Config``: every hyperparameter of the Phase 2 learner in one validated, frozen dataclass.

Each field has a type, a default and an attribute docstring (the string literal right under it) stating its
meaning, unit and valid range; :func:`field_docs` reads those docstrings from this file's source, and
:func:`config_reference_markdown` turns them into ``docs/CONFIG.md`` (``python -m humanpower.learn.config
--markdown``). Theory fields take their defaults from :class:`humanpower.params.TheoryParams`.

Units: "env steps" count environment transitions (``total_steps``), "training steps" count gradient updates.
Configs are read from flat YAML files (:meth:`Phase2Config.from_yaml`) and overridden from the command line
with ``--key-name value`` pairs (:func:`parse_overrides`, :meth:`Phase2Config.apply_overrides`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import textwrap
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from humanpower.errors import ConfigError
from humanpower.learn.config_limits import validate_limits
from humanpower.learn.config_tools import (
    check_type,
    coerce_yaml_value,
    dataclass_field_docs,
    markdown_table,
    parse_flag_overrides,
    read_flat_yaml,
    suggest,
)
from humanpower.limits import DEFAULT_MEMORY_LIMIT_GB
from humanpower.params import ParameterError, TheoryParams

_T = TheoryParams()

NETWORK_BACKENDS = ("neural", "tabular")
HUMAN_PRIORS = ("auto", "exact", "learned", "heuristic", "uniform")
Q_R_LOSSES = ("mse", "log")
PROBABILITY_LOSSES = ("mse", "bce")
TRAIN_STEPS = ("fast", "reference")
FIRST_LAYER_UPDATES = ("dense", "lazy")
ASYNC_BACKENDS = ("local", "ray")
_DEVICE_RE = re.compile(r"cpu|cuda|cuda:\d+")


@dataclass(frozen=True)
class Phase2Config:
    """Hyperparameters of the Phase 2 learner (see ``docs/CONFIG.md`` for the generated reference)."""

    # --- theory (equations (4)-(9)); defaults from TheoryParams ---
    beta_r: float = _T.beta_r
    """Nominal robot power-law exponent of (5), reached at the end of the beta_r ramp; >= 0."""
    gamma_r: float = _T.gamma_r
    """Robot discount factor of (4); in (0, 1]."""
    beta_h: float = _T.beta_h
    """Human rationality (Boltzmann inverse temperature) of the Phase 1 prior (2); >= 0."""
    gamma_h: float = _T.gamma_h
    """Human discount factor of (6); in (0, 1]."""
    zeta: float = _T.zeta
    """Reliability exponent of (7): X_h = sum_g w(g) V_h^e^zeta; > 0."""
    xi: float = _T.xi
    """Inequality aversion of (8): U_r = -(mean_h X_h^-xi)^eta; > 0."""
    eta: float = _T.eta
    """Intertemporal inequality aversion of (8); > 0."""
    nu_h: float = _T.nu_h
    """Share of the habitual default policy in the human prior (2); in [0, 1]."""
    terminal_v_r: float = _T.terminal_v_r
    """V_r at a terminal (horizon) state, an absolute constant used in the Q_r target; < 0."""

    # --- run ---
    seed: int = 0
    """Master random seed (world, goals, exploration, replay sampling, network init); >= 0."""
    device: str = "cpu"
    """Torch device for the learner: cpu, cuda or cuda:N."""
    networks: str = "neural"
    """Function approximator backend: neural (MLPs) or tabular (one entry per enumerated state)."""
    human_prior: str = "auto"
    """Human policy prior: auto (exact when the world's state DAG fits the exact limit, else learned), exact
    (Phase 1 by backward induction), learned (Phase 1 trained first in the same run, docs/LEARNER.md), heuristic
    (Boltzmann over shortest-path distances, gridworlds) or uniform."""
    torch_threads: int = 1
    """Intra-op CPU threads torch may use (torch.set_num_threads); >= 1 and <= 256."""
    memory_limit_gb: float = DEFAULT_MEMORY_LIMIT_GB
    """Memory budget in GB (10^9 bytes): a config whose replay buffer, networks, tabular tables, X_h goal
    samples, exploring-starts pool or actor processes need more (by a lower-bound estimate) is refused with the
    estimate; raise it on a machine with more memory; > 0."""

    # --- episodes ---
    num_episodes: int = 10_000
    """Number of training episodes; >= 1. Total env steps = num_episodes * steps_per_episode."""
    max_seconds: float | None = None
    """Wall-clock seconds the Phase 2 training loop may run, summed over resumes (None = no limit). With
    --budget-minutes: the seconds left for Phase 2 after setup and timing, so a run slower than its timing
    predicted still ends on time: it stops like a finished run, before num_episodes, and says so (run.json
    time_limit_stop); > 0."""
    steps_per_episode: int = 50
    """Env steps per episode (an episode also ends at the world's horizon); >= 1."""
    updates_per_step: int = 1
    """Training steps (gradient updates) per env step in synchronous training; >= 1."""

    # --- batches ---
    batch_size: int = 64
    """Transitions per training batch; >= 1 and <= buffer_size."""
    x_h_batch_size: int | None = None
    """Transitions per X_h batch (None = batch_size); if set, >= batch_size and <= buffer_size."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (oldest are overwritten); >= batch_size."""

    # --- warm-up (env steps) ---
    warmup_v_h_e_steps: int = 10_000
    """Length of stage 0 (only V_h^e trains), env steps; >= 0."""
    warmup_x_h_steps: int = 10_000
    """Length of stage 1 (V_h^e + X_h train), env steps; >= 0."""
    warmup_u_r_steps: int = 10_000
    """Length of stage 2 (+ U_r network), env steps; >= 0; ignored (stage skipped) when u_r_use_network is
    false."""
    warmup_q_r_steps: int = 10_000
    """Length of stage 3 (+ Q_r, and V_r when v_r_use_network), env steps, beta_r = 0; >= 0."""
    beta_r_rampup_steps: int = 20_000
    """Length of stage 4, during which beta_r rises from 0 to its nominal value, env steps; >= 0."""
    beta_r_rampup_sharpness: float = 10.0
    """Steepness of the sigmoid beta_r ramp (sigmoid(k * (progress - 1/2)), normalised); > 0."""

    # --- learning rates ---
    lr_q_r: float = 1e-3
    """Adam learning rate of the Q_r network (before decay); > 0."""
    lr_v_h_e: float = 1e-3
    """Adam learning rate of the V_h^e network (before decay); > 0."""
    lr_x_h: float = 1e-3
    """Adam learning rate of the X_h network (before decay); > 0."""
    lr_u_r: float = 1e-3
    """Adam learning rate of the U_r network (before decay); > 0."""
    lr_v_r: float = 1e-3
    """Adam learning rate of the V_r network (before decay); > 0."""
    lr_decay_steps: int = 10_000
    """Time scale of the learning-rate decay after warm-up, env steps: lr = base / sqrt(1 + (t - t_5) /
    lr_decay_steps) where t_5 is the start of stage 5; >= 1."""
    weight_decay: float = 1e-5
    """Adam L2 weight decay applied to every network; >= 0."""
    grad_clip: float = 1.0
    """Max gradient norm at the reference lr; the applied clip is grad_clip * lr / grad_clip_reference_lr;
    > 0."""
    grad_clip_reference_lr: float = 1e-3
    """Learning rate at which grad_clip applies unscaled; > 0."""

    # --- exploration ---
    epsilon_start: float = 1.0
    """Epsilon-greedy probability at env step 0; in [0, 1]."""
    epsilon_end: float = 0.01
    """Epsilon after the linear decay; in [0, epsilon_start]."""
    epsilon_decay_steps: int = 50_000
    """Env steps of the linear decay from epsilon_start to epsilon_end, counted from step 0; >= 0 (0 =
    epsilon_end from the start)."""

    # --- target networks (training steps) ---
    target_update_interval_q_r: int = 100
    """Training steps between full copies of the Q_r network into its target; >= 1."""
    target_update_interval_v_h_e: int = 100
    """Training steps between full copies of the V_h^e network into its target; >= 1."""
    target_update_interval_x_h: int = 100
    """Training steps between full copies of the X_h network into its target; >= 1."""
    target_update_interval_u_r: int = 100
    """Training steps between full copies of the U_r network into its target; >= 1."""
    target_update_interval_v_r: int = 100
    """Training steps between full copies of the V_r network into its target; >= 1."""

    # --- networks ---
    hidden_dim: int = 256
    """Units per hidden layer of every MLP; >= 1."""
    num_hidden_layers: int = 2
    """Hidden layers per MLP head; >= 1."""
    dropout: float = 0.5
    """Dropout probability after each hidden layer (main networks in train mode only); in [0, 1)."""
    include_step_count: bool = True
    """Whether the state encoding includes the remaining episode time (needed for finite-horizon values)."""
    tabular_max_states: int = 65_536
    """Rows of the tabular backend's tables (distinct states it can hold); when the world is solved exactly,
    its reachable state count is used instead; >= 1."""

    # --- computation modes ---
    train_step: str = "fast"
    """Training-step implementation, same losses either way (to float tolerance): fast (each distinct state of a
    batch goes through each state trunk once, queries gather embeddings, sparse first layer where the encoder
    supports it) or reference (the plain step: raw features gathered per query, dense first layer)."""
    first_layer_updates: str = "dense"
    """How Adam updates the sparse first layer of each network in the fast step (neural backend, sparse state
    encoder): dense (torch's Adam on every row every step, as the reference step does) or lazy (only the weight
    rows of the input features present in the step's batch change, with their Adam moments and weight decay;
    rows of absent features wait unchanged; see learn/optim.py and docs/LEARNER.md; on CUDA it costs a host sync
    per step). Losses and gradients are the same either way; lazy measured within a few percent of dense on
    `large` (docs/PERFORMANCE.md)."""
    u_r_use_network: bool = False
    """Learn U_r with a network (for many humans) instead of computing it exactly from X_h."""
    v_r_use_network: bool = False
    """Learn V_r with a network instead of computing V_r = U_r + pi_r . Q_r directly."""
    u_r_human_sample_size: int | None = None
    """Humans sampled per U_r target row (None = all humans); >= 1."""
    x_h_goal_samples: int = 1
    """Fresh goals sampled per X_h target row (Monte-Carlo estimate of the goal sum in (7)); >= 1; ignored
    when x_h_all_goals is true."""
    x_h_all_goals: bool = False
    """Compute the X_h target as the exact weighted sum of (7) over every goal of each human (one V_h^e
    evaluation per goal) instead of sampling x_h_goal_samples goals; for small goal sets."""
    q_r_loss: str = "mse"
    """Neural backend Q_r loss: mse (squared error of Q_r, the seed's default) or log: squared errors of
    log(-Q_r), split into the deviations of a state's actions from their mean (weight beta_r^2: the error of
    the policy logits -beta_r log(-Q_r) that (5) uses) and the mean itself (weight (pi_r . Q_r / V_r)^2 from
    the target networks: how much the level of Q_r matters for V_r). Scale invariant like (5) (Q_r spans
    orders of magnitude down to ~terminal_v_r); exact where targets are deterministic given the target
    networks (one human with v_h_e_all_goals), otherwise slightly biased (geometric mean of the sampled
    targets). Ignored by the tabular backend."""
    probability_loss: str = "mse"
    """Neural backend loss of V_h^e and of X_h / W_h (both in [0, 1], sigmoid heads): mse (squared error) or
    bce (binary cross-entropy with the soft target). Both are minimised by the mean target; bce's gradient
    does not vanish where the sigmoid saturates (a goal first learned as unreachable is not stuck there).
    Ignored by the tabular backend."""
    v_h_e_all_goals: bool = False
    """Actors also compute successors for every action of each human (others at their target-draw actions) x
    every robot action, so each transition trains V_h^e for every goal of each human with the exact
    expectation over a_h ~ pi_h(s, g) in (6), and Q_r with the exact expectation over each human's
    goal-marginal action in (4). Costs humans x actions x robot actions transition calls per env step instead
    of robot actions."""

    # --- goals ---
    goal_resample_prob: float = 0.01
    """Probability per env step that each human's goal is resampled mid-episode; in [0, 1]."""

    # --- state coverage ---
    exploring_starts_prob: float = 0.0
    """Probability that an episode is an exploring episode: it starts at a state drawn uniformly from the
    pool of non-terminal states the actor has seen (as successors), and jumps to a fresh pool state when it
    reaches the horizon before steps_per_episode steps; in [0, 1]. Targets are model-based expectations at
    the state, so this changes which states are trained, not the fixed point."""
    exploring_starts_pool: int = 100_000
    """Most states kept in an actor's exploring-starts pool (reservoir sampling beyond); >= 1."""

    # --- replay ---
    clear_buffer_at_rampup: bool = True
    """Clear the replay buffer when the beta_r ramp starts and when it ends (drops off-policy data)."""
    replay_max_age: int | None = None
    """Never sample transitions collected more than this many env steps ago (None = no limit); >= the batch
    sizes."""

    # --- learned Phase 1 prior (human_prior learned, or auto on a world too large for the exact solver) ---
    phase1_train_steps: int | None = None
    """Training steps (gradient updates) of the learned Phase 1 prior; None = derived (docs/LEARNER.md): with
    --budget-minutes, the steps that fit phase1_budget_share of the minutes at the Phase 1 speed timed before
    training; otherwise ceil(phase1_budget_share / (1 - phase1_budget_share) x num_episodes x
    steps_per_episode); >= 1."""
    phase1_max_seconds: float | None = None
    """Wall-clock seconds after which Phase 1 stops and freezes its prior even before phase1_train_steps (over
    every session of a resumed run; its learning rate decays by whichever of the two budgets is further spent);
    None = no time limit. With --budget-minutes: phase1_budget_share of the minutes left after setup; > 0."""
    phase1_budget_share: float = 0.25
    """Share of the run that Phase 1 takes when the prior is learned: with --budget-minutes this share of the
    minutes goes to Phase 1 and the rest to Phase 2; it also sets the derived phase1_train_steps; in (0, 1)."""
    phase1_states_per_train_step: int = 8
    """States the Phase 1 random walk visits (compiling each new one's successors for every joint action) per
    Phase 1 training step; >= 1."""
    phase1_batch_size: int = 64
    """States per Phase 1 training batch (each trains every goal and action of every human); >= 1 and <=
    phase1_buffer_size."""
    phase1_buffer_size: int = 200_000
    """Phase 1 replay capacity in distinct visited states (oldest overwritten: large enough that the states a
    Phase 1 budget of minutes covers stay in replay); >= phase1_batch_size."""
    lr_phase1: float = 3e-3
    """Learning rate of the Q_h^m networks (Adam; plain SGD for the tabular backend), decaying as
    base / sqrt(1 + t / (phase1_train_steps / 8)); > 0."""
    target_update_interval_phase1: int = 100
    """Phase 1 training steps between full copies of each Q_h^m network into its target; >= 1."""

    # --- async ---
    async_training: bool = False
    """Run actors and learner concurrently instead of the synchronous collect-then-train loop."""
    num_actors: int = 2
    """Actor processes collecting transitions in async mode; >= 1."""
    actor_sync_freq: int = 100
    """Training steps between policy pushes from learner to actors; >= 1."""
    backend: str = "local"
    """Async backend: local (multiprocessing) or ray."""
    ray_address: str | None = None
    """Address of an existing Ray cluster to join, HOST:PORT of its head node as ``ray start --head`` prints it
    (None = start a local Ray instance for the run); only with backend ray. Every node needs humanpower
    importable; actors are spread over the nodes (docs/ASYNC.md, "Ray on an existing cluster")."""
    chunk_size: int = 64
    """Transitions per shipment from an actor to the learner; >= 1."""
    max_env_steps_per_train_step: float | None = 8.0
    """Ratio limiter: actors pause while env steps exceed this many per training step (None = no limit);
    > 0."""
    max_policy_lag: int | None = 1000
    """Drop transitions collected by a policy more than this many training steps old (None = keep all);
    >= 1."""
    actor_max_restarts: int = 3
    """Restarts allowed per crashed actor before training stops with an error; >= 0."""

    # --- logging and checkpoints ---
    log_every_episodes: int = 10
    """Episodes between log lines / TensorBoard scalars; >= 1."""
    checkpoint_every_episodes: int = 1000
    """Episodes between periodic checkpoints (a final one is always written); >= 1."""
    keep_checkpoints: int = 3
    """Most recent periodic checkpoints kept on disk; >= 1."""
    rollout_gif: bool = True
    """Render a rollout GIF of the trained policy at the end of training."""

    def __post_init__(self) -> None:
        hints = _type_hints()
        for f in fields(self):
            value = check_type(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
        try:
            self.theory()
        except ParameterError as exc:
            raise ConfigError(str(exc)) from None
        _validate(self)
        validate_limits(self, _THEORY_NAMES)

    # --- derived values ---
    @property
    def total_env_steps(self) -> int:
        """Total env steps of the run: num_episodes * steps_per_episode."""
        return self.num_episodes * self.steps_per_episode

    @property
    def warmup_env_steps(self) -> int:
        """Env steps of stages 0-4 (= start of stage 5); warmup_u_r_steps counts only with the U_r network."""
        u_r = self.warmup_u_r_steps if self.u_r_use_network else 0
        return self.warmup_v_h_e_steps + self.warmup_x_h_steps + u_r + self.warmup_q_r_steps + self.beta_r_rampup_steps

    @property
    def effective_x_h_batch_size(self) -> int:
        """The X_h batch size with None resolved to batch_size."""
        return self.batch_size if self.x_h_batch_size is None else self.x_h_batch_size

    def theory(self) -> TheoryParams:
        """The theory parameters of this config as :class:`TheoryParams`."""
        return TheoryParams(**{name: getattr(self, name) for name in _THEORY_NAMES})

    # --- conversion ---
    def to_dict(self) -> dict[str, Any]:
        """All fields as a flat ``{name: value}`` dict (plain Python values)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_yaml(self, path: str | Path | None = None, *, comments: bool = False) -> str:
        """Flat YAML of every field in declaration order; ``comments`` adds each field's doc above it.

        Writes the text to ``path`` when given and returns it either way.
        """
        docs = {name: doc for name, _, _, doc in field_docs()}
        lines: list[str] = []
        if comments:
            lines += [
                "# Phase 2 learner configuration: flat YAML, one key per field (reference: docs/CONFIG.md).",
                "",
            ]
        for name, value in self.to_dict().items():
            if comments:
                lines.extend("# " + part for part in textwrap.wrap(docs[name], 106))
            lines.append(yaml.safe_dump({name: value}, default_flow_style=False).strip())
        text = "\n".join(lines) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "config", lines: Mapping[str, int] | None = None
    ) -> Phase2Config:
        """Build from a flat dict; errors raise :class:`ConfigError` naming ``source`` and the field.

        ``lines`` (``{key: line}``, from a file) adds the line of the offending key: ``FILE:LINE: field: ...``.
        """
        lines = lines or {}

        def where(key: str | None) -> str:
            return f"{source}:{lines[key]}" if key is not None and key in lines else source

        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(f"{where(str(key))}: unknown key {key!r}{suggest(str(key), known)}")
        hints = _type_hints()
        try:
            values = {key: coerce_yaml_value(key, value, hints[key]) for key, value in data.items()}
            return cls(**values)
        except ConfigError as exc:
            field = str(exc).split(":", 1)[0]
            raise ConfigError(f"{where(field if field in data else None)}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Phase2Config:
        """Load a flat YAML config; missing keys take defaults. Errors name the file (and line).

        Binary files, YAML syntax errors, duplicate keys and non-mapping documents are refused
        (:func:`~humanpower.learn.config_tools.read_flat_yaml`).
        """
        p = Path(path)
        data, lines = read_flat_yaml(p)
        return cls.from_dict(data, source=str(p), lines=lines)

    def replace(self, **overrides: Any) -> Phase2Config:
        """A copy with some fields changed (validated again); unknown names raise :class:`ConfigError`."""
        known = {f.name for f in fields(self)}
        for key in overrides:
            if key not in known:
                raise ConfigError(f"unknown config field {key!r}{suggest(key, known)}")
        return dataclasses.replace(self, **overrides)

    def apply_overrides(self, argv: Sequence[str]) -> Phase2Config:
        """A copy with ``--key-name value`` command-line overrides applied (see :func:`parse_overrides`)."""
        return self.replace(**parse_overrides(argv))


_THEORY_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TheoryParams))


@functools.cache
def _type_hints() -> dict[str, Any]:
    return typing.get_type_hints(Phase2Config)


def _validate(c: Phase2Config) -> None:
    """Range and cross-field checks; raises :class:`ConfigError` naming the first bad field."""

    def need(ok: bool, name: str, reason: str) -> None:
        if not ok:
            raise ConfigError(f"{name}: {reason}, got {getattr(c, name)!r}")

    def enum(name: str, allowed: tuple[str, ...]) -> None:
        need(getattr(c, name) in allowed, name, "must be one of " + ", ".join(allowed))

    need(c.seed >= 0, "seed", "must be >= 0")
    need(_DEVICE_RE.fullmatch(c.device) is not None, "device", "must be cpu, cuda or cuda:N")
    enum("networks", NETWORK_BACKENDS)
    enum("human_prior", HUMAN_PRIORS)
    enum("backend", ASYNC_BACKENDS)
    enum("q_r_loss", Q_R_LOSSES)
    enum("probability_loss", PROBABILITY_LOSSES)
    enum("train_step", TRAIN_STEPS)
    enum("first_layer_updates", FIRST_LAYER_UPDATES)
    for name in (
        "torch_threads",
        "num_episodes",
        "steps_per_episode",
        "updates_per_step",
        "batch_size",
        "buffer_size",
        "lr_decay_steps",
        "hidden_dim",
        "tabular_max_states",
        "num_hidden_layers",
        "x_h_goal_samples",
        "exploring_starts_pool",
        "phase1_states_per_train_step",
        "phase1_batch_size",
        "phase1_buffer_size",
        "target_update_interval_phase1",
        "num_actors",
        "actor_sync_freq",
        "chunk_size",
        "log_every_episodes",
        "keep_checkpoints",
        "checkpoint_every_episodes",
        *(f"target_update_interval_{n}" for n in ("q_r", "v_h_e", "x_h", "u_r", "v_r")),
    ):
        need(getattr(c, name) >= 1, name, "must be >= 1")
    for name in (
        "warmup_v_h_e_steps",
        "warmup_x_h_steps",
        "warmup_u_r_steps",
        "warmup_q_r_steps",
        "beta_r_rampup_steps",
        "epsilon_decay_steps",
        "actor_max_restarts",
    ):
        need(getattr(c, name) >= 0, name, "must be >= 0")
    need(c.max_seconds is None or c.max_seconds > 0, "max_seconds", "must be > 0 or none")
    need(c.phase1_train_steps is None or c.phase1_train_steps >= 1, "phase1_train_steps", "must be >= 1 or none")
    need(0 < c.phase1_budget_share < 1, "phase1_budget_share", "must be in (0, 1)")
    need(c.phase1_max_seconds is None or c.phase1_max_seconds > 0, "phase1_max_seconds", "must be > 0 or none")
    for name in ("lr_q_r", "lr_v_h_e", "lr_x_h", "lr_u_r", "lr_v_r", "lr_phase1", "grad_clip"):
        need(getattr(c, name) > 0, name, "must be > 0")
    need(c.grad_clip_reference_lr > 0, "grad_clip_reference_lr", "must be > 0")
    need(c.beta_r_rampup_sharpness > 0, "beta_r_rampup_sharpness", "must be > 0")
    need(c.weight_decay >= 0, "weight_decay", "must be >= 0")
    need(0 <= c.dropout < 1, "dropout", "must be in [0, 1)")
    need(0 <= c.goal_resample_prob <= 1, "goal_resample_prob", "must be in [0, 1]")
    need(0 <= c.exploring_starts_prob <= 1, "exploring_starts_prob", "must be in [0, 1]")
    need(0 <= c.epsilon_start <= 1, "epsilon_start", "must be in [0, 1]")
    need(0 <= c.epsilon_end <= 1, "epsilon_end", "must be in [0, 1]")
    for name in ("u_r_human_sample_size", "max_policy_lag", "replay_max_age"):
        need(getattr(c, name) is None or getattr(c, name) >= 1, name, "must be >= 1 or none")
    need(
        c.max_env_steps_per_train_step is None or c.max_env_steps_per_train_step > 0,
        "max_env_steps_per_train_step",
        "must be > 0 or none",
    )
    # cross-field checks
    if c.epsilon_end > c.epsilon_start:
        raise ConfigError(f"epsilon_end: must be <= epsilon_start ({c.epsilon_end} > {c.epsilon_start})")
    if c.batch_size > c.buffer_size:
        raise ConfigError(f"batch_size: must be <= buffer_size ({c.batch_size} > {c.buffer_size})")
    if c.phase1_batch_size > c.phase1_buffer_size:
        raise ConfigError(
            f"phase1_batch_size: must be <= phase1_buffer_size ({c.phase1_batch_size} > {c.phase1_buffer_size})"
        )
    if c.x_h_batch_size is not None:
        if c.x_h_batch_size < c.batch_size:
            raise ConfigError(f"x_h_batch_size: must be >= batch_size ({c.x_h_batch_size} < {c.batch_size})")
        if c.x_h_batch_size > c.buffer_size:
            raise ConfigError(f"x_h_batch_size: must be <= buffer_size ({c.x_h_batch_size} > {c.buffer_size})")
    if c.replay_max_age is not None and c.replay_max_age < c.effective_x_h_batch_size:
        raise ConfigError(
            f"replay_max_age: must be >= the largest batch size ({c.replay_max_age} < "
            f"{c.effective_x_h_batch_size}), or no full batch could ever be sampled"
        )
    if c.ray_address is not None and c.backend != "ray":
        raise ConfigError(f"ray_address: only used with backend 'ray' (backend is {c.backend!r})")
    if c.warmup_env_steps > c.total_env_steps:
        stages = ["warmup_v_h_e_steps", "warmup_x_h_steps", "warmup_q_r_steps", "beta_r_rampup_steps"]
        if c.u_r_use_network:
            stages.insert(2, "warmup_u_r_steps")
        terms = " + ".join(f"{name} {getattr(c, name)}" for name in stages)
        raise ConfigError(
            f"num_episodes: the warm-up stages need {c.warmup_env_steps} env steps ({terms}) but "
            f"num_episodes * steps_per_episode = {c.total_env_steps}"
        )


# --- command-line overrides and documentation ---------------------------------------------------------


def parse_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """Turn ``["--num-episodes", "200", "--device=cuda", ...]`` into typed ``{field: value}``.

    Values are converted by field type: bool accepts true/false/1/0/yes/no, Optional fields accept ``none``.
    An unknown flag, a missing value or a bad value raises :class:`ConfigError` naming the flag.
    """
    return parse_flag_overrides(argv, _type_hints())


@functools.cache
def _field_docs() -> tuple[tuple[str, str, Any, str], ...]:
    return tuple(dataclass_field_docs(Phase2Config))


def field_docs() -> list[tuple[str, str, Any, str]]:
    """``(name, type, default, doc)`` for every field, in declaration order, docs read from the source."""
    return list(_field_docs())


def config_reference_markdown() -> str:
    """The Markdown reference of every config field (the content of ``docs/CONFIG.md``)."""
    lines = [
        "# Phase 2 learner configuration",
        "",
        "Generated from `src/humanpower/learn/config.py` by `python -m humanpower.learn.config --markdown`;",
        "do not edit by hand. Set values in a flat YAML file (`Phase2Config.from_yaml`) or override them on",
        "the command line as `--key-name value` (booleans: true/false/yes/no/1/0; optional fields: `none`,",
        "in YAML also `null` or `~`). Duplicate keys, unknown keys and files that are not UTF-8 text are",
        "refused with the file and line. Env steps count environment transitions; training steps count",
        "gradient updates.",
        "",
        "Sizes are checked up front: a config whose replay buffer, networks, tabular tables, X_h goal samples,",
        "exploring-starts pool or actor processes need more than `memory_limit_gb` (2 GB by default) by a",
        "lower-bound estimate is refused with one line naming the field and the estimate (byte counts in",
        "`humanpower.limits`);",
        "`torch_threads` is at most 256 and `beta_r`, `beta_h` at most 1e6 (larger values overflow).",
        "",
        *markdown_table(field_docs()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m humanpower.learn.config --markdown`` (reference) or ``--yaml`` (commented defaults)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--markdown"]:
        sys.stdout.write(config_reference_markdown())
        return 0
    if args == ["--yaml"]:
        sys.stdout.write(Phase2Config().to_yaml(comments=True))
        return 0
    sys.stderr.write("usage: python -m humanpower.learn.config --markdown | --yaml\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
