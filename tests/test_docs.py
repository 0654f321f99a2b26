"""Generated documentation stays in sync with the code (config reference in README and docs/CONFIG.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sync_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("sync_docs", ROOT / "tools" / "sync_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_config_reference_is_generated() -> None:
    sync = _sync_module()
    readme = (ROOT / "README.md").read_text()
    assert readme == sync.expected_readme(readme), "README config reference is stale: python tools/sync_docs.py"
    for name in ("num_episodes", "beta_r_rampup_steps", "u_r_use_network", "async_training"):
        assert f"`{name}`" in readme


def test_readme_states_the_two_setup_commands_used_by_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]" && pytest' in readme
    assert 'pip install -e ".[dev]" && pytest' in ci
    assert "pip install -e . && humanpower train" in readme
