"""The bundled world library, the GridWorld model surface, goals and reachable-state counts."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import humanpower.worlds.grid.render as render_module
from humanpower.goals import GoalSet
from humanpower.worlds.grid import (
    GridState,
    GridWorld,
    RectGoal,
    bundled_names,
    list_worlds,
    load_world,
    reachable_states,
)
from humanpower.worlds.grid.state import FORWARD, STILL
from humanpower.worlds.protocol import WorldModel

REQUIRED = {"trivial", "locked_in", "two_humans", "corridor", "unsteady", "large", "warehouse"}
FIDELITY = {"two_robots": 3, "three_humans": 4, "rock_relay": 2, "blocked_exit": 2, "locked_in_large": 2}
"""The worlds added for the fidelity suite (benchmarks/bench_fidelity.py) and their agent counts."""


def test_every_bundled_world_loads() -> None:
    names = bundled_names()
    assert set(names) >= REQUIRED | set(FIDELITY) and len(names) >= len(REQUIRED) + 1
    listed = dict(list_worlds())
    assert sorted(listed) == names
    for name in names:
        w = load_world(name)
        assert isinstance(w, WorldModel)
        assert w.name == name and listed[name] == w.description and w.description
        assert "\n" not in listed[name]
        assert w.humans and w.robots and w.max_steps > 0
        text = w.describe()
        assert name in text and "agents:" in text and "max_steps" in text
        for h in w.humans:
            assert isinstance(w.goal_set(h), GoalSet) and len(w.goal_set(h)) > 0


def test_trivial_is_exactly_the_specified_world() -> None:
    w = load_world("trivial")
    assert [" ".join(r) for r in w.map_rows()] == [
        "We We We We We We",
        "We Ae Ro .. .. We",
        "We We Ay We We We",
        "We We We We We We",
    ]
    s = w.initial_state()
    assert w.robots == (0,) and w.humans == (1,)
    assert [(a.x, a.y, a.dir) for a in s.agents] == [(1, 1, 0), (2, 2, 0)] and s.rocks == ((2, 1),)
    assert (w.max_steps, w.actions, w.num_actions) == (10, "small", 4)
    assert [str(g) for g in w.goal_set(1).goals] == ["2,1", "1,1", "3,1", "2,2", "1,2", "4,1"]


def test_special_worlds_have_what_they_promise() -> None:
    assert load_world("door_key").actions == "full"
    assert load_world("door_key").initial_state().doors and load_world("door_key").initial_state().keys
    assert any("Un" in row for row in load_world("unsteady").layout.terrain)
    assert len(load_world("two_humans").humans) == 2
    large = load_world("large")
    assert large.layout.width >= 10 and large.layout.height >= 10 and len(large.humans) >= 2
    assert "317,389 reachable states" in load_world("warehouse").description


@pytest.mark.parametrize(("name", "count"), [("trivial", 1115), ("locked_in", 2686), ("corridor", 3676)])
def test_reachable_state_counts_of_small_worlds(name: str, count: int) -> None:
    w = load_world(name)
    states = reachable_states(w)
    assert len(states) == count
    # Every human always stands in some goal (so X_h > 0 for the exact solver at every state).
    for h in w.humans:
        goals = w.goal_set(h).goals
        assert all(any(g.is_achieved(s) for g in goals) for s in states)
    with pytest.raises(ValueError, match="more than 100 reachable states"):
        reachable_states(w, limit=100)


def test_locked_in_needs_the_robot() -> None:
    """The human alone cannot leave: with the robot still, its reachable cells stay west of the rock."""
    w = load_world("locked_in")
    h, r = w.humans[0], w.robots[0]
    seen = {w.initial_state()}
    frontier = list(seen)
    while frontier:
        nxt = []
        for s in frontier:
            for a in range(w.num_actions):
                joint = [STILL] * w.num_agents
                joint[h] = a
                for _, s2 in w.transition_probabilities(s, tuple(joint)):
                    if s2 not in seen:
                        seen.add(s2)
                        nxt.append(s2)
        frontier = nxt
    assert max(w.agent_position(s, h)[0] for s in seen) == 2
    # With the robot's push the human gets past.
    joint = [STILL] * w.num_agents
    joint[r] = FORWARD
    (p, pushed), *_ = w.transition_probabilities(w.initial_state(), tuple(joint))
    assert p == 1.0 and pushed.rocks == ((3, 1),)


def test_rect_goal() -> None:
    g = RectGoal(0, 1, 2, 3, 4)
    assert str(g) == "1,2, 3,4" and str(RectGoal.cell(1, 5, 6)) == "5,6"
    assert RectGoal.parse(0, "3,4, 1,2") == g and RectGoal.parse(0, " 5 , 6 ") == RectGoal(0, 5, 6, 5, 6)
    assert g.cells() == ((1, 2), (2, 2), (3, 2), (1, 3), (2, 3), (3, 3), (1, 4), (2, 4), (3, 4))
    w = load_world("trivial")
    s = w.initial_state()
    assert RectGoal(1, 2, 2, 2, 2).is_achieved(s) and not RectGoal(1, 1, 1, 4, 1).is_achieved(s)
    assert RectGoal(0, 1, 1, 4, 1).is_achieved(s)
    assert hash(g) == hash(RectGoal(0, 1, 2, 3, 4)) and g != RectGoal(1, 1, 2, 3, 4)
    with pytest.raises(ValueError):
        RectGoal(0, 3, 0, 1, 0)
    with pytest.raises(ValueError):
        RectGoal.parse(0, "1,2,3")


def test_world_surface() -> None:
    w = load_world("two_humans")
    s = w.initial_state()
    assert w.agent_position(s, 0) == (1, 2) and w.step_count(s) == 0 and not w.is_terminal(s)
    assert w.goal_set(0).goals[0].human == 0 and w.goal_set(1).goals[0].human == 1  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        w.goal_set(w.robots[0])
    with pytest.raises(ValueError):
        w.transition_probabilities(s, (0, 0))  # wrong length
    with pytest.raises(ValueError):
        w.transition_probabilities(s, (0, 0, 9))  # out of range
    copy = pickle.loads(pickle.dumps(w))  # worlds travel to other processes
    assert copy.transition_probabilities(s, (3, 3, 3)) == w.transition_probabilities(s, (3, 3, 3))
    # reset/step sample from the exact model with the world's own RNG.
    w.reset(seed=3)
    s1 = w.step((FORWARD, FORWARD, FORWARD))
    assert isinstance(s1, GridState) and s1 in {x for _, x in w.transition_probabilities(s, (3, 3, 3))}


def test_transition_cache_is_opt_in_and_exact() -> None:
    plain = load_world("unsteady")
    cached = GridWorld(
        plain.layout, plain.initial_state(), plain.max_steps, plain.actions, plain.stumble_probability,
        transition_cache_size=3,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    s = plain.initial_state()
    for _ in range(30):
        joint = tuple(int(a) for a in rng.integers(0, 4, plain.num_agents))
        a, b = plain.transition_probabilities(s, joint), cached.transition_probabilities(s, joint)
        assert a == b == cached.transition_probabilities(s, joint)
        s = a[0][1] if a and not plain.is_terminal(a[0][1]) else plain.initial_state()
    assert len(cached._cache) == 3 and len(plain._cache) == 0


def test_render_delegates_to_render_state(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake(world: GridWorld, state: GridState, **kw: object) -> np.ndarray:
        calls.append((world, state, kw))
        return np.zeros((1, 1, 3), dtype=np.uint8)

    monkeypatch.setattr(render_module, "render_state", fake)
    w = load_world("trivial")
    assert w.render(scale=2).shape == (1, 1, 3)
    assert calls == [(w, w.initial_state(), {"scale": 2})]


@pytest.mark.parametrize("name", sorted(FIDELITY))
def test_fidelity_worlds_load_and_solve(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each new world loads with what its name promises and `humanpower solve` succeeds on it (at a short
    horizon here, to keep the test fast; the fidelity suite solves the full horizon and checks that the world
    discriminates between robot policies)."""
    import json

    from humanpower.cli.main import main

    w = load_world(name)
    assert w.num_agents == FIDELITY[name]
    assert len(w.robots) == (2 if name == "two_robots" else 1) and len(w.humans) == (3 if name == "three_humans" else 1)
    assert main(["solve", name, "--json", "--max-steps", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["states"] > 1 and out["V_r"] < 0
