"""World files: parsing, defaults, round trip, and one clear error (file and line) per malformed case."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from humanpower.errors import InputWarning, UserError, WorldFileError
from humanpower.worlds.grid import (
    DOOR_CLOSED,
    DOOR_LOCKED,
    DOOR_OPEN,
    GridWorld,
    bundled_names,
    load_world,
    load_world_file,
    parse_world_yaml,
    save_world_file,
    world_to_yaml,
)
from humanpower.worlds.grid.files import MAX_FILE_BYTES, safe_name

GOOD = """\
metadata:
  name: small
  description: A test world.
map: |
  We We We We We
  We Ay .. Ro We
  We Ae Ky Cr We
  We We We We We
max_steps: 7
orientations: ['s', 'n']
"""


def same_world(a: GridWorld, b: GridWorld) -> None:
    assert a.layout == b.layout
    assert a.initial_state() == b.initial_state()
    assert (a.max_steps, a.actions, a.stumble_probability) == (b.max_steps, b.actions, b.stumble_probability)
    assert (a.goal_rects, a.default_goals, a.goal_weights) == (b.goal_rects, b.default_goals, b.goal_weights)
    assert (a.name, a.description, a.humans, a.robots) == (b.name, b.description, b.humans, b.robots)
    for h in a.humans:
        assert [str(g) for g in a.goal_set(h).goals] == [str(g) for g in b.goal_set(h).goals]
        assert list(a.goal_set(h).weights) == list(b.goal_set(h).weights)


def test_parse_good_file_and_defaults() -> None:
    w = parse_world_yaml(GOOD, "small.yaml")
    assert (w.name, w.description, w.source) == ("small", "A test world.", "small.yaml")
    assert (w.layout.width, w.layout.height, w.max_steps) == (5, 4, 7)
    assert w.humans == (0,) and w.robots == (1,) and w.layout.agent_colours == ("y", "e")
    s = w.initial_state()
    assert [(a.x, a.y, a.dir) for a in s.agents] == [(1, 1, 1), (1, 2, 3)]
    assert s.rocks == ((3, 1),) and s.keys == ((2, 2),) and s.doors == (DOOR_CLOSED,)
    assert w.layout.door_positions == ((3, 2),) and w.layout.door_colours == ("r",)
    assert w.layout.key_colours == ("y",) and w.layout.terrain[2][2] == ".."
    assert w.layout.can_push_rocks == frozenset("e")
    assert (w.actions, w.stumble_probability) == ("small", 0.5)
    # Default goals: every non-wall cell, weight 1.
    assert w.default_goals and [str(g) for g in w.goal_set(0).goals] == [
        "1,1",
        "2,1",
        "3,1",
        "1,2",
        "2,2",
        "3,2",
    ]
    assert list(w.goal_set(0).weights) == [1.0] * 6


def test_empo_keys_and_options() -> None:
    text = (
        "map: |\n  Ar Lg Og Gb\n  Ab La Un ..\nmax_steps: 3\naction_class: ObjectActions\n"
        "humans: [r]\nrobots: 'b'\ncan_push_rocks: 'by'\nstumble_probability: 0.25\n"
        "partial_obs: false\nsee_through_walls: true\nagent_view_size: 7\n"
        'possible_goals: ["0,0", "3,1, 2,0", "0,1, 1,1"]\ngoal_weights: [1, 2.5, 1]\n'
    )
    w = parse_world_yaml(text, "empo.yaml")
    assert w.name == "empo" and w.actions == "full" and w.num_actions == 7
    assert w.humans == (0,) and w.robots == (1,) and w.layout.can_push_rocks == frozenset("by")
    assert w.initial_state().doors == (DOOR_LOCKED, DOOR_OPEN) and w.stumble_probability == 0.25
    assert w.layout.terrain[0][3] == "Gb" and w.layout.terrain[1][1] == "La" and w.layout.terrain[1][2] == "Un"
    assert w.goal_rects == ((0, 0, 0, 0), (2, 0, 3, 1), (0, 1, 1, 1)) and w.goal_weights == (1.0, 2.5, 1.0)
    assert [str(g) for g in w.goal_set(0).goals] == ["0,0", "2,0, 3,1", "0,1, 1,1"]


def test_round_trip_of_every_bundled_world(tmp_path: Path) -> None:
    for name in bundled_names():
        w = load_world(name)
        same_world(w, parse_world_yaml(world_to_yaml(w), f"{name}.yaml"))
        path = tmp_path / f"{name}.yaml"
        save_world_file(w, path)
        same_world(w, load_world_file(path))


def test_round_trip_with_options() -> None:
    text = (
        "metadata: {name: 'opt: \"x\"', description: 'two\\nlines'}\n"
        "map: |\n  Ar Cg Kg\n  Ab .. Bl\nmax_steps: 4\nactions: full\nhumans: [r]\nrobots: [b]\n"
        "can_push_rocks: ''\nstumble_probability: 0.1\norientations: [w, n]\n"
        'possible_goals: ["0,0, 0,1", "1,0, 2,1"]\ngoal_weights: [3, 0.5]\n'
    )
    w = parse_world_yaml(text, "opt.yaml")
    assert w.layout.can_push_rocks == frozenset()
    same_world(w, parse_world_yaml(world_to_yaml(w), "opt2.yaml"))


# --- malformed files: (text, line, words of the reason) -------------------------------------------------

BAD = {
    "yaml_syntax": ("map: |\n  Ay Ae\nmax_steps: [1, 2\n", 4, "YAML syntax"),
    "unknown_key": ("map: |\n  Ay Ae\nmax_steps: 3\nspeed: 2\n", 4, "unknown key 'speed'"),
    "unknown_code": ("max_steps: 3\nmap: |\n  We We We\n  Ay Xx Ae\n", 4, "unknown cell code 'Xx'"),
    "empo_switch": ("# comment\nmap: |\n  Ay Ae\n  Sw ..\n", 4, "not supported"),
    "three_chars": ("map: |\n  Ay Ae ...\n", 2, "unknown cell code '...'"),
    "ragged": ("map: |\n  We We We\n\n  Ay Ae\n  We We We\n", 4, "rows must be equally long"),
    "no_human": ("map: |\n  Ae ..\nmax_steps: 3\n", 1, "no human"),
    "no_robot": ("max_steps: 3\nmap: |\n  Ay ..\n", 2, "no robot"),
    "stray_colour": ("map: |\n  Ay Ae\n  Ar ..\n", 3, "neither a human colour"),
    "goal_syntax": ('map: |\n  Ay Ae\npossible_goals:\n  - "0,0"\n  - "1;0"\n', 5, "neither 'x,y'"),
    "goal_outside": (
        'map: |\n  Ay Ae\npossible_goals:\n  - "0,0"\n  - "0,0, 2,0"\n',
        5,
        "outside the 2x1 grid",
    ),
    "goal_twice": ('map: |\n  Ay Ae\npossible_goals: ["0,0", "0,0"]\n', 3, "listed twice"),
    "goals_empty": ("map: |\n  Ay Ae\npossible_goals: []\n", 3, "non-empty list"),
    "weights_count": (
        'map: |\n  Ay Ae\npossible_goals: ["0,0"]\ngoal_weights: [1, 2]\n',
        4,
        "one weight per goal",
    ),
    "weights_value": ('map: |\n  Ay Ae\npossible_goals: ["0,0"]\ngoal_weights: [0]\n', 4, "> 0"),
    "weights_alone": ("map: |\n  Ay Ae\ngoal_weights: [1]\n", 3, "needs possible_goals"),
    "orientation_count": ("map: |\n  Ay Ae\norientations: [e]\n", 3, "1 entries but the map has 2 agents"),
    "orientation_code": ("map: |\n  Ay Ae\norientations:\n  - e\n  - up\n", 5, "orientation 'up'"),
    "max_steps_negative": ("map: |\n  Ay Ae\nmax_steps: -3\n", 3, "positive integer"),
    "max_steps_float": ("map: |\n  Ay Ae\nmax_steps: 2.5\n", 3, "positive integer"),
    "max_steps_text": ("map: |\n  Ay Ae\n\nmax_steps: ten\n", 4, "positive integer"),
    "stumble_high": ("map: |\n  Ay Ae\nstumble_probability: 1.5\n", 3, "in [0, 1]"),
    "stumble_negative": ("map: |\n  Ay Ae\nstumble_probability: -0.1\n", 3, "in [0, 1]"),
    "actions": ("map: |\n  Ay Ae\nactions: medium\n", 3, "'small' or 'full'"),
    "action_class": ("map: |\n  Ay Ae\naction_class: MoreActions\n", 3, "SmallActions or ObjectActions"),
    "action_conflict": ("map: |\n  Ay Ae\nactions: small\naction_class: ObjectActions\n", 4, "contradicts"),
    "colour_list": ("map: |\n  Ay Ae\ncan_push_rocks: [e, x]\n", 3, "colour codes"),
    "both_roles": ("map: |\n  Ay Ae\nhumans: [y, e]\n", 3, "both as human and as robot"),
    "duplicate_key": ("map: |\n  Ay Ae\nmax_steps: 3\nmax_steps: 4\n", 4, "duplicate key"),
    "number_key": ("map: |\n  Ay Ae\n1: 2\n", 3, "plain names"),
    "null_key": ("map: |\n  Ay Ae\n\nnull: 2\n", 4, "plain names"),
    "missing_map": ("max_steps: 3\n", 1, "missing key 'map'"),
    "empty_map": ("map: ''\n", 1, "the map is empty"),
    "not_mapping": ("- map\n- rows\n", 1, "YAML mapping"),
    "empty_file": ("", 1, "empty"),
    "metadata": ("metadata: [a]\nmap: |\n  Ay Ae\n", 1, "metadata must be a mapping"),
    "metadata_key": ("metadata:\n  nme: x\nmap: |\n  Ay Ae\n", 1, "unknown metadata key 'nme'"),
    "wall_goals_flag": ("metadata: {allow_wall_goals: 2}\nmap: |\n  Ay Ae\n", 1, "true or false"),
    "uncovered": (
        'map: |\n  Ay .. ..\n  Ae We ..\npossible_goals: ["0,0"]\n',
        4,
        "misses 4 cell(s) human 0 can reach: (1, 0), (2, 0), (0, 1), (2, 1); X_h would be 0 there",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_file_names_file_and_line(case: str) -> None:
    text, line, words = BAD[case]
    with pytest.raises(WorldFileError) as info:
        parse_world_yaml(text, "bad.yaml")
    err = info.value
    assert isinstance(err, UserError)
    assert err.path == "bad.yaml" and err.line == line, str(err)
    assert words in err.reason, str(err)
    assert str(err).startswith(f"bad.yaml:{line}: ")


def test_map_cell_line_inside_the_block_scalar(tmp_path: Path) -> None:
    text = "metadata:\n  name: x\n\n# the map\nmap: |\n  We We We\n  We Ay We\n\n  We Ae Bu\nmax_steps: 3\n"
    path = tmp_path / "cells.yaml"
    path.write_text(text)
    with pytest.raises(WorldFileError) as info:
        load_world_file(path)
    assert info.value.line == 9 and str(path) in str(info.value) and "map cell (2, 2)" in info.value.reason


def test_missing_file_and_unknown_world() -> None:
    with pytest.raises(WorldFileError, match="no such file"):
        load_world_file("/nonexistent/world.yaml")
    with pytest.raises(WorldFileError, match="no such file"):
        load_world("nonexistent.yaml")
    with pytest.raises(UserError, match=r"bundled worlds: .*trivial"):
        load_world("no_such_world")


def test_unwritable_initial_state_is_refused() -> None:
    w = parse_world_yaml(GOOD, "small.yaml")
    s = w.initial_state()
    carried = s._replace(keys=(None,), agents=(s.agents[0]._replace(carrying=0), s.agents[1]))
    w2 = GridWorld(w.layout, carried, max_steps=3)
    with pytest.raises(ValueError, match="cannot be written"):
        world_to_yaml(w2)
    assert DOOR_OPEN == 0  # the constants the files use are the state module's


# --- goal checks, names, file limits ---------------------------------------------------------------------

COVERED = "map: |\n  We We We We\n  We Ay .. We\n  We Ae We We\n  We We We We\nmax_steps: 5\n"


def test_uncovered_goal_set_names_cells_and_suggests_a_goal_line() -> None:
    text = COVERED + 'possible_goals:\n  - "1,1"\n'
    with pytest.raises(WorldFileError) as info:
        parse_world_yaml(text, "w.yaml")
    assert str(info.value) == (
        "w.yaml:7: possible_goals misses 2 cell(s) human 0 can reach: (2, 1), (1, 2); X_h would be 0 there "
        "(no goal left to reach), which the solver and the learner cannot handle; add a goal such as "
        '- "1,1, 2,2"'
    )
    parse_world_yaml(text + '  - "1,1, 2,2"\n', "w.yaml")  # the suggested line fixes it


def test_coverage_search_respects_doors_lava_and_the_horizon() -> None:
    # small actions: a closed door blocks, so the room behind it needs no goal
    door = 'map: |\n  Ay Cb .. ..\n  Ae .. We ..\npossible_goals: ["0,0, 1,1"]\n'
    assert parse_world_yaml(door, "d.yaml").goal_rects == ((0, 0, 1, 1),)
    # full actions: the door can be opened, so the room must be covered
    with pytest.raises(WorldFileError, match=r"misses 3 cell\(s\).*\(2, 0\), \(3, 0\), \(3, 1\)"):
        parse_world_yaml(door + "actions: full\n", "d.yaml")
    # lava is entered but not left: the cell behind it is out of reach
    lava = 'map: |\n  Ay La ..\n  Ae We We\npossible_goals: ["0,0, 1,1"]\n'
    assert parse_world_yaml(lava, "l.yaml").max_steps == 100
    # cells more than max_steps - 1 moves away cannot be stood in before the horizon
    far = 'map: |\n  Ay .. .. ..\n  Ae We We We\nmax_steps: 3\npossible_goals: ["0,0, 2,1"]\n'
    assert parse_world_yaml(far, "f.yaml").max_steps == 3
    with pytest.raises(WorldFileError, match=r"\(3, 0\)"):
        parse_world_yaml(far.replace("max_steps: 3", "max_steps: 4"), "f.yaml")


def test_every_bundled_world_loads_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in bundled_names():
            load_world(name)


def test_goal_on_a_wall_warns_with_file_and_line_unless_intended() -> None:
    text = COVERED + 'possible_goals:\n  - "1,1, 2,2"\n  - "0,0"\n'
    with pytest.warns(InputWarning) as record:
        parse_world_yaml(text, "w.yaml")
    assert [str(r.message) for r in record] == [
        "w.yaml:9: goal '0,0' lies on a wall, no human can reach it (set metadata.allow_wall_goals: true if "
        "that is intended)"
    ]
    intended = "metadata:\n  allow_wall_goals: true\n" + text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = parse_world_yaml(intended, "w.yaml")
        parse_world_yaml(world_to_yaml(w), "again.yaml")  # a saved world keeps the flag
    trivial = load_world("trivial")
    assert (1, 2, 1, 2) in trivial.goal_rects and trivial.layout.terrain[2][1] == "We"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../x", "x"),
        ("..", "world"),
        ("tiny room", "tiny_room"),
        ("a/b\\c", "a_b_c"),
        (".hidden", "hidden"),
        ("ok-name_1.v2", "ok-name_1.v2"),
        ("x" * 200, "x" * 80),
        ("\u00e9t\u00e9", "t"),
    ],
)
def test_safe_name_cannot_escape_a_folder(name: str, safe: str) -> None:
    assert safe_name(name) == safe
    assert "/" not in safe_name(name) and not safe_name(name).startswith(".")


def test_binary_and_oversized_world_files_are_one_line_errors(tmp_path: Path) -> None:
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"map: |\n  Ay Ae\n\xff\xfe\x00")
    with pytest.raises(WorldFileError, match=r"b\.yaml: not a UTF-8 text file \(byte 0xff at offset 15\)"):
        load_world_file(binary)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\nmap: |\n  Ay Ae\n")
    with pytest.raises(
        WorldFileError,
        match=r"big\.yaml: the file has 4,000,018 bytes, more than the 4,000,000 a world file may have "
        r"\(loading it "
        r"would need about 1.6 GB of memory\)",
    ):
        load_world_file(big)
