"""Regenerate the generated parts of the docs: docs/CONFIG.md and the README's config reference section.

python tools/sync_docs.py          # rewrite them
python tools/sync_docs.py --check  # exit 1 if they are stale (tests/test_docs.py does the same)
"""

from __future__ import annotations

import sys
from pathlib import Path

from humanpower.learn.config import config_reference_markdown

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def config_table() -> str:
    """The field table of the config reference (the part embedded in the README)."""
    lines = config_reference_markdown().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    return "\n".join(lines[first:]).strip() + "\n"


def expected_readme(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{config_table()}{END}{tail}"


def main() -> int:
    readme = ROOT / "README.md"
    config_md = ROOT / "docs" / "CONFIG.md"
    want = {readme: expected_readme(readme.read_text()), config_md: config_reference_markdown()}
    stale = [p for p, text in want.items() if p.read_text() != text]
    if "--check" in sys.argv:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)} (run python tools/sync_docs.py)")
        return 1 if stale else 0
    for p in stale:
        p.write_text(want[p])
        print(f"updated {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
