"""The Phase 1 learner: Q_h^m networks, their target copies and optimizers, replay, and one training step.

It reuses the Phase 2 machinery: :class:`~humanpower.learn.target_nets.TargetNetwork` (hard copies every
``target_update_interval`` training steps), :class:`~humanpower.learn.replay.ReplayBuffer` (ring storage,
uniform sampling without replacement), the schedules (:func:`~humanpower.learn.schedules.lr_at` with every warm-up
stage of length 0, i.e. ``lr = base / sqrt(1 + t / lr_decay_steps)``, and
:func:`~humanpower.learn.schedules.grad_clip_at`), the Featurizer and the state memos of target copies.

One training step: a replay batch of states; for each human h (its own network and optimizer), the target of
(1) for every goal and action from the *target* network's Q_h^m at the cached successors through (2)-(3)
(:mod:`.targets`), and the loss of the main network at every (state, goal) pair whose goal the state does not
already achieve (there pi_h rests on ``still`` whatever Q_h^m says): binary cross-entropy with the soft target
for the neural backend (Q_h^m in [0, 1] behind a sigmoid; unlike the squared error its gradient does not vanish
where the sigmoid saturates, so a Q_h^m first learned as 0 is not stuck there), the duplicate-averaging squared
error for the tabular one (value iteration).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from humanpower.exact.kernels import ProfileTables
from humanpower.learn.encoding import Featurizer, GoalEncoder, StateBatch, StateEncoder
from humanpower.learn.learner import clip_grad_norm
from humanpower.learn.losses import probability_loss
from humanpower.learn.networks import enable_state_memos
from humanpower.learn.phase1 import targets as T
from humanpower.learn.phase1.data import Phase1Item, StateModel, assemble_batch
from humanpower.learn.phase1.networks import Phase1QModel, build_phase1_networks
from humanpower.learn.replay import ReplayBuffer, ReplayStorage, UniformSampler
from humanpower.learn.schedules import StageTable, grad_clip_at, lr_at
from humanpower.learn.target_nets import TargetNetwork
from humanpower.worlds.protocol import WorldModel

NO_WARMUP = StageTable((0, 0, 0, 0, 0, 0))
"""Phase 1 has no warm-up stages: :func:`lr_at` decays from step 0."""


@dataclass(frozen=True)
class Phase1Settings:
    """The Phase 1 hyperparameters (taken from the run's config by :meth:`from_config`)."""

    backend: str
    beta_h: float
    gamma_h: float
    nu_h: float
    train_steps: int
    batch_size: int
    buffer_size: int
    lr: float
    target_update_interval: int
    weight_decay: float
    grad_clip: float
    grad_clip_reference_lr: float
    hidden_dim: int
    num_hidden_layers: int
    tabular_max_states: int
    seed: int
    device: str
    lr_decay_steps: int | None
    """Time scale of the lr decay ``lr = base / sqrt(1 + t / lr_decay_steps)``; None = constant lr."""
    max_seconds: float | None = None
    """Wall-clock seconds Phase 1 may train (``phase1_max_seconds``); None = only ``train_steps`` ends it."""

    @classmethod
    def from_config(cls, cfg: Any, train_steps: int) -> Phase1Settings:
        """Settings from a ``Phase2Config`` (its ``phase1_*`` fields, theory, network sizes) for ``train_steps``."""
        return cls(
            backend=cfg.networks,
            beta_h=cfg.beta_h,
            gamma_h=cfg.gamma_h,
            nu_h=cfg.nu_h,
            train_steps=int(train_steps),
            batch_size=cfg.phase1_batch_size,
            buffer_size=cfg.phase1_buffer_size,
            lr=cfg.lr_phase1,
            target_update_interval=cfg.target_update_interval_phase1,
            weight_decay=cfg.weight_decay,
            grad_clip=cfg.grad_clip,
            grad_clip_reference_lr=cfg.grad_clip_reference_lr,
            hidden_dim=cfg.hidden_dim,
            num_hidden_layers=cfg.num_hidden_layers,
            tabular_max_states=cfg.tabular_max_states,
            seed=cfg.seed,
            device=cfg.device,
            lr_decay_steps=max(1, int(train_steps) // 8),  # the last step trains at about base / 3
            max_seconds=cfg.phase1_max_seconds,
        )


class Phase1Learner:
    """Owns the Q_h^m models (one per human, ``world.humans`` order), their targets, optimizers and replay."""

    def __init__(
        self,
        world: WorldModel,
        settings: Phase1Settings,
        state_encoder: StateEncoder,
        goal_encoders: Sequence[GoalEncoder],
    ) -> None:
        self.world = world
        self.settings = settings
        self.device = torch.device(settings.device)
        self.tabular = settings.backend == "tabular"
        self.featurizer = Featurizer(state_encoder, self.device, fast=True)
        self.goal_sets = [world.goal_set(h) for h in world.humans]
        features = [enc.encode(list(gs.goals)) for enc, gs in zip(goal_encoders, self.goal_sets, strict=True)]
        self.nets: list[Phase1QModel] = build_phase1_networks(
            settings.backend,
            state_encoder.dim,
            features,
            world.num_actions,
            settings.hidden_dim,
            settings.num_hidden_layers,
            settings.tabular_max_states,
            settings.seed,
        )
        for net in self.nets:
            net.to(self.device)
        self.targets = [TargetNetwork(net, settings.target_update_interval) for net in self.nets]
        if self.device.type == "cpu":
            enable_state_memos((t.module for t in self.targets), features_of=self.featurizer.batch_of_ids)
        self.optimizers: list[torch.optim.Optimizer] = [
            torch.optim.SGD(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
            if self.tabular
            else torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
            for net in self.nets
        ]
        tables = ProfileTables.build(world.num_agents, world.num_actions, world.humans, world.robots)
        self.num_robot = tables.num_robot_actions
        self.num_others = world.num_actions ** (len(world.humans) - 1)
        self.splits = [torch.from_numpy(tables.split_human(h)).to(self.device) for h in world.humans]
        self.replay: ReplayBuffer[Phase1Item] = ReplayBuffer(ReplayStorage(settings.buffer_size), UniformSampler())
        self.rng = np.random.default_rng([settings.seed, 13])
        self.train_steps = 0
        self.time_share = 0.0
        """Share of ``settings.max_seconds`` spent so far (set by the trainer; 0 without a time limit)."""
        self._in_replay: set[int] = set()
        """State ids currently in replay."""
        self._v_next = [_ValueMemo(len(gs)) for gs in self.goal_sets]
        """Per human, V_h^m(s', .) of the target network by state id, valid until the target's next update."""

    # -- data ---------------------------------------------------------------------------------------------------
    def add(self, models: Sequence[StateModel], total_steps: int) -> None:
        """Store compiled states not yet in replay (interning them and their successors in the featurizer).

        Replay holds each state at most once, so batches sample the distinct visited states uniformly (what the
        unweighted fidelity over (state, goal) pairs measures), not by visit frequency.
        """
        storage = self.replay.storage
        for m in models:
            state_id = int(self.featurizer.intern([m.state])[0])
            if state_id in self._in_replay:
                continue
            if len(storage) == storage.capacity:  # the slot written next holds the oldest state
                self._in_replay.discard(storage.get([storage.position])[0].state_id)
            succ = self.featurizer.intern(list(m.successors))
            self.replay.add(Phase1Item(m, state_id, succ, total_steps, self.train_steps))
            self._in_replay.add(state_id)

    def ready(self) -> bool:
        return self.replay.can_sample(self.settings.batch_size)

    # -- one training step --------------------------------------------------------------------------------------
    def lr_at(self, train_step: int) -> float:
        """The learning rate of training step ``train_step`` (decays from step 0, see :data:`NO_WARMUP`).

        With a time limit the decay runs on whichever budget is further spent: the step count is taken as at least
        ``time_share * train_steps``, so a run that its time limit ends early still finishes its decay.
        """
        decay = self.settings.lr_decay_steps
        if decay is None:
            return self.settings.lr
        t = max(train_step, int(self.time_share * self.settings.train_steps))
        return lr_at(t, self.settings.lr, NO_WARMUP, decay)

    def train_step(self) -> dict[str, float]:
        """One gradient step of every human's Q_h^m on a replay batch; returns the loss per human position."""
        s = self.settings
        items = self.replay.get(self.replay.sample(s.batch_size, self.rng))
        batch = assemble_batch(items, self.featurizer, self.device)
        lr = self.lr_at(self.train_steps)
        losses: dict[str, float] = {}
        for i, (net, opt) in enumerate(zip(self.nets, self.optimizers, strict=True)):
            with torch.no_grad():
                v_next = self._v_next[i].values(batch.nodes.ids, self._target_values(i))
                target = T.q_targets(
                    v_next,
                    batch.node_achieved[i],
                    batch.node_terminal,
                    batch.edge_node,
                    batch.edge_prob,
                    batch.edge_row,
                    batch.num_rows,
                    batch.profile_rows,
                    self.splits[i],
                    self.num_others,
                    self.num_robot,
                    s.gamma_h,
                )
            mask = ~batch.state_achieved[i]  # (B, G): pairs whose Q_h^m is used
            if not bool(mask.any()):
                continue
            pred = net(batch.states)
            keys = None
            if self.tabular:
                g = pred.shape[1]
                keys = (batch.states.ids.unsqueeze(1) * g + torch.arange(g, device=self.device))[mask]
            loss = probability_loss(pred[mask], target[mask].to(pred.dtype), keys, "mse" if self.tabular else "bce")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = lr
            params = [p for group in opt.param_groups for p in group["params"]]
            clip_grad_norm(params, grad_clip_at(lr, s.grad_clip, s.grad_clip_reference_lr))
            opt.step()
            losses[f"loss_q_h_{i}"] = float(loss.detach())
        self.train_steps += 1
        for t, memo in zip(self.targets, self._v_next, strict=True):
            if t.maybe_update(self.train_steps):
                memo.clear()
        return losses

    def _target_values(self, human_pos: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """V_h^m (3) of the target network at interned state ids, (N, G), without the resting rule.

        The resting rule is not needed: V_h^m at a state achieving g is never used (the successor pays 1).
        """
        s = self.settings

        def compute(ids: torch.Tensor) -> torch.Tensor:
            q = self.targets[human_pos](self.featurizer.batch_of_ids(ids))
            return T.state_values(q, torch.zeros(q.shape[:2], dtype=torch.bool, device=q.device), s.beta_h, s.nu_h)

        return compute

    # -- the policy ---------------------------------------------------------------------------------------------
    def policies(self, states: StateBatch, human_pos: int, achieved: torch.Tensor) -> torch.Tensor:
        """pi_h(s, g) (B, G, A) from the main network in eval mode (``achieved`` (B, G): rest there)."""
        net = self.nets[human_pos]
        was_training = net.training
        net.eval()
        with torch.no_grad():
            q = net(states)
        net.train(was_training)
        return T.human_policy(q, achieved, self.settings.beta_h, self.settings.nu_h)

    # -- checkpointing ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "nets": [n.state_dict() for n in self.nets],
            "targets": [t.state_dict() for t in self.targets],
            "optimizers": [o.state_dict() for o in self.optimizers],
            "replay": self.replay.state_dict(),
            "featurizer": self.featurizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "train_steps": self.train_steps,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for memo in self._v_next:
            memo.clear()
        self.featurizer.load_state_dict(d["featurizer"])
        for n, sd in zip(self.nets, d["nets"], strict=True):
            n.load_state_dict(sd)
        for t, td in zip(self.targets, d["targets"], strict=True):
            t.load_state_dict(td)
        for o, od in zip(self.optimizers, d["optimizers"], strict=True):
            o.load_state_dict(od)
        self.replay.load_state_dict(d["replay"])
        self._in_replay = {it.state_id for it in self.replay.storage.get(self.replay.storage.chronological())}
        self.rng.bit_generator.state = d["rng"]
        self.train_steps = int(d["train_steps"])


class _ValueMemo:
    """Values of a frozen network by state id: each distinct state is computed once until :meth:`clear`."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.table = torch.zeros((0, width))
        self.valid = torch.zeros(0, dtype=torch.bool)

    def clear(self) -> None:
        self.valid.zero_()

    def values(self, ids: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Rows of ``ids`` (any order, may repeat); missing ones come from ``compute(distinct missing ids)``."""
        need = int(ids.max()) + 1 if ids.numel() else 0
        if need > self.valid.shape[0]:
            size = max(need, 2 * self.valid.shape[0], 1024)
            table = torch.zeros((size, self.width), dtype=self.table.dtype, device=ids.device)
            valid = torch.zeros(size, dtype=torch.bool, device=ids.device)
            table[: self.table.shape[0]] = self.table.to(ids.device)
            valid[: self.valid.shape[0]] = self.valid.to(ids.device)
            self.table, self.valid = table, valid
        missing = ids[~self.valid[ids]]
        if missing.numel():
            todo = torch.unique(missing)
            fresh = compute(todo)
            if fresh.dtype != self.table.dtype:
                self.table = self.table.to(fresh.dtype)
            self.table[todo] = fresh
            self.valid[todo] = True
        return self.table[ids]
