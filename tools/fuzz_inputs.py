"""Fuzz the command line with malformed world files, configs and flags; print how each was handled.

python tools/fuzz_inputs.py [--seed N] [--per-kind N] [--show-failures]

Every input is a programmatic mutation of a valid one (the bundled worlds and configs): truncations, deleted
and duplicated lines, bad cell codes, bad key values (wrong types, negative, huge, NaN), unknown and duplicate
keys, binary bytes, other encodings, empty files, and bad flag values. Each runs in-process through
``humanpower.cli.main.main`` (``show`` for worlds, ``train --config`` for configs with the training itself
replaced by a stand-in that only records that the input was accepted). Outcomes:

- ``accepted``: exit 0 (the mutation happened to stay valid, e.g. a deleted comment line);
- ``clear error``: exit 2, exactly one ``humanpower: error:`` line on stderr (``humanpower: warning:`` lines
  aside) that names the file (file inputs) or the flag (flag inputs);
- ``unclear error``: another exit status, several error lines, or no file/flag named;
- ``traceback``: an exception escaped ``main``.

The bars: tracebacks = 0 and unclear errors = 0 (exit status 1 when not met). ``tests/test_robustness_inputs.py``
runs a smaller corpus from the same generator in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from humanpower.cli.main import main as cli_main

BAD_VALUES: tuple[str, ...] = (
    "-1",
    "0",
    "1e308",
    "-1e308",
    "100000000000000000000000000000",
    ".nan",
    ".inf",
    "-.inf",
    "x",
    "[]",
    "{}",
    "[1, 2",
    "null",
    "none",
    "true",
    "2.5",
    "'" + "9" * 400 + "'",
    "!!binary aGVsbG8=",
    "&a 1",
    "*undefined_alias",
)
CELL_CODES: tuple[str, ...] = ("Qx", "A", "Ayy", "Ax", "Kz", "Sw", "..", "We", "Ro", "Ay", "Ae", "La", "Lb", "G")


@dataclass(frozen=True)
class Case:
    """One fuzz input: the file to write (if any) and the command line (``{file}`` replaced by its path)."""

    name: str
    argv: tuple[str, ...]
    content: bytes | None = None
    names: str = "{file}"
    """What the error line must mention (``{file}`` = the written file's path; ``a|b``: either)."""


@dataclass(frozen=True)
class Outcome:
    """How one case was handled."""

    case: Case
    kind: str  # accepted | clear error | unclear error | traceback
    detail: str


def bundled_worlds() -> dict[str, str]:
    """Text of every bundled world file, by name."""
    data = resources.files("humanpower.worlds.grid").joinpath("data")
    return {p.name[: -len(".yaml")]: p.read_text(encoding="utf-8") for p in data.iterdir() if p.name.endswith(".yaml")}


def bundled_configs() -> dict[str, str]:
    """Text of every bundled config, by name."""
    data = resources.files("humanpower").joinpath("configs")
    return {p.name[: -len(".yaml")]: p.read_text(encoding="utf-8") for p in data.iterdir() if p.name.endswith(".yaml")}


def _text_mutations(text: str, rng: random.Random, keys: list[str]) -> Iterator[tuple[str, bytes]]:
    """Mutations shared by world files and configs: (label, bytes)."""
    raw = text.encode("utf-8")
    lines = text.splitlines(keepends=True)
    cut = rng.randrange(1, max(2, len(raw)))
    yield f"truncated@{cut}", raw[:cut]
    k = rng.randrange(len(lines))
    yield f"line{k + 1}-deleted", "".join(lines[:k] + lines[k + 1 :]).encode()
    yield f"line{k + 1}-doubled", "".join(lines[: k + 1] + lines[k:]).encode()
    key = rng.choice(keys)
    value = rng.choice(BAD_VALUES)
    yield f"{key}={value[:20]}", _with_value(text, key, value).encode()
    yield "unknown-key", (text + "\nspeeed: 3\n").encode()
    yield f"duplicate-{key}", (text + f"\n{key}: 1\n{key}: 2\n").encode()
    yield "binary", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    yield "utf16", text.encode("utf-16")
    yield "latin1", (text + "\n# caf\u00e9\n").encode("latin-1")
    yield "nul-byte", raw[: len(raw) // 2] + b"\x00" + raw[len(raw) // 2 :]
    yield "empty", b""
    yield "whitespace", b"  \n\t\n"
    yield "list-document", b"- a\n- b\n"
    yield "scalar-document", b"42\n"
    yield "tab-indent", text.replace("  ", "\t", 1).encode()


def _with_value(text: str, key: str, value: str) -> str:
    """``text`` with the top-level ``key:`` line's value replaced, or ``key: value`` appended if there is none."""
    lines = text.splitlines()
    hit = [i for i, line in enumerate(lines) if line.startswith(f"{key}:")]
    if not hit:
        return text + f"\n{key}: {value}\n"
    lines[hit[0]] = f"{key}: {value}"
    return "\n".join(lines) + "\n"


def world_cases(rng: random.Random, per_world: int) -> Iterator[Case]:
    """Mutated world files, run through ``show``."""
    keys = [
        "max_steps",
        "orientations",
        "can_push_rocks",
        "actions",
        "action_class",
        "stumble_probability",
        "possible_goals",
        "goal_weights",
        "humans",
        "robots",
        "metadata",
        "map",
    ]
    for name, text in sorted(bundled_worlds().items()):
        for round_ in range(per_world):
            for label, content in _text_mutations(text, rng, keys):
                yield Case(f"world:{name}:{round_}:{label}", ("show", "{file}", "--cell-size", "8"), content)
            rows = [i for i, line in enumerate(text.splitlines()) if line.startswith("  ") and " " in line.strip()]
            if rows:
                lines = text.splitlines()
                i = rng.choice(rows)
                cells = lines[i].split()
                j = rng.randrange(len(cells))
                cells[j] = rng.choice(CELL_CODES)
                lines[i] = "  " + " ".join(cells)
                mutated = "\n".join(lines) + "\n"
                yield Case(
                    f"world:{name}:{round_}:cell{i + 1}.{j}", ("show", "{file}", "--cell-size", "8"), mutated.encode()
                )
            yield Case(
                f"world:{name}:{round_}:name-escape",
                ("show", "{file}", "--cell-size", "8"),
                _with_name(text, "../../escape").encode(),
            )


def _with_name(text: str, name: str) -> str:
    return text.replace("metadata:\n", f"metadata:\n  name: '{name}'\n", 1) if "metadata:" in text else text


def config_cases(rng: random.Random, per_config: int) -> Iterator[Case]:
    """Mutated configs, run through ``train --config`` (training replaced by a stand-in)."""
    from humanpower.learn.config import field_docs

    keys = [name for name, _, _, _ in field_docs()]
    for name, text in sorted(bundled_configs().items()):
        for round_ in range(per_config):
            for label, content in _text_mutations(text, rng, keys):
                yield Case(f"config:{name}:{round_}:{label}", ("train", "--config", "{file}", "--no-progress"), content)
            for key in rng.sample(keys, min(6, len(keys))):
                value = rng.choice(BAD_VALUES)
                yield Case(
                    f"config:{name}:{round_}:{key}={value[:20]}",
                    ("train", "--config", "{file}", "--no-progress"),
                    _with_value(text, key, value).encode(),
                )


def flag_cases(rng: random.Random, count: int) -> Iterator[Case]:
    """Bad values of command-line flags (no file; the error must name the flag)."""
    from humanpower.learn.config import field_docs

    fields = [name for name, _, _, _ in field_docs()]
    for _ in range(count):
        field = rng.choice(fields)
        flag = "--" + field.replace("_", "-")
        value = rng.choice(("-1", "0", "1e308", "abc", "", "nan", "inf", "99999999999999999999", "none", "1e12"))
        yield Case(f"flag:train{flag}={value}", ("train", flag, value, "--no-progress"), names=f"{flag}|{field}")
    for flag, value in (
        ("--cell-size", "100000"),
        ("--cell-size", "-5"),
        ("--cell-size", "x"),
        ("--memory-limit-gb", "-1"),
        ("--memory-limit-gb", "nan"),
    ):
        yield Case(f"flag:show{flag}={value}", ("show", "trivial", flag, value), names=flag)
    for flag, value in (("--beta-r", "1e308"), ("--gamma-r", "2"), ("--max-steps", "-1"), ("--max-states", "0")):
        yield Case(f"flag:solve{flag}={value}", ("solve", "trivial", flag, value), names=flag)


def corpus(seed: int, per_kind: int) -> list[Case]:
    """The generated corpus: ``per_kind`` mutation rounds per bundled world and config, plus flag cases."""
    rng = random.Random(seed)
    return [
        *world_cases(rng, per_kind),
        *config_cases(rng, per_kind),
        *flag_cases(rng, 12 * per_kind),
    ]


class _Accepted(Exception):
    """Raised by the training stand-in: the command got past input validation."""


def _stand_in_train(*args: object, **kwargs: object) -> None:
    raise _Accepted


def run_case(case: Case, folder: Path) -> Outcome:
    """Run one case in-process and classify what happened."""
    import humanpower.api

    path = folder / "input.yaml"
    if case.content is not None:
        path.write_bytes(case.content)
    argv = [a.replace("{file}", str(path)) for a in case.argv]
    if argv[0] == "show":
        argv += ["--out", str(folder / "out.png")]
    if argv[0] == "train":
        argv += ["--out", str(folder / f"run-{abs(hash(case.name))}")]
    must_name = case.names.replace("{file}", str(path)).split("|")
    err, out = io.StringIO(), io.StringIO()
    real_train = humanpower.api.train
    humanpower.api.train = _stand_in_train  # type: ignore[assignment]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli_main(argv)
    except _Accepted:
        return Outcome(case, "accepted", "")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except Exception:  # the bar: none may escape; recorded, not swallowed
        return Outcome(case, "traceback", traceback.format_exc())
    finally:
        humanpower.api.train = real_train  # type: ignore[assignment]
    text = err.getvalue()
    if "Traceback" in text:
        return Outcome(case, "traceback", text)
    if code == 0:
        return Outcome(case, "accepted", "")
    errors = [line for line in text.splitlines() if not line.startswith("humanpower: warning: ")]
    clear = (
        code == 2
        and len(errors) == 1
        and errors[0].startswith("humanpower")
        and ": error: " in errors[0]
        and any(name in errors[0] for name in must_name)
    )
    return Outcome(case, "clear error" if clear else "unclear error", f"exit {code}: {text.strip()}")


def run_corpus(cases: list[Case], progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """Run every case in a fresh temporary folder."""
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            outcomes.append(run_case(case, folder))
            if progress is not None:
                progress(i)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-kind", type=int, default=3, help="mutation rounds per bundled world/config")
    parser.add_argument("--show-failures", action="store_true")
    args = parser.parse_args(argv)
    cases = corpus(args.seed, args.per_kind)
    outcomes = run_corpus(cases)
    counts = Counter(o.kind for o in outcomes)
    by_source = Counter(o.case.name.split(":", 1)[0] for o in outcomes)
    print(
        f"inputs tried: {len(outcomes)} ({by_source['world']} world files, {by_source['config']} configs, "
        f"{by_source['flag']} flags)"
    )
    for kind in ("accepted", "clear error", "unclear error", "traceback"):
        print(f"{kind}: {counts[kind]}")
    bad = [o for o in outcomes if o.kind in ("unclear error", "traceback")]
    if args.show_failures:
        for o in bad:
            print(f"--- {o.kind}: {o.case.name}\n{o.detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
