"""Rendering of gridworld states, the grid observation and the video writers."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from humanpower.errors import UserError
from humanpower.goals import GoalSet
from humanpower.worlds.grid import render as R
from humanpower.worlds.grid.goals import RectGoal
from humanpower.worlds.grid.observation import CH, CHANNELS, grid_observation, observation_space
from humanpower.worlds.grid.render import render_state
from humanpower.worlds.grid.state import (
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    EAST,
    NORTH,
    SOUTH,
    WEST,
    AgentState,
    GridLayout,
    GridState,
)
from humanpower.worlds.video import write_gif, write_mp4, write_video

CS = 32  # cell size used throughout

MAP = """\
We We We We We We We
We .. .. Un La .. We
We Gg .. .. .. .. We
We .. .. .. .. .. We
We We We We We We We"""


class HandWorld:
    """A 7x5 gridworld written by hand: two humans (0, 2) and one robot (1), three doors, two keys."""

    def __init__(self, state: GridState | None = None) -> None:
        terrain = tuple(tuple(row.split()) for row in MAP.splitlines())
        self.layout = GridLayout(
            width=7,
            height=5,
            terrain=terrain,
            door_positions=((5, 1), (5, 2), (5, 3)),
            door_colours=("r", "b", "g"),
            key_colours=("b", "p"),
            agent_colours=("y", "e", "y"),
            humans=(0, 2),
            robots=(1,),
            can_push_rocks=frozenset({"e"}),
        )
        self.humans: tuple[int, ...] = (0, 2)
        self.robots: tuple[int, ...] = (1,)
        self.max_steps = 8
        self._state = state or GridState(
            step=2,
            agents=(
                AgentState(1, 1, EAST),
                AgentState(2, 2, SOUTH, carrying=1),
                AgentState(4, 1, WEST, True),
            ),
            rocks=((3, 2),),
            blocks=((3, 3),),
            doors=(DOOR_OPEN, DOOR_CLOSED, DOOR_LOCKED),
            keys=((1, 3), None),
        )

    def initial_state(self) -> GridState:
        return self._state

    def goal_set(self, human: int) -> GoalSet:
        if human == 0:
            return GoalSet.of([RectGoal(0, 1, 1, 2, 2)])
        return GoalSet.of([RectGoal(2, 4, 3, 4, 3)])


def cell(img: np.ndarray, x: int, y: int) -> np.ndarray:
    return img[y * CS : (y + 1) * CS, x * CS : (x + 1) * CS]


def centre(img: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in img[y * CS + CS // 2, x * CS + CS // 2])


def near(img_cell: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> np.ndarray:
    """Mask of pixels within ``tol`` of ``rgb`` in every channel."""
    return np.all(np.abs(img_cell.astype(int) - np.array(rgb)) <= tol, axis=-1)


def purple(img_cell: np.ndarray) -> np.ndarray:
    """Mask of clearly purple pixels (red and blue well above green)."""
    c = img_cell.astype(int)
    return (c[..., 0] > c[..., 1] + 40) & (c[..., 2] > c[..., 1] + 70)


def test_shape_and_terrain_colours() -> None:
    img = render_state(HandWorld(), cell_size=CS)
    assert img.dtype == np.uint8 and img.shape == (5 * CS, 7 * CS, 3)
    assert centre(img, 0, 0) == R.WALL_RGB
    assert centre(img, 2, 3) == R.FLOOR
    assert near(cell(img, 4, 1), R.LAVA_RGB).mean() > 0.2  # lava under the crossed-out human
    unsteady = cell(img, 3, 1)
    assert near(unsteady, R.UNSTEADY_RGB).mean() > 0.4 and near(unsteady, R.UNSTEADY_HATCH, 25).mean() > 0.1
    goal_tile = cell(img, 1, 2)
    assert near(goal_tile, R.COLOUR_RGB["g"], 20).mean() > 0.1  # its inner frame in its colour


def test_humans_and_robots_differ_and_point_their_way() -> None:
    img = render_state(HandWorld(), cell_size=CS)
    human, robot = cell(img, 1, 1), cell(img, 2, 2)
    assert near(human, R.COLOUR_RGB["y"]).sum() > 60
    assert near(robot, R.COLOUR_RGB["y"]).sum() == 0
    assert near(robot, R.COLOUR_RGB["e"], 8).sum() > 40
    ring = R.ROBOT_RING_RGB  # robots sit in a light ring, humans do not
    assert near(robot, ring, 6).sum() > 60 and near(human, ring, 6).sum() == 0

    def yellow_profile(direction: int) -> tuple[int, int, int, int]:
        """Yellow pixels in the column 5 px left / right of the centre and the row 5 px below / above."""
        agents = (AgentState(2, 3, direction), *HandWorld().initial_state().agents[1:])
        state = HandWorld().initial_state()._replace(agents=agents)
        mask = near(cell(render_state(HandWorld(state), cell_size=CS), 2, 3), R.COLOUR_RGB["y"], 30)
        c = CS // 2
        return (mask[:, c - 5].sum(), mask[:, c + 5].sum(), mask[c + 5].sum(), mask[c - 5].sum())

    # The triangle is wide at its base and narrow towards its tip, which points in the agent's direction.
    left, right, below, above = yellow_profile(EAST)
    assert left > right + 5
    left, right, below, above = yellow_profile(WEST)
    assert right > left + 5
    left, right, below, above = yellow_profile(NORTH)
    assert below > above + 5
    left, right, below, above = yellow_profile(SOUTH)
    assert above > below + 5


def test_doors_keys_carrying_and_termination_look_different() -> None:
    img = render_state(HandWorld(), cell_size=CS)
    doors = [cell(img, 5, y).astype(int) for y in (1, 2, 3)]  # open red, closed blue, locked green
    assert near(doors[0], R.FLOOR, 3).mean() > 0.4  # an open door shows the floor through its frame
    assert near(doors[1], R.FLOOR, 3).mean() < 0.1 and near(doors[2], R.FLOOR, 3).mean() < 0.1
    assert near(doors[0], R.COLOUR_RGB["r"], 10).sum() > 30
    locked_colour = R._mix(R.COLOUR_RGB["g"], R.OUTLINE, 0.35)
    assert near(doors[2], locked_colour, 4).mean() > 0.5
    assert near(cell(img, 1, 3), R.COLOUR_RGB["b"], 10).sum() > 20  # the blue key on the floor

    agents = (AgentState(1, 1, EAST), AgentState(2, 2, SOUTH), AgentState(4, 1, WEST))
    plain = HandWorld().initial_state()._replace(agents=agents)
    img2 = render_state(HandWorld(plain), cell_size=CS)
    carrying = cell(img, 2, 2)
    assert purple(carrying).sum() > 8  # purple key mark on the robot
    assert purple(cell(img2, 2, 2)).sum() == 0
    assert near(cell(img, 4, 1), R.CROSS_RGB, 30).sum() > 30  # terminated human crossed out
    assert near(cell(img2, 4, 1), R.CROSS_RGB, 30).sum() == 0


def test_overlay_tints_prints_and_is_checked() -> None:
    world = HandWorld()
    plain = render_state(world, cell_size=CS)
    img = render_state(world, cell_size=CS, overlay={(2, 3): 0.0, (4, 3): 1.0, (1, 2): float("nan")})
    low, high = cell(img, 2, 3), cell(img, 4, 3)
    tint_low = R._mix(R.FLOOR, R.value_colour(0.0), R.OVERLAY_ALPHA)
    tint_high = R._mix(R.FLOOR, R.value_colour(1.0), R.OVERLAY_ALPHA)
    assert near(low[: CS // 2], tint_low, 2).mean() > 0.8  # upper half tinted (grid line aside), text below
    assert near(high[: CS // 2], tint_high, 2).mean() > 0.8
    assert np.array_equal(cell(img, 3, 1), cell(plain, 3, 1))  # cells without a value untouched
    text_rows = slice(CS // 2, CS)
    assert (low[text_rows].max(axis=-1) < 100).sum() > 8  # dark text pixels of "0.00"
    assert not np.array_equal(cell(img, 1, 2), cell(plain, 1, 2))  # "nan" printed, no tint
    with pytest.raises(ValueError, match="outside"):
        render_state(world, overlay={(7, 0): 1.0})


def test_caption_goals_and_highlight() -> None:
    world = HandWorld()
    plain = render_state(world, cell_size=CS)
    img = render_state(world, cell_size=CS, caption="step 3  X_h=2.1  V_r=-0.4")
    assert img.shape[0] > plain.shape[0] and img.shape[1] == plain.shape[1]
    assert np.array_equal(img[: plain.shape[0]], plain)
    strip = img[plain.shape[0] :]
    assert (strip < 80).all(axis=-1).sum() > 50  # text in the strip
    goals = render_state(world, cell_size=CS, show_goals=True)
    colour0, colour1 = R.GOAL_OUTLINE_RGB[0], R.GOAL_OUTLINE_RGB[1]
    assert near(goals, colour0, 40).sum() > 40 and near(goals, colour1, 40).sum() > 20
    assert np.array_equal(cell(goals, 5, 1), cell(plain, 5, 1))  # not a goal cell: unchanged
    hl = render_state(world, cell_size=CS, highlight=[(3, 3)])
    assert near(cell(hl, 3, 3), R.HIGHLIGHT_RGB, 30).sum() > 40
    assert near(plain, R.HIGHLIGHT_RGB, 30).sum() == 0


def test_grid_observation_channels() -> None:
    world = HandWorld()
    obs = grid_observation(world, world.initial_state())
    space = observation_space(world)
    assert obs.shape == (len(CHANNELS), 5, 7) and space.contains(obs)
    assert obs[CH["wall"], 0, 0] == 1 and obs[CH["wall"], 1, 1] == 0
    assert obs[CH["human"], 1, 1] == 1 and obs[CH["robot"], 2, 2] == 1 and obs[CH["human"], 2, 2] == 0
    assert obs[CH["dir_south"], 2, 2] == 1 and obs[CH["dir_east"], 1, 1] == 1
    assert obs[CH["terminated"], 1, 4] == 1 and obs[CH["carrying"], 2, 2] == 1
    assert obs[CH["carried_colour_p"], 2, 2] == 1
    assert obs[CH["agent_index"], 2, 2] == pytest.approx(2 / 3)
    assert obs[CH["door_open"], 1, 5] == 1 and obs[CH["door_locked"], 3, 5] == 1
    assert obs[CH["colour_g"], 3, 5] == 1 and obs[CH["colour_b"], 3, 1] == 1  # locked green door, blue key
    assert obs[CH["rock"], 2, 3] == 1 and obs[CH["block"], 3, 3] == 1
    np.testing.assert_allclose(obs[CH["time_left"]], (8 - 2) / 8)
    assert int(obs.sum()) == int(obs.sum())  # finite
    later = world.initial_state()._replace(step=8, doors=(DOOR_OPEN, DOOR_OPEN, DOOR_OPEN))
    obs2 = grid_observation(world, later)
    assert obs2[CH["time_left"], 0, 0] == 0 and obs2[CH["door_locked"]].sum() == 0


def frames(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [rng.integers(0, 256, (30, 45, 3), dtype=np.uint8) for _ in range(n - 1)]
    return [*out, np.zeros((35, 41, 3), dtype=np.uint8)]  # a taller, narrower last frame


def test_gif_writer(tmp_path: Path) -> None:
    path = write_video(frames(), tmp_path / "roll.gif", fps=5)
    back = iio.imread(path)
    assert back.shape == (5, 35, 45, 3)  # padded to the largest size
    assert iio.immeta(path)["duration"] == 200
    assert (back[-1, :35, :41] == 0).all() and (back[-1, :, 41:] == 255).all()


def test_mp4_writer_pads_to_macro_blocks(tmp_path: Path) -> None:
    path = write_mp4(frames(), tmp_path / "roll.mp4", fps=4)
    back = iio.imread(path, plugin="FFMPEG")
    assert back.shape == (5, 48, 48, 3)


def test_unknown_video_suffix_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"roll\.avi: unknown video format '\.avi'"):
        write_video(frames(), tmp_path / "roll.avi")
    with pytest.raises(ValueError, match="no frames"):
        write_gif([], tmp_path / "x.gif")
