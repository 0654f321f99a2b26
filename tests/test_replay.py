"""Replay storage ring, uniform sampler, ClearAtSteps / MaxAge policies, ReplayBuffer snapshots."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from humanpower.learn.config import Phase2Config
from humanpower.learn.replay import (
    ClearAtSteps,
    MaxAge,
    ReplayBuffer,
    ReplayStorage,
    Transition,
    UniformSampler,
)


def tr(step: int, version: int = 0) -> Transition:
    """A transition collected at env step ``step`` (state = step for easy checks)."""
    return Transition(
        state=(step,),
        goals=(0, 1),
        human_actions=(2, 0),
        robot_action=1,
        next_state=(step + 1,),
        successors=(((1.0, (step + 1,)),), ((0.5, (step + 1,)), (0.5, (step + 2,)))),
        total_steps=step,
        policy_version=version,
        beta_r=0.0,
        episode_step=step % 10,
    )


def steps_of(items: list[Transition]) -> list[int]:
    return [t.total_steps for t in items]


def test_transition_is_frozen_slotted_and_picklable() -> None:
    t = tr(3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.robot_action = 2  # type: ignore[misc]
    assert not hasattr(t, "__dict__")
    assert pickle.loads(pickle.dumps(t)) == t


def test_storage_ring_overwrites_oldest() -> None:
    s: ReplayStorage[Transition] = ReplayStorage(4)
    s.extend(tr(i, version=10 + i) for i in range(3))
    assert len(s) == 3 and s.position == 3
    assert steps_of(s.get([0, 2])) == [0, 2]
    s.extend([tr(3), tr(4), tr(5)])
    assert len(s) == 4 and s.position == 2
    assert steps_of(s.get(range(4))) == [4, 5, 2, 3]  # slots 0, 1 overwritten by steps 4, 5
    assert list(s.total_steps) == [4, 5, 2, 3]
    assert list(s.policy_version) == [0, 0, 12, 0]
    assert list(s.chronological()) == [2, 3, 0, 1]
    with pytest.raises(IndexError):
        s.get([4])
    with pytest.raises(ValueError):
        s.total_steps[0] = 7  # read-only view
    s.clear()
    assert len(s) == 0 and s.position == 0


def test_storage_keep_compacts_oldest_first() -> None:
    s: ReplayStorage[Transition] = ReplayStorage(4)
    s.extend(tr(i) for i in range(6))  # holds 4, 5, 2, 3
    dropped = s.keep(s.total_steps >= 3)
    assert dropped == 1
    assert steps_of(s.get(range(len(s)))) == [3, 4, 5]
    assert s.position == 3
    s.add(tr(6))
    s.add(tr(7))  # overwrites the oldest (3)
    assert steps_of(s.get(range(4))) == [7, 4, 5, 6]


def test_storage_state_dict_exact_round_trip() -> None:
    s: ReplayStorage[Transition] = ReplayStorage(5)
    s.extend(tr(i, version=i // 2) for i in range(7))
    snap = pickle.loads(pickle.dumps(s.state_dict()))
    r: ReplayStorage[Transition] = ReplayStorage(5)
    r.load_state_dict(snap)
    assert (len(r), r.position) == (len(s), s.position) == (5, 2)
    assert r.get(range(5)) == s.get(range(5))
    assert list(r.policy_version) == list(s.policy_version)
    s.add(tr(100))
    r.add(tr(100))
    assert r.get(range(5)) == s.get(range(5))
    with pytest.raises(ValueError, match="capacity"):
        ReplayStorage(6).load_state_dict(snap)


def test_uniform_sampler_reproducible_and_distinct() -> None:
    s: ReplayStorage[Transition] = ReplayStorage(100)
    s.extend(tr(i) for i in range(50))
    sampler = UniformSampler()
    a = sampler.sample(s, 20, np.random.default_rng(7))
    b = sampler.sample(s, 20, np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert len(set(a.tolist())) == 20 and a.min() >= 0 and a.max() < 50
    assert not np.array_equal(a, sampler.sample(s, 20, np.random.default_rng(8)))
    with pytest.raises(ValueError, match="only 50 eligible"):
        sampler.sample(s, 51, np.random.default_rng(0))
    with_repl = UniformSampler(replacement=True).sample(s, 200, np.random.default_rng(0))
    assert len(with_repl) == 200
    mask = np.zeros(50, dtype=bool)
    mask[[3, 9]] = True
    assert set(UniformSampler(True).sample(s, 30, np.random.default_rng(1), mask).tolist()) == {3, 9}


def test_uniform_sampler_is_roughly_uniform() -> None:
    s: ReplayStorage[Transition] = ReplayStorage(10)
    s.extend(tr(i) for i in range(10))
    rng = np.random.default_rng(0)
    counts = np.bincount(np.concatenate([UniformSampler().sample(s, 5, rng) for _ in range(2000)]), minlength=10)
    assert counts.sum() == 10_000
    assert np.all(np.abs(counts - 1000) < 120)  # about 4 standard deviations


def test_clear_at_ramp_start_and_end() -> None:
    buf: ReplayBuffer[Transition] = ReplayBuffer(ReplayStorage(100), UniformSampler(), [ClearAtSteps([10, 20])])
    for step in range(25):
        buf.on_step(step)
        buf.add(tr(step))
        if step == 9:
            assert len(buf) == 10
        if step == 10:  # cleared at the ramp start; the step-10 transition was added after
            assert steps_of(buf.get(range(len(buf)))) == [10]
        if step == 19:
            assert len(buf) == 10  # not cleared again between the boundaries
    assert steps_of(buf.get(range(len(buf)))) == [20, 21, 22, 23, 24]
    policy = buf.policies[0]
    assert isinstance(policy, ClearAtSteps) and policy.fired == {10, 20}


def test_clear_at_steps_keeps_items_from_the_boundary_on() -> None:
    buf: ReplayBuffer[Transition] = ReplayBuffer(ReplayStorage(100), policies=[ClearAtSteps([10])])
    buf.extend(tr(s) for s in range(8, 13))  # an async chunk spanning the boundary
    buf.on_step(12)  # first time the clock reaches >= 10
    assert steps_of(buf.get(range(len(buf)))) == [10, 11, 12]
    buf.add(tr(9))  # a straggler collected before the boundary arrives late
    assert len(buf) == 4 and buf.num_eligible() == 3
    for _ in range(20):
        assert 9 not in steps_of(buf.get(buf.sample(3, np.random.default_rng(_))))
    buf.on_step(13)
    assert len(buf) == 4  # fires once only


def test_clear_at_steps_jumping_past_both_boundaries() -> None:
    buf: ReplayBuffer[Transition] = ReplayBuffer(ReplayStorage(100), policies=[ClearAtSteps([10, 20])])
    buf.extend(tr(s) for s in range(5))
    buf.on_step(25)
    assert len(buf) == 0
    assert buf.policies[0].fired == {10, 20}  # type: ignore[attr-defined]


def test_max_age_never_samples_old_transitions() -> None:
    buf: ReplayBuffer[Transition] = ReplayBuffer(ReplayStorage(1000), policies=[MaxAge(10)])
    buf.extend(tr(s) for s in range(101))
    assert buf.num_eligible() == 101  # no clock yet
    buf.on_step(100)
    assert buf.num_eligible() == 11  # steps 90..100 (age <= 10)
    assert buf.can_sample(11) and not buf.can_sample(12)
    rng = np.random.default_rng(3)
    seen: set[int] = set()
    for _ in range(200):
        seen.update(steps_of(buf.sample_items(5, rng)))
    assert seen == set(range(90, 101))
    with pytest.raises(ValueError):
        buf.sample(12, rng)


def test_policies_compose() -> None:
    buf: ReplayBuffer[Transition] = ReplayBuffer(ReplayStorage(100), policies=[ClearAtSteps([10]), MaxAge(3)])
    buf.on_step(10)
    buf.extend(tr(s) for s in (5, 10, 11, 12, 13, 14))
    buf.on_step(14)
    mask = buf.eligible_mask()
    assert mask is not None
    assert [t.total_steps for t, m in zip(buf.get(range(len(buf))), mask, strict=True) if m] == [
        11,
        12,
        13,
        14,
    ]


def test_buffer_state_dict_includes_fired_boundaries() -> None:
    def make() -> ReplayBuffer[Transition]:
        return ReplayBuffer(ReplayStorage(8), UniformSampler(), [ClearAtSteps([5, 15]), MaxAge(6)])

    a = make()
    for step in range(12):
        a.on_step(step)
        a.add(tr(step))
    snap = pickle.loads(pickle.dumps(a.state_dict()))
    b = make()
    b.load_state_dict(snap)
    assert b.policies[0].fired == {5}  # type: ignore[attr-defined]
    assert b.policies[1].now == 11  # type: ignore[attr-defined]
    assert np.array_equal(a.sample(4, np.random.default_rng(1)), b.sample(4, np.random.default_rng(1)))
    for buf in (a, b):
        buf.on_step(12)  # boundary 5 already fired: nothing is cleared
        assert len(buf) == 7
        buf.on_step(15)
        assert len(buf) == 0
    wrong: ReplayBuffer[Transition] = ReplayBuffer(ReplayStorage(8), policies=[MaxAge(6)])
    with pytest.raises(ValueError, match="policies mismatch"):
        wrong.load_state_dict(snap)


def test_from_config() -> None:
    cfg = Phase2Config(buffer_size=500, replay_max_age=100)
    buf = ReplayBuffer.from_config(cfg)
    assert buf.storage.capacity == 500
    clear, age = buf.policies
    assert isinstance(clear, ClearAtSteps) and clear.steps == (30_000, 50_000)
    assert isinstance(age, MaxAge) and age.max_age == 100
    assert ReplayBuffer.from_config(cfg.replace(clear_buffer_at_rampup=False, replay_max_age=None)).policies == []
