"""Layer boundaries: agnostic code never imports the gridworld; the gridworld never imports the learner."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "humanpower"

AGNOSTIC = ["worlds/protocol.py", "worlds/tabular.py", "goals", "humans", "exact", "learn"]
FORBIDDEN_FOR_AGNOSTIC = ("humanpower.worlds.grid", "humanpower.encoders", "humanpower.cli", "humanpower.api")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _files(rel: str) -> list[Path]:
    p = SRC / rel
    return [p] if p.is_file() else sorted(p.rglob("*.py"))


def test_environment_agnostic_core_never_imports_the_gridworld() -> None:
    offenders = []
    for rel in AGNOSTIC:
        for f in _files(rel):
            for name in _imports(f):
                if name.startswith(FORBIDDEN_FOR_AGNOSTIC):
                    offenders.append(f"{f.relative_to(SRC)} imports {name}")
    assert not offenders, offenders


def test_gridworld_never_imports_the_learner_or_solver() -> None:
    offenders = [
        f"{f.relative_to(SRC)} imports {name}"
        for f in _files("worlds/grid")
        for name in _imports(f)
        if name.startswith(("humanpower.learn", "humanpower.exact", "humanpower.encoders", "humanpower.cli"))
    ]
    assert not offenders, offenders


def test_no_file_over_600_lines() -> None:
    long = [f"{f.relative_to(SRC)}: {n}" for f in SRC.rglob("*.py") if (n := len(f.read_text().splitlines())) > 600]
    assert not long, long


def _module_name(f: Path) -> str:
    parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: Path) -> set[str]:
    """Imports executed at import time (module body, not functions, not ``if TYPE_CHECKING``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_import_cycles() -> None:
    """The module import graph of humanpower (at import time) is acyclic."""
    modules = {_module_name(f): f for f in SRC.rglob("*.py")}
    graph = {
        m: {n for n in _top_level_imports(f) if n in modules and n != m and not m.startswith(n + ".")}
        for m, f in modules.items()
    }
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        assert node not in stack, f"import cycle: {' -> '.join([*stack, node])}"
        if node in done:
            return
        for dep in graph[node]:
            visit(dep, [*stack, node])
        done.add(node)

    for node in graph:
        visit(node, [])
