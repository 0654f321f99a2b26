"""Every target of the training step reads the TARGET networks, never the main networks being trained.

Method (independent of how the terms are written): a learner whose main and target networks are equal gives
the reference targets A of one training step. Then, one network n at a time:

* perturb only the MAIN copy of n: the step's targets must still equal A (a target that read main n moves);
* perturb n in both copies (its target copy updated to the perturbed weights): the targets of exactly the
  terms whose right-hand side reads n move, and no other. This shows that the first check can fail, and pins
  down which networks each equation's target reads.

The targets are recorded from the learner's own :meth:`~humanpower.learn.learner.Learner.train_step` (the
production path), at stage 5 with beta_r > 0 so that the robot policy in the targets depends on Q_r'.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from humanpower.exact import solve
from humanpower.learn.actor import Actor, ActorOptions, ExplorationParams
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import OneHotGoalEncoder, OneHotStateEncoder
from humanpower.learn.learner import Learner
from humanpower.learn.terms import LossTerm, StepData
from humanpower.learn.trainer import TrainingSetup, make_learner
from humanpower.worlds.tabular import random_tabular_world

SMALL = dict(
    batch_size=16,
    buffer_size=400,
    hidden_dim=16,
    tabular_max_states=256,
    warmup_v_h_e_steps=5,
    warmup_x_h_steps=5,
    warmup_u_r_steps=5,
    warmup_q_r_steps=5,
    beta_r_rampup_steps=5,
    clear_buffer_at_rampup=False,
)

# (config switches, {term: networks its target reads})
CASES: dict[str, tuple[dict[str, Any], dict[str, set[str]]]] = {
    "seed defaults": (
        dict(x_h_goal_samples=2),
        {"v_h_e": {"v_h_e", "q_r"}, "x_h": {"v_h_e"}, "q_r": {"q_r", "x_h"}},
    ),
    "all goals, log and bce losses": (
        dict(v_h_e_all_goals=True, x_h_all_goals=True, q_r_loss="log", probability_loss="bce"),
        {"v_h_e": {"v_h_e", "q_r"}, "x_h": {"v_h_e"}, "q_r": {"q_r", "x_h"}},
    ),
    "U_r and V_r networks, sampled humans": (
        dict(u_r_use_network=True, v_r_use_network=True, u_r_human_sample_size=1),
        {"v_h_e": {"v_h_e", "q_r"}, "x_h": {"v_h_e"}, "u_r": {"x_h"}, "q_r": {"v_r"}, "v_r": {"q_r", "u_r"}},
    ),
    "U_r network, log loss": (
        dict(u_r_use_network=True, q_r_loss="log", v_h_e_all_goals=True),
        {"v_h_e": {"v_h_e", "q_r"}, "x_h": {"v_h_e"}, "u_r": {"x_h"}, "q_r": {"q_r", "u_r"}},
    ),
}


class _Recorded:
    """A target function that also stores what it returned (the learner's own call is recorded)."""

    def __init__(self, inner: Any, store: dict[str, Any], name: str) -> None:
        self.inner, self.store, self.name = inner, store, name

    def __call__(self, target_nets: Any, data: StepData) -> Any:
        out = self.inner(target_nets, data)
        self.store[self.name] = out
        return out


def step_targets(learner: Learner) -> dict[str, torch.Tensor]:
    """The targets of one training step at stage 5, per trained network (a copy of the learner steps)."""
    learner = copy.deepcopy(learner)
    store: dict[str, Any] = {}
    learner.stage_terms = {
        stage: tuple(LossTerm(t.network, _Recorded(t.target, store, t.network), t.loss) for t in terms)
        for stage, terms in learner.stage_terms.items()
    }
    t5 = learner.stages.rampup_end
    assert learner.stages.stage_at(t5) == 5
    torch.manual_seed(0)
    learner.train_step(t5)
    # the Q_r log loss's target is (value, level weight): both come from the target networks
    return {name: torch.cat([v.reshape(-1) for v in (y if isinstance(y, tuple) else (y,))])
            for name, y in store.items()}


def perturbed(learner: Learner, name: str, *, also_target: bool) -> Learner:
    """A copy with main network ``name`` moved away from its target copy (and the target copy too if asked)."""
    out = copy.deepcopy(learner)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in out.nets.named()[name].parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen))
    if also_target:
        out.targets[name].update()
    return out


@pytest.fixture(scope="module")
def world_setup() -> tuple[TrainingSetup, dict[bool, list[Any]]]:
    """A small stochastic world with two humans and two robots; uniform-robot transitions without and with the
    all-human-actions edges."""
    world = random_tabular_world(
        seed=11, num_nodes=6, num_humans=2, num_robots=2, num_actions=2, max_steps=4, goals_per_human=2,
        stochastic_fraction=0.5, weighted_goals=True,
    )  # fmt: skip
    sol = solve(world, Phase2Config().theory(), human_prior="exact")
    setup = TrainingSetup(
        world=world,
        prior=sol.prior,
        state_encoder=OneHotStateEncoder(world, sol.states),
        goal_encoders=[OneHotGoalEncoder(world.goal_set(h).goals) for h in world.humans],
    )
    out = {}
    for all_actions in (False, True):
        actor = Actor(
            world, sol.prior, goal_resample_prob=0.1, steps_per_episode=4, seed=0,  # type: ignore[arg-type]
            options=ActorOptions(all_human_actions=all_actions),
        )  # fmt: skip
        items = []
        for i in range(60):
            if actor.episode_done:
                actor.begin_episode()
            items.append(actor.step(None, ExplorationParams(0.0, 1.0), i))
        out[all_actions] = items
    return setup, out


@pytest.mark.parametrize("networks", ["neural", "tabular"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_target_reads_the_target_networks_only(world_setup, case: str, networks: str) -> None:  # type: ignore[no-untyped-def]
    setup, transitions = world_setup
    switches, reads = CASES[case]
    cfg = Phase2Config(**SMALL, **switches, networks=networks)  # type: ignore[arg-type]
    learner = make_learner(setup, cfg)
    learner.add(transitions[cfg.v_h_e_all_goals])
    # Values that differ between states and actions (untrained networks are nearly constant, so that a target
    # would hardly depend on, e.g., the robot policy), main and target copies still equal.
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in learner.nets.named().values():
            for p in module.parameters():
                p.mul_(1.0 + 0.5 * torch.rand(p.shape, generator=gen)).add_(0.3 * torch.randn(p.shape, generator=gen))
    for t in learner.targets.values():
        t.update()
    reference = step_targets(learner)
    assert set(reference) == set(reads)
    for name in learner.nets.named():
        main_only = step_targets(perturbed(learner, name, also_target=False))
        both = step_targets(perturbed(learner, name, also_target=True))
        for term, target in reference.items():
            torch.testing.assert_close(
                main_only[term], target, rtol=0, atol=0, msg=f"the {term} target reads the main {name} network"
            )
            moved = not torch.allclose(both[term], target, rtol=1e-3, atol=1e-6)
            assert moved == (name in reads[term]), f"{term} target {'ignores' if not moved else 'reads'} {name}'"
