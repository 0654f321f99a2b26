"""Featurizer (interning, dedup, cache, checkpoint round trip), StateBatch and the one-hot encoders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from humanpower.errors import CheckpointError
from humanpower.goals import StateSetGoal
from humanpower.learn.encoding import (
    Featurizer,
    GoalEncoder,
    OneHotGoalEncoder,
    OneHotStateEncoder,
    StateBatch,
    StateEncoder,
    remaining_time,
)


@dataclass
class Clock:
    """A minimal world for the remaining-time feature: states are (step, label) tuples."""

    max_steps: int = 4

    def step_count(self, state: object) -> int:
        assert isinstance(state, tuple)
        return int(state[0])


@dataclass
class CountingEncoder:
    """Encodes (step, label) as [step, label, step * label]; records every call."""

    calls: list[list[object]] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return 3

    def encode(self, states: Sequence[object]) -> np.ndarray:
        self.calls.append(list(states))
        rows = [[s[0], s[1], s[0] * s[1]] for s in states]  # type: ignore[index]
        return np.asarray(rows, dtype=np.float32).reshape(len(states), 3)


def expected(states: Sequence[tuple[int, int]]) -> np.ndarray:
    return np.asarray([[a, b, a * b] for a, b in states], dtype=np.float32).reshape(len(states), 3)


def test_featurizer_dedups_and_encodes_only_new_states() -> None:
    enc = CountingEncoder()
    f = Featurizer(enc)
    a, b, c, d = (0, 1), (1, 2), (2, 3), (3, 4)
    batch = f.batch([a, b, a, c, b])
    assert enc.calls == [[a, b, c]]
    assert batch.ids.tolist() == [0, 1, 0, 2, 1]
    np.testing.assert_array_equal(batch.features.numpy(), expected([a, b, a, c, b]))
    rows, inverse = batch.dedup()
    assert batch.ids[rows][inverse].tolist() == batch.ids.tolist()
    assert len(rows) == 3

    batch2 = f.batch([c, d, d, a])
    assert enc.calls[1] == [d]
    assert batch2.ids.tolist() == [2, 3, 3, 0]
    np.testing.assert_array_equal(batch2.features.numpy(), expected([c, d, d, a]))
    assert f.num_ids == 4
    assert f.stats()["hits"] == 2 and f.stats()["misses"] == 4
    assert isinstance(enc, StateEncoder)


def test_batch_from_ids_matches_batch() -> None:
    f = Featurizer(CountingEncoder())
    states = [(i, i + 1) for i in range(6)]
    f.intern(states)
    ids = np.array([4, 1, 4, 0, 5], dtype=np.int64)
    via_ids = f.batch_from_ids(ids)
    via_states = f.batch([states[i] for i in ids])
    assert via_ids.ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(via_ids.features.numpy(), via_states.features.numpy())
    rows, inverse = via_ids.dedup()
    assert via_ids.ids[rows][inverse].tolist() == ids.tolist()
    distinct = f.batch_from_ids(np.array([3, 0, 2]))  # all distinct, not sorted
    np.testing.assert_array_equal(distinct.features.numpy(), expected([states[3], states[0], states[2]]))
    with pytest.raises(IndexError):
        f.batch_from_ids(np.array([6]))


def test_cache_eviction_keeps_ids_and_features_correct() -> None:
    enc = CountingEncoder()
    f = Featurizer(enc, cache_size=2)
    states = [(i, 2 * i) for i in range(5)]
    first = f.batch(states[:3])  # 3 new > cache_size: encoded, not cached
    assert f.stats()["cached"] == 0
    np.testing.assert_array_equal(first.features.numpy(), expected(states[:3]))
    f.batch(states[:2])
    assert f.stats()["cached"] == 2
    f.batch(states[3:5])  # does not fit: cache emptied, then filled with the new pair
    assert f.stats()["evictions"] == 1 and f.stats()["cached"] == 2
    again = f.batch(states)
    assert again.ids.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(again.features.numpy(), expected(states))

    nocache = Featurizer(CountingEncoder(), cache_size=0)
    out = nocache.batch(states + states)
    np.testing.assert_array_equal(out.features.numpy(), expected(states + states))
    assert nocache.stats()["cached"] == 0


def test_featurizer_grows_beyond_initial_capacity() -> None:
    f = Featurizer(CountingEncoder(), cache_size=5000)
    states = [(i, i % 7) for i in range(3000)]
    out = f.batch(states)
    assert f.num_ids == 3000 and f.stats()["cached"] == 3000
    np.testing.assert_array_equal(out.features.numpy(), expected(states))
    assert f.batch(states[::-1]).ids.tolist() == list(range(2999, -1, -1))


def test_state_dict_round_trip_keeps_ids() -> None:
    f = Featurizer(CountingEncoder())
    states = [(i, 3 - i) for i in range(4)]
    f.batch([states[2], states[0], states[3], states[1]])
    saved = f.state_dict()

    g = Featurizer(CountingEncoder())
    g.batch([(9, 9)])  # ids present before loading are replaced
    g.load_state_dict(saved)
    assert g.num_ids == 4
    assert g.intern(states).tolist() == f.intern(states).tolist() == [1, 3, 0, 2]
    assert g.intern([(7, 7)]).tolist() == [4]
    np.testing.assert_array_equal(g.batch(states).features.numpy(), expected(states))
    assert g.state_of(4) == (7, 7)

    other_dim = Featurizer(OneHotStateEncoder(Clock(), states))
    with pytest.raises(CheckpointError, match="dim"):
        other_dim.load_state_dict(saved)
    with pytest.raises(CheckpointError):
        g.load_state_dict({"version": 1})


def test_state_batch_helpers() -> None:
    f = Featurizer(CountingEncoder())
    states = [(1, 1), (2, 2), (1, 1)]
    batch = f.batch(states)
    rep = batch.repeat_interleave(2)
    assert rep.ids.tolist() == [0, 0, 1, 1, 0, 0]
    rows, inverse = rep.dedup()
    assert rep.ids[rows][inverse].tolist() == rep.ids.tolist()
    sel = batch.select(torch.tensor([2, 1, 2, 0]))
    assert sel.unique_rows is None
    rows, inverse = sel.dedup()
    assert sel.ids[rows][inverse].tolist() == [0, 1, 0, 0]
    np.testing.assert_array_equal(sel.features[rows][inverse].numpy(), sel.features.numpy())
    cat = StateBatch.cat([batch, sel])
    assert len(cat) == 7 and cat.features.shape == (7, 3)


def test_select_by_index_or_mask_and_features_of_ids() -> None:
    f = Featurizer(CountingEncoder())
    states = [(1, 1), (2, 2), (3, 4)]
    batch = f.batch(states)
    by_index = batch.select(torch.tensor([2, 0, 2], dtype=torch.int32))
    assert by_index.ids.tolist() == [2, 0, 2]
    np.testing.assert_array_equal(by_index.features.numpy(), expected([(3, 4), (1, 1), (3, 4)]))
    by_mask = batch.select(torch.tensor([True, False, True]))
    assert by_mask.ids.tolist() == [0, 2]
    np.testing.assert_array_equal(by_mask.features.numpy(), expected([(1, 1), (3, 4)]))
    rows = f.features_of_ids(torch.tensor([2, 2, 1]))
    assert rows.dtype == torch.float32 and rows.device == f.device
    np.testing.assert_array_equal(rows.numpy(), expected([(3, 4), (3, 4), (2, 2)]))


def test_remaining_time() -> None:
    clock = Clock(max_steps=4)
    out = remaining_time(clock, [(0, 0), (1, 0), (4, 0)])
    np.testing.assert_array_equal(out, np.array([1.0, 0.75, 0.0], dtype=np.float32))


def test_one_hot_state_encoder() -> None:
    clock = Clock(max_steps=4)
    states = [(0, "a"), (1, "b"), (3, "c")]
    enc = OneHotStateEncoder(clock, states, include_step_count=True)
    assert enc.dim == 4
    out = enc.encode([(3, "c"), (0, "a")])
    np.testing.assert_array_equal(out, np.array([[0, 0, 1, 0.25], [1, 0, 0, 1.0]], dtype=np.float32))
    plain = OneHotStateEncoder(clock, states, include_step_count=False)
    assert plain.dim == 3
    np.testing.assert_array_equal(plain.encode([(1, "b")]), np.array([[0, 1, 0]], dtype=np.float32))
    with pytest.raises(KeyError, match="not in the enumerated states"):
        enc.encode([(2, "zz")])


def test_one_hot_goal_encoder() -> None:
    goals = [StateSetGoal("g0", frozenset({1})), StateSetGoal("g1", frozenset({2}))]
    enc = OneHotGoalEncoder(goals)
    assert isinstance(enc, GoalEncoder) and enc.dim == 2
    np.testing.assert_array_equal(enc.encode([goals[1], goals[0], goals[1]]), np.array([[0, 1], [1, 0], [0, 1]]))
    with pytest.raises(KeyError):
        enc.encode([StateSetGoal("g2", frozenset({3}))])


def test_lazy_selection_gathers_rows_of_distinct_states_only() -> None:
    table = torch.arange(24, dtype=torch.float32).view(8, 3)
    ids = torch.arange(8)
    base = StateBatch(table, ids, lazy_select=True)
    rows = torch.tensor([5, 1, 5, 5, 2, 1])
    sel = base.select(rows)  # lazy: only the ids are gathered now
    again = sel.select(torch.tensor([0, 2, 4, 4]))  # a selection of a selection stays lazy
    distinct, inverse = sel.distinct_states()
    assert len(distinct) == 3 and inverse is not None
    torch.testing.assert_close(distinct.features[inverse], table[rows], rtol=0, atol=0)
    torch.testing.assert_close(again.features, table[torch.tensor([5, 5, 2, 2])], rtol=0, atol=0)
    torch.testing.assert_close(sel.features, table[rows], rtol=0, atol=0)
    eager = StateBatch(table, ids).select(rows)
    torch.testing.assert_close(eager.features, sel.features, rtol=0, atol=0)
