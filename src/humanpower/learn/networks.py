"""The Phase 2 networks Q_r, V_h^e, X_h, U_r, V_r (neural backend), their container and factory.

Every network takes a :class:`~humanpower.learn.encoding.StateBatch` (feature rows + interned state ids) and
index tensors; humans are addressed by their *position* in ``world.humans`` and goals by their index in that
human's :class:`~humanpower.goals.GoalSet`. Outputs go through the shared mappings of
:mod:`humanpower.learn.heads`:

==========  =====================================================  ===========================
network     call                                                   output
==========  =====================================================  ===========================
Q_r         ``q_r(batch)``                                         (B, A) ``-softplus`` < 0
V_h^e       ``v_h_e(batch, human_pos (B,), goal_idx (B,))``        (B,) sigmoid in [0, 1]
            ``v_h_e.forward_all_goals(batch, human_pos: int)``     (B, G_h)
            ``v_h_e.forward_all_pairs(batch)``                     (B, sum_h G_h)
X_h         ``x_h(batch, human_pos (B,))``                         (B,) ``W_h * sigmoid`` in (0, W_h]
            ``x_h.forward_all(batch)``                             (B, H)
U_r         ``u_r(batch)``                                         (B,) raw z (= log(y - y_min))
V_r         ``v_r(batch)``                                         (B,) ``-softplus`` < 0
==========  =====================================================  ===========================

Architecture (:class:`Phase2Network`): each network owns its own state trunk, an MLP of
``num_hidden_layers`` x (Linear - ReLU - Dropout), evaluated once per *distinct* state of the batch
(``StateBatch.dedup``) and gathered back to the rows ("batched computation with shared state encoder"). No
module or parameter is shared between two networks (checked by :class:`Phase2Networks`), so the trainer builds
one optimizer per network and target copies are independent. V_h^e combines the state code with a learned
embedding of (goal features, human one-hot): ``out(Dropout(ReLU(P_s h(s) + P_g e(g, h))))``; the state part is
computed once per distinct state and the goal part once per queried (human, goal), so all-goals evaluation
costs one add + ReLU + dot per pair.

Speed (:mod:`humanpower.learn.layers`): dropout is :class:`~humanpower.learn.layers.FastDropout` (the same
distribution, a cheaper CPU mask); a frozen copy (target network) can remember its per-state values by state
id (:meth:`Phase2Network.enable_state_memo`; for V_h^e the values of every goal), so between two target
updates each distinct state is evaluated once and later queries are lookups. Outputs never change.

The tabular backend (:mod:`humanpower.learn.tabular`) has the same interface; :func:`build_networks` builds
either from a config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from humanpower.errors import CheckpointError, ConfigError
from humanpower.learn.encoding import StateBatch
from humanpower.learn.goal_tables import NetworkWorld, goal_feature_tables, tables_by_position
from humanpower.learn.layers import DEFAULT_MEMO_CAPACITY, DEFAULT_MEMO_REFILL
from humanpower.learn.network_modules import (
    Phase2Network,
    QRNetwork,
    URNetwork,
    VHENetwork,
    VRNetwork,
    XHNetwork,
    mlp_trunk,
)
from humanpower.learn.tabular import TabularQR, TabularUR, TabularVHE, TabularVR, TabularXH

DEFAULT_TABULAR_MAX_STATES = 1 << 16


QRModel = QRNetwork | TabularQR
VHEModel = VHENetwork | TabularVHE
XHModel = XHNetwork | TabularXH
URModel = URNetwork | TabularUR
VRModel = VRNetwork | TabularVR


@dataclass
class Phase2Networks:
    """The main networks of one learner; ``u_r`` / ``v_r`` are None when computed directly (the defaults).

    Each network is its own parameter set (checked at construction): build one optimizer per entry of
    :meth:`parameter_groups`.
    """

    q_r: QRModel
    v_h_e: VHEModel
    x_h: XHModel
    u_r: URModel | None = None
    v_r: VRModel | None = None

    def __post_init__(self) -> None:
        owner: dict[int, str] = {}
        for name, module in self.named().items():
            for p in module.parameters():
                if id(p) in owner:
                    raise ValueError(f"Phase2Networks: a parameter is shared by {owner[id(p)]} and {name}")
                owner[id(p)] = name

    def named(self) -> dict[str, nn.Module]:
        """Present networks by name (``q_r``, ``v_h_e``, ``x_h``, then ``u_r``, ``v_r`` when used)."""
        out: dict[str, nn.Module] = {}
        for f in fields(self):
            module = getattr(self, f.name)
            if module is not None:
                out[f.name] = module
        return out

    def __iter__(self) -> Iterator[tuple[str, nn.Module]]:
        return iter(self.named().items())

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per present network (disjoint), for one optimizer each."""
        return {name: list(m.parameters()) for name, m in self.named().items()}

    def to(self, device: torch.device | str) -> Phase2Networks:
        for m in self.named().values():
            m.to(device)
        return self

    def train(self, mode: bool = True) -> Phase2Networks:
        for m in self.named().values():
            m.train(mode)
        return self

    def eval(self) -> Phase2Networks:
        return self.train(False)

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: module.state_dict()}`` for the present networks."""
        return {name: m.state_dict() for name, m in self.named().items()}

    def load_state_dict(self, d: Mapping[str, Mapping[str, Any]]) -> None:
        """Inverse of :meth:`state_dict`; CheckpointError when the set of networks or a shape differs."""
        present = set(self.named())
        if set(d) != present:
            raise CheckpointError(
                f"networks in checkpoint {sorted(d)} do not match the configured networks {sorted(present)}"
            )
        for name, m in self.named().items():
            try:
                m.load_state_dict(d[name])
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0]
                raise CheckpointError(f"network {name}: checkpoint does not fit ({first})") from None


def enable_state_memos(
    modules: Iterable[nn.Module],
    capacity: int = DEFAULT_MEMO_CAPACITY,
    features_of: Callable[[torch.Tensor], StateBatch] | None = None,
    refill: int = DEFAULT_MEMO_REFILL,
) -> None:
    """Enable the per-state memo (:meth:`Phase2Network.enable_state_memo`) on every neural network given.

    For frozen copies such as target networks; tabular modules are table lookups already and are skipped.
    """
    for m in modules:
        if isinstance(m, Phase2Network):
            m.enable_state_memo(capacity, features_of, refill)


def build_networks(
    world: NetworkWorld,
    cfg: Any,
    state_dim: int,
    goal_features: Mapping[int, NDArray[np.float32]] | Sequence[NDArray[np.float32]],
    backend: str | None = None,
    *,
    max_states: int = DEFAULT_TABULAR_MAX_STATES,
    seed: int | None = None,
) -> Phase2Networks:
    """All main networks of a learner for ``world``, on ``cfg.device``.

    Args:
        world: the world model (humans, goal sets, robot action count).
        cfg: a ``Phase2Config``; reads ``hidden_dim``, ``num_hidden_layers``, ``dropout``,
            ``u_r_use_network``, ``v_r_use_network``, ``device``, ``zeta`` (initial X_h level), ``networks``
            (when ``backend`` is None) and ``seed`` (when ``seed`` is None).
        state_dim: the state encoder's feature dimension.
        goal_features: per human, its goal feature table ``(G_h, d)`` in GoalSet index order: a sequence in
            ``world.humans`` order or a mapping keyed by human position or by agent index (see
            :func:`goal_feature_tables`). Unused by the tabular backend (only G_h matters there).
        backend: ``"neural"`` or ``"tabular"``.
        max_states: rows of the tabular tables (ignored by the neural backend).
        seed: parameter-initialisation seed; torch's global RNG is left untouched.

    Initial outputs: V_h^e = 0.5, X_h = W_h * 0.5^zeta (consistent with V_h^e = 0.5), Q_r = V_r = -1,
    U_r z = 0.
    """
    backend = cfg.networks if backend is None else backend
    if backend not in ("neural", "tabular"):
        raise ConfigError(f"networks: must be 'neural' or 'tabular', got {backend!r}")
    tables = tables_by_position(world, goal_features)
    goal_sets = [world.goal_set(h) for h in world.humans]
    total_weights = [gs.total_weight for gs in goal_sets]
    x_init = float(np.clip(0.5 ** float(cfg.zeta), 1e-6, 1 - 1e-6))
    n_actions = int(world.num_actions ** len(world.robots))  # the joint robot action space
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.seed if seed is None else seed))
        if backend == "neural":
            dims = (int(cfg.hidden_dim), int(cfg.num_hidden_layers), float(cfg.dropout))
            sd = int(state_dim)
            nets = Phase2Networks(
                q_r=QRNetwork(sd, n_actions, *dims),
                v_h_e=VHENetwork(sd, tables, *dims),
                x_h=XHNetwork(sd, total_weights, *dims, init_fraction=x_init),
                u_r=URNetwork(sd, *dims) if cfg.u_r_use_network else None,
                v_r=VRNetwork(sd, *dims) if cfg.v_r_use_network else None,
            )
        else:
            nets = Phase2Networks(
                q_r=TabularQR(n_actions, max_states),
                v_h_e=TabularVHE([len(gs) for gs in goal_sets], max_states),
                x_h=TabularXH(total_weights, max_states, init_fraction=x_init),
                u_r=TabularUR(max_states) if cfg.u_r_use_network else None,
                v_r=TabularVR(max_states) if cfg.v_r_use_network else None,
            )
    return nets.to(torch.device(cfg.device))


__all__ = [
    "DEFAULT_TABULAR_MAX_STATES",
    "NetworkWorld",
    "Phase2Network",
    "Phase2Networks",
    "QRModel",
    "QRNetwork",
    "URModel",
    "URNetwork",
    "VHEModel",
    "VHENetwork",
    "VRModel",
    "VRNetwork",
    "XHModel",
    "XHNetwork",
    "build_networks",
    "enable_state_memos",
    "goal_feature_tables",
    "mlp_trunk",
]
