"""Phase 1: the human policy prior by backward induction over the state DAG, equations (1)-(3).

    (1) Q_h^m(s, g, a_h) = E_{a_-h ~ mu_-h(s, g)} min_{a_r} E_{s'} [U_h(s', g) + gamma_h V_h^m(s', g)]
    (2) pi_h(s, g) = nu_h pi_h^0(s, g) + (1 - nu_h) softmax(beta_h Q_h^m(s, g, .))
    (3) V_h^m(s, g) = E_{a_h ~ pi_h(s, g)} Q_h^m(s, g, a_h)

Conventions (EQUATIONS.md): the other humans are averaged *outside* the min over the robot fleet's joint
action; U_h pays 1 at a successor in g and the recursion stops there (the continuation of a successor in g is
0); at a state where g is achieved the human rests (pi_h puts probability 1 on ``still``, action 0). At a
terminal state Q_h^m = V_h^m = 0, so pi_h is the mix of pi_h^0 with the uniform softmax there (or ``still``).

Per level and per human, the work is vectorised: successor expectations for every distinct successor
distribution (DAG row) and every goal at once, gathered into (state, a_h, a_-h, a_r, goal) arrays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence

import numpy as np
from numpy.typing import NDArray

from humanpower.exact.dag import StateDag, achieved_matrix
from humanpower.exact.kernels import ProfileTables, level_chunks, row_expectation, softmax
from humanpower.goals import Goal
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import State, WorldModel

FloatArray = NDArray[np.float64]
DefaultPolicyFn = Callable[[State, int, Goal], FloatArray]
"""pi_h^0(state, human, goal) -> distribution over the human's actions."""
BeliefFn = Callable[[State, int, Goal, int], FloatArray]
"""mu(state, human, goal, other_human) -> belief about ``other_human``'s action (other humans independent)."""


class ExactHumanPrior:
    """The Phase 1 prior as lookup tables over the states of one DAG (implements ``HumanPolicyPrior``).

    Attributes:
        pi: per human (``world.humans`` order) an (N, G_h, A) array pi_h(s, g).
        v_m: per human an (N, G_h) array V_h^m(s, g).
        q_m: per human an (N, G_h, A) array Q_h^m, or None unless kept (``keep_q=True``).
        marginal: per human an (N, A) array sum_g w(g) pi_h(s, g) with normalised weights.
    Goals are in ``world.goal_set(h).goals`` order everywhere (also in :meth:`action_distributions`).
    ``human`` arguments are agent indices. States outside the DAG raise ``KeyError``.
    """

    name = "exact"

    def __init__(
        self,
        world: WorldModel,
        dag: StateDag,
        pi: list[FloatArray],
        v_m: list[FloatArray],
        q_m: list[FloatArray] | None = None,
        seconds: float = 0.0,
    ) -> None:
        self.world = world
        self.dag = dag
        self.pi = pi
        self.v_m = v_m
        self.q_m = q_m
        self.seconds = seconds
        self._ordinal = {h: i for i, h in enumerate(world.humans)}
        self.marginal = [
            np.einsum("nga,g->na", p, world.goal_set(h).probabilities) for h, p in zip(world.humans, pi, strict=True)
        ]

    def _lookup(self, state: Hashable, human: int) -> tuple[int, int]:
        sid = self.dag.index.get(state)
        if sid is None:
            raise KeyError(f"state {state!r} is not a reachable state of the solved world")
        hi = self._ordinal.get(human)
        if hi is None:
            raise KeyError(f"agent {human} is not a human of this world (humans: {self.world.humans})")
        return sid, hi

    def action_distribution(self, state: Hashable, human: int, goal: Goal) -> FloatArray:
        sid, hi = self._lookup(state, human)
        gi = self.world.goal_set(human).index(goal)
        out: FloatArray = self.pi[hi][sid, gi].copy()
        return out

    def marginal_distribution(self, state: Hashable, human: int) -> FloatArray:
        sid, hi = self._lookup(state, human)
        out: FloatArray = self.marginal[hi][sid].copy()
        return out

    def action_distributions(self, states: Sequence[Hashable], human: int) -> FloatArray:
        """pi_h(s, g) for many states (``BatchHumanPolicyPrior``): (N, G_h, A), goals in GoalSet order."""
        hi = self._ordinal.get(human)
        if hi is None:
            raise KeyError(f"agent {human} is not a human of this world (humans: {self.world.humans})")
        ids = np.fromiter((self._lookup(s, human)[0] for s in states), dtype=np.int64, count=len(states))
        out: FloatArray = self.pi[hi][ids]
        return out


def _default_table(
    fn: DefaultPolicyFn | None,
    dag: StateDag,
    ids: NDArray[np.int64],
    human: int,
    goals: tuple[Goal, ...],
    a: int,
) -> FloatArray:
    if fn is None:
        return np.full((len(ids), len(goals), a), 1.0 / a)
    out = np.empty((len(ids), len(goals), a))
    for k, i in enumerate(ids):
        s = dag.states[int(i)]
        for gi, g in enumerate(goals):
            out[k, gi] = fn(s, human, g)
    return out


def _belief_table(
    fn: BeliefFn,
    dag: StateDag,
    ids: NDArray[np.int64],
    human: int,
    others: list[int],
    goals: tuple[Goal, ...],
) -> FloatArray:
    """(n, G, A_other) joint belief over the other humans' actions (first other human least significant)."""
    rows = []
    for i in ids:
        s = dag.states[int(i)]
        per_goal = []
        for g in goals:
            joint = np.ones(1)
            for o in others:
                joint = np.outer(np.asarray(fn(s, human, g, o), dtype=np.float64), joint).ravel()
            per_goal.append(joint)
        rows.append(per_goal)
    return np.asarray(rows, dtype=np.float64)


def _policy(
    q: FloatArray, achieved: NDArray[np.bool_], pi0: FloatArray | None, beta_h: float, nu_h: float
) -> FloatArray:
    """Equation (2) with the resting rule: (n, G, A) policies from (n, G, A) Q values."""
    pi = softmax(beta_h * q)
    if pi0 is not None:
        pi = nu_h * pi0 + (1.0 - nu_h) * pi
    if achieved.any():
        pi[achieved] = 0.0
        pi[achieved, 0] = 1.0
    return pi


def solve_phase1(
    world: WorldModel,
    dag: StateDag,
    params: TheoryParams = TheoryParams(),  # noqa: B008 - frozen dataclass, safe default
    default_policy: DefaultPolicyFn | None = None,
    beliefs: BeliefFn | None = None,
    keep_q: bool = False,
) -> ExactHumanPrior:
    """Equations (1)-(3) for every human, goal and reachable state (uses beta_h, gamma_h, nu_h of ``params``).

    ``default_policy`` is pi_h^0 (default uniform); ``beliefs`` is mu_-h (default uniform over each other
    human's actions, humans independent).
    """
    t0 = time.perf_counter()
    a = world.num_actions
    tables = ProfileTables.build(world.num_agents, a, world.humans, world.robots)
    a_r = tables.num_robot_actions
    a_o = a ** (len(world.humans) - 1)
    n = dag.num_states
    beta_h, gamma_h, nu_h = params.beta_h, params.gamma_h, params.nu_h
    pis: list[FloatArray] = []
    vs: list[FloatArray] = []
    qs: list[FloatArray] = []
    for h in world.humans:
        goals = world.goal_set(h).goals
        g_count = len(goals)
        others = [o for o in world.humans if o != h]
        achieved = achieved_matrix(world, dag, h)
        v = np.zeros((n, g_count))
        pi = np.empty((n, g_count, a))
        q_all = np.zeros((n, g_count, a)) if keep_q else None
        cont = np.zeros((n, g_count))  # U_h(s, g) + gamma_h V_h^m(s, g) (1 - U_h(s, g)): the successor payoff
        split = tables.split_human(h)
        for level in range(dag.num_levels - 1, -1, -1):
            start, stop = dag.level(level)
            term = np.arange(start, stop)[dag.terminal[start:stop]]
            if term.size:
                pi0 = _default_table(default_policy, dag, term, h, goals, a) if nu_h > 0 else None
                pi[term] = _policy(np.zeros((term.size, g_count, a)), achieved[term], pi0, beta_h, nu_h)
                cont[term] = achieved[term]
            for ids, r0, r1 in level_chunks(dag, level, dag.num_profiles * g_count * 2):
                row_ev = row_expectation(dag, r0, r1, cont)  # (rows, G)
                prof = row_ev[dag.row_of[ids][:, split] - r0]  # (n, A, A_o * A_r, G)
                worst = prof.reshape(len(ids), a, a_o, a_r, g_count).min(axis=3)  # min over the fleet
                if beliefs is None:
                    q = worst.mean(axis=2)
                else:
                    mu = _belief_table(beliefs, dag, ids, h, others, goals)
                    q = np.einsum("ngo,naog->nag", mu, worst)
                q = np.ascontiguousarray(q.transpose(0, 2, 1))  # (n, G, A)
                pi0 = _default_table(default_policy, dag, ids, h, goals, a) if nu_h > 0 else None
                p = _policy(q, achieved[ids], pi0, beta_h, nu_h)
                pi[ids] = p
                v[ids] = (p * q).sum(axis=-1)
                cont[ids] = np.where(achieved[ids], 1.0, gamma_h * v[ids])
                if q_all is not None:
                    q_all[ids] = q
        pis.append(pi)
        vs.append(v)
        if q_all is not None:
            qs.append(q_all)
    return ExactHumanPrior(world, dag, pis, vs, qs if keep_q else None, time.perf_counter() - t0)
