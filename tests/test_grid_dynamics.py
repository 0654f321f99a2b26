"""Hand-computed transition distributions, one or more per rule of GRIDWORLD.md ("Dynamics of one step")."""

from __future__ import annotations

import json

import pytest

from humanpower.worlds.grid import (
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    GridState,
    GridWorld,
    dynamics,
    parse_world_yaml,
    transition_probabilities_bruteforce,
)
from humanpower.worlds.grid.state import (
    DROP,
    EAST,
    FORWARD,
    LEFT,
    NORTH,
    PICKUP,
    RIGHT,
    SOUTH,
    STILL,
    TOGGLE,
    WEST,
)
from humanpower.worlds.protocol import WorldModel


def grid(rows: str, **keys: object) -> GridWorld:
    """A world from map rows (one per line) and extra file keys."""
    lines = ["map: |"] + ["  " + r.strip() for r in rows.strip().splitlines()]
    lines += [f"{k}: {json.dumps(v)}" for k, v in keys.items()]
    return parse_world_yaml("\n".join(lines) + "\n", "test.yaml")


def dist(
    w: GridWorld, joint: tuple[int, ...], state: GridState | None = None, brute: bool = True
) -> dict[GridState, float]:
    """The successor distribution as a dict, checked for normalisation, distinctness, step count and (by
    default) against the average over all orders of the active agents."""
    s = state if state is not None else w.initial_state()
    out = w.transition_probabilities(s, joint)
    assert abs(sum(p for p, _ in out) - 1.0) < 1e-12
    d = {s2: p for p, s2 in out}
    assert len(d) == len(out), "a successor is listed twice"
    assert all(s2.step == s.step + 1 for s2 in d)
    if brute:  # the conflict-block computation must equal the average over all orders
        ref = {s2: p for p, s2 in transition_probabilities_bruteforce(w, s, joint)}
        assert ref.keys() == d.keys() and all(abs(ref[k] - d[k]) < 1e-12 for k in d)
    return d


def only(d: dict[GridState, float]) -> GridState:
    assert len(d) == 1 and abs(next(iter(d.values())) - 1.0) < 1e-12
    return next(iter(d))


def agent(s: GridState, i: int) -> tuple[int, int, int]:
    a = s.agents[i]
    return (a.x, a.y, a.dir)


def with_agent(s: GridState, i: int, **changes: object) -> GridState:
    agents = list(s.agents)
    agents[i] = agents[i]._replace(**changes)
    return s._replace(agents=tuple(agents))


# --- Rule 1: terminal at max_steps, step increments ------------------------------------------------------


def test_terminal_at_max_steps_and_step_increments() -> None:
    w = grid("Ae .. Ay", max_steps=2)
    assert isinstance(w, WorldModel)
    s0 = w.initial_state()
    s1 = only(dist(w, (FORWARD, STILL)))
    assert s1.step == 1 and w.step_count(s1) == 1 and not w.is_terminal(s1)
    s2 = only(dist(w, (STILL, STILL), s1))
    assert s2 == s1._replace(step=2)
    assert w.is_terminal(s2)
    assert w.transition_probabilities(s2, (FORWARD, FORWARD)) == []
    assert s0.step == 0


# --- Rule 2: actions -------------------------------------------------------------------------------------


def test_turns_and_still() -> None:
    w = grid("Ae .. Ay")
    s = w.initial_state()
    assert agent(only(dist(w, (LEFT, RIGHT))), 0) == (0, 0, NORTH)
    assert agent(only(dist(w, (LEFT, RIGHT))), 1) == (2, 0, SOUTH)
    assert only(dist(w, (STILL, STILL))) == s._replace(step=1)
    assert w.action_names == ("still", "left", "right", "forward")
    assert grid("Ae .. Ay", actions="full").action_names[4:] == ("pickup", "drop", "toggle")


# --- Rule 5: forward --------------------------------------------------------------------------------------


def test_move_into_empty_cell() -> None:
    w = grid("We We We We\nWe Ae .. We\nWe Ay .. We\nWe We We We")
    s = only(dist(w, (FORWARD, FORWARD)))
    assert agent(s, 0) == (2, 1, EAST) and agent(s, 1) == (2, 2, EAST)


def test_wall_blocks() -> None:
    w = grid("We We We\nWe Ae We\nWe Ay We\nWe We We")
    assert only(dist(w, (FORWARD, FORWARD))) == w.initial_state()._replace(step=1)


def test_grid_edge_blocks_like_a_wall() -> None:
    w = grid("Ae ..\nAy ..", orientations=["n", "w"])
    assert only(dist(w, (FORWARD, FORWARD))) == w.initial_state()._replace(step=1)


def test_goal_tile_and_unsteady_ground_are_walkable() -> None:
    w = grid("Ae Gg Un Ay", orientations=["e", "w"])
    s = only(dist(w, (FORWARD, FORWARD)))
    assert agent(s, 0) == (1, 0, EAST) and agent(s, 1) == (2, 0, WEST)


def test_lava_terminates() -> None:
    w = grid("Ae La .. Ay")
    s1 = only(dist(w, (FORWARD, STILL)))
    assert s1.agents[0] == s1.agents[0]._replace(x=1, y=0, terminated=True)
    # A terminated agent takes no further actions; nobody may enter its cell.
    s2 = only(dist(w, (FORWARD, LEFT), s1))
    assert s2.agents[0] == s1.agents[0]
    w2 = grid("Ae La Ay", orientations=["e", "w"])
    s1 = only(dist(w2, (FORWARD, STILL)))
    s2 = only(dist(w2, (STILL, FORWARD), s1))
    assert agent(s2, 1) == (2, 0, WEST)


def test_rock_push_allowed_for_grey_forbidden_for_yellow() -> None:
    w = grid("Ae Ro .. Ay Ro ..", orientations=["e", "e"])
    s = only(dist(w, (FORWARD, FORWARD)))
    assert agent(s, 0) == (1, 0, EAST) and s.rocks == ((2, 0), (4, 0))  # grey pushed; yellow did not
    assert agent(s, 1) == (3, 0, EAST)
    # can_push_rocks lists the colours that may push rocks.
    w = grid("Ae Ro .. Ay Ro ..", can_push_rocks="y")
    s = only(dist(w, (FORWARD, FORWARD)))
    assert agent(s, 0) == (0, 0, EAST) and agent(s, 1) == (4, 0, EAST) and s.rocks == ((1, 0), (5, 0))


def test_block_line_push_by_anyone() -> None:
    w = grid("Ay Bl Bl .. Ae")
    s = only(dist(w, (FORWARD, STILL)))
    assert agent(s, 0) == (1, 0, EAST) and s.blocks == ((2, 0), (3, 0))
    # A mixed line with a rock: only rock pushers move it.
    w = grid("Ay Bl Ro .. Ae")
    assert only(dist(w, (FORWARD, STILL))) == w.initial_state()._replace(step=1)
    w = grid("Ae Bl Ro .. Ay")
    s = only(dist(w, (FORWARD, STILL)))
    assert s.blocks == ((2, 0),) and s.rocks == ((3, 0),) and agent(s, 0) == (1, 0, EAST)


@pytest.mark.parametrize(
    "rows",
    [
        "Ae Bl Bl We Ay",  # wall after the line
        "Ae Bl Bl\nAy .. ..",  # grid edge after the line
        "Ae Bl La .. Ay",  # lava is not free
        "Ae Bl Ky .. Ay",  # a key is not free
        "Ae Bl Cy .. Ay",  # nor a door
        "Ae Bl Un .. Ay",  # nor unsteady ground
        "Ae Bl Ay ..",  # nor an agent's cell
    ],
)
def test_blocked_push(rows: str) -> None:
    w = grid(rows)
    assert only(dist(w, (FORWARD, STILL))) == w.initial_state()._replace(step=1)


def test_no_push_into_cell_occupied_at_step_start() -> None:
    # The human at (2,0) leaves in the same step; the robot's push is still blocked (rule 4).
    w = grid("Ae Ro Ay ..")
    s = only(dist(w, (FORWARD, FORWARD)))
    assert agent(s, 0) == (0, 0, EAST) and s.rocks == ((1, 0),) and agent(s, 1) == (3, 0, EAST)


# --- Rules 3 and 4: random order, conflicts ---------------------------------------------------------------


def test_two_agents_for_the_same_cell_half_each() -> None:
    w = grid("Ae .. Ay", orientations=["e", "w"])
    d = dist(w, (FORWARD, FORWARD))
    assert len(d) == 2
    robot_won = next(s for s in d if agent(s, 0) == (1, 0, EAST))
    human_won = next(s for s in d if agent(s, 1) == (1, 0, WEST))
    assert d[robot_won] == pytest.approx(0.5) and d[human_won] == pytest.approx(0.5)
    assert agent(robot_won, 1) == (2, 0, WEST) and agent(human_won, 0) == (0, 0, EAST)


def test_three_agents_for_the_same_cell_a_third_each() -> None:
    w = grid("We Ae We\nAe .. Ay\nWe We We", orientations=["s", "e", "w"])
    d = dist(w, (FORWARD, FORWARD, FORWARD))
    assert sorted(d.values()) == pytest.approx([1 / 3] * 3)
    winners = sorted(next(i for i in range(3) if (s.agents[i].x, s.agents[i].y) == (1, 1)) for s in d)
    assert winners == [0, 1, 2]


def test_chain_of_moving_agents_is_order_independent() -> None:
    # Every agent moves east; each target was occupied at the step start except the front one's.
    w = grid("Ae Ay Ae ..")
    s = only(dist(w, (FORWARD, FORWARD, FORWARD)))
    assert [agent(s, i)[0] for i in range(3)] == [0, 1, 3]


def test_two_pushers_of_one_rock_from_different_sides_half_each() -> None:
    w = grid(
        "We We We We We\nWe We .. We We\nWe Ae Ro .. We\nWe We Ae We We\nAy We We We We",
        orientations=["e", "n", "e"],
    )
    d = dist(w, (FORWARD, FORWARD, STILL))
    east = next(s for s in d if s.rocks == ((3, 2),))
    north = next(s for s in d if s.rocks == ((2, 1),))
    assert d[east] == pytest.approx(0.5) and d[north] == pytest.approx(0.5)
    assert agent(east, 0) == (2, 2, EAST) and agent(east, 1) == (2, 3, NORTH)
    assert agent(north, 1) == (2, 2, NORTH) and agent(north, 0) == (1, 2, EAST)


def test_transitive_conflict_through_a_line_that_grows() -> None:
    """A's rock line can grow by the rock B pushes, and then reach the cell C moves into: one block.

    Orders (A, B, C): ABC, ACB, CAB -> X1; BAC -> X2; BCA, CBA -> X3, so 1/2, 1/6, 1/3.
    """
    w = grid("Ae Ro .. .. Ay\nWe We Ro We We\nWe We Ae We We", orientations=["e", "w", "n"])
    d = dist(w, (FORWARD, FORWARD, FORWARD))
    x1 = next(s for s in d if s.rocks == ((2, 0), (2, 1)))
    x2 = next(s for s in d if s.rocks == ((2, 0), (3, 0)))
    x3 = next(s for s in d if s.rocks == ((1, 0), (2, 0)))
    assert (d[x1], d[x2], d[x3]) == pytest.approx((1 / 2, 1 / 6, 1 / 3))
    assert agent(x1, 0)[:2] == (1, 0) and agent(x1, 1)[:2] == (3, 0) and agent(x1, 2)[:2] == (2, 2)
    assert agent(x2, 0)[:2] == (1, 0) and agent(x2, 1)[:2] == (4, 0) and agent(x2, 2)[:2] == (2, 1)
    assert agent(x3, 0)[:2] == (0, 0) and agent(x3, 1)[:2] == (3, 0) and agent(x3, 2)[:2] == (2, 1)


def test_independent_stumblers_combine_as_a_product() -> None:
    w = grid("Ae .. .. .. .. Ay\n.. .. .. .. .. ..\nUn .. .. .. .. Un", stumble_probability=0.5)
    s = with_agent(with_agent(w.initial_state(), 0, y=2), 1, y=2, dir=WEST)  # both on unsteady ground
    d = dist(w, (FORWARD, FORWARD), s)
    robot = {(1, 2, EAST): 0.5, (0, 1, NORTH): 0.25, (0, 2, SOUTH): 0.25}  # south: the edge blocks
    human = {(4, 2, WEST): 0.5, (5, 1, NORTH): 0.25, (5, 2, SOUTH): 0.25}
    expected = {(r, h): pr * ph for r, pr in robot.items() for h, ph in human.items()}
    assert {(agent(s2, 0), agent(s2, 1)): p for s2, p in d.items()} == pytest.approx(expected)


def test_independent_agents_form_singleton_blocks() -> None:
    # Ten agents, each moving in its own row: no order is enumerated (10! would be 3.6 million).
    rows = "\n".join(("Ae" if y % 2 else "Ay") + " .. .." for y in range(10))
    w = grid(rows)
    s = w.initial_state()
    plans = [(i, FORWARD, EAST) for i in range(10)]
    start = frozenset((a.x, a.y) for a in s.agents)
    blocks = dynamics._conflict_blocks(dynamics._footprints(w.statics, s, plans, start))
    assert sorted(len(b) for b in blocks) == [1] * 10
    s1 = only(dist(w, (FORWARD,) * 10, brute=False))
    assert all(agent(s1, i) == (1, i, EAST) for i in range(10))


# --- Rule 6: unsteady ground ------------------------------------------------------------------------------


def test_stumble_split_half_quarter_quarter() -> None:
    w = grid("We We We We We\nWe .. .. .. We\nWe .. Un .. We\nWe .. .. Ae We\nWe Ay We We We")
    s = with_agent(w.initial_state(), 1, x=2, y=2, dir=EAST)  # the human stands on unsteady ground
    d = dist(w, (STILL, FORWARD), s)
    assert {agent(s2, 1): p for s2, p in d.items()} == pytest.approx(
        {(3, 2, EAST): 0.5, (2, 1, NORTH): 0.25, (2, 3, SOUTH): 0.25}
    )


def test_stumble_probability_parameter_and_blocked_stumble() -> None:
    w = grid("We We We We\nWe Un .. We\nWe .. Ay We\nWe Ae We We", stumble_probability=0.2)
    s = with_agent(w.initial_state(), 0, x=1, y=1, dir=EAST)  # human on unsteady ground, wall to its north
    d = dist(w, (FORWARD, STILL), s)
    assert {agent(s2, 0): p for s2, p in d.items()} == pytest.approx(
        {(2, 1, EAST): 0.8, (1, 1, NORTH): 0.1, (1, 2, SOUTH): 0.1}
    )


def test_stumbling_agent_conflicts_only_on_its_branch() -> None:
    # The robot on unsteady ground at (1,1) heads east to (2,1); the human at (2,2) heads west to (1,2).
    # Only when the robot stumbles south (1/4) do both go for (1,2): then each gets it with 1/2.
    w = grid("We We We We\nWe Un .. We\nWe .. Ay We\nWe Ae We We", orientations=["w", "e"])
    s = with_agent(w.initial_state(), 1, x=1, y=1, dir=EAST)  # agent 1 is the robot (reading order)
    d = dist(w, (FORWARD, FORWARD), s)
    human_moved = sum(p for s2, p in d.items() if agent(s2, 0) == (1, 2, WEST))
    robot_south = sum(p for s2, p in d.items() if agent(s2, 1) == (1, 2, SOUTH))
    assert human_moved == pytest.approx(1 - 0.125) and robot_south == pytest.approx(0.125)


# --- Rule 7: doors and keys -------------------------------------------------------------------------------


def test_closed_door_blocks_toggle_opens_and_closes() -> None:
    w = grid("We We We We We\nWe Ae Cy .. We\nWe Ay We We We", actions="full")
    s0 = w.initial_state()
    assert s0.doors == (DOOR_CLOSED,)
    assert only(dist(w, (FORWARD, STILL))) == s0._replace(step=1)
    opened = only(dist(w, (TOGGLE, STILL)))
    assert opened.doors == (DOOR_OPEN,)
    inside = only(dist(w, (FORWARD, STILL), opened))
    assert agent(inside, 0)[:2] == (2, 1)
    assert only(dist(w, (TOGGLE, STILL), opened)).doors == (DOOR_CLOSED,)


def test_door_does_not_close_on_an_agent_even_one_leaving() -> None:
    w = grid("We We We We We\nWe .. Oy Ae We\nWe Ay We We We", actions="full", orientations=["w", "n"])
    s = with_agent(w.initial_state(), 1, x=2, y=1, dir=WEST)  # the human stands in the open door
    s1 = only(dist(w, (TOGGLE, FORWARD), s))  # it leaves west while the robot toggles
    assert s1.doors == (DOOR_OPEN,) and agent(s1, 1)[:2] == (1, 1)
    assert only(dist(w, (TOGGLE, STILL), s1)).doors == (DOOR_CLOSED,)  # once it has left


def test_locked_door_needs_the_key_of_its_colour() -> None:
    w = grid("We We We We We\nWe Ky Ae Ly ..\nWe Ay We We We\nWe Kr We We We", actions="full")
    s0 = w.initial_state()
    assert s0.doors == (DOOR_LOCKED,) and s0.keys == ((1, 1), (1, 3))
    assert only(dist(w, (TOGGLE, STILL))) == s0._replace(step=1)  # no key
    red = with_agent(s0._replace(keys=((1, 1), None)), 0, carrying=1)
    assert only(dist(w, (TOGGLE, STILL), red)).doors == (DOOR_LOCKED,)  # wrong colour
    yellow = with_agent(s0._replace(keys=(None, (1, 3))), 0, carrying=0)
    s1 = only(dist(w, (TOGGLE, STILL), yellow))
    assert s1.doors == (DOOR_OPEN,) and s1.agents[0].carrying == 0  # the key stays carried
    assert only(dist(w, (TOGGLE, STILL), s1)).doors == (DOOR_CLOSED,)  # never locked again


def test_pickup_and_drop() -> None:
    w = grid("We We We We\nWe Ky Ae ..\nWe Ay We We", actions="full", orientations=["w", "n"])
    s0 = w.initial_state()
    assert only(dist(w, (FORWARD, STILL))) == s0._replace(step=1)  # a key blocks movement
    s1 = only(dist(w, (PICKUP, STILL)))
    assert s1.keys == (None,) and s1.agents[0].carrying == 0
    assert only(dist(w, (PICKUP, STILL), s1)) == s1._replace(step=2)  # nothing in front
    s3 = only(dist(w, (RIGHT, STILL), only(dist(w, (RIGHT, STILL), s1))))  # now facing east
    s4 = only(dist(w, (DROP, STILL), s3))
    assert s4.keys == ((3, 1),) and s4.agents[0].carrying == -1
    # Dropping into a wall or onto an agent's cell does nothing.
    s5 = only(dist(w, (LEFT, STILL), s1))  # facing south: a wall
    assert only(dist(w, (DROP, STILL), s5)) == s5._replace(step=s5.step + 1)
    s6 = with_agent(s1, 1, x=1, y=1)  # the human stands where the key was
    assert only(dist(w, (DROP, STILL), s6)) == s6._replace(step=s6.step + 1)


def test_pickup_while_carrying_does_nothing_and_two_pickers_half_each() -> None:
    w = grid("Ae Ky Ay", actions="full", orientations=["e", "w"])
    d = dist(w, (PICKUP, PICKUP))
    assert sorted((s.agents[0].carrying, s.agents[1].carrying) for s in d) == [(-1, 0), (0, -1)]
    assert list(d.values()) == pytest.approx([0.5, 0.5])
    w = grid("Ae Ky Kr Ay", actions="full")
    s = with_agent(w.initial_state()._replace(keys=((1, 0), None)), 0, carrying=1)
    assert only(dist(w, (PICKUP, STILL), s)) == s._replace(step=1)


def test_drop_versus_move_into_the_same_cell() -> None:
    w = grid("Ae .. Ay Ky", actions="full", orientations=["e", "w"])
    s = with_agent(w.initial_state()._replace(keys=(None,)), 0, carrying=0)
    d = dist(w, (DROP, FORWARD), s)
    dropped = next(x for x in d if x.keys == ((1, 0),))
    moved = next(x for x in d if agent(x, 1)[:2] == (1, 0))
    assert d[dropped] == pytest.approx(0.5) and d[moved] == pytest.approx(0.5)
    assert moved.agents[0].carrying == 0
