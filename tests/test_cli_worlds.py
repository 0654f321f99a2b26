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
    assert (
        "size: 8 x 5" in printed and "blue locked at (3, 1)" in printed and "goal weights: 1, 1, 2" in printed
    )
