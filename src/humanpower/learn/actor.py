"""The actor: steps one world copy with a frozen robot policy and emits replay transitions.

Behaviour (what the world actually does) and targets (what the learner's equations need) are separated:

* **Behaviour.** Each human carries a goal drawn from its goal prior, resampled with probability
  ``goal_resample_prob`` per step and whenever it is achieved, and acts by the human prior pi_h(s, g_h). The robot
  fleet acts by the power law (5) at the current beta_r, mixed with epsilon-uniform exploration.
* **Targets.** Equations (4) and (6) take expectations over goals drawn *fresh from the goal prior at every state*
  (E_g), not over the goal a human happens to carry (which is correlated with the path that led to s). So every
  transition also carries a *target draw*: fresh goals g ~ prior for every human and human actions
  a_H ~ pi_H(s, g). The exact successor distributions for **every** joint robot action under that draw are
  computed here, at collection time (model-based, Expected-SARSA style), and cached with the transition. One draw
  gives unbiased samples of (4) for Q_r and of (6) for V_h^e(s, g_h) of every human h at once.

Two optional mechanisms (:class:`ActorOptions`, built from the config by :meth:`ActorOptions.from_config`):

* **All human actions** (``v_h_e_all_goals``). The actor also computes the successor distributions for *every*
  action a_h of each human h (the other humans at their target-draw actions) x every joint robot action, and
  ships pi_h(s, g) for every goal of h. The learner can then take the exact expectation over a_h ~ pi_h(s, g) for
  *every* goal g of h in (6), and over a_h ~ sum_g w(g) pi_h(s, g) in (4), instead of using one sampled
  (goal, action) pair: each transition trains V_h^e(s, .) for all goals and removes the human-action noise.
  Cost: H x A_h x A_r transition calls per env step instead of A_r (actions that no goal's policy can take are
  skipped).
* **Exploring starts** (``exploring_starts_prob``). Every target of the learner is a model-based expectation at
  the state s (fresh goals, exact successors for every robot action), so *which* states are trained changes the
  weighting of the errors but not the fixed point. An exploring episode starts at a least-visited state (ties
  broken at random) of a pool of the non-terminal states the actor has seen as successors, and jumps to a fresh
  such state whenever it reaches the horizon before its step cap, so it still has exactly ``steps_per_episode``
  steps. This spreads the
  training states over everything reachable instead of concentrating them on the states the policy visits
  often (the state count grows with depth, so rarely visited deep states are the majority).

An actor never changes its policy mid-episode when driven asynchronously: the wiring hands it a new snapshot only
at episode boundaries (``begin_episode``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.learn.config import Phase2Config
from humanpower.learn.policy import QPolicy, sample_action
from humanpower.learn.replay import Transition
from humanpower.worlds.protocol import (
    BatchTransitionModel,
    SimulatorModel,
    State,
    TransitionTable,
    compose_joint_action,
    generic_transition_table,
    num_robot_actions,
    robot_choices,
    sample_successor,
)

Distribution = tuple[tuple[float, State], ...]


@dataclass(frozen=True)
class ExplorationParams:
    """The schedule values an actor acts with at one env step."""

    beta_r: float
    epsilon: float


@dataclass(frozen=True)
class ActorOptions:
    """Optional actor mechanisms (see the module docs); the defaults give the plain actor."""

    all_human_actions: bool = False
    """Compute successors for every action of every human and ship pi_h(s, g) for all goals (config
    ``v_h_e_all_goals``)."""
    exploring_starts_prob: float = 0.0
    """Probability that an episode is an exploring episode (starts and restarts at pool states)."""
    exploring_starts_pool: int = 100_000
    """Capacity of the pool of seen non-terminal states (reservoir sampling beyond it)."""
    successor_cache_size: int = 4096
    """Successor sets (every joint robot action, for one state and one set of human actions) kept for reuse,
    oldest dropped first; 0 disables the memo. Results are exact either way."""
    batch_transitions: bool = True
    """Use the world's batch transition hook (``transition_table``) when it has one; False computes one
    ``transition_probabilities`` call per joint robot action (the same distributions, slower)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.exploring_starts_prob <= 1.0:
            raise ValueError(f"exploring_starts_prob must be in [0, 1], got {self.exploring_starts_prob}")
        if self.exploring_starts_pool < 1:
            raise ValueError(f"exploring_starts_pool must be >= 1, got {self.exploring_starts_pool}")
        if self.successor_cache_size < 0:
            raise ValueError(f"successor_cache_size must be >= 0, got {self.successor_cache_size}")

    @classmethod
    def from_config(cls, cfg: Phase2Config) -> ActorOptions:
        """The options a config asks for."""
        return cls(
            all_human_actions=cfg.v_h_e_all_goals,
            exploring_starts_prob=cfg.exploring_starts_prob,
            exploring_starts_pool=cfg.exploring_starts_pool,
        )


class Actor:
    """Steps one world with one RNG stream; ``step`` returns a :class:`Transition` with cached successors.

    Args:
        world: a simulatable world model (the actor owns it; async actors get their own copy).
        prior: the human policy prior pi_h(s, g).
        goal_resample_prob: per-step probability that a human's behaviour goal is redrawn.
        steps_per_episode: episode length cap (the world's horizon also ends a normal episode).
        seed: seeds the world's RNG (successor sampling) and the actor's RNG (goals, actions, starts).
        options: optional mechanisms (all human actions, exploring starts); None = plain actor.
    """

    def __init__(
        self,
        world: SimulatorModel,
        prior: HumanPolicyPrior,
        *,
        goal_resample_prob: float,
        steps_per_episode: int,
        seed: int,
        options: ActorOptions | None = None,
    ) -> None:
        self.world = world
        self.prior = prior
        self.goal_resample_prob = goal_resample_prob
        self.steps_per_episode = steps_per_episode
        self.options = options if options is not None else ActorOptions()
        self.num_robot_actions = num_robot_actions(world)
        self.goal_sets = [world.goal_set(h) for h in world.humans]
        self.rng = np.random.default_rng([seed, 1])
        world.reset(seed=seed)
        self.state: State | None = None
        self.goals: list[int] = []
        self.episode_step = 0
        self.episodes_started = 0
        self.exploring = False
        self._pool: list[State] = []
        self._pool_index: dict[State, int] = {}
        self._pool_visits = np.zeros(1024, dtype=np.int64)
        self._pool_seen: set[State] = set()
        self._pool_offered = 0
        self._table_of: Callable[[State, Sequence[Sequence[int]]], TransitionTable]
        if self.options.batch_transitions and isinstance(world, BatchTransitionModel):
            self._table_of = world.transition_table
        else:
            self._table_of = functools.partial(generic_transition_table, world)
        self._successor_memo: dict[tuple[State, tuple[int, ...]], tuple[Distribution, ...]] = {}

    @classmethod
    def from_config(
        cls,
        world: SimulatorModel,
        prior: HumanPolicyPrior,
        cfg: Phase2Config,
        *,
        seed: int,
        steps_per_episode: int | None = None,
    ) -> Actor:
        """An actor with every setting taken from ``cfg`` (episode length min(steps_per_episode, horizon))."""
        return cls(
            world,
            prior,
            goal_resample_prob=cfg.goal_resample_prob,
            steps_per_episode=(
                min(cfg.steps_per_episode, world.max_steps) if steps_per_episode is None else steps_per_episode
            ),
            seed=seed,
            options=ActorOptions.from_config(cfg),
        )

    # -- episode boundaries -------------------------------------------------------------------------------------
    def begin_episode(self) -> None:
        """Start an episode: at the world's initial state, or (exploring) at a state drawn from the pool.

        The world is reset either way (its RNG keeps running); each human's behaviour goal is drawn from its prior.
        """
        self.state = self.world.reset()
        p = self.options.exploring_starts_prob
        if p > 0.0 and self.episodes_started == 0:
            self._offer([((1.0, self.state),)])
        self.exploring = bool(self._pool) and p > 0.0 and self.rng.random() < p
        if self.exploring:
            self.state = self._pool_start()
        self.goals = [gs.sample_index(self.rng) for gs in self.goal_sets]
        self.episode_step = 0
        self.episodes_started += 1

    @property
    def episode_done(self) -> bool:
        """True when the episode has hit its step cap, or (normal episodes) the world's horizon, or not started."""
        if self.state is None or self.episode_step >= self.steps_per_episode:
            return True
        return not self.exploring and self.world.is_terminal(self.state)

    @property
    def pool_size(self) -> int:
        """Number of states in the exploring-starts pool."""
        return len(self._pool)

    def _pool_start(self) -> State:
        """A least-visited pool state (ties broken uniformly at random); the pool must not be empty."""
        visits = self._pool_visits[: len(self._pool)]
        candidates = np.flatnonzero(visits == visits.min())
        return self._pool[int(candidates[self.rng.integers(len(candidates))])]

    def _offer(self, dists: Sequence[Sequence[tuple[float, State]]]) -> None:
        """Add the unseen non-terminal successors of ``dists`` to the pool (reservoir sampling when full)."""
        cap = self.options.exploring_starts_pool
        for dist in dists:
            for _, s in dist:
                if s in self._pool_seen or self.world.is_terminal(s):
                    continue
                self._pool_seen.add(s)
                self._pool_offered += 1
                if len(self._pool) < cap:
                    k = len(self._pool)
                    self._pool.append(s)
                    if k >= len(self._pool_visits):
                        self._pool_visits = np.concatenate([self._pool_visits, np.zeros_like(self._pool_visits)])
                else:
                    k = int(self.rng.integers(self._pool_offered))
                    if k >= cap:
                        continue
                    del self._pool_index[self._pool[k]]
                    self._pool[k] = s
                self._pool_index[s] = k
                self._pool_visits[k] = 0

    # -- one env step -------------------------------------------------------------------------------------------
    def step(self, policy: QPolicy | None, explore: ExplorationParams, total_steps: int) -> Transition:
        """Take one env step from the current state and return the transition (with the target draw).

        The robot fleet acts by ``policy`` at this step's ``explore`` parameters (its RobotPolicy
        ``action_distributions``) and the transition records ``policy.version``. ``policy`` may be None while
        beta_r = 0 (the robot is uniform then and needs no Q_r). An exploring
        episode at the horizon first jumps to a fresh pool state (with fresh behaviour goals).
        """
        if self.episode_done:
            raise RuntimeError("Actor.step: the episode is over; call begin_episode()")
        assert self.state is not None
        world, rng = self.world, self.rng
        if self.exploring and world.is_terminal(self.state):
            self.state = self._pool_start()
            self.goals = [gs.sample_index(rng) for gs in self.goal_sets]
        state = self.state
        pool_slot = self._pool_index.get(state)
        if pool_slot is not None:
            self._pool_visits[pool_slot] += 1
        all_actions = self.options.all_human_actions

        # Behaviour goals: redraw on achievement and with probability goal_resample_prob.
        for i, gs in enumerate(self.goal_sets):
            if gs.goals[self.goals[i]].is_achieved(state) or rng.random() < self.goal_resample_prob:
                self.goals[i] = gs.sample_index(rng)
        behaviour_actions = tuple(
            sample_action(self.prior.action_distribution(state, h, gs.goals[g]), rng)
            for h, gs, g in zip(world.humans, self.goal_sets, self.goals, strict=True)
        )

        # Robot fleet: power law at the current beta_r, epsilon-uniform exploration on top.
        if explore.beta_r == 0.0 or policy is None:
            robot_action = int(rng.integers(self.num_robot_actions))
        else:
            acting = policy.with_exploration(explore.beta_r, explore.epsilon)
            robot_action = sample_action(acting.action_distributions([state])[0], rng)

        # Target draw: fresh goals from the prior and actions from pi_h(s, g) for every human.
        target_goals = tuple(gs.sample_index(rng) for gs in self.goal_sets)
        policies: tuple[np.ndarray, ...] | None = None
        if all_actions:
            policies = tuple(
                np.stack([np.asarray(self.prior.action_distribution(state, h, g), dtype=np.float64) for g in gs.goals])
                for h, gs in zip(world.humans, self.goal_sets, strict=True)
            )
            target_actions = tuple(sample_action(pol[g], rng) for pol, g in zip(policies, target_goals, strict=True))
        else:
            target_actions = tuple(
                sample_action(self.prior.action_distribution(state, h, gs.goals[g]), rng)
                for h, gs, g in zip(world.humans, self.goal_sets, target_goals, strict=True)
            )
        successors = self._robot_successors(state, target_actions)
        human_successors = None
        if policies is not None:
            human_successors = tuple(
                self._human_successors(state, i, target_actions, successors, pol) for i, pol in enumerate(policies)
            )
        if behaviour_actions == target_actions:
            taken = successors[robot_action]
        else:
            taken = tuple(
                world.transition_probabilities(state, compose_joint_action(world, behaviour_actions, robot_action))
            )
        next_state = sample_successor(list(taken), world.np_random)
        if self.options.exploring_starts_prob > 0.0:
            self._offer(successors)
            self._offer([taken])
            for per_human in human_successors or ():
                for per_action in per_human:
                    self._offer(per_action)

        transition = Transition(
            state=state,
            goals=target_goals,
            human_actions=target_actions,
            robot_action=robot_action,
            next_state=next_state,
            successors=successors,
            total_steps=total_steps,
            policy_version=policy.version if policy is not None else -1,
            beta_r=explore.beta_r,
            episode_step=self.episode_step,
            human_successors=human_successors,
            human_policies=None if policies is None else tuple(tuple(map(tuple, pol.tolist())) for pol in policies),
        )
        self.state = next_state
        self.episode_step += 1
        return transition

    def _robot_successors(self, state: State, human_actions: Sequence[int]) -> tuple[Distribution, ...]:
        """The exact successor distribution for every joint robot action, humans at ``human_actions``: one batch
        transition call (a distribution shared by several robot actions becomes one tuple), memoised."""
        key = (state, tuple(int(a) for a in human_actions))
        memo = self._successor_memo
        hit = memo.get(key)
        if hit is not None:
            return hit
        table = self._table_of(state, robot_choices(self.world, key[1]))
        shared = [tuple(d) for d in table.distributions]
        out = tuple(shared[k] for k in table.index)
        size = self.options.successor_cache_size
        if size > 0:
            if len(memo) >= size:
                del memo[next(iter(memo))]  # drop the oldest entry
            memo[key] = out
        return out

    def _human_successors(
        self,
        state: State,
        i: int,
        target_actions: tuple[int, ...],
        target_successors: tuple[Distribution, ...],
        policy: np.ndarray,
    ) -> tuple[tuple[Distribution, ...], ...]:
        """Per action a of human position i (others at their target actions): successors for every robot action.

        Reuses the target draw's successors for i's drawn action; an action no goal's policy takes gets no
        successors (empty distributions, weight 0 in every expectation).
        """
        out: list[tuple[Distribution, ...]] = []
        for a in range(policy.shape[1]):
            if a == target_actions[i]:
                out.append(target_successors)
            elif not policy[:, a].any():
                out.append(tuple(() for _ in range(self.num_robot_actions)))
            else:
                actions = list(target_actions)
                actions[i] = a
                out.append(self._robot_successors(state, actions))
        return tuple(out)

    # -- checkpointing ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this actor exactly (RNG streams, current state, goals, counters, pool)."""
        return {
            "rng": self.rng.bit_generator.state,
            "world_rng": self.world.np_random.bit_generator.state,
            "state": self.state,
            "goals": list(self.goals),
            "episode_step": self.episode_step,
            "episodes_started": self.episodes_started,
            "exploring": self.exploring,
            "pool": list(self._pool),
            "pool_visits": self._pool_visits[: len(self._pool)].copy(),
            "pool_seen": list(self._pool_seen),
            "pool_offered": self._pool_offered,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.rng.bit_generator.state = d["rng"]
        self.world.np_random.bit_generator.state = d["world_rng"]
        self.state = d["state"]
        self.goals = list(d["goals"])
        self.episode_step = int(d["episode_step"])
        self.episodes_started = int(d["episodes_started"])
        self.exploring = bool(d.get("exploring", False))
        self._pool = list(d.get("pool", []))
        self._pool_index = {s: k for k, s in enumerate(self._pool)}
        visits = np.asarray(d.get("pool_visits", np.zeros(len(self._pool))), dtype=np.int64)
        self._pool_visits = np.zeros(max(1024, 2 * len(self._pool)), dtype=np.int64)
        self._pool_visits[: len(visits)] = visits
        self._pool_seen = set(d.get("pool_seen", []))
        self._pool_offered = int(d.get("pool_offered", len(self._pool)))
