"""``humanpower worlds`` and ``humanpower show``: in-process runs plus one subprocess check of exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from humanpower.cli.main import main

SMALL_WORLD = """\
metadata:
  name: tiny room
  description: a test world
map: |
  We We We We
  We Ay Ae We
  We .. .. We
  We We We We
max_steps: 3
"""

MALFORMED_WORLD = """\
map: |
  We We We
  We Ay Qx
  We Ae We
max_steps: 3
"""


def test_worlds_lists_bundled_worlds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worlds"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "AGENTS", "PURPOSE"]
    trivial = next(line for line in lines if line.startswith("trivial "))
    assert trivial.split()[1:4] == ["6x4", "1h", "1r"]
    assert "smallest world" in trivial


def test_show_bundled_world_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.png"
    assert main(["show", "trivial", "--out", str(out), "--goals", "--cell-size", "20"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("trivial: ") and "size: 6 x 4" in printed
    assert printed.rstrip().endswith(f"wrote {out}")
    image = np.asarray(Image.open(out))
    assert image.shape == (4 * 20, 6 * 20, 3)


def test_show_world_file_default_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "room.yaml"
    path.write_text(SMALL_WORLD)
    monkeypatch.chdir(tmp_path)
    assert main(["show", str(path)]) == 0
    assert "wrote tiny_room.png" in capsys.readouterr().out  # metadata name, made file-safe
    assert np.asarray(Image.open(tmp_path / "tiny_room.png")).shape == (4 * 48, 4 * 48, 3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "no_such_world"], "unknown world 'no_such_world'"),
        (["show", "trivial", "--out", "x.jpg"], "--out: x.jpg: the image must be a .png file"),
        (["show", "trivial", "--out", "missing_dir/x.png"], "--out: cannot write missing_dir/x.png"),
        (["show", "trivial", "--cell-size", "3"], "--cell-size: must be >= 8"),
    ],
)
def test_show_user_errors(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("humanpower: error: ") and message in err


def test_show_malformed_file_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MALFORMED_WORLD)
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"humanpower: error: {path}:3: ") and "'Qx'" in err
    assert err.count("\n") == 1


def test_command_line_exit_codes(tmp_path: Path) -> None:
    """The real command (subprocess): ``show trivial`` exits 0, a malformed file exits 2 with one line."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "humanpower.cli.main"]
    ok = subprocess.run([*cmd, "show", "trivial"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "trivial.png").is_file()
    (tmp_path / "bad.yaml").write_text(MALFORMED_WORLD)
    bad = subprocess.run([*cmd, "show", "bad.yaml"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert bad.stderr.startswith("humanpower: error: bad.yaml:3: ") and bad.stderr.count("\n") == 1


def test_documented_example_world_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The complete example of docs/WORLD_FORMAT.md is a valid world file (keeps the document true)."""
    doc = (Path(__file__).parent.parent / "docs" / "WORLD_FORMAT.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    assert main(["show", str(path), "--out", str(tmp_path / "example.png")]) == 0
    printed = capsys.readouterr().out
    assert "size: 8 x 5" in printed and "blue locked at (3, 1)" in printed and "goal weights: 1, 1, 2" in printed


# --- bounded memory, summaries, names ---------------------------------------------------------------------


def test_show_refuses_a_cell_size_that_needs_too_much_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "trivial", "--cell-size", "100000"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "humanpower: error: --cell-size: a 6x4 world drawn at 100000 px per cell needs about 12.5 TB, more than "
        "the memory limit of 2 GB (lower the value, or raise --memory-limit-gb if this machine has the memory)\n"
    )


def test_show_memory_limit_can_be_raised_and_lowered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "t.png")
    assert main(["show", "trivial", "--out", out, "--cell-size", "20", "--memory-limit-gb", "0.1"]) == 2
    assert "needs about 250 MB, more than the memory limit of 0.1 GB" in capsys.readouterr().err
    assert main(["show", "trivial", "--out", out, "--cell-size", "20", "--memory-limit-gb", "0.3"]) == 0
    assert main(["show", "trivial", "--out", out, "--memory-limit-gb", "0"]) == 2
    assert "--memory-limit-gb: must be > 0" in capsys.readouterr().err


def _room(width: int, height: int) -> str:
    rows = []
    for y in range(height):
        cells = ["We" if x in (0, width - 1) or y in (0, height - 1) else ".." for x in range(width)]
        rows.append(cells)
    rows[1][1], rows[1][2] = "Ae", "Ay"
    return "map: |\n" + "".join("  " + " ".join(r) + "\n" for r in rows) + "max_steps: 3\n"


def test_show_large_world_summarises_goals_and_shrinks_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(_room(100, 90))
    out = tmp_path / "big.png"
    assert main(["show", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    goals = next(line for line in printed.splitlines() if "goals per human" in line)
    assert goals.startswith("  goals per human (8624, every non-wall cell): 1,1 | 2,1 |")
    assert goals.endswith("| 20,1 | ... (8604 more)") and len(goals) < 300
    assert printed.rstrip().endswith(f"wrote {out} (42 px per cell, smaller than 48 to bound memory and time)")
    assert np.asarray(Image.open(out)).shape == (90 * 42, 100 * 42, 3)  # 15.9 M pixels <= 16 M


def test_show_default_image_name_cannot_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(SMALL_WORLD.replace("name: tiny room", 'name: "../../x"'))
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert main(["show", str(path)]) == 0
    assert "wrote x.png" in capsys.readouterr().out
    assert (work / "x.png").is_file() and not (tmp_path / "x.png").exists()


def test_wall_goal_warning_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(SMALL_WORLD + 'possible_goals: ["1,1, 2,2", "0,0"]\n')
    assert main(["show", str(path), "--out", str(tmp_path / "w.png")]) == 0
    err = capsys.readouterr().err
    assert (
        err == f"humanpower: warning: {path}:10: goal '0,0' lies on a wall, no human can reach it "
        "(set metadata.allow_wall_goals: true if that is intended)\n"
    )


# --- the command itself -----------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from humanpower import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"humanpower {__version__}\n"


@pytest.mark.parametrize(("typo", "command"), [("trian", "train"), ("shwo", "show"), ("solv", "solve")])
def test_command_typos_get_a_suggestion(typo: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([typo, "trivial"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"humanpower: error: unknown command '{typo}' (did you mean '{command}'?)")
    assert err.count("\n") == 1


def test_train_flags_show_their_docstring_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--buffer-size N Replay capacity in transitions (oldest are overwritten); >= batch_size. (default: 100000)"
        in text
    )
    assert "--x-h-batch-size N|none" in text and "--include-step-count BOOL" in text
    assert "(default: none)" in text and " V " not in text


def test_broken_pipe_ends_quietly(tmp_path: Path) -> None:
    """``humanpower worlds | head -1``: no BrokenPipeError traceback, exit status 141 (128 + SIGPIPE)."""
    code = (
        "import sys; from humanpower.cli.main import main\n"
        "class Closed:\n"
        "    def write(self, text): raise BrokenPipeError(32, 'Broken pipe')\n"
        "    def flush(self): pass\n"
        "    def fileno(self): return sys.__stdout__.fileno()\n"
        "sys.stdout = Closed()\n"
        "sys.exit(main(['worlds']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 141 and run.stderr == "", run.stderr
    (tmp_path / "big.yaml").write_text(_room(150, 150))  # describe() prints a 67 kB map: more than a pipe holds
    real = subprocess.run(
        f"{sys.executable} -m humanpower.cli.main show big.yaml --cell-size 8 | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert real.stdout == "big\n" and real.stderr == "", real.stderr


# --- solve: absurd floats and the X_h = 0 error name the field / world ----------------------------------------


def test_solve_refuses_overflowing_beta(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "trivial", "--beta-r", "1e308"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("humanpower: error: --beta-r: must be <= 1e+06, got 1e+308") and err.count("\n") == 1


def test_solve_x_h_zero_error_names_the_world(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A world built in Python (not checked by the loader) whose goals miss a reachable cell."""
    import humanpower.cli.solve_cmd as solve_cmd
    from humanpower.worlds.grid.world import GridWorld

    good = solve_cmd.load_world("trivial")
    uncovered = GridWorld(
        good.layout, good.initial_state(), 4, goals=[(2, 2, 2, 2)], name="pocket", source="pocket.yaml"
    )
    monkeypatch.setattr(solve_cmd, "load_world", lambda name: uncovered)
    assert main(["solve", "pocket"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("humanpower: error: pocket.yaml: human 1 has X_h = 0 at the non-terminal state")
    assert err.count("\n") == 1


def test_negative_numbers_in_scientific_notation_are_values() -> None:
    from humanpower.cli.main import build_parser

    args = build_parser().parse_args(["solve", "trivial", "--terminal-v-r", "-1e3", "--beta-r", "-.5"])
    assert args.terminal_v_r == -1000.0 and args.beta_r == -0.5
