"""Gridworld state and goal encoders."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from humanpower.encoders import GridGoalEncoder, GridStateEncoder, grid_encoders
from humanpower.learn.encoding import Featurizer, GoalEncoder, StateEncoder
from humanpower.worlds.grid.goals import RectGoal
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.grid.state import DOOR_CLOSED, DOOR_OPEN, GridState
from humanpower.worlds.grid.world import GridWorld

WORLD_YAML = """\
map: |
  We We We We We We We
  We Ay .. Ly .. Ky We
  We .. Ro We Un .. We
  We Bl .. We Ae La We
  We We We We We We We
max_steps: 8
orientations: ['e', 'n']
actions: full
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GridWorld:
    path = Path(tmp_path_factory.mktemp("worlds")) / "everything.yaml"
    path.write_text(WORLD_YAML)
    return load_world(path)


def variants(s0: GridState) -> dict[str, GridState]:
    """States that differ from ``s0`` in exactly one field."""
    a0, a1 = s0.agents
    return {
        "base": s0,
        "step": s0._replace(step=3),
        "agent_x": s0._replace(agents=(a0._replace(x=2), a1)),
        "agent_y": s0._replace(agents=(a0._replace(y=2), a1)),
        "agent_dir": s0._replace(agents=(a0._replace(dir=1), a1)),
        "robot_dir": s0._replace(agents=(a0, a1._replace(dir=2))),
        "terminated": s0._replace(agents=(a0, a1._replace(terminated=True))),
        "carrying": s0._replace(agents=(a0, a1._replace(carrying=0))),
        "key_taken": s0._replace(keys=(None,)),
        "key_moved": s0._replace(keys=((5, 2),)),
        "rock": s0._replace(rocks=((2, 3),)),
        "block": s0._replace(blocks=((2, 3),)),
        "door_open": s0._replace(doors=(DOOR_OPEN,)),
        "door_closed": s0._replace(doors=(DOOR_CLOSED,)),
    }


def test_every_field_changes_the_features(world: GridWorld) -> None:
    enc = GridStateEncoder(world)
    assert isinstance(enc, StateEncoder)
    states = variants(world.initial_state())
    rows = enc.encode(list(states.values()))
    assert rows.dtype == np.float32 and rows.shape == (len(states), enc.dim)
    for (n1, r1), (n2, r2) in itertools.combinations(zip(states, rows, strict=True), 2):
        assert not np.array_equal(r1, r2), (n1, n2)
    # Batched encoding equals one-by-one encoding.
    singles = np.concatenate([enc.encode([s]) for s in states.values()])
    np.testing.assert_array_equal(rows, singles)


def test_hand_checked_entries(world: GridWorld) -> None:
    enc = GridStateEncoder(world)
    w, h = 7, 5
    cells = w * h
    names = enc.plane_names
    assert names[:5] == ("wall", "lava", "unsteady", "rock", "block")
    assert names[-4:] == ("door_open", "door_closed", "door_locked", "key_0")
    # planes + carrying (2 agents x 1 key) + terminated (2) + time
    assert enc.dim == len(names) * cells + 2 + 2 + 1

    def col(plane: str, x: int, y: int) -> int:
        return names.index(plane) * cells + y * w + x

    s0 = world.initial_state()
    row = enc.encode([s0])[0]
    ones = {
        col("lava", 5, 3),
        col("unsteady", 4, 2),
        col("rock", 2, 2),
        col("block", 1, 3),
        col("agent_0_dir_0", 1, 1),  # human at (1, 1) facing east
        col("agent_1_dir_3", 4, 3),  # robot at (4, 3) facing north
        col("door_locked", 3, 1),
        col("key_0", 5, 1),
    }
    walls = {col("wall", x, y) for y in range(h) for x in range(w) if world.layout.terrain[y][x] == "We"}
    assert row[-1] == 1.0  # time left at step 0
    assert set(np.flatnonzero(row[:-1]).tolist()) == ones | walls
    assert np.all(row[:-1][list(ones | walls)] == 1.0)

    a0, a1 = s0.agents
    later = s0._replace(step=6, agents=(a0, a1._replace(carrying=0, terminated=True)), keys=(None,))
    row = enc.encode([later])[0]
    carry, term = len(names) * cells, len(names) * cells + 2
    assert row[carry + 1] == 1.0 and row[carry] == 0.0  # agent 1 carries key 0
    assert row[term + 1] == 1.0 and row[term] == 0.0
    assert row[col("key_0", 5, 1)] == 0.0
    assert row[-1] == pytest.approx(2 / 8)


def test_without_step_count(world: GridWorld) -> None:
    with_time = GridStateEncoder(world, include_step_count=True)
    enc = GridStateEncoder(world, include_step_count=False)
    assert enc.dim == with_time.dim - 1
    s0 = world.initial_state()
    np.testing.assert_array_equal(enc.encode([s0]), enc.encode([s0._replace(step=5)]))
    with pytest.raises(TypeError):
        enc.encode([(0, 1)])


def test_goal_encoder(world: GridWorld) -> None:
    enc = GridGoalEncoder(world)
    assert isinstance(enc, GoalEncoder) and enc.dim == 4 + 35
    rect, cell = RectGoal(0, 1, 2, 2, 2), RectGoal(0, 5, 1, 5, 1)
    out = enc.encode([rect, cell])
    np.testing.assert_allclose(out[0, :4], [1 / 6, 2 / 4, 2 / 6, 2 / 4])
    np.testing.assert_allclose(out[1, :4], [5 / 6, 1 / 4, 5 / 6, 1 / 4])
    mask = out[:, 4:].reshape(2, 5, 7)
    assert sorted(zip(*np.nonzero(mask[0]), strict=True)) == [(2, 1), (2, 2)]  # (y, x)
    assert sorted(zip(*np.nonzero(mask[1]), strict=True)) == [(1, 5)]
    with pytest.raises(ValueError, match="outside"):
        enc.encode([RectGoal(0, 1, 1, 7, 1)])
    with pytest.raises(TypeError):
        enc.encode(["1,1"])  # type: ignore[list-item]


def test_grid_encoders_on_trivial_with_featurizer() -> None:
    world = load_world("trivial")
    state_enc, goal_encs = grid_encoders(world, include_step_count=True)
    assert set(goal_encs) == set(world.humans)
    goals = world.goal_set(world.humans[0]).goals
    assert goal_encs[world.humans[0]].encode(list(goals)).shape == (
        len(goals),
        goal_encs[world.humans[0]].dim,
    )
    f = Featurizer(state_enc)
    s0 = world.initial_state()
    succ = [s for _, s in world.transition_probabilities(s0, (3, 0))]
    batch = f.batch([s0, *succ, s0])
    np.testing.assert_array_equal(batch.features.numpy(), state_enc.encode([s0, *succ, s0]))
    assert batch.ids[0] == batch.ids[-1]
