"""Exact evaluation of *any* robot policy on the state DAG: its values, state visit probabilities, goal reach.

:func:`evaluate_policy` runs the solver's own level loop (:func:`humanpower.exact.phase2.backward_induction`)
with pi_r held fixed instead of the power law (5): equations (4) and (6)-(9) then give Q_r, V_h^e, X_h, U_r and
V_r *of that policy*, with the solver's terminal and horizon handling. Evaluating the solver's pi_r reproduces
its solution.

:func:`visit_probabilities` propagates the episode distribution forward over the DAG, as episodes are
played: each human's goal is drawn once at s0 from its goal set (probabilities w(g) / W, humans independent)
and kept, the human follows pi_h(s, g_h), the robot fleet follows the given pi_r. The propagation carries one
column per joint goal combination, so it is exact (no per-state goal marginalisation); its cost grows with the
product of the goal-set sizes. :func:`goal_reach` is the undiscounted (6) of the policy.

A robot policy (:data:`RobotPolicySpec`) may be given as
- ``"uniform"``;
- any :class:`~humanpower.worlds.protocol.RobotPolicy` (``action_distributions(states) -> (n, A_r)``: a learned
  model, a Q_r policy, an :class:`~humanpower.exact.result.ExactSolution`; a solution of the same DAG is read as
  its pi_r table directly);
- an (N, A_r) table indexed by the DAG's state ids.
Every form is turned into one validated table by :func:`policy_table`.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

from humanpower.errors import UserError
from humanpower.exact.dag import StateDag, achieved_matrix, build_dag
from humanpower.exact.kernels import ProfileTables, level_chunks
from humanpower.exact.phase1 import ExactHumanPrior
from humanpower.exact.phase2 import TabulatedPrior, backward_induction, prior_table
from humanpower.exact.result import ExactSolution
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.humans.uniform import UniformPrior
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import RobotPolicy, WorldModel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

ROW_SUM_TOLERANCE = 1e-6
"""Largest |sum - 1| accepted for a row of a robot policy table."""
FORWARD_ELEMENTS = 1 << 24
"""Most float64 entries of the (state, joint goal) distribution held at once by the forward propagation."""


RobotPolicySpec: TypeAlias = Literal["uniform"] | RobotPolicy | FloatArray
"""Any robot policy :func:`policy_table` accepts (module docs)."""


def num_robot_actions(world: WorldModel) -> int:
    """A ** (number of robots): the size of the flat joint robot action space."""
    return int(world.num_actions ** len(world.robots))


def policy_table(dag: StateDag, num_actions_r: int, policy: RobotPolicySpec) -> FloatArray:
    """The (N, A_r) table of ``policy`` over the DAG's states (rows by state id).

    Rows of non-terminal states must be probability vectors (entries >= 0, sum 1 within
    :data:`ROW_SUM_TOLERANCE`); a table of the wrong shape, a solution of another DAG or a bad row raises
    :class:`UserError` naming the problem. Rows of terminal states are never used.
    """
    n = dag.num_states
    if isinstance(policy, str):
        if policy != "uniform":
            raise UserError(f"robot policy: unknown name {policy!r} (only 'uniform')")
        return np.full((n, num_actions_r), 1.0 / num_actions_r)
    if isinstance(policy, ExactSolution):
        if policy.num_states != n or (policy.dag is not dag and policy.states != dag.states):
            raise UserError(
                f"robot policy: the solution has {policy.num_states} states in another order than this DAG "
                f"({n} states); solve the same world on the same DAG"
            )
        table = np.asarray(policy.pi_r, dtype=np.float64)
    elif isinstance(policy, np.ndarray):
        table = np.asarray(policy, dtype=np.float64)
    elif isinstance(policy, RobotPolicy):
        live = np.flatnonzero(~dag.terminal)
        table = np.full((n, num_actions_r), 1.0 / num_actions_r)
        rows = np.asarray(policy.action_distributions([dag.states[i] for i in live]), dtype=np.float64)
        if rows.shape != (live.size, num_actions_r):
            raise UserError(
                f"robot policy: action_distributions() returned shape {rows.shape}, expected "
                f"{(live.size, num_actions_r)} (one row per state, one column per flat joint robot action)"
            )
        table[live] = rows
    else:
        raise UserError(f"robot policy: unsupported type {type(policy).__name__} (see RobotPolicySpec)")
    if table.shape != (n, num_actions_r):
        raise UserError(
            f"robot policy table: shape {table.shape}, expected ({n}, {num_actions_r}) (one row per reachable "
            f"state of the DAG, one column per flat joint robot action)"
        )
    live_rows = table[~dag.terminal]
    bad = ~(np.all(live_rows >= 0.0, axis=1) & (np.abs(live_rows.sum(axis=1) - 1.0) <= ROW_SUM_TOLERANCE))
    if np.any(bad):
        sid = int(np.flatnonzero(~dag.terminal)[np.argmax(bad)])
        raise UserError(
            f"robot policy: row of state {dag.states[sid]!r} is not a probability vector ({table[sid].tolist()})"
        )
    return table


def tabulated(world: WorldModel, dag: StateDag, prior: HumanPolicyPrior) -> HumanPolicyPrior:
    """``prior`` itself when it already is a table over ``dag`` (or uniform), else a :class:`TabulatedPrior`:
    call this once before evaluating several policies with a slow prior (e.g. the heuristic one)."""
    if isinstance(prior, ExactHumanPrior | TabulatedPrior) and prior.dag is dag:
        return prior
    if isinstance(prior, UniformPrior):
        return prior
    return TabulatedPrior(world, dag, prior)


def evaluate_policy(
    world: WorldModel,
    policy: RobotPolicySpec,
    prior: HumanPolicyPrior,
    params: TheoryParams = TheoryParams(),  # noqa: B008 - frozen dataclass, safe default
    dag: StateDag | None = None,
    name: str = "given",
) -> ExactSolution:
    """Q_r, V_h^e, X_h, U_r and V_r of the robot policy ``policy`` at every reachable state.

    Backward induction over ``dag`` (built when None) with equations (4) and (6)-(9), pi_r fixed to
    ``policy`` instead of (5); the humans follow ``prior`` exactly as in the solver. The result is an
    :class:`ExactSolution` whose ``pi_r`` is the given policy and whose ``robot_policy`` is ``name``.
    """
    if dag is None:
        dag = build_dag(world, progress=False)
    table = policy_table(dag, num_robot_actions(world), policy)
    return backward_induction(world, dag, prior, params, robot_policy=table, policy_name=name)


def _goal_columns(world: WorldModel) -> tuple[IntArray, FloatArray]:
    """Every joint goal combination: (C, H) goal indices and (C,) probabilities prod_h w(g_h) / W_h."""
    sizes = [len(world.goal_set(h)) for h in world.humans]
    combos = np.array(list(itertools.product(*(range(k) for k in sizes))), dtype=np.int64).reshape(-1, len(sizes))
    probs = np.ones(len(combos))
    for hi, h in enumerate(world.humans):
        probs = probs * world.goal_set(h).probabilities[combos[:, hi]]
    return combos, probs


def _propagate(
    world: WorldModel,
    dag: StateDag,
    prior: HumanPolicyPrior,
    table: FloatArray,
    combos: IntArray,
    start: FloatArray,
) -> FloatArray:
    """Forward propagation of the (state, joint goal) distribution from s0 for the goal columns ``combos``.

    ``start`` holds each column's probability at s0. Returns the visit probability of every state (summed over
    the columns).
    """
    humans = world.humans
    tables = ProfileTables.build(world.num_agents, world.num_actions, humans, world.robots)
    achieved = [achieved_matrix(world, dag, h) for h in humans]
    n, c = dag.num_states, len(combos)
    d = np.zeros((n, c))
    d[0] = start
    for level in range(dag.num_levels):
        for ids, r0, r1 in level_chunks(dag, level, dag.num_profiles * c * 3):
            w = d[ids][:, None, :] * table[ids][:, tables.robot_flat][:, :, None]  # (n, P, C)
            for hi, h in enumerate(humans):
                pi_h, _ = prior_table(world, dag, prior, ids, h, achieved[hi])  # (n, G_h, A)
                w *= pi_h.transpose(0, 2, 1)[:, tables.digits[:, h]][:, :, combos[:, hi]]
            row_w = _segment_sums(dag.row_of[ids].astype(np.int64).ravel() - r0, w.reshape(-1, c), r1 - r0)
            e0, e1 = int(dag.row_offsets[r0]), int(dag.row_offsets[r1])
            edge_row = np.repeat(np.arange(r1 - r0), np.diff(dag.row_offsets[r0 : r1 + 1]))
            succ = dag.succ[e0:e1].astype(np.int64)
            lo_s = int(succ.min())
            d[lo_s : int(succ.max()) + 1] += _segment_sums(
                succ - lo_s, row_w[edge_row] * dag.prob[e0:e1, None], int(succ.max()) + 1 - lo_s
            )
    out: FloatArray = d.sum(axis=1)
    return out


def _segment_sums(keys: IntArray, values: FloatArray, size: int) -> FloatArray:
    """(size, C) array whose row k is the sum of the ``values`` rows with key k (keys in [0, size))."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    out = np.zeros((size, values.shape[1]))
    out[sorted_keys[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out


def _blocks(dag: StateDag, num_columns: int) -> list[slice]:
    size = max(1, FORWARD_ELEMENTS // max(dag.num_states, 1))
    return [slice(a, min(a + size, num_columns)) for a in range(0, num_columns, size)]


def visit_probabilities(
    world: WorldModel, dag: StateDag, prior: HumanPolicyPrior, policy: RobotPolicySpec
) -> FloatArray:
    """(N,) probability that an episode visits each state, goals drawn at s0 and kept (module docs).

    The states of one step level are mutually exclusive, so each level's entries sum to the probability
    that the episode lasts that long (1 for every level of a fixed-horizon world).
    """
    table = policy_table(dag, num_robot_actions(world), policy)
    combos, probs = _goal_columns(world)
    out = np.zeros(dag.num_states)
    for block in _blocks(dag, len(combos)):
        out += _propagate(world, dag, prior, table, combos[block], probs[block])
    return out


def goal_reach(
    world: WorldModel,
    dag: StateDag,
    prior: HumanPolicyPrior,
    policy: RobotPolicySpec,
    params: TheoryParams = TheoryParams(),  # noqa: B008 - frozen dataclass, safe default
) -> FloatArray:
    """(H,) per human (``world.humans`` order): the probability that it reaches its goal by the horizon.

    Its goal is drawn at s0 with probability w(g) / W: sum_g w(g) / W * V_h^e(s0, g) of ``policy`` with
    gamma_h = 1, i.e. the undiscounted equation (6): the probability that the human stands in g at some step
    1..horizon, the other humans following their goal-marginal policies as in (6).
    """
    undiscounted = dataclasses.replace(params, gamma_h=1.0)
    values = evaluate_policy(world, policy, prior, undiscounted, dag, name="goal reach")
    return np.array([float(values.v_h_e[hi][0] @ world.goal_set(h).probabilities) for hi, h in enumerate(world.humans)])


def weighted_rmse(a: FloatArray, b: FloatArray, weights: FloatArray) -> float:
    """sqrt(sum_s w_s mean_a (a - b)^2 / sum_s w_s) over rows s (each row weighted, actions averaged)."""
    per_row = np.mean((a - b) ** 2, axis=1)
    return float(np.sqrt(np.sum(weights * per_row) / np.sum(weights)))


__all__ = [
    "RobotPolicySpec",
    "evaluate_policy",
    "goal_reach",
    "num_robot_actions",
    "policy_table",
    "tabulated",
    "visit_probabilities",
    "weighted_rmse",
]
