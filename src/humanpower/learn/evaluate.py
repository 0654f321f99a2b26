"""The trained model as a value oracle and policy, and its comparison with the exact solver.

:class:`LearnedModel` evaluates the networks in eval mode (no dropout) at any states: Q_r, the power-law policy
at the nominal beta_r (no exploration), V_h^e, X_h, U_r and V_r by the same formulas the learner trains with.
:func:`compare_with_exact` measures it against an exact solution over the reachable non-terminal states;
:func:`policy_quality` measures the learned *policy* itself: its exact values (V_r(s0), human power, goal
reach) by :func:`humanpower.exact.evaluate_policy`, against the exact and the uniform robot, and pi_r errors
weighted by the exact policy's state visit probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from humanpower.errors import UserError
from humanpower.exact import ExactSolution, evaluate_policy, goal_reach, visit_probabilities
from humanpower.exact.evaluate import RobotPolicySpec, num_robot_actions, policy_table, tabulated, weighted_rmse
from humanpower.goals import GoalSet
from humanpower.learn import targets as T
from humanpower.learn.checkpoint import POLICY_KIND, load_torch, save_torch
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import Featurizer, GoalEncoder, StateEncoder
from humanpower.learn.networks import Phase2Networks, build_networks
from humanpower.learn.policy import QPolicy
from humanpower.learn.tabular import TabularTable
from humanpower.learn.terms import y_min
from humanpower.worlds.protocol import State, WorldModel

if TYPE_CHECKING:
    from humanpower.learn.learner import Learner

EVAL_CHUNK = 4096
DISCRIMINATION_THRESHOLD = 0.01
"""A world discriminates between robot policies when the uniform robot's exact V_r(s0) differs from the exact
solution's by more than this fraction of |V_r*(s0)|; otherwise any policy looks as good as the best one."""


class LearnedModel:
    """Trained networks with their featurizer and config; evaluates values and acts."""

    def __init__(self, nets: Phase2Networks, featurizer: Featurizer, cfg: Phase2Config, world: WorldModel) -> None:
        self.nets = nets
        self.featurizer = featurizer
        self.cfg = cfg
        self.world = world
        self.goal_sets: list[GoalSet] = [world.goal_set(h) for h in world.humans]

    @classmethod
    def from_learner(cls, learner: Learner, world: WorldModel) -> LearnedModel:
        return cls(learner.nets, learner.featurizer, learner.cfg, world)

    # -- evaluation -----------------------------------------------------------------------------------------
    def evaluate(self, states: Sequence[State], with_v_h_e: bool = False) -> dict[str, np.ndarray]:
        """Values at ``states``: q_r (N, A), pi_r (N, A), x_h (N, H), u_r (N,), v_r (N,) [, v_h_e: list of (N, G_h)]."""
        out: dict[str, list[np.ndarray]] = {}
        modules = self.nets.named()
        was = {name: m.training for name, m in modules.items()}
        for m in modules.values():
            m.eval()
        cfg = self.cfg
        try:
            with torch.no_grad():
                for start in range(0, len(states), EVAL_CHUNK):
                    batch = self.featurizer.batch(list(states[start : start + EVAL_CHUNK]))
                    q = self.nets.q_r(batch)
                    pi = T.robot_policy(q, cfg.beta_r)
                    x = self.nets.x_h.forward_all(batch)
                    if self.nets.u_r is not None:
                        u = T.u_r_from_y(
                            T.y_from_u_r_net_output(self.nets.u_r(batch), y_min(self.goal_sets, cfg.xi)),
                            cfg.eta,
                        )
                    else:
                        u = T.u_r_from_x(x, cfg.xi, cfg.eta)
                    v = self.nets.v_r(batch) if self.nets.v_r is not None else T.v_r_from(u, pi, q)
                    for key, val in (("q_r", q), ("pi_r", pi), ("x_h", x), ("u_r", u), ("v_r", v)):
                        out.setdefault(key, []).append(val.double().cpu().numpy())
                    if with_v_h_e:
                        n = batch.features.shape[0]
                        for i, gs in enumerate(self.goal_sets):
                            g = len(gs)
                            rows = torch.arange(n, device=batch.features.device).repeat_interleave(g)
                            goals = torch.arange(g, device=rows.device).repeat(n)
                            humans = torch.full_like(goals, i)
                            vals = self.nets.v_h_e(batch.select(rows), humans, goals).view(n, g)
                            out.setdefault(f"v_h_e_{i}", []).append(vals.double().cpu().numpy())
        finally:
            for name, m in modules.items():
                m.train(was[name])
        return {k: np.concatenate(v) for k, v in out.items()}

    def action_distributions(self, states: Sequence[State]) -> np.ndarray:
        """pi_r at ``states``, (N, A_r): the power law at the nominal beta_r, no exploration (a
        :class:`~humanpower.worlds.protocol.RobotPolicy`; equals ``evaluate(states)["pi_r"]`` to float32
        precision, at the cost of Q_r alone)."""
        return QPolicy(self.nets.q_r, self.featurizer.batch, -1, self.cfg.beta_r).action_distributions(states)

    # -- persistence ----------------------------------------------------------------------------------------
    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "kind": POLICY_KIND,
            "config": self.cfg.to_dict(),
            "nets": {name: m.state_dict() for name, m in self.nets.named().items()},
            "featurizer": self.featurizer.state_dict(),
        }

    def save(self, path: Path) -> None:
        save_torch(path, self.to_checkpoint())

    @classmethod
    def load(
        cls, path: Path, world: WorldModel, state_encoder: StateEncoder, goal_encoders: Sequence[GoalEncoder]
    ) -> LearnedModel:
        """Rebuild the networks for ``world`` and load the saved weights (CheckpointError if they do not fit)."""
        return cls.from_policy(load_torch(path), path, world, state_encoder, goal_encoders)

    @classmethod
    def from_policy(
        cls,
        ckpt: dict[str, Any],
        path: Path,
        world: WorldModel,
        state_encoder: StateEncoder,
        goal_encoders: Sequence[GoalEncoder],
    ) -> LearnedModel:
        """:meth:`load` from policy-file contents already read from ``path`` (named in errors)."""
        from humanpower.errors import CheckpointError

        if ckpt.get("kind") != POLICY_KIND:
            raise CheckpointError(f"{path}: not a humanpower policy file")
        cfg = Phase2Config(**ckpt["config"])
        featurizer = Featurizer(state_encoder, torch.device("cpu"))
        goal_features = {
            i: enc.encode(list(world.goal_set(h).goals))
            for i, (h, enc) in enumerate(zip(world.humans, goal_encoders, strict=True))
        }
        try:
            max_states = int(ckpt["nets"]["q_r"]["table"].shape[0]) if cfg.networks == "tabular" else 1
            nets = build_networks(world, cfg, state_encoder.dim, goal_features, cfg.networks, max_states=max_states)
            featurizer.load_state_dict(ckpt["featurizer"])
            for name, m in nets.named().items():
                m.load_state_dict(ckpt["nets"][name])
                if isinstance(m, TabularTable):
                    m.answers_unseen = True  # this model never trains: a state beyond the table was never seen
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: weights do not fit this world/config ({exc})") from exc
        return cls(nets, featurizer, cfg.replace(device="cpu"), world)


def compare_with_exact(model: LearnedModel, solution: Any) -> dict[str, float]:
    """Learned vs exact over the reachable non-terminal states of the exact solution.

    ``pi_r_rmse`` is the root mean square of pi_r differences over all (state, joint robot action) entries;
    ``argmax_agreement`` the share of states whose learned most likely action is also a most likely exact action
    (exact ties within 1e-9 count as agreement); ``V_r_rel_error`` = |V_r(s0) - V_r*(s0)| / |V_r*(s0)|;
    ``x_h_mae`` / ``v_h_e_mae`` mean absolute errors (V_h^e over every state, human and goal).
    """
    mask = ~np.asarray(solution.terminal, dtype=bool)
    ids = np.flatnonzero(mask)
    states = [solution.states[i] for i in ids]
    learned = model.evaluate(states, with_v_h_e=True)
    pi_exact = np.asarray(solution.pi_r)[ids]
    pi = learned["pi_r"]
    s0 = solution.state_id(model.world.initial_state())
    v0 = float(model.evaluate([model.world.initial_state()])["v_r"][0])
    v0_exact = float(np.asarray(solution.v_r)[s0])
    v_h_e_err = [
        np.abs(learned[f"v_h_e_{i}"] - np.asarray(solution.v_h_e[i])[ids]).mean() for i in range(len(model.goal_sets))
    ]
    return {
        "V_r_s0": v0,
        "V_r_s0_exact": v0_exact,
        "V_r_rel_error": abs(v0 - v0_exact) / abs(v0_exact),
        "pi_r_rmse": float(np.sqrt(np.mean((pi - pi_exact) ** 2))),
        "argmax_agreement": float(np.mean(_agreement(pi, pi_exact))),
        "x_h_mae": float(np.abs(learned["x_h"] - np.asarray(solution.x_h)[ids]).mean()),
        "v_h_e_mae": float(np.mean(v_h_e_err)),
        "states_compared": float(len(ids)),
    }


def uniform_policy_rmse(solution: Any) -> float:
    """pi_r RMSE of the uniform robot policy against the exact one (the baseline a learner must beat)."""
    mask = ~np.asarray(solution.terminal, dtype=bool)
    pi_exact = np.asarray(solution.pi_r)[mask]
    return float(np.sqrt(np.mean((pi_exact - 1.0 / pi_exact.shape[1]) ** 2)))


def _agreement(pi: np.ndarray, pi_exact: np.ndarray) -> np.ndarray:
    """Per state: 1 where the most likely action of ``pi`` is a most likely exact action (ties within 1e-9)."""
    chosen = pi_exact[np.arange(len(pi)), pi.argmax(axis=1)]
    return (chosen >= pi_exact.max(axis=1) - 1e-9).astype(np.float64)


def policy_quality(
    policy: RobotPolicySpec, solution: ExactSolution, world: WorldModel, visits: np.ndarray | None = None
) -> dict[str, Any]:
    """The exact quality of the robot policy ``policy`` (e.g. a :class:`LearnedModel`) on ``solution``'s DAG.

    Keys: ``V_r_s0_policy`` / ``_exact`` / ``_uniform`` (exact V_r(s0) of the policy, the solver's pi_r and the
    uniform robot); ``policy_gap_closed`` = (V_policy - V_uniform) / (V_exact - V_uniform) (1 for the exact
    policy, 0 for the uniform one); ``W_h_s0_policy`` / ``_exact`` (per human, bits: log2 X_h(s0) under each
    robot); ``goal_reach_policy`` / ``_exact`` (per human, :func:`humanpower.exact.goal_reach`);
    ``pi_r_rmse_on_policy``, ``argmax_agreement_on_policy`` and ``uniform_pi_r_rmse_on_policy`` (non-terminal
    states weighted by their visit probability under the exact policy); ``uniform_pi_r_rmse`` (all states
    equally); ``discriminates`` (see :data:`DISCRIMINATION_THRESHOLD`). ``visits``: the exact policy's state visit
    probabilities when the caller has them already (:func:`humanpower.exact.visit_probabilities`), else computed.
    """
    dag, prior = solution.dag, solution.prior
    if dag is None or prior is None:
        raise UserError("policy quality: the exact solution has no state DAG or prior (was it loaded from a file?)")
    params = solution.params
    prior = tabulated(world, dag, prior)  # one pass over a slow prior instead of one per evaluation
    s0 = solution.state_id(world.initial_state())
    table = policy_table(dag, num_robot_actions(world), policy)  # evaluates a learned model once
    learned = evaluate_policy(world, table, prior, params, dag, name="policy")
    uniform = evaluate_policy(world, "uniform", prior, params, dag, name="uniform")
    v_pol, v_ex, v_uni = float(learned.v_r[s0]), float(solution.v_r[s0]), float(uniform.v_r[s0])
    live = np.flatnonzero(~solution.terminal)
    weights = (visit_probabilities(world, dag, prior, solution) if visits is None else visits)[live]
    pi, pi_ex = learned.pi_r[live], solution.pi_r[live]
    uni = np.full_like(pi_ex, 1.0 / pi_ex.shape[1])
    gap = v_ex - v_uni
    return {
        "V_r_s0_policy": v_pol,
        "V_r_s0_exact": v_ex,
        "V_r_s0_uniform": v_uni,
        "policy_gap_closed": (v_pol - v_uni) / gap if gap != 0.0 else float("nan"),
        "discriminates": bool(abs(gap) > DISCRIMINATION_THRESHOLD * abs(v_ex)),
        "W_h_s0_policy": np.log2(learned.x_h[s0]).tolist(),
        "W_h_s0_exact": np.log2(solution.x_h[s0]).tolist(),
        "goal_reach_policy": goal_reach(world, dag, prior, table, params).tolist(),
        "goal_reach_exact": goal_reach(world, dag, prior, solution, params).tolist(),
        "pi_r_rmse_on_policy": weighted_rmse(pi, pi_ex, weights),
        "argmax_agreement_on_policy": float(np.sum(weights * _agreement(pi, pi_ex)) / np.sum(weights)),
        "uniform_pi_r_rmse": uniform_policy_rmse(solution),
        "uniform_pi_r_rmse_on_policy": weighted_rmse(uni, pi_ex, weights),
    }
