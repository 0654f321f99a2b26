"""The learner's targets against the exact solver, and the actor / batch inputs they are built from.

The central checks: with the tabular tables holding the *exact* solution, every target of (4), (6), (7) equals
the exact value (the exact solution is a fixed point of the learner's updates). For the all-human-actions mode
(``v_h_e_all_goals``) this holds transition by transition; for the default single target draw it holds in
expectation over the draw, which is computed here by enumerating every (goal, human action) draw.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import pytest
import torch

from humanpower.exact import solve
from humanpower.learn.actor import Actor, ActorOptions, ExplorationParams
from humanpower.learn.batch import TransitionCompiler, assemble_batch
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import Featurizer, OneHotGoalEncoder, OneHotStateEncoder
from humanpower.learn.learner import target_view
from humanpower.learn.losses import log_policy_loss, regression_loss
from humanpower.learn.networks import Phase2Networks, build_networks
from humanpower.learn.replay import Transition
from humanpower.learn.target_nets import TargetNetwork
from humanpower.learn.terms import StepData, build_loss_terms, y_min
from humanpower.params import TheoryParams
from humanpower.worlds.protocol import compose_joint_action, num_robot_actions
from humanpower.worlds.tabular import NodeGoal, TabularWorld, random_tabular_world


# -- the loss functions ---------------------------------------------------------------------------------------
def test_duplicate_averaging_moves_each_entry_to_its_mean_target() -> None:
    table = torch.nn.Parameter(torch.tensor([0.2, 0.8]))
    keys = torch.tensor([0, 0, 1])
    pred = table[keys]
    target = torch.tensor([0.5, 0.9, 0.0])
    regression_loss(pred, target, keys).backward()
    with torch.no_grad():
        table -= 1.0 * table.grad  # one SGD step with lr 1
    # entry 0 <- mean(0.5, 0.9) = 0.7; entry 1 <- 0.0
    assert torch.allclose(table, torch.tensor([0.7, 0.0]))


def test_log_policy_loss_hand_computed_and_scale_invariant() -> None:
    pred = torch.tensor([[-1.0, -2.0]])
    target = torch.tensor([[-2.0, -2.0]])
    # e = (log 1/2, 0): level term (log(1/2) / 2)^2, policy term beta^2 * mean((+-log(1/2) / 2)^2)
    half = (np.log(0.5) / 2) ** 2
    assert float(log_policy_loss(pred, target, 10.0)) == pytest.approx(half + 100 * half, rel=1e-5)
    assert float(log_policy_loss(7e-10 * pred, 7e-10 * target, 10.0)) == pytest.approx(101 * half, rel=1e-4)
    # a common factor on every action of a state is only a level error: the policy term vanishes
    assert float(log_policy_loss(2 * target, target, 10.0)) == pytest.approx(np.log(2) ** 2, rel=1e-5)
    # the level weight scales the level term only
    weight = torch.tensor([0.25])
    assert float(log_policy_loss(2 * target, target, 10.0, weight)) == pytest.approx(0.25 * np.log(2) ** 2, rel=1e-5)
    assert float(log_policy_loss(pred, target, 10.0, weight)) == pytest.approx(0.25 * half + 100 * half, rel=1e-5)


# -- a small stochastic world with the exact solution in the tables -------------------------------------------
PARAMS = TheoryParams(beta_r=5.0, gamma_r=0.9, gamma_h=0.9, zeta=2.0, xi=1.0, eta=1.1, beta_h=3.0)


@pytest.fixture(scope="module")
def setting() -> tuple[TabularWorld, object, Phase2Config]:
    world = random_tabular_world(
        seed=5,
        num_nodes=5,
        num_humans=1,
        num_robots=2,
        num_actions=2,
        max_steps=3,
        stochastic_fraction=0.6,
        weighted_goals=True,
    )
    sol = solve(world, PARAMS, human_prior="exact")
    cfg = Phase2Config(networks="tabular", **PARAMS.to_dict())
    return world, sol, cfg


def _exact_tables(world: TabularWorld, sol: object, cfg: Phase2Config) -> tuple[Featurizer, Phase2Networks]:
    """Tabular networks holding the exact solution, state ids = solution ids."""
    s: object = sol
    states = s.states  # type: ignore[attr-defined]
    featurizer = Featurizer(OneHotStateEncoder(world, states), "cpu")
    assert list(featurizer.intern(states)) == list(range(len(states)))
    goals = [OneHotGoalEncoder(world.goal_set(h).goals) for h in world.humans]
    feats = [enc.encode(list(world.goal_set(h).goals)) for h, enc in zip(world.humans, goals, strict=True)]
    with_all = cfg.replace(u_r_use_network=True, v_r_use_network=True)
    nets = build_networks(world, with_all, featurizer.dim, feats, "tabular", max_states=len(states))
    terminal = torch.as_tensor(s.terminal)  # type: ignore[attr-defined]
    assert nets.u_r is not None and nets.v_r is not None
    with torch.no_grad():
        q = torch.as_tensor(s.q_r, dtype=torch.float32)  # type: ignore[attr-defined]
        nets.q_r.table.copy_(torch.where(terminal.unsqueeze(1), torch.full_like(q, -1.0), q))
        nets.x_h.table.copy_(torch.as_tensor(s.x_h, dtype=torch.float32))  # type: ignore[attr-defined]
        v = torch.cat([torch.as_tensor(x, dtype=torch.float32) for x in s.v_h_e], dim=1)  # type: ignore[attr-defined]
        nets.v_h_e.table.copy_(v)
        # U_r network: z = log(y - y_min), y = (-U_r)^(1 / eta); V_r network: V_r (terminal rows are never read)
        y = np.where(s.terminal, 2.0, (-np.nan_to_num(s.u_r, nan=-1.0)) ** (1.0 / cfg.eta))  # type: ignore[attr-defined]
        z = np.log(np.maximum(y - y_min([world.goal_set(h) for h in world.humans], cfg.xi), 1e-30))
        nets.u_r.table.copy_(torch.as_tensor(z, dtype=torch.float32).unsqueeze(1))
        v_r = np.where(s.terminal, -1.0, s.v_r)  # type: ignore[attr-defined]
        nets.v_r.table.copy_(torch.as_tensor(v_r, dtype=torch.float32).unsqueeze(1))
    return featurizer, nets


def _actor_transition(world: TabularWorld, prior: object, state: object, options: ActorOptions) -> Transition:
    actor = Actor(world, prior, goal_resample_prob=0.0, steps_per_episode=10, seed=1, options=options)  # type: ignore[arg-type]
    actor.begin_episode()
    actor.state = state
    return actor.step(None, ExplorationParams(beta_r=0.0, epsilon=0.0), 0)


def _targets(
    batch_items: list, world: TabularWorld, featurizer: Featurizer, nets: Phase2Networks, cfg: Phase2Config
) -> dict[str, torch.Tensor]:
    """Run every loss term of ``cfg`` and recover each table's per-entry mean target as ``entry - gradient``."""
    batch = assemble_batch(batch_items, featurizer, num_robot_actions(world), torch.device("cpu"))
    tgt = target_view({name: TargetNetwork(m, 1) for name, m in nets.named().items()})
    for m in nets.named().values():
        m.zero_grad(set_to_none=True)
    data = StepData.of(batch, batch.states(), cfg.beta_r, np.random.default_rng(0))
    out = {}
    for term in build_loss_terms(cfg, [world.goal_set(h) for h in world.humans]):
        with torch.no_grad():
            target = term.target(tgt, data)
        term.loss(nets, data, target).backward()
        module = nets.named()[term.network]
        out[term.network] = (module.table - module.table.grad).detach()  # type: ignore[operator]
    return out


def test_exact_solution_is_a_fixed_point_of_the_all_goals_targets(setting) -> None:  # type: ignore[no-untyped-def]
    world, sol, cfg = setting
    featurizer, nets = _exact_tables(world, sol, cfg)
    compiler = TransitionCompiler(world, featurizer)
    ids = np.flatnonzero(~sol.terminal)
    items = [
        compiler(_actor_transition(world, sol.prior, sol.states[i], ActorOptions(all_human_actions=True))) for i in ids
    ]
    p = cfg.replace(x_h_all_goals=True, v_h_e_all_goals=True)
    got = _targets(items, world, featurizer, nets, p)
    assert torch.allclose(got["v_h_e"][ids], torch.as_tensor(sol.v_h_e[0][ids], dtype=torch.float32), atol=1e-5)
    assert torch.allclose(got["q_r"][ids], torch.as_tensor(sol.q_r[ids], dtype=torch.float32), rtol=1e-4)
    assert torch.allclose(got["x_h"][ids], torch.as_tensor(sol.x_h[ids], dtype=torch.float32), rtol=1e-4)
    # and the check can fail: a wrong successor value moves the targets of its predecessors
    with torch.no_grad():
        nets.v_h_e.table[int(ids[-1])] += 0.3
    moved = _targets(items, world, featurizer, nets, p)
    assert not torch.allclose(moved["v_h_e"][ids], torch.as_tensor(sol.v_h_e[0][ids], dtype=torch.float32), atol=1e-3)


# -- every target at the exact solution's fixed point, in expectation over the target draw -----------------------
# With the target networks holding the exact solution, the expectation over a transition's target draw (fresh
# goals g ~ w/W and actions a ~ pi_h(s, g) for every human) of every target equals the exact value of its left-hand
# side. The draw is enumerated: one batch row per (state, goals, actions) with its probability. Targets that are
# deterministic given the target networks (one human with all-human-actions edges, X_h over all goals, U_r over all
# humans, V_r) must match on every row. Sampled targets (X_h goals, U_r humans) are enumerated through FixedDraws.
WORLDS = {
    "one human, two robots": dict(num_humans=1, num_robots=2, seed=5, goals_per_human=3),
    "two humans": dict(num_humans=2, num_robots=1, seed=11, goals_per_human=2),
}
TERM_CONFIGS = {  # together they build every target variant of build_loss_terms
    "seed defaults": dict(x_h_goal_samples=2),
    "all goals, log loss": dict(v_h_e_all_goals=True, x_h_all_goals=True, q_r_loss="log"),
    "U_r and V_r networks": dict(u_r_use_network=True, v_r_use_network=True),
    "U_r network, log loss": dict(u_r_use_network=True, q_r_loss="log", v_h_e_all_goals=True),
}


class FixedDraws:
    """Stands in for the learner's generator: ``choice`` returns the prepared draws, one array per call."""

    def __init__(self, draws: list[int]) -> None:
        self.draws = list(draws)

    def choice(self, n: int, size: int, p: object = None, replace: bool = True) -> np.ndarray:
        return np.full(size, self.draws.pop(0), dtype=np.int64)


class FixedPoint:
    """A world, its exact solution, target networks holding it and the enumerated target-draw batch."""

    def __init__(self, world: TabularWorld) -> None:
        self.world = world
        self.sol = solve(world, PARAMS, human_prior="exact")
        self.cfg = Phase2Config(**PARAMS.to_dict())
        self.featurizer, self.nets = _exact_tables(world, self.sol, self.cfg)
        self.goal_sets = [world.goal_set(h) for h in world.humans]
        compiler = TransitionCompiler(world, self.featurizer)
        items, sid, goals, prob = [], [], [], []
        for i in np.flatnonzero(~self.sol.terminal):
            state = self.sol.states[i]
            per_human = [
                [(g, a, w * pa) for g, w in enumerate(gs.probabilities) for a, pa in enumerate(self._pi(state, h, g))]
                for h, gs in zip(world.humans, self.goal_sets, strict=True)
            ]
            for draw in itertools.product(*per_human):
                g_draw, a_draw = tuple(d[0] for d in draw), tuple(d[1] for d in draw)
                items.append(compiler(self._transition(state, g_draw, a_draw)))
                sid.append(i)
                goals.append(g_draw)
                prob.append(float(np.prod([d[2] for d in draw])))
        self.batch = assemble_batch(items, self.featurizer, num_robot_actions(world), torch.device("cpu"))
        self.sid = torch.as_tensor(sid)
        self.goals = torch.as_tensor(goals)
        self.prob = torch.as_tensor(prob, dtype=torch.float64)
        self.rows = np.flatnonzero(~self.sol.terminal)

    def _pi(self, state: object, h: int, g: int) -> np.ndarray:
        return np.asarray(self.sol.prior.action_distribution(state, h, self.world.goal_set(h).goals[g]))

    def _transition(self, state: object, goals: tuple[int, ...], actions: tuple[int, ...]) -> Transition:
        """What the actor records for this target draw, with the all-human-actions edges."""
        world = self.world

        def successors(acts: tuple[int, ...]) -> tuple:
            return tuple(
                tuple(world.transition_probabilities(state, compose_joint_action(world, acts, r)))
                for r in range(num_robot_actions(world))
            )

        succ = successors(actions)
        return Transition(
            state, goals, actions, robot_action=0, next_state=succ[0][0][1], successors=succ, total_steps=0,
            policy_version=-1, beta_r=0.0, episode_step=0,
            human_successors=tuple(
                tuple(successors((*actions[:i], a, *actions[i + 1 :])) for a in range(world.num_actions))
                for i in range(len(world.humans))
            ),
            human_policies=tuple(
                tuple(tuple(self._pi(state, h, g)) for g in range(len(gs)))
                for h, gs in zip(world.humans, self.goal_sets, strict=True)
            ),
        )  # fmt: skip

    def target(self, cfg: Phase2Config, network: str, rng: object = None) -> Any:
        """The target of ``network``'s term of ``cfg`` on the enumerated batch, the exact tables as target nets."""
        data = StepData.of(self.batch, self.batch.states(), cfg.beta_r, rng or np.random.default_rng(0))
        (term,) = [t for t in build_loss_terms(cfg, self.goal_sets) if t.network == network]
        return term.target(self.nets, data)

    def expect(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per solution state, the probability-weighted mean of ``values`` over its rows (where ``mask``)."""
        w = self.prob if mask is None else self.prob * mask
        w = w.reshape(-1, *([1] * (values.dim() - 1)))
        n = len(self.sol.states)
        num = torch.zeros((n, *values.shape[1:]), dtype=torch.float64).index_add_(0, self.sid, w * values.double())
        den = torch.zeros((n, *([1] * (values.dim() - 1))), dtype=torch.float64).index_add_(0, self.sid, w)
        return (num / den)[self.rows]

    def exact(self, values: np.ndarray) -> torch.Tensor:
        """The exact values at the non-terminal states (the rows of :meth:`expect`)."""
        return torch.as_tensor(np.asarray(values)[self.rows], dtype=torch.float64)

    def at_rows(self, values: np.ndarray) -> torch.Tensor:
        """The exact values of each batch row's state."""
        return torch.as_tensor(np.asarray(values), dtype=torch.float64)[self.sid]

    @property
    def y(self) -> np.ndarray:
        """(8)'s y = (-U_r)^(1/eta) per state (NaN at terminal states)."""
        return (-self.sol.u_r) ** (1.0 / self.cfg.eta)


@pytest.fixture(scope="module", params=list(WORLDS))
def fixed_point(request) -> FixedPoint:  # type: ignore[no-untyped-def]
    kwargs = WORLDS[request.param]
    world = random_tabular_world(
        num_nodes=5, num_actions=2, max_steps=3, stochastic_fraction=0.6, weighted_goals=True, **kwargs
    )
    return FixedPoint(world)


def close(got: torch.Tensor, want: torch.Tensor, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def test_v_h_e_targets_are_exact_in_expectation(fixed_point: FixedPoint) -> None:
    fp = fixed_point
    draw = fp.target(fp.cfg, "v_h_e")  # (R, H), for each human's drawn goal
    for h, gs in enumerate(fp.goal_sets):
        for g in range(len(gs)):
            got = fp.expect(draw[:, h], fp.goals[:, h] == g)  # E[target | g_h = g]
            close(got, fp.exact(fp.sol.v_h_e[h][:, g]), f"(6) draw, human {h}, goal {g}", atol=2e-6)
    every = fp.target(fp.cfg.replace(v_h_e_all_goals=True), "v_h_e")  # (R, sum_h G_h)
    exact = np.concatenate(fp.sol.v_h_e, axis=1)
    close(fp.expect(every), fp.exact(exact), "(6) all goals", atol=2e-6)
    if len(fp.goal_sets) == 1:  # exact on every row, not only in expectation
        close(every, fp.at_rows(exact), "(6) all goals, every row", atol=2e-6)


def test_x_h_targets_are_exact(fixed_point: FixedPoint) -> None:
    fp = fixed_point
    close(fp.target(fp.cfg.replace(x_h_all_goals=True), "x_h"), fp.at_rows(fp.sol.x_h), "(7) all goals, every row")
    cfg = fp.cfg.replace(x_h_goal_samples=3)
    for h, gs in enumerate(fp.goal_sets):  # enumerate human h's sampled goal (the same for every row and sample)
        total = torch.zeros(len(fp.sid), dtype=torch.float64)
        for g, p in enumerate(gs.probabilities):
            draws = [g if i == h else 0 for i in range(len(fp.goal_sets))]
            total += p * fp.target(cfg, "x_h", FixedDraws(draws))[:, h].double()
        close(total, fp.at_rows(fp.sol.x_h[:, h]), f"(7) sampled goals, human {h}, E over the draw")


def test_u_r_target_is_exact(fixed_point: FixedPoint) -> None:
    fp = fixed_point
    cfg = fp.cfg.replace(u_r_use_network=True)
    close(fp.target(cfg, "u_r"), fp.at_rows(fp.y), "(8) y, every row")
    humans = len(fp.goal_sets)
    if humans > 1:  # one sampled human per row: unbiased, E over the draw = the mean over humans
        sampled = cfg.replace(u_r_human_sample_size=1)
        mean = sum(fp.target(sampled, "u_r", FixedDraws([h])).double() for h in range(humans)) / humans
        close(mean, fp.at_rows(fp.y), "(8) y, sampled humans, E over the draw")


@pytest.mark.parametrize("switches", list(TERM_CONFIGS))
def test_q_r_and_v_r_targets_are_exact(fixed_point: FixedPoint, switches: str) -> None:
    """(4) through V_r' computed, from the U_r network or from the V_r network; (9); the log loss's weight."""
    fp = fixed_point
    cfg = fp.cfg.replace(**TERM_CONFIGS[switches])
    q = fp.target(cfg, "q_r")
    if isinstance(q, tuple):  # the log loss: (target, level weight (pi_r . Q_r / V_r)^2 = ((V_r - U_r) / V_r)^2)
        q, weight = q
        close(weight, fp.at_rows(((fp.sol.v_r - fp.sol.u_r) / fp.sol.v_r) ** 2), "log-loss level weight")
    close(fp.expect(q), fp.exact(fp.sol.q_r), f"(4) {switches}, E over the draw")
    if len(fp.goal_sets) == 1 and cfg.v_h_e_all_goals:  # exact on every row
        close(q, fp.at_rows(fp.sol.q_r), f"(4) {switches}, every row")
    if cfg.v_r_use_network:
        close(fp.target(cfg, "v_r"), fp.at_rows(fp.sol.v_r), "(9), every row")


def test_the_fixed_point_checks_can_fail(fixed_point: FixedPoint) -> None:
    """A wrong successor value moves the expectation of the targets of its predecessors."""
    fp = copy.deepcopy(fixed_point)
    later = int(fp.sol.level_offsets[1])  # a state one step in: some state has it as a successor
    with torch.no_grad():
        fp.nets.v_h_e.table[later:] *= 0.5
        fp.nets.q_r.table[later:] *= 2.0
    cfg = fp.cfg.replace(v_h_e_all_goals=True)
    v_h_e = fp.expect(fp.target(cfg, "v_h_e"))
    assert not torch.allclose(v_h_e, fp.exact(np.concatenate(fp.sol.v_h_e, axis=1)), atol=1e-3)
    assert not torch.allclose(fp.expect(fp.target(cfg, "q_r")), fp.exact(fp.sol.q_r), rtol=1e-3)


# -- batch compilation ----------------------------------------------------------------------------------------
def test_terminal_flags_are_right_beyond_the_first_id_block() -> None:
    """Regression: growing the flag arrays must not copy old flags into new ids (np.resize repeats them)."""
    n = 1100
    world = TabularWorld(
        n,
        lambda node, joint: [(1.0, node)],
        humans=[0],
        robots=[1],
        num_actions=1,
        max_steps=2,
        goals={0: [NodeGoal("all", frozenset(range(n)))]},
    )
    order = [(0, k) for k in range(n)]
    order[5], order[1029] = (1, 5), (2, 5)  # id 5 non-terminal, id 1029 terminal
    order.append((0, 5))
    featurizer = Featurizer(OneHotStateEncoder(world, order), "cpu")
    featurizer.intern(order)
    compiler = TransitionCompiler(world, featurizer)

    def transition(state: tuple[int, int]) -> Transition:
        succ = (tuple(world.transition_probabilities(state, (0, 0))),)
        return Transition(state, (0,), (0,), 0, succ[0][0][1], succ, 0, -1, 0.0, 0)

    assert not compiler(transition((0, 5))).edge_terminal[0]  # successor (1, 5), id 5
    assert compiler(transition((1, 5))).edge_terminal[0]  # successor (2, 5), id 1029


# -- the actor ------------------------------------------------------------------------------------------------
def test_all_human_actions_successors_and_policies(setting) -> None:  # type: ignore[no-untyped-def]
    world, sol, _ = setting
    h = world.humans[0]
    t = _actor_transition(world, sol.prior, sol.states[3], ActorOptions(all_human_actions=True))
    assert t.human_successors is not None and t.human_policies is not None
    assert t.human_successors[0][t.human_actions[0]] is t.successors
    for a, per_robot in enumerate(t.human_successors[0]):
        for r, dist in enumerate(per_robot):
            assert list(dist) == world.transition_probabilities(sol.states[3], compose_joint_action(world, (a,), r))
    gs = world.goal_set(h)
    for g, goal in enumerate(gs.goals):
        np.testing.assert_allclose(t.human_policies[0][g], sol.prior.action_distribution(sol.states[3], h, goal))


def test_exploring_episodes_cover_every_state_and_keep_their_length(setting) -> None:  # type: ignore[no-untyped-def]
    world, sol, _ = setting
    actor = Actor(
        world,
        sol.prior,
        goal_resample_prob=0.01,
        steps_per_episode=3,
        seed=2,  # type: ignore[arg-type]
        options=ActorOptions(exploring_starts_prob=1.0),
    )
    visited: dict[object, int] = {}
    for _ in range(60):
        actor.begin_episode()
        n = 0
        while not actor.episode_done:
            t = actor.step(None, ExplorationParams(0.0, 0.0), 0)
            assert not world.is_terminal(t.state)
            visited[t.state] = visited.get(t.state, 0) + 1
            n += 1
        assert n == 3
    nonterminal = {sol.states[i] for i in np.flatnonzero(~sol.terminal)}
    assert actor.pool_size == len(nonterminal)
    assert set(visited) == nonterminal  # least-visited starts reach every state
    assert min(visited.values()) >= 0.25 * 180 / len(nonterminal)


def test_actor_state_dict_continues_exactly(setting) -> None:  # type: ignore[no-untyped-def]
    world, sol, _ = setting
    opts = ActorOptions(all_human_actions=True, exploring_starts_prob=0.5)

    def run(actor: Actor, steps: int) -> list[tuple[object, object, int]]:
        out = []
        for _ in range(steps):
            if actor.episode_done:
                actor.begin_episode()
            t = actor.step(None, ExplorationParams(0.0, 0.0), 0)
            out.append((t.state, t.next_state, t.robot_action))
        return out

    a = Actor(world, sol.prior, goal_resample_prob=0.1, steps_per_episode=3, seed=4, options=opts)  # type: ignore[arg-type]
    run(a, 20)
    saved = a.state_dict()
    expected = run(a, 20)
    b = Actor(world, sol.prior, goal_resample_prob=0.1, steps_per_episode=3, seed=99, options=opts)  # type: ignore[arg-type]
    b.load_state_dict(saved)
    assert run(b, 20) == expected


@pytest.mark.parametrize("networks", ["neural", "tabular"])
def test_resume_with_the_accuracy_options_is_exact(tmp_path, networks: str) -> None:  # type: ignore[no-untyped-def]
    """The exploring-starts pool and visit counts are part of the checkpoint: resuming equals running straight."""
    from humanpower.api import build_setup
    from humanpower.learn.trainer import SyncTrainer
    from humanpower.worlds.grid.library import load_world

    cfg = Phase2Config(
        networks=networks, num_episodes=8, steps_per_episode=10, batch_size=16, buffer_size=500,
        warmup_v_h_e_steps=5, warmup_x_h_steps=5, warmup_q_r_steps=5, beta_r_rampup_steps=20,
        epsilon_decay_steps=50, hidden_dim=16, checkpoint_every_episodes=4, log_every_episodes=100,
        v_h_e_all_goals=True, x_h_all_goals=True, exploring_starts_prob=0.7, q_r_loss="log",
        probability_loss="bce", clear_buffer_at_rampup=False,
    )  # fmt: skip
    setup = build_setup(load_world("trivial"), cfg, reference=False)
    straight = SyncTrainer(setup, cfg, tmp_path / "a", progress=False)
    straight.train()
    SyncTrainer(setup, cfg.replace(num_episodes=4), tmp_path / "b", progress=False).train()
    resumed = SyncTrainer(setup, cfg, tmp_path / "b", progress=False)
    resumed.train(resume=True)
    assert straight.actor.pool_size > 50
    assert resumed.total_steps == straight.total_steps == 80
    for name, module in straight.learner.nets.named().items():
        other = resumed.learner.nets.named()[name].state_dict()
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, other[key], rtol=0, atol=0, msg=f"{name}.{key}")
