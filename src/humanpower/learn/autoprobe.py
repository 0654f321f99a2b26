"""The measurements behind the default configuration rule (:mod:`humanpower.learn.autoconfig`).

* :func:`world_facts`: horizon, agents, actions and goals read from the world; the reachable state count is the
  exact DAG size when the caller has one, else :func:`estimate_reachable_states` (random rollouts, no DAG).
* :func:`measure_throughput`: seconds per env step (the actor with the derived options) and per training step
  (all networks active) of a throwaway learner, timed for a few seconds; :func:`derive_for_budget` turns a
  time budget into env steps with them and returns the derived config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from humanpower.learn.actor import Actor, ExplorationParams
from humanpower.learn.autoconfig import AutoConfig, WorldFacts, accuracy_options, derive_config, env_steps_for_budget
from humanpower.learn.config import Phase2Config
from humanpower.learn.trainer import TrainingSetup, make_learner
from humanpower.worlds.protocol import State, WorldModel, compose_joint_action, num_robot_actions, sample_successor

PROBE_SECONDS = 4.0
"""Wall-clock seconds :func:`derive_for_budget` spends timing the learner (half env steps, half training)."""


def estimate_reachable_states(world: WorldModel, rollouts: int = 200, seed: int = 0) -> int:
    """Reachable states estimated from two independent sets of uniformly random rollouts, without a DAG.

    At each depth d the distinct states of the two sets are compared as in capture-recapture (Chapman's
    estimator (n1 + 1)(n2 + 1) / (m + 1) - 1 with m states in both); the estimate is the sum over depths. States
    random play rarely reaches are undercounted, so this is a lower-leaning estimate. Costs
    2 x rollouts x horizon transition calls.
    """
    rng = np.random.default_rng(seed)
    a_r = num_robot_actions(world)
    levels: list[tuple[set[State], set[State]]] = [(set(), set()) for _ in range(world.max_steps + 1)]
    for half in range(2):
        for _ in range(rollouts):
            state = world.initial_state()
            depth = 0
            levels[depth][half].add(state)
            while not world.is_terminal(state) and depth < world.max_steps:
                humans = [int(rng.integers(world.num_actions)) for _ in world.humans]
                action = compose_joint_action(world, humans, int(rng.integers(a_r)))
                state = sample_successor(list(world.transition_probabilities(state, action)), rng)
                depth += 1
                levels[depth][half].add(state)
    total = 0.0
    for first, second in levels:
        if first or second:
            total += (len(first) + 1) * (len(second) + 1) / (len(first & second) + 1) - 1
    return max(1, round(total))


def state_count(estimate: int, more_than: int) -> int:
    """The state count the rule uses for an uncounted world: the rollout estimate, but more than ``more_than``.

    The rollout estimate leans low (it misses states random play rarely reaches: 1,518 for ``door_key``'s
    12,465); an enumeration that stopped at a limit proves the world has more states than that limit.
    """
    return max(estimate, more_than + 1) if more_than > 0 else estimate


def world_facts(world: WorldModel, num_states: int | None = None, seed: int = 0, more_than: int = 0) -> WorldFacts:
    """The facts of ``world``; ``num_states`` is the exact reachable count if known (else estimated).

    ``more_than``: a known lower bound on the reachable states when they are not counted (the caller tried to
    enumerate them and stopped at that many); the estimate is raised to exceed it (:func:`state_count`).
    """
    exact = num_states is not None
    count = (
        num_states if num_states is not None else state_count(estimate_reachable_states(world, seed=seed), more_than)
    )
    return WorldFacts(
        horizon=world.max_steps,
        num_humans=len(world.humans),
        num_robots=len(world.robots),
        num_actions=world.num_actions,
        goals_per_human=tuple(len(world.goal_set(h).goals) for h in world.humans),
        num_states=count,
        states_exact=exact,
    )


@dataclass(frozen=True)
class Throughput:
    """Measured costs of the synchronous loop's two parts."""

    env_step_s: float
    """Seconds per env step of the actor (with the config's options)."""
    train_step_s: float
    """Seconds per training step with every network of the config active."""


def measure_throughput(setup: TrainingSetup, cfg: Phase2Config, seconds: float = PROBE_SECONDS) -> Throughput:
    """Time a throwaway actor and learner built exactly as training builds them, for about ``seconds``.

    Half the time steps the actor with a uniform robot (filling replay), half runs training steps at the end of
    the warm-up (every network of ``cfg`` active, beta_r nominal). The first training step is not timed.
    Global torch and NumPy RNG states are restored afterwards, so a run started next is unaffected.
    """
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    torch.set_num_threads(cfg.torch_threads)
    try:
        learner = make_learner(setup, cfg)
        actor = Actor.from_config(setup.world, setup.prior, cfg, seed=cfg.seed)
        explore = ExplorationParams(beta_r=0.0, epsilon=1.0)
        need = max(cfg.batch_size, cfg.effective_x_h_batch_size) + 1
        steps, start = 0, time.perf_counter()
        while steps < need or (time.perf_counter() - start < seconds / 2 and steps < 100_000):
            if actor.episode_done:
                actor.begin_episode()
            learner.add([actor.step(None, explore, steps)])
            steps += 1
        env_s = (time.perf_counter() - start) / steps
        t = cfg.warmup_env_steps + 1
        learner.train_step(t)
        count, start = 0, time.perf_counter()
        while count < 3 or time.perf_counter() - start < seconds / 2:
            learner.train_step(t)
            count += 1
        train_s = (time.perf_counter() - start) / count
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)
    return Throughput(env_s, train_s)


def derive_for_budget(
    setup: TrainingSetup,
    facts: WorldFacts,
    budget_seconds: float,
    base: Phase2Config,
    networks: str = "neural",
    probe_seconds: float = PROBE_SECONDS,
) -> tuple[AutoConfig, Throughput]:
    """The rule's config for a time budget: time the learner with the rule's options, convert, derive."""
    options = accuracy_options(facts, networks)
    probe_cfg = derive_config(facts, 10_000, networks, base).config.replace(**options)
    speed = measure_throughput(setup, probe_cfg, probe_seconds)
    steps = env_steps_for_budget(budget_seconds, speed.env_step_s, speed.train_step_s)
    return derive_config(facts, steps, networks, base), speed
