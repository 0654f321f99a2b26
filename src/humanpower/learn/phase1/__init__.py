"""The learned Phase 1 human prior: goal-conditioned Q_h^m networks trained on equations (1)-(3).

* :mod:`.targets`: the model-based targets as pure functions (the exact solver's conventions);
* :mod:`.networks`: the Q_h^m networks (neural and tabular);
* :mod:`.data`: states with their cached successor distributions for every joint action, the random-walk
  collector and batch assembly;
* :mod:`.learner`: target networks, replay, optimizers and one training step;
* :mod:`.prior`: the frozen result as a :class:`~humanpower.humans.protocol.HumanPolicyPrior`.

Environment-agnostic: everything here sees the world only through :class:`~humanpower.worlds.protocol.WorldModel`
and the state / goal encoders.
"""
