"""humanpower: robot policies that softly maximize aggregate human power.

Layers (each a subpackage with one job):

- :mod:`humanpower.worlds`   world-model protocol, the gridworld, world files, rendering
- :mod:`humanpower.goals`    goal protocol, goal sets (generator and sampler)
- :mod:`humanpower.humans`   human policy priors (exact Phase 1, heuristic, uniform)
- :mod:`humanpower.exact`    backward induction for Phase 1 and Phase 2 (the ground truth)
- :mod:`humanpower.learn`    the Phase 2 learner
- :mod:`humanpower.encoders` gridworld state/goal encoders for the learner
- :mod:`humanpower.cli`      the ``humanpower`` command
"""

from humanpower.params import TheoryParams

__all__ = ["TheoryParams"]
__version__ = "0.1.0"
