"""A generated corpus of malformed world files, configs and flags through the CLI: exit 2, one line, no traceback.

The corpus comes from ``tools/fuzz_inputs.py`` (mutations of every bundled world and config: truncations,
deleted/doubled lines, bad cell codes, bad values, unknown and duplicate keys, binary bytes, UTF-16 and Latin-1
text, NUL bytes, empty files, non-mapping documents, bad flag values). In-process for speed, plus a few real
subprocesses. The tool runs a larger corpus and prints the counts quoted in the README.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fuzz_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_inputs", ROOT / "tools" / "fuzz_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_inputs"] = module
    spec.loader.exec_module(module)
    return module


FUZZ = _fuzz_module()


def test_generated_corpus_gets_one_clear_line_each() -> None:
    cases = FUZZ.corpus(seed=0, per_kind=1)
    outcomes = FUZZ.run_corpus(cases)
    counts = Counter(o.kind for o in outcomes)
    bad = [f"{o.kind}: {o.case.name}: {o.detail[-400:]}" for o in outcomes if o.kind not in ("accepted", "clear error")]
    assert not bad, "\n".join(bad)
    kinds = Counter(o.case.name.split(":", 1)[0] for o in outcomes)
    assert kinds["world"] >= 100 and kinds["config"] >= 50 and kinds["flag"] >= 15
    assert counts["clear error"] > 3 * counts["accepted"]  # the mutations mostly break the input


HAND_CASES = [
    ("nul", ["show", "{file}"], b"map: |\n  Ay Ae\x00\n", "{file}: not a YAML text file: unacceptable character"),
    ("utf16", ["show", "{file}"], "map: |\n  Ay Ae\n".encode("utf-16"), "{file}: not a UTF-8 text file"),
    ("binary-config", ["train", "--config", "{file}"], b"\x89PNG\r\n\x1a\n\x00", "{file}: not a UTF-8 text file"),
    ("nul-config", ["train", "--config", "{file}"], b"seed: \x00\n", "{file}: YAML error: unacceptable"),
    ("dup-config", ["train", "--config", "{file}"], b"seed: 1\nseed: 2\n", "{file}:2: YAML syntax error: dupl"),
    ("huge-config", ["train", "--config", "{file}"], b"buffer_size: 1000000000000\n", "{file}:1: buffer_size:"),
    ("threads", ["train", "--config", "{file}"], b"torch_threads: 100000\n", "{file}:1: torch_threads: must be"),
    ("beta", ["train", "--config", "{file}"], b"beta_r: 1e308\n", "{file}:1: beta_r: must be <= 1e+06"),
    ("none", ["train", "--config", "{file}"], b"seed: none\n", "{file}:1: seed: must be an integer, got 'none'"),
    ("hidden", ["train", "--hidden-dim", "100000"], None, "hidden_dim: 3 networks of 2 hidden layers"),
    ("cell-size", ["show", "trivial", "--cell-size", "100000"], None, "--cell-size: a 6x4 world drawn at"),
    ("bad-int-flag", ["show", "trivial", "--cell-size", "x"], None, "argument --cell-size: invalid int value"),
]


@pytest.mark.parametrize(("label", "argv", "content", "expected"), HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_hand_written_inputs_fail_with_one_named_line(
    label: str, argv: list[str], content: bytes | None, expected: str, tmp_path: Path
) -> None:
    flag = argv[-2]
    names = "{file}" if content is not None else f"{flag}|{flag[2:].replace('-', '_')}"
    case = FUZZ.Case(label, tuple(argv), content, names=names)
    outcome = FUZZ.run_case(case, tmp_path)
    assert outcome.kind == "clear error", outcome.detail
    assert expected.replace("{file}", str(tmp_path / "input.yaml")) in outcome.detail, outcome.detail


@pytest.mark.parametrize("label", ["nul", "binary-config", "cell-size"])
def test_real_command_fails_with_one_line(label: str, tmp_path: Path) -> None:
    """The real command in a subprocess: exit 2, one stderr line, no traceback."""
    _, argv, content, expected = next(c for c in HAND_CASES if c[0] == label)
    path = tmp_path / f"{label}.yaml"
    if content is not None:
        path.write_bytes(content)
    args = [a.replace("{file}", str(path)) for a in argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run(
        [sys.executable, "-m", "humanpower.cli.main", *args], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert expected.replace("{file}", str(path)) in run.stderr, run.stderr
