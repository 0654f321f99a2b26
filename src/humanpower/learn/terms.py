"""The Phase 2 loss terms: one per equation, each a target from the TARGET networks and a loss on the MAIN one.

A :class:`LossTerm` pairs

* ``target(target_nets, data)``: the right-hand side of its equation, read from the frozen target copies
  (``target_nets``, a :class:`~humanpower.learn.networks.Phase2Networks` of the copies) and from model-based
  expectations over the successor distributions cached at collection time; it is never given the main
  networks, and the learner evaluates it under ``torch.no_grad()``;
* ``loss(nets, data, target)``: the regression of the main network on that target.

:func:`build_loss_terms` chooses every variant once, from the config: sampled or all goals, one target draw or
all human actions, mse / bce / log losses, U_r and V_r computed or from their networks, the tabular backend's
duplicate averaging. The training step (:meth:`humanpower.learn.learner.Learner.train_step`) then only runs the
terms of the current stage. With primes for target networks and pi_r the power law (5) at the current beta_r
(uniform while beta_r = 0):

    (6) V_h^e(s, g_h) <- sum_{a_r} pi_r'(a_r | s) sum_{s'} P(s' | s, a_H, a_r) [1 if s' in g_h
                                                                         else 0 if s' terminal
                                                                         else gamma_h V_h^e'(s', g_h)]
    (7) X_h(s)        <- mean_k W_h V_h^e'(s, g_k)^zeta, g_k ~ w/W       (or sum_g w(g) V_h^e'(s, g)^zeta)
    (8) y(s)          <- mean_h X_h'(s)^(-xi)            (U_r network only; U_r = -y^eta)
    (4) Q_r(s, a_r)   <- gamma_r sum_{s'} P(s' | s, a_H, a_r) V_r'(s')     for every a_r at once
    (9) V_r(s)        <- U_r'(s) + pi_r'(s) . Q_r'(s)    (V_r network only)

where a_H is the transition's target draw (fresh goals from the prior, actions from pi_h; see actor.py) and
V_r'(s') is ``terminal_v_r`` at the horizon, else the V_r network or U_r'(s') + pi_r'(s') . Q_r'(s'). U_r' is
the U_r network (read as z = log(y - y_min)) or -(mean_h X_h'^-xi)^eta computed from X_h'.

With the all-human-actions edges (config ``v_h_e_all_goals``, see actor.py and batch.py) the human-action part
of the expectations is exact instead of one draw: for human h (other humans at their target-draw actions)

    (6) V_h^e(s, g) <- sum_{a_h} pi_h(a_h | s, g) sum_{a_r} pi_r'(a_r | s) sum_{s'} P(s' | s, a_h, a_-h, a_r) [...]
                       for EVERY goal g of h at once
    (4) Q_r(s, a_r) <- gamma_r mean_h sum_{a_h} pibar_h(a_h | s) sum_{s'} P(s' | s, a_h, a_-h, a_r) V_r'(s')

with pibar_h = sum_g w(g) pi_h(s, g) / W the goal-marginal (each human's term is unbiased for (4); the mean over
humans only lowers the variance; with one human both targets are exact given the target networks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import torch

from humanpower.goals import GoalSet
from humanpower.learn import targets as T
from humanpower.learn.batch import Batch
from humanpower.learn.config import Phase2Config
from humanpower.learn.device import to_device
from humanpower.learn.encoding import StateBatch
from humanpower.learn.losses import log_policy_loss, probability_loss, regression_loss
from humanpower.learn.networks import Phase2Networks, VHEModel, VHENetwork

Tensor = torch.Tensor
Y = TypeVar("Y")
Y_co = TypeVar("Y_co", covariant=True)
Y_contra = TypeVar("Y_contra", contravariant=True)
M = TypeVar("M")


@dataclass(frozen=True)
class StepData:
    """Everything one training step's targets and losses read besides the networks."""

    batch: Batch
    """The replayed transitions with their successor edges."""
    states: StateBatch
    """The batch's B states (``batch.states()``), the rows of (6), (8), (4) and (9)."""
    x_states: StateBatch
    """The rows of the X_h term (7) (the separate X_h batch, or ``states``)."""
    beta_r: float
    """The current beta_r of pi_r in the targets (0 during warm-up)."""
    rng: np.random.Generator
    """The learner's generator for the sampled targets (X_h goals, U_r humans)."""

    @classmethod
    def of(cls, batch: Batch, x_states: StateBatch, beta_r: float, rng: np.random.Generator) -> StepData:
        return cls(batch, batch.states(), x_states, beta_r, rng)


class TargetFn(Protocol[Y_co]):
    """The right-hand side of one equation from the target networks."""

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Y_co: ...


class LossFn(Protocol[Y_contra]):
    """The loss of one main network against its target."""

    def __call__(self, nets: Phase2Networks, data: StepData, target: Y_contra) -> Tensor: ...


@dataclass(frozen=True)
class LossTerm(Generic[Y]):
    """One equation's term: ``network`` is trained by ``loss(nets, data, target(target_nets, data))``.

    ``at_nodes`` / ``at_states``: the target networks whose values ``target`` reads at the batch's nodes (all
    successors and the batch states) / at the batch states only. The learner evaluates them there once before
    the targets (:meth:`~humanpower.learn.networks.Phase2Network.prefetch`), so each target network computes
    the states new to its memo in one batch per step; the values are the same.
    """

    network: str
    target: TargetFn[Y]
    loss: LossFn[Y]
    at_nodes: tuple[str, ...] = ()
    at_states: tuple[str, ...] = ()


def _keys(ids: Tensor, tabular: bool) -> Tensor | None:
    """Table entry ids for the tabular backend's duplicate averaging (None: plain MSE)."""
    return ids if tabular else None


def _require(module: M | None, name: str) -> M:
    """``module``, which the config's variant needs (a clear error where the networks do not match the terms)."""
    if module is None:
        raise ValueError(f"loss term: the {name} network is not present (config {name}_use_network is false)")
    return module


# -- values the targets share: U_r', V_r' --------------------------------------------------------------------
class URValues(Protocol):
    """U_r'(s) at a batch of states, from the target networks."""

    @property
    def networks(self) -> tuple[str, ...]:
        """The target networks it reads."""
        ...

    def __call__(self, target_nets: Phase2Networks, nodes: StateBatch) -> Tensor: ...


@dataclass(frozen=True)
class URFromXH:
    """(8) computed from X_h': U_r = -(mean_h X_h'^-xi)^eta (the default)."""

    xi: float
    eta: float
    networks: ClassVar[tuple[str, ...]] = ("x_h",)

    def __call__(self, target_nets: Phase2Networks, nodes: StateBatch) -> Tensor:
        return T.u_r_from_x(target_nets.x_h.forward_all(nodes), self.xi, self.eta)


@dataclass(frozen=True)
class URFromNetwork:
    """U_r' from the U_r network: its output z read as y = y_min + exp(z), U_r = -y^eta."""

    eta: float
    y_min: float
    networks: ClassVar[tuple[str, ...]] = ("u_r",)

    def __call__(self, target_nets: Phase2Networks, nodes: StateBatch) -> Tensor:
        u_r = _require(target_nets.u_r, "u_r")
        return T.u_r_from_y(T.y_from_u_r_net_output(u_r(nodes), self.y_min), self.eta)


class VRValues(Protocol):
    """V_r'(s) (9) at a batch of non-terminal states, from the target networks."""

    @property
    def networks(self) -> tuple[str, ...]:
        """The target networks it reads."""
        ...

    def __call__(self, target_nets: Phase2Networks, nodes: StateBatch, beta_r: float) -> Tensor: ...


@dataclass(frozen=True)
class VRFromComponents:
    """(9) from its components: V_r = U_r' + pi_r' . Q_r' (the default)."""

    u_r: URValues

    @property
    def networks(self) -> tuple[str, ...]:
        return ("q_r", *self.u_r.networks)

    def __call__(self, target_nets: Phase2Networks, nodes: StateBatch, beta_r: float) -> Tensor:
        q = target_nets.q_r(nodes)
        return T.v_r_from(self.u_r(target_nets, nodes), T.robot_policy(q, beta_r), q)


@dataclass(frozen=True)
class VRFromNetwork:
    """V_r' from the V_r network."""

    networks: ClassVar[tuple[str, ...]] = ("v_r",)

    def __call__(self, target_nets: Phase2Networks, nodes: StateBatch, beta_r: float) -> Tensor:
        return _require(target_nets.v_r, "v_r")(nodes)


# -- (6) V_h^e -------------------------------------------------------------------------------------------------
def _v_h_e_queries(net: VHEModel, nodes: StateBatch, node_index: Tensor, goals: Tensor) -> Tensor:
    """V_h^e for every (row, human) pair: rows are ``node_index``, goals (R, H) per row; returns (R, H)."""
    r, h = goals.shape
    humans = torch.arange(h, device=goals.device).repeat(r)
    out: Tensor = net(nodes.select(node_index.repeat_interleave(h)), humans, goals.reshape(-1))
    return out.view(r, h)


def _all_goal_values(net: VHEModel, batch: StateBatch, num_humans: int) -> list[Tensor]:
    """V_h^e of every goal of each human at ``batch``: one ``(B, G_h)`` tensor per human position (the neural
    network evaluates its trunk once for all humans: :meth:`VHENetwork.forward_all_pairs`)."""
    if not isinstance(net, VHENetwork):
        return [net.forward_all_goals(batch, i) for i in range(num_humans)]
    table = net.forward_all_pairs(batch)
    bounds = np.cumsum([0, *net.num_goals]).tolist()
    return [table[:, bounds[i] : bounds[i + 1]] for i in range(num_humans)]


@dataclass(frozen=True)
class VHEDrawTarget:
    """(6) for each human's drawn goal, over the transition's drawn human actions: (B, H)."""

    gamma_h: float

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Tensor:
        batch = data.batch
        b, a = batch.size, batch.num_robot_actions
        edge_goals = batch.goals[batch.edge_row // a]
        v_next = _v_h_e_queries(target_nets.v_h_e, batch.nodes, batch.edge_node, edge_goals)
        terminal = batch.edge_terminal.unsqueeze(-1)  # broadcasts over humans
        edge_value = T.v_h_e_edge_value(batch.edge_achieved, terminal, v_next, self.gamma_h)
        per_action = T.expect_edges(edge_value, batch.edge_prob, batch.edge_row, b * a).view(b, a, -1)
        pi_r = T.robot_policy(target_nets.q_r(data.states), data.beta_r)
        return torch.bmm(pi_r.unsqueeze(1), per_action).squeeze(1)  # sum_a pi_r(a) per_action[a]


@dataclass(frozen=True)
class VHEDrawLoss:
    """V_h^e at each (state, human, drawn goal) against :class:`VHEDrawTarget`."""

    kind: str
    """"mse" or "bce" (see :func:`~humanpower.learn.losses.probability_loss`)."""
    tabular: bool

    def __call__(self, nets: Phase2Networks, data: StepData, target: Tensor) -> Tensor:
        batch = data.batch
        pred = _v_h_e_queries(nets.v_h_e, batch.nodes, batch.state_node, batch.goals)
        keys = None
        if self.tabular:  # one table entry per (state, human, goal)
            h = batch.goals.shape[1]
            g_max = int(batch.goals.max()) + 1
            humans = torch.arange(h, device=batch.goals.device)
            keys = ((data.states.ids.unsqueeze(1) * h + humans) * g_max + batch.goals).reshape(-1)
        return probability_loss(pred.reshape(-1), target.reshape(-1), keys, self.kind)


@dataclass(frozen=True)
class VHEAllGoalsTarget:
    """(6) for every goal of every human, exact over each human's actions (all-human-actions edges).

    Returns (B, sum_h G_h): the goals of human 0, then of human 1, ...
    """

    gamma_h: float

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Tensor:
        batch = data.batch
        if batch.humans is None:
            raise ValueError("v_h_e_all_goals: the batch carries no all-human-actions edges (actor option off)")
        b, a_r = batch.size, batch.num_robot_actions
        pi_r = T.robot_policy(target_nets.q_r(data.states), data.beta_r)  # (B, A_r)
        per_human = []
        v_all = _all_goal_values(target_nets.v_h_e, batch.nodes, len(batch.humans))
        for i, he in enumerate(batch.humans):
            g = int(he.policy.shape[1])
            v_next = v_all[i].index_select(0, he.edge_node)  # (E, G)
            terminal = he.edge_terminal.unsqueeze(-1)  # broadcasts over goals
            edge_value = T.v_h_e_edge_value(he.edge_achieved, terminal, v_next, self.gamma_h)
            rows = b * he.num_actions * a_r
            y = T.expect_edges(edge_value, he.edge_prob, he.edge_row, rows).view(b, he.num_actions, a_r, g)
            # sum_{a_h} pi_h(a_h | s, g) sum_{a_r} pi_r(a_r | s) y[a_h, a_r, g]: first over a_r, then over a_h
            over_r = torch.matmul(pi_r.view(b, 1, 1, a_r), y).squeeze(2)  # (B, A_h, G)
            per_human.append((he.policy * over_r.transpose(1, 2)).sum(dim=-1))
        return torch.cat(per_human, dim=1)


@dataclass(frozen=True)
class VHEAllGoalsLoss:
    """V_h^e at every (state, human, goal) against :class:`VHEAllGoalsTarget`."""

    num_humans: int
    kind: str
    tabular: bool

    def __call__(self, nets: Phase2Networks, data: StepData, target: Tensor) -> Tensor:
        net = nets.v_h_e
        pred = (
            net.forward_all_pairs(data.states)
            if isinstance(net, VHENetwork)
            else torch.cat([net.forward_all_goals(data.states, i) for i in range(self.num_humans)], dim=1)
        )
        keys = None
        if self.tabular:  # one table entry per (state, column)
            cols = torch.arange(pred.shape[1], device=pred.device)
            keys = (data.states.ids.unsqueeze(1) * pred.shape[1] + cols).reshape(-1)
        return probability_loss(pred.reshape(-1), target.reshape(-1), keys, self.kind)


# -- (7) X_h ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class XHSampledTarget:
    """(7) with ``samples`` fresh goals g_k ~ w/W per row and human: mean_k W_h V_h^e'(s, g_k)^zeta, (N, H)."""

    goal_probabilities: tuple[tuple[float, ...], ...]
    """Per human, the sampler's goal probabilities w(g) / W_h."""
    total_weights: tuple[float, ...]
    """Per human, W_h (the importance weight)."""
    samples: int
    zeta: float

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Tensor:
        x_states = data.x_states
        n, k = len(x_states), self.samples
        device = x_states.device
        rows = x_states.select(torch.arange(n, device=device).repeat_interleave(k))
        cols = []
        for i, (probs, weight) in enumerate(zip(self.goal_probabilities, self.total_weights, strict=True)):
            g = to_device(data.rng.choice(len(probs), size=n * k, p=probs), device)
            v = target_nets.v_h_e(rows, torch.full_like(g, i), g)
            cols.append(T.x_h_target(v.view(n, k), torch.full((n, k), weight, device=v.device), self.zeta))
        return torch.stack(cols, dim=-1)


@dataclass(frozen=True)
class XHAllGoalsTarget:
    """(7) exactly: sum_g w(g) V_h^e'(s, g)^zeta over every goal of each human, (N, H)."""

    goal_weights: tuple[tuple[float, ...], ...]
    """Per human, the goal weights w(g)."""
    zeta: float

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Tensor:
        x_states = data.x_states
        device = x_states.device
        v_all = _all_goal_values(target_nets.v_h_e, x_states, len(self.goal_weights))
        return torch.stack(
            [
                T.x_h_from_v(v, to_device(np.asarray(w, dtype=np.float32), device), self.zeta)
                for v, w in zip(v_all, self.goal_weights, strict=True)
            ],
            dim=-1,
        )


@dataclass(frozen=True)
class XHLoss:
    """X_h of every human at the X_h rows; the "bce" kind regresses X_h / W_h in (0, 1] by cross-entropy."""

    total_weights: tuple[float, ...]
    kind: str
    tabular: bool

    def __call__(self, nets: Phase2Networks, data: StepData, target: Tensor) -> Tensor:
        pred = nets.x_h.forward_all(data.x_states)
        if self.kind == "bce":
            w = to_device(np.asarray(self.total_weights), pred.device, pred.dtype)
            return probability_loss(pred / w, target / w, None, "bce")
        return regression_loss(pred, target, _keys(data.x_states.ids, self.tabular))


# -- (8) U_r (network only) ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class URTarget:
    """(8)'s y = mean_h X_h'(s)^-xi over every human, or over ``sample_size`` humans drawn without replacement."""

    xi: float
    sample_size: int | None
    """Humans per row (None: all; only set when below the number of humans)."""

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Tensor:
        x = target_nets.x_h.forward_all(data.states)
        if self.sample_size is not None:
            humans = to_device(data.rng.choice(x.shape[1], self.sample_size, replace=False), x.device)
            x = x.index_select(1, humans)
        return T.y_from_x(x, self.xi)


@dataclass(frozen=True)
class URLoss:
    """MSE on y (not on log y, not Huber) of the U_r network read as y = y_min + exp(z)."""

    y_min: float
    tabular: bool

    def __call__(self, nets: Phase2Networks, data: StepData, target: Tensor) -> Tensor:
        pred = T.y_from_u_r_net_output(_require(nets.u_r, "u_r")(data.states), self.y_min)
        return regression_loss(pred, target, _keys(data.states.ids, self.tabular))


# -- (4) Q_r ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QRDrawTarget:
    """(4) for every joint robot action over the transition's drawn human actions: (B, A_r)."""

    gamma_r: float
    terminal_v_r: float
    v_r: VRValues

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Tensor:
        batch = data.batch
        v_next = _v_r_at_nodes(self.v_r, target_nets, batch, data.beta_r, self.terminal_v_r)
        b, a = batch.size, batch.num_robot_actions
        return self.gamma_r * T.expect(v_next, batch.edge_node, batch.edge_prob, batch.edge_row, b * a).view(b, a)


@dataclass(frozen=True)
class QRMarginalTarget:
    """(4) exact over each human's goal-marginal action (all-human-actions edges), mean over humans: (B, A_r)."""

    gamma_r: float
    terminal_v_r: float
    v_r: VRValues

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Tensor:
        batch = data.batch
        if batch.humans is None:
            raise ValueError("v_h_e_all_goals: the batch carries no all-human-actions edges (actor option off)")
        v_next = _v_r_at_nodes(self.v_r, target_nets, batch, data.beta_r, self.terminal_v_r)
        b, a = batch.size, batch.num_robot_actions
        per_human = []
        for he in batch.humans:
            rows = b * he.num_actions * a
            ev = T.expect(v_next, he.edge_node, he.edge_prob, he.edge_row, rows).view(b, he.num_actions, a)
            per_human.append(torch.bmm(he.marginal.unsqueeze(1), ev).squeeze(1))  # sum_{a_h} pibar(a_h) ev[a_h]
        return self.gamma_r * torch.stack(per_human).mean(dim=0)


def _v_r_at_nodes(
    v_r: VRValues, target_nets: Phase2Networks, batch: Batch, beta_r: float, terminal_v_r: float
) -> Tensor:
    """V_r' at every node of the batch: the absolute constant ``terminal_v_r`` at the horizon."""
    v = v_r(target_nets, batch.nodes, beta_r)
    return torch.where(batch.node_terminal, torch.full_like(v, terminal_v_r), v)


@dataclass(frozen=True)
class QRLevelWeighted:
    """A Q_r target with the log loss's level weight (pi_r' . Q_r' / V_r')^2 from the target networks."""

    q_r: TargetFn[Tensor]
    u_r: URValues

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> tuple[Tensor, Tensor]:
        target = self.q_r(target_nets, data)
        q = target_nets.q_r(data.states)  # share of pi_r . Q_r in V_r(s): how much Q_r's level matters for V_r
        pq = (T.robot_policy(q, data.beta_r) * q).sum(dim=-1)
        share = pq / (self.u_r(target_nets, data.states) + pq)
        return target, share**2


@dataclass(frozen=True)
class QRLoss:
    """Q_r's squared error (the seed's default; duplicate-averaging for the tabular backend)."""

    tabular: bool

    def __call__(self, nets: Phase2Networks, data: StepData, target: Tensor) -> Tensor:
        return regression_loss(nets.q_r(data.states), target, _keys(data.states.ids, self.tabular))


@dataclass(frozen=True)
class QRLogLoss:
    """Q_r's :func:`~humanpower.learn.losses.log_policy_loss` at the nominal beta_r (neural backend)."""

    beta_r: float

    def __call__(self, nets: Phase2Networks, data: StepData, target: tuple[Tensor, Tensor]) -> Tensor:
        value, level_weight = target
        return log_policy_loss(nets.q_r(data.states), value, self.beta_r, level_weight)


# -- (9) V_r (network only) ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VRTarget:
    """(9) from its components at the batch states: U_r'(s) + pi_r'(s) . Q_r'(s)."""

    components: VRFromComponents

    def __call__(self, target_nets: Phase2Networks, data: StepData) -> Tensor:
        return self.components(target_nets, data.states, data.beta_r)


@dataclass(frozen=True)
class VRLoss:
    """The V_r network's squared error."""

    tabular: bool

    def __call__(self, nets: Phase2Networks, data: StepData, target: Tensor) -> Tensor:
        pred = _require(nets.v_r, "v_r")(data.states)
        return regression_loss(pred, target, _keys(data.states.ids, self.tabular))


# -- the builder -----------------------------------------------------------------------------------------------
def y_min(goal_sets: Sequence[GoalSet], xi: float) -> float:
    """Smallest possible y = mean_h X_h^(-xi) (every X_h at its maximum W_h); the U_r net predicts log(y - y_min)."""
    return T.y_min_from_weights([gs.total_weight for gs in goal_sets], xi)


def build_loss_terms(cfg: Phase2Config, goal_sets: Sequence[GoalSet]) -> tuple[LossTerm[Any], ...]:
    """Every loss term ``cfg`` trains, in the order (6), (7), (8), (4), (9); absent networks have no term.

    All variants are fixed here: the tabular backend (``cfg.networks``) uses duplicate-averaging squared errors
    and ignores ``q_r_loss`` / ``probability_loss``.
    """
    tabular = cfg.networks == "tabular"
    prob_kind = "mse" if tabular else cfg.probability_loss
    u_r: URValues = (
        URFromNetwork(cfg.eta, y_min(goal_sets, cfg.xi)) if cfg.u_r_use_network else URFromXH(cfg.xi, cfg.eta)
    )
    v_r: VRValues = VRFromNetwork() if cfg.v_r_use_network else VRFromComponents(u_r)
    terms: list[LossTerm[Any]] = []

    if cfg.v_h_e_all_goals:
        terms.append(
            LossTerm(
                "v_h_e",
                VHEAllGoalsTarget(cfg.gamma_h),
                VHEAllGoalsLoss(len(goal_sets), prob_kind, tabular),
                at_nodes=("v_h_e",),
                at_states=("q_r",),
            )
        )
    else:
        terms.append(
            LossTerm(
                "v_h_e",
                VHEDrawTarget(cfg.gamma_h),
                VHEDrawLoss(prob_kind, tabular),
                at_nodes=("v_h_e",),
                at_states=("q_r",),
            )
        )

    total_weights = tuple(float(gs.total_weight) for gs in goal_sets)
    x_h_target: TargetFn[Tensor] = (
        XHAllGoalsTarget(tuple(tuple(float(w) for w in gs.weights) for gs in goal_sets), cfg.zeta)
        if cfg.x_h_all_goals
        else XHSampledTarget(
            tuple(tuple(float(p) for p in gs.probabilities) for gs in goal_sets),
            total_weights,
            cfg.x_h_goal_samples,
            cfg.zeta,
        )
    )
    x_at_states = ("v_h_e",) if cfg.x_h_batch_size is None else ()  # the X_h rows are the batch states
    terms.append(LossTerm("x_h", x_h_target, XHLoss(total_weights, prob_kind, tabular), at_states=x_at_states))

    if cfg.u_r_use_network:
        size = cfg.u_r_human_sample_size
        sample = size if size is not None and size < len(goal_sets) else None
        terms.append(
            LossTerm("u_r", URTarget(cfg.xi, sample), URLoss(y_min(goal_sets, cfg.xi), tabular), at_states=("x_h",))
        )

    q_r_kind = QRMarginalTarget if cfg.v_h_e_all_goals else QRDrawTarget
    q_r_target = q_r_kind(cfg.gamma_r, cfg.terminal_v_r, v_r)
    if cfg.q_r_loss == "log" and not tabular:
        level = ("q_r", *u_r.networks)
        terms.append(
            LossTerm(
                "q_r", QRLevelWeighted(q_r_target, u_r), QRLogLoss(cfg.beta_r), at_nodes=v_r.networks, at_states=level
            )
        )
    else:
        terms.append(LossTerm("q_r", q_r_target, QRLoss(tabular), at_nodes=v_r.networks))

    if cfg.v_r_use_network:
        components = VRFromComponents(u_r)
        terms.append(LossTerm("v_r", VRTarget(components), VRLoss(tabular), at_states=components.networks))
    return tuple(terms)
