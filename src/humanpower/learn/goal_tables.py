"""Goal feature tables for the V_h^e network: one ``(G_h, d)`` float32 table per human, in GoalSet index order.

Used by :func:`humanpower.learn.networks.build_networks` (and re-exported there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from humanpower.goals import GoalSet
from humanpower.learn.encoding import GoalEncoder


class NetworkWorld(Protocol):
    """The part of a world model the factory reads (any :class:`~humanpower.worlds.protocol.WorldModel`)."""

    @property
    def humans(self) -> tuple[int, ...]: ...

    @property
    def robots(self) -> tuple[int, ...]: ...

    @property
    def num_actions(self) -> int: ...

    def goal_set(self, human: int) -> GoalSet: ...


def goal_feature_tables(
    world: NetworkWorld, goal_encoders: Mapping[int, GoalEncoder] | Sequence[GoalEncoder]
) -> list[NDArray[np.float32]]:
    """Goal feature table ``(G_h, d)`` per human position (GoalSet index order).

    ``goal_encoders`` is either a sequence in ``world.humans`` order or a mapping keyed by human agent index.
    """
    encoders: list[GoalEncoder]
    if isinstance(goal_encoders, Mapping):
        missing = [h for h in world.humans if h not in goal_encoders]
        if missing:
            raise ValueError(f"goal encoders: none for human(s) {missing}")
        encoders = [goal_encoders[h] for h in world.humans]
    else:
        encoders = list(goal_encoders)
        if len(encoders) != len(world.humans):
            raise ValueError(f"goal encoders: expected {len(world.humans)} (one per human), got {len(encoders)}")
    return [
        np.asarray(enc.encode(list(world.goal_set(h).goals)), dtype=np.float32)
        for h, enc in zip(world.humans, encoders, strict=True)
    ]


def tables_by_position(
    world: NetworkWorld, goal_features: Mapping[int, NDArray[np.float32]] | Sequence[NDArray[np.float32]]
) -> list[NDArray[np.float32]]:
    """Goal feature tables in ``world.humans`` order, from a sequence (in that order) or a mapping keyed by
    human position (0..H-1) or by human agent index."""
    n = len(world.humans)
    if isinstance(goal_features, Mapping):
        keys = set(goal_features)
        if keys == set(range(n)):
            tables = [goal_features[i] for i in range(n)]
        elif keys == set(world.humans):
            tables = [goal_features[h] for h in world.humans]
        else:
            raise ValueError(
                f"goal_features: keys {sorted(keys)} are neither human positions 0..{n - 1} "
                f"nor the human agent indices {list(world.humans)}"
            )
    else:
        tables = list(goal_features)
    if len(tables) != n:
        raise ValueError(f"goal_features: expected {n} tables (one per human), got {len(tables)}")
    out = []
    for h, t in zip(world.humans, tables, strict=True):
        arr = np.asarray(t, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(world.goal_set(h)):
            raise ValueError(f"goal_features: human {h} needs a ({len(world.goal_set(h))}, d) table, got {arr.shape}")
        out.append(arr)
    return out


__all__ = ["NetworkWorld", "goal_feature_tables", "tables_by_position"]
