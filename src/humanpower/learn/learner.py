"""The learner: networks, their target copies and optimizers, the replay buffer, and one training step.

Synchronous and asynchronous training share this class unchanged; they differ only in who calls
:meth:`Learner.add` (the sync loop, or the async wiring with chunks shipped from actor processes).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch

from humanpower.goals import GoalSet
from humanpower.learn import device as devices
from humanpower.learn.batch import CompiledTransition, TransitionCompiler, assemble_batch
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import Featurizer, StateBatch
from humanpower.learn.layers import DEFAULT_MEMO_REFILL
from humanpower.learn.loss_meter import LossMeter
from humanpower.learn.networks import Phase2Network, Phase2Networks, enable_state_memos
from humanpower.learn.optim import (
    LazyAdam,
    clip_grad_norm,
    clip_grad_norms,
    step_adams,
    use_sparse_first_layer_gradients,
)
from humanpower.learn.policy import QPolicy
from humanpower.learn.replay import ReplayBuffer, Transition
from humanpower.learn.schedules import NUM_STAGES, StageTable, beta_r_at, grad_clip_at, lr_at
from humanpower.learn.target_nets import TargetNetwork
from humanpower.learn.terms import LossTerm, StepData, build_loss_terms
from humanpower.worlds.protocol import WorldModel, num_robot_actions

NETWORK_NAMES = ("q_r", "v_h_e", "x_h", "u_r", "v_r")


def _fused_ok(device: torch.device) -> bool:
    """Whether torch's fused Adam / SGD kernels exist for ``device`` (CPU, CUDA and a few others)."""
    return device.type in ("cpu", "cuda", "mps", "xpu")


def lazy_first_layer(cfg: Phase2Config, featurizer: Featurizer) -> bool:
    """Whether the learner updates the sparse first layers lazily (config ``first_layer_updates``; only the
    fast step of the neural backend with a sparse state encoder has sparse first-layer gradients)."""
    if cfg.networks != "neural" or cfg.train_step != "fast" or not featurizer.sparse:
        return False
    return cfg.first_layer_updates == "lazy"


def target_view(targets: dict[str, TargetNetwork]) -> Phase2Networks:
    """The target copies as a :class:`Phase2Networks` (what every loss term's target reads)."""
    return Phase2Networks(**{name: cast(Any, t.module) for name, t in targets.items()})


def _prefetch_plan(terms: tuple[LossTerm[Any], ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(networks read at the batch nodes, networks read at the batch states only) by ``terms``' targets."""
    nodes = sorted({name for t in terms for name in t.at_nodes})
    states = sorted({name for t in terms for name in t.at_states} - set(nodes))
    return tuple(nodes), tuple(states)


def _prefetch(module: torch.nn.Module, batch: StateBatch) -> None:
    """``module.prefetch(batch)`` for a neural network (tabular targets are table lookups already)."""
    if isinstance(module, Phase2Network):
        module.prefetch(batch)


class Learner:
    """Owns everything that is trained and performs training steps (gradient updates).

    One optimizer per network (each network is its own parameter set); each target network owns its update
    interval; learning rates and gradient-clip thresholds follow the schedules of ``total_steps`` (env steps).

    Mechanics (the same updates as zero_grad / backward / clip / step per network, done cheaper): one backward
    pass through all losses, fused optimizer kernels, a lean exact gradient clip, and (on the CPU) target
    networks that remember their per-state values between updates (:class:`~humanpower.learn.layers.StateMemo`).
    """

    def __init__(
        self, world: WorldModel, cfg: Phase2Config, nets: Phase2Networks, featurizer: Featurizer, device: torch.device
    ) -> None:
        self.world = world
        self.cfg = cfg
        self.nets = nets
        self.featurizer = featurizer
        self.device = device
        self.stages = StageTable.from_config(cfg)
        self.goal_sets: list[GoalSet] = [world.goal_set(h) for h in world.humans]
        self.num_robot_actions = num_robot_actions(world)
        self.compiler = TransitionCompiler(world, featurizer)
        modules = nets.named()
        self.base_lr = {name: float(getattr(cfg, f"lr_{name}")) for name in modules}
        # One optimizer per network. Neural: Adam with L2 weight decay (lazy on the sparse first layers when
        # configured: LazyAdam). Tabular: plain SGD on the duplicate-averaging loss, i.e. entry <- entry + lr *
        # (mean target - entry) (see losses.regression_loss). Fused kernels where the device supports them.
        self.tabular = cfg.networks == "tabular"
        self.lazy_first_layer = lazy_first_layer(cfg, featurizer)
        if self.lazy_first_layer:
            use_sparse_first_layer_gradients(modules.values())
        adam = LazyAdam if self.lazy_first_layer else torch.optim.Adam
        self._params: dict[str, list[torch.nn.Parameter]] = {name: list(m.parameters()) for name, m in modules.items()}
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            name: (
                torch.optim.SGD(params, lr=self.base_lr[name], weight_decay=cfg.weight_decay, fused=_fused_ok(device))
                if self.tabular
                else adam(params, lr=self.base_lr[name], weight_decay=cfg.weight_decay, fused=_fused_ok(device))
            )
            for name, params in self._params.items()
        }
        self.targets = {
            name: TargetNetwork(m, int(getattr(cfg, f"target_update_interval_{name}"))) for name, m in modules.items()
        }
        self.target_nets = target_view(self.targets)
        # Every variant of every equation's term is chosen here, once; a stage trains a subset of the terms.
        self.terms = build_loss_terms(cfg, self.goal_sets)
        self.stage_terms = {
            stage: tuple(t for t in self.terms if t.network in self.stages.active_networks(stage))
            for stage in range(NUM_STAGES)
        }
        # Per stage, the target networks its targets read at the batch nodes, and at the batch states only: the
        # step evaluates them there first (Phase2Network.prefetch), so each memo computes its new states once.
        self.stage_prefetch = {stage: _prefetch_plan(terms) for stage, terms in self.stage_terms.items()}
        # Target weights change only at their hard updates: remember their per-state values in between (CPU:
        # there a target evaluation costs far more than the lookup; on an accelerator the lookup's host syncs
        # would cost about as much as it saves).
        # At a hard update a memo recomputes the most recently added states in one batch: at most as many as the
        # batches until the next update can query (interval x batch size), so frequent updates do not recompute
        # thousands of states every few steps.
        if not devices.accelerated(device):
            for t in self.targets.values():
                refill = min(DEFAULT_MEMO_REFILL, t.interval * cfg.batch_size)
                enable_state_memos([t.module], features_of=featurizer.batch_of_ids, refill=refill)
        self.replay: ReplayBuffer[CompiledTransition] = ReplayBuffer.from_config(cfg)
        self.rng = np.random.default_rng([cfg.seed, 2])
        self.train_steps = 0
        self.losses = LossMeter()
        """Each network's losses since the training loop last read them (summed on the device)."""

    # -- data ---------------------------------------------------------------------------------------------------
    def add(self, transitions: list[Transition]) -> None:
        """Compile and store transitions (interning their states in the learner's featurizer)."""
        self.replay.extend([self.compiler(t) for t in transitions])

    def on_env_steps(self, total_steps: int) -> None:
        """Let replay policies react to the env-step clock (e.g. clear the buffer at the beta_r ramp boundaries)."""
        self.replay.on_step(total_steps)

    def ready(self) -> bool:
        """True once replay can serve a full batch (respecting the sampler policies)."""
        return self.replay.can_sample(max(self.cfg.batch_size, self.cfg.x_h_batch_size or 0))

    def acting_policy(self) -> QPolicy:
        """The live Q_r network as the robot's policy (the synchronous actor acts with it; ``version`` = training
        steps so far; nominal beta_r and no exploration until the actor sets its step's values)."""
        return QPolicy(self.nets.q_r, self.featurizer.batch, self.train_steps, self.cfg.beta_r)

    # -- one training step --------------------------------------------------------------------------------------
    def active_terms(self, total_steps: int) -> tuple[LossTerm[Any], ...]:
        """The loss terms of the stage in force at ``total_steps``."""
        return self.stage_terms[self.stages.stage_at(total_steps)]

    def sample(self, total_steps: int) -> StepData:
        """A replay batch (and the X_h rows: a larger separate batch, or the batch's own states)."""
        cfg = self.cfg
        x_size = cfg.x_h_batch_size or cfg.batch_size
        idx = self.replay.sample(max(cfg.batch_size, x_size), self.rng)
        items = self.replay.storage.get(idx)
        batch = assemble_batch(items[: cfg.batch_size], self.featurizer, self.num_robot_actions, self.device)
        states = batch.states()
        if x_size == cfg.batch_size:  # the batch's own states (one object: deduplicated and encoded once)
            x_states = states
        else:
            x_states = self.featurizer.batch_from_ids(np.fromiter((it.state_id for it in items[:x_size]), np.int64))
        return StepData(batch, states, x_states, beta_r_at(total_steps, cfg), self.rng)

    def step(self, total_steps: int) -> dict[str, torch.Tensor]:
        """Sample a batch, compute the active terms' losses, take one optimizer step each.

        Returns the losses (detached 0-dim tensors on the learner's device) and adds them to :attr:`losses`.
        Nothing here reads a device value on the host, so on an accelerator the step queues its work without
        waiting for it (the CPU-only lazy first-layer update and the CPU clip read values on the host, where
        that costs no synchronisation).
        """
        data = self.sample(total_steps)
        stage = self.stages.stage_at(total_steps)
        at_nodes, at_states = self.stage_prefetch[stage]
        with torch.no_grad():
            for name in at_nodes:
                _prefetch(self.targets[name].module, data.batch.nodes)
            for name in at_states:
                _prefetch(self.targets[name].module, data.states)
        losses: dict[str, torch.Tensor] = {}
        for term in self.stage_terms[stage]:
            with torch.no_grad():  # the right-hand side, from the target networks
                target = term.target(self.target_nets, data)
            losses[term.network] = term.loss(self.nets, data, target)  # on the main network

        # The networks share no parameter and every target is computed without gradients, so one backward
        # pass through all losses (= through their sum) gives each network exactly the gradient of its own loss.
        for name in losses:  # = optimizer.zero_grad(set_to_none=True), minus its per-call overhead
            for p in self._params[name]:
                p.grad = None
        torch.autograd.backward(list(losses.values()))
        # Per network: its lr, the clip of its own gradient norm, its optimizer step; computed for all networks
        # together (one norm pass, one fused Adam kernel per hyper-parameter set: optim.step_adams).
        thresholds = []
        for name in losses:
            lr = lr_at(total_steps, self.base_lr[name], self.stages, self.cfg.lr_decay_steps)
            for group in self.optimizers[name].param_groups:
                group["lr"] = lr
            thresholds.append(grad_clip_at(lr, self.cfg.grad_clip, self.cfg.grad_clip_reference_lr))
        clip_grad_norms([self._params[name] for name in losses], thresholds)
        step_adams([self.optimizers[name] for name in losses])
        self.train_steps += 1
        for target_net in self.targets.values():
            target_net.maybe_update(self.train_steps)
        out = {name: loss.detach() for name, loss in losses.items()}
        self.losses.add(out)
        return out

    def train_step(self, total_steps: int) -> dict[str, float]:
        """:meth:`step`, returning the losses as floats (a host read of each loss: for callers that want every
        step's numbers; a training loop reads :attr:`losses` at its logging interval instead)."""
        return {name: float(loss) for name, loss in self.step(total_steps).items()}

    # -- checkpointing ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "nets": {name: m.state_dict() for name, m in self.nets.named().items()},
            "targets": {name: t.state_dict() for name, t in self.targets.items()},
            "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
            "replay": self.replay.state_dict(),
            "featurizer": self.featurizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "train_steps": self.train_steps,
            "losses": self.losses.state_dict(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.featurizer.load_state_dict(d["featurizer"])
        for name, m in self.nets.named().items():
            m.load_state_dict(d["nets"][name])
        for name, t in self.targets.items():
            t.load_state_dict(d["targets"][name])
        for name, o in self.optimizers.items():
            o.load_state_dict(d["optimizers"][name])
        self.replay.load_state_dict(d["replay"])
        self.rng.bit_generator.state = d["rng"]
        self.train_steps = int(d["train_steps"])
        self.losses.load_state_dict(d.get("losses", {}), self.device)


__all__ = ["NETWORK_NAMES", "Learner", "clip_grad_norm", "lazy_first_layer", "target_view"]
"""``clip_grad_norm`` is re-exported for the Phase 1 learner (``learn/phase1/learner.py`` imports it from here)."""
