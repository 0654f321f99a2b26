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

An actor never changes its policy mid-episode when driven asynchronously: the wiring hands it a new snapshot only
at episode boundaries (``begin_episode``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.learn.policy import robot_action_distribution
from humanpower.learn.replay import Transition
from humanpower.worlds.protocol import (
    SimulatorModel,
    State,
    compose_joint_action,
    num_robot_actions,
    sample_successor,
)


class ActingPolicy(Protocol):
    """A frozen robot policy snapshot: Q_r values per state, and the learner version it was taken at."""

    version: int

    def q_values(self, state: State) -> np.ndarray:
        """Q_r(state, .) for every joint robot action (all < 0)."""
        ...


@dataclass(frozen=True)
class ExplorationParams:
    """The schedule values an actor acts with at one env step."""

    beta_r: float
    epsilon: float


def _sample(p: np.ndarray, rng: np.random.Generator) -> int:
    """Index drawn from probability vector ``p`` (inverse CDF, one uniform draw)."""
    return int(min(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"), len(p) - 1))


class Actor:
    """Steps one world with one RNG stream; ``step`` returns a :class:`Transition` with cached successors.

    Args:
        world: a simulatable world model (the actor owns it; async actors get their own copy).
        prior: the human policy prior pi_h(s, g).
        goal_resample_prob: per-step probability that a human's behaviour goal is redrawn.
        steps_per_episode: episode length cap (the world's horizon also ends an episode).
        seed: seeds the world's RNG (successor sampling) and the actor's RNG (goals, actions).
    """

    def __init__(
        self,
        world: SimulatorModel,
        prior: HumanPolicyPrior,
        *,
        goal_resample_prob: float,
        steps_per_episode: int,
        seed: int,
    ) -> None:
        self.world = world
        self.prior = prior
        self.goal_resample_prob = goal_resample_prob
        self.steps_per_episode = steps_per_episode
        self.num_robot_actions = num_robot_actions(world)
        self.goal_sets = [world.goal_set(h) for h in world.humans]
        self.rng = np.random.default_rng([seed, 1])
        world.reset(seed=seed)
        self.state: State | None = None
        self.goals: list[int] = []
        self.episode_step = 0
        self.episodes_started = 0

    # -- episode boundaries -------------------------------------------------------------------------------------
    def begin_episode(self) -> None:
        """Reset the world (its RNG keeps running) and draw each human's behaviour goal from its prior."""
        self.state = self.world.reset()
        self.goals = [gs.sample_index(self.rng) for gs in self.goal_sets]
        self.episode_step = 0
        self.episodes_started += 1

    @property
    def episode_done(self) -> bool:
        """True when the current episode has hit its step cap or the world's horizon (or has not started)."""
        return (
            self.state is None
            or self.episode_step >= self.steps_per_episode
            or self.world.is_terminal(self.state)
        )

    # -- one env step -------------------------------------------------------------------------------------------
    def step(self, policy: ActingPolicy | None, explore: ExplorationParams, total_steps: int) -> Transition:
        """Take one env step from the current state and return the transition (with the target draw).

        ``policy`` may be None while beta_r = 0 (the robot is uniform then and needs no Q_r).
        """
        if self.episode_done:
            raise RuntimeError("Actor.step: the episode is over; call begin_episode()")
        state = self.state
        assert state is not None
        world, rng = self.world, self.rng

        # Behaviour goals: redraw on achievement and with probability goal_resample_prob.
        for i, gs in enumerate(self.goal_sets):
            if gs.goals[self.goals[i]].is_achieved(state) or rng.random() < self.goal_resample_prob:
                self.goals[i] = gs.sample_index(rng)
        behaviour_actions = tuple(
            _sample(self.prior.action_distribution(state, h, gs.goals[g]), rng)
            for h, gs, g in zip(world.humans, self.goal_sets, self.goals, strict=True)
        )

        # Robot fleet: power law at the current beta_r, epsilon-uniform exploration on top.
        if explore.beta_r == 0.0 or policy is None:
            robot_action = int(rng.integers(self.num_robot_actions))
        else:
            probs = robot_action_distribution(policy.q_values(state), explore.beta_r, explore.epsilon)
            robot_action = _sample(probs, rng)

        # Target draw: fresh goals from the prior and actions from pi_h(s, g) for every human.
        target_goals = tuple(gs.sample_index(rng) for gs in self.goal_sets)
        target_actions = tuple(
            _sample(self.prior.action_distribution(state, h, gs.goals[g]), rng)
            for h, gs, g in zip(world.humans, self.goal_sets, target_goals, strict=True)
        )
        successors = tuple(
            tuple(world.transition_probabilities(state, compose_joint_action(world, target_actions, a)))
            for a in range(self.num_robot_actions)
        )
        if behaviour_actions == target_actions:
            taken = successors[robot_action]
        else:
            taken = tuple(
                world.transition_probabilities(state, compose_joint_action(world, behaviour_actions, robot_action))
            )
        next_state = sample_successor(list(taken), world.np_random)

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
        )
        self.state = next_state
        self.episode_step += 1
        return transition

    # -- checkpointing ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this actor exactly (RNG streams, current state, goals, counters)."""
        return {
            "rng": self.rng.bit_generator.state,
            "world_rng": self.world.np_random.bit_generator.state,
            "state": self.state,
            "goals": list(self.goals),
            "episode_step": self.episode_step,
            "episodes_started": self.episodes_started,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.rng.bit_generator.state = d["rng"]
        self.world.np_random.bit_generator.state = d["world_rng"]
        self.state = d["state"]
        self.goals = list(d["goals"])
        self.episode_step = int(d["episode_step"])
        self.episodes_started = int(d["episodes_started"])


def collect_episode(
    actor: Actor, policy: ActingPolicy | None, explore: Sequence[ExplorationParams], total_steps: int
) -> list[Transition]:
    """Run one whole episode with a fixed policy snapshot (used by async actors); ``explore[i]`` for step i."""
    actor.begin_episode()
    out = []
    i = 0
    while not actor.episode_done:
        out.append(actor.step(policy, explore[min(i, len(explore) - 1)], total_steps + i))
        i += 1
    return out
