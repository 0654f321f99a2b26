"""humanpower: robot policies that softly maximize aggregate human power.

Layers (each a subpackage with one job):

- :mod:`humanpower.worlds`   world-model protocol, the gridworld, world files, rendering
- :mod:`humanpower.goals`    goal protocol, goal sets (generator and sampler)
- :mod:`humanpower.humans`   human policy priors (exact Phase 1, heuristic, uniform)
- :mod:`humanpower.exact`    backward induction for Phase 1 and Phase 2 (the ground truth)
- :mod:`humanpower.learn`    the Phase 2 learner
- :mod:`humanpower.encoders` gridworld state/goal encoders for the learner
- :mod:`humanpower.cli`      the ``humanpower`` command

The top-level names below (``load_world``, ``solve``, ``train``, ``Phase2Config``) are the Python API; they are
imported lazily so that ``import humanpower`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from humanpower.params import TheoryParams

__version__ = "0.1.0"

_LAZY = {
    "load_world": "humanpower.worlds.grid.library",
    "solve": "humanpower.exact",
    "train": "humanpower.api",
    "build_setup": "humanpower.api",
    "Phase2Config": "humanpower.learn.config",
    "LearnedModel": "humanpower.learn.evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'humanpower' has no attribute {name!r}")


__all__ = ["LearnedModel", "Phase2Config", "TheoryParams", "build_setup", "load_world", "solve", "train"]
