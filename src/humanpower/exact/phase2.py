"""Phase 2: robot policy and human power by backward induction over the state DAG, equations (4)-(9).

    (4) Q_r(s, a_r)   = E_g E_{a_H ~ pi_H(s, g)} E_{s'} [gamma_r V_r(s')]
    (5) pi_r(s)(a_r)  proportional to (-Q_r(s, a_r))^(-beta_r)
    (6) V_h^e(s, g_h) = E_{g_-h} E_{a_H ~ pi_H(s, g)} E_{a_r ~ pi_r(s)} E_{s'} [U_h(s', g_h)
                                                                              + gamma_h V_h^e(s', g_h)]
    (7) X_h(s)        = sum_g w(g) V_h^e(s, g)^zeta
    (8) U_r(s)        = -( mean_h X_h(s)^(-xi) )^eta
    (9) V_r(s)        = U_r(s) + E_{a_r ~ pi_r(s)} Q_r(s, a_r)

Levels are processed last to first (successors first), all states of a level at once (in memory-bounded
chunks):
- humans act independently; in (4) every human follows its goal-marginal policy sum_g w(g) pi_h(s, g) with
  normalised weights (the exact expectation over goals); in (6) human h follows pi_h(s, g_h) and the others
  their marginals;
- U_h pays 1 at a successor in g_h and nothing after (the continuation of a successor in g_h is 0); a
  transition into the horizon still pays for a goal it reaches;
- terminal states: V_h^e = 0, X_h = 0, V_r = params.terminal_v_r (absolute), Q_r = U_r = NaN (undefined),
  pi_r uniform;
- (5), (7), (8), (9) are the shared functions of :mod:`humanpower.equations`.
A non-terminal state where some human has X_h = 0 raises :class:`UserError` naming the human and the state.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

import numpy as np
from numpy.typing import NDArray

from humanpower.equations import power_law_policy, u_r_from_x, v_r_from, x_h_from_v
from humanpower.errors import UserError
from humanpower.exact.dag import StateDag, achieved_matrix
from humanpower.exact.kernels import ProfileTables, level_chunks, row_expectation
from humanpower.exact.phase1 import ExactHumanPrior
from humanpower.exact.result import POWER_LAW, ExactSolution
from humanpower.goals import Goal
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.humans.uniform import UniformPrior
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import WorldModel

FloatArray = NDArray[np.float64]


def prior_table(
    world: WorldModel,
    dag: StateDag,
    prior: HumanPolicyPrior,
    ids: NDArray[np.int64],
    human: int,
    achieved: NDArray[np.bool_],
) -> tuple[FloatArray, FloatArray]:
    """pi_h(s, g) as an (n, G_h, A) array and the goal-marginal (n, A) for the states ``ids``.

    The exact prior or a :class:`TabulatedPrior` of the same DAG and the uniform prior are read without
    per-state calls; any other prior is asked once per (state, goal). The marginal is sum_g w(g) pi_h(s, g)
    with normalised weights.
    """
    goal_set = world.goal_set(human)
    probs = goal_set.probabilities
    a = world.num_actions
    if isinstance(prior, ExactHumanPrior | TabulatedPrior) and prior.dag is dag:
        hi = world.humans.index(human)
        return prior.pi[hi][ids], prior.marginal[hi][ids]
    if isinstance(prior, UniformPrior):
        pi = np.full((len(ids), len(goal_set), a), 1.0 / a)
        ach = achieved[ids]
        pi[ach] = 0.0
        pi[ach, 0] = 1.0
    else:
        goals: tuple[Goal, ...] = goal_set.goals
        pi = np.empty((len(ids), len(goals), a))
        for k, i in enumerate(ids):
            s = dag.states[int(i)]
            for gi, g in enumerate(goals):
                pi[k, gi] = prior.action_distribution(s, human, g)
    return pi, np.einsum("nga,g->na", pi, probs)


class TabulatedPrior:
    """Any human prior tabulated over every state of one DAG (implements ``HumanPolicyPrior``).

    Asks ``prior`` once per (state, goal); afterwards :func:`prior_table` reads the tables, so repeated
    evaluations on the same DAG (e.g. several robot policies) pay for a slow prior only once.
    Attributes ``pi`` (per human (N, G_h, A)) and ``marginal`` (per human (N, A)) as in ``ExactHumanPrior``.
    """

    def __init__(self, world: WorldModel, dag: StateDag, prior: HumanPolicyPrior) -> None:
        self.world = world
        self.dag = dag
        self.name = f"tabulated {type(prior).__name__}"
        ids = np.arange(dag.num_states, dtype=np.int64)
        tables = [prior_table(world, dag, prior, ids, h, achieved_matrix(world, dag, h)) for h in world.humans]
        self.pi = [t[0] for t in tables]
        self.marginal = [t[1] for t in tables]

    def _ids(self, state: Hashable, human: int) -> tuple[int, int]:
        sid = self.dag.index.get(state)
        if sid is None:
            raise KeyError(f"state {state!r} is not a reachable state of the tabulated world")
        return sid, self.world.humans.index(human)

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> FloatArray:
        sid, hi = self._ids(state, human)
        out: FloatArray = self.pi[hi][sid, self.world.goal_set(human).index(goal)].copy()
        return out

    def marginal_distribution(self, state: Hashable, human: int) -> FloatArray:
        sid, hi = self._ids(state, human)
        out: FloatArray = self.marginal[hi][sid].copy()
        return out


def solve_phase2(
    world: WorldModel,
    dag: StateDag,
    prior: HumanPolicyPrior,
    params: TheoryParams = TheoryParams(),  # noqa: B008 - frozen dataclass, safe default
    prior_name: str | None = None,
) -> ExactSolution:
    """Equations (4)-(9) at every reachable state of ``dag`` (see the module docs)."""
    return backward_induction(world, dag, prior, params, prior_name=prior_name)


def backward_induction(
    world: WorldModel,
    dag: StateDag,
    prior: HumanPolicyPrior,
    params: TheoryParams,
    robot_policy: FloatArray | None = None,
    prior_name: str | None = None,
    policy_name: str = POWER_LAW,
) -> ExactSolution:
    """The level loop shared by the solver and the policy evaluator.

    With ``robot_policy`` None, pi_r is the power law (5) of the Q_r just computed (the solver). Otherwise it
    is the given (N, A_r) table (rows indexed by state id, read at non-terminal states only): equations (4) and
    (6)-(9) then give the values *of that policy* (:func:`humanpower.exact.evaluate.evaluate_policy`).
    """
    t0 = time.perf_counter()
    humans = world.humans
    a = world.num_actions
    tables = ProfileTables.build(world.num_agents, a, humans, world.robots)
    a_r = tables.num_robot_actions
    onehot = tables.robot_onehot()
    n = dag.num_states
    n_h = len(humans)
    goal_sets = [world.goal_set(h) for h in humans]
    weights = [gs.weights for gs in goal_sets]
    achieved = [achieved_matrix(world, dag, h) for h in humans]
    splits = [tables.split_human(h) for h in humans]
    max_goals = max(len(gs) for gs in goal_sets)

    q_r = np.full((n, a_r), np.nan)
    pi_r = np.full((n, a_r), 1.0 / a_r)
    if robot_policy is not None and robot_policy.shape != (n, a_r):
        raise ValueError(f"robot policy table: shape {robot_policy.shape}, expected {(n, a_r)}")
    v_r = np.zeros(n)
    u_r = np.full(n, np.nan)
    x_h = np.zeros((n, n_h))
    v_e = [np.zeros((n, len(gs))) for gs in goal_sets]
    cont = [np.zeros((n, len(gs))) for gs in goal_sets]  # U_h(s, g) + gamma_h V_h^e(s, g) (1 - U_h(s, g))
    gamma_r, gamma_h = params.gamma_r, params.gamma_h

    for level in range(dag.num_levels - 1, -1, -1):
        start, stop = dag.level(level)
        term = np.arange(start, stop)[dag.terminal[start:stop]]
        if term.size:
            v_r[term] = params.terminal_v_r
            for hi in range(n_h):
                cont[hi][term] = achieved[hi][term]
        for ids, r0, r1 in level_chunks(dag, level, dag.num_profiles * (max_goals + 2) * 2):
            local_rows = dag.row_of[ids].astype(np.int64) - r0  # (n, P)
            pis, margs = [], []
            for h in humans:
                pi_h, marg_h = prior_table(world, dag, prior, ids, h, achieved[humans.index(h)])
                pis.append(pi_h)
                margs.append(marg_h)
            # per-profile probability factor of each human's marginal action
            factors = [margs[hi][:, tables.digits[:, h]] for hi, h in enumerate(humans)]  # each (n, P)
            w_all = np.prod(factors, axis=0) if n_h > 1 else factors[0]
            ev_r = row_expectation(dag, r0, r1, v_r)[local_rows]  # (n, P)
            q = gamma_r * ((w_all * ev_r) @ onehot)  # (4)
            p_r = power_law_policy(q, params.beta_r) if robot_policy is None else robot_policy[ids]  # (5)
            q_r[ids] = q
            pi_r[ids] = p_r
            robot_factor = p_r[:, tables.robot_flat]  # (n, P)
            for hi in range(n_h):
                w = robot_factor.copy()
                for ho in range(n_h):
                    if ho != hi:
                        w *= factors[ho]
                split = splits[hi]
                row_ev = row_expectation(dag, r0, r1, cont[hi])  # (rows, G)
                ev = row_ev[local_rows[:, split]]  # (n, A, P / A, G)
                y = np.matmul(w[:, split][:, :, None, :], ev)[:, :, 0, :]  # (n, A, G)
                v = np.einsum("nga,nag->ng", pis[hi], y)  # (6)
                v_e[hi][ids] = v
                cont[hi][ids] = np.where(achieved[hi][ids], 1.0, gamma_h * v)
                x_h[ids, hi] = x_h_from_v(v, weights[hi], params.zeta)  # (7)
            x = x_h[ids]
            if not np.all(x > 0):
                k, hi = np.argwhere(~(x > 0))[0]
                sid = int(ids[k])
                raise UserError(
                    f"human {humans[hi]} has X_h = 0 at the non-terminal state {dag.states[sid]!r} (step "
                    f"{world.step_count(dag.states[sid])}): none of its goals can be reached from there; the "
                    f"goal set should cover every place this human can be"
                )
            u = u_r_from_x(x, params.xi, params.eta)  # (8)
            u_r[ids] = u
            v_r[ids] = v_r_from(u, p_r, q)  # (9)

    return ExactSolution(
        states=dag.states,
        index=dag.index,
        terminal=dag.terminal.copy(),
        level_offsets=dag.level_offsets.copy(),
        humans=tuple(humans),
        robots=tuple(world.robots),
        num_actions=a,
        goal_names=[[str(g) for g in gs.goals] for gs in goal_sets],
        goal_weights=[np.asarray(w, dtype=np.float64) for w in weights],
        q_r=q_r,
        pi_r=pi_r,
        v_r=v_r,
        u_r=u_r,
        x_h=x_h,
        v_h_e=v_e,
        params=params,
        human_prior=prior_name or type(prior).__name__,
        timings={"phase2": time.perf_counter() - t0},
        prior=prior,
        dag=dag,
        robot_policy=policy_name,
    )
