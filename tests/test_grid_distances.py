"""GridDistances: per-action shortest-path distances, hand-computed on bundled worlds."""

from __future__ import annotations

import numpy as np
import pytest

from humanpower.goals import StateSetGoal
from humanpower.humans.protocol import GoalDistanceModel
from humanpower.worlds.grid import DOOR_OPEN, GridDistances, RectGoal, load_world

INF = np.inf


def test_trivial_distances_count_turns_and_ignore_the_rock() -> None:
    w = load_world("trivial")
    d = GridDistances(w)
    assert isinstance(d, GoalDistanceModel)
    s, h = w.initial_state(), w.humans[0]  # the human at (2,2) facing east
    # To (4,1): left, forward (through the rock), right, forward, forward.
    assert list(d.action_distances(s, h, RectGoal(h, 4, 1, 4, 1))) == [5, 4, 6, 5]
    assert list(d.action_distances(s, h, RectGoal(h, 2, 2, 2, 2))) == [0, 0, 0, 0]
    assert list(d.action_distances(s, h, RectGoal(h, 1, 2, 1, 2))) == [INF] * 4  # a wall cell
    assert list(d.action_distances(s, h, RectGoal(h, 1, 1, 4, 1))) == [2, 1, 3, 2]  # any cell of the row


def test_lava_blocks_and_forward_into_lava_is_hopeless() -> None:
    w = load_world("unsteady")
    d = GridDistances(w)
    s, h = w.initial_state(), w.humans[0]  # human at (1,1) facing east; lava at (2..4, 2)
    assert list(d.action_distances(s, h, RectGoal(h, 5, 1, 5, 1))) == [4, 5, 5, 3]
    south = s._replace(agents=(s.agents[0]._replace(x=2, dir=1), *s.agents[1:]))
    assert d.action_distances(south, h, RectGoal(h, 5, 1, 5, 1))[3] == INF
    assert d.action_distances(south, h, RectGoal(h, 2, 2, 2, 2))[3] == 0  # lava as the goal itself
    dead = s._replace(agents=(s.agents[0]._replace(x=2, y=2, terminated=True), *s.agents[1:]))
    assert list(d.action_distances(dead, h, RectGoal(h, 5, 1, 5, 1))) == [INF] * 4
    assert list(d.action_distances(dead, h, RectGoal(h, 2, 2, 2, 2))) == [0] * 4


def test_doors_block_until_open() -> None:
    w = load_world("door_key")
    d = GridDistances(w)
    s, h = w.initial_state(), w.humans[0]  # human at (1,1) facing east; locked door at (3,1)
    goal = RectGoal(h, 4, 1, 4, 1)
    assert np.all(d.action_distances(s, h, goal) == INF)
    opened = s._replace(doors=(DOOR_OPEN,))
    assert list(d.action_distances(opened, h, goal)) == [3, 4, 4, 2, 3, 3, 3]


def test_non_grid_goal_is_refused() -> None:
    w = load_world("trivial")
    with pytest.raises(TypeError):
        GridDistances(w).action_distances(w.initial_state(), 1, StateSetGoal("x", frozenset()))


def test_distance_cache_is_bounded_and_evicts_least_recently_used() -> None:
    w = load_world("trivial")
    st = w.statics
    table_bytes = st.height * st.width * 4 * 8
    d = GridDistances(w, cache_bytes=2 * table_bytes)  # room for two tables
    assert d.max_tables == 2
    fresh = GridDistances(w)
    s, h = w.initial_state(), w.humans[0]
    goals = [RectGoal(h, x, 1, x, 1) for x in (2, 3, 4)]
    for g in goals + goals[:1] + goals[::-1]:
        assert list(d.action_distances(s, h, g)) == list(fresh.action_distances(s, h, g))
        assert len(d._tables) <= 2
    d.distance_table(goals[0], ())  # the most recently used survives the next insertion
    d.distance_table(goals[1], ())
    d.distance_table(goals[2], ())
    assert [k[0] for k in d._tables] == [goals[1].rect, goals[2].rect]
