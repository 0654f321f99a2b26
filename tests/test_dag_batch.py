"""The batch transition hook (``transition_table``) against the per-joint-action path, and the DAG build's size
limits: identical distributions (same successors, same order, same floats) and identical state DAGs."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from humanpower.cli.solve_cmd import with_horizon
from humanpower.errors import UserError
from humanpower.exact.dag import MAX_JOINT_ACTIONS, StateDag, build_dag
from humanpower.worlds.grid import GridState, GridWorld, bundled_names, load_world, memo
from humanpower.worlds.protocol import (
    BatchTransitionModel,
    JointAction,
    State,
    Successors,
    TransitionTable,
    choice_combinations,
    compose_joint_action,
    generic_transition_table,
    robot_choices,
    transition_table,
)
from test_grid_properties import SETTINGS, push_case, random_case

DAG_FIELDS = ("level_offsets", "terminal", "row_of", "state_row_offsets", "row_offsets", "succ", "prob")


# Bundled worlds whose DAG both paths build within a test's time, some with a shorter horizon; ``large`` (5 agents,
# 1,024 joint actions per state) is too big even at horizon 2 for the per-joint-action path: its tables are
# compared state by state in test_table_equals_per_action_on_large.
def horizon_cap(world: GridWorld) -> int:
    """Bundled worlds are compared up to this horizon (their own if shorter): deep enough for every mechanic near
    the start, small enough that the generic per-joint-action build (the slow side) takes seconds; the reachable
    states grow with the joint action count per level."""
    joint = world.num_actions**world.num_agents
    return 6 if joint <= 16 else 4 if joint <= 64 else 3


SMALL = [n for n in bundled_names() if n != "large"]
FEW = settings(SETTINGS, max_examples=40)


def assert_same_dag(a: StateDag, b: StateDag) -> None:
    assert a.states == b.states
    assert a.index == b.index
    for name in DAG_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name


def all_choices(world: GridWorld) -> list[list[int]]:
    return [list(range(world.num_actions))] * world.num_agents


def assert_table_matches(world: GridWorld, state: State, choices: list[list[int]]) -> None:
    """Every combination's distribution equals transition_probabilities' exactly (order and floats)."""
    table = world.transition_table(state, choices)
    joints = choice_combinations(choices)
    assert len(table) == len(joints)
    for j, joint in enumerate(joints):
        assert table[j] == world.transition_probabilities(state, joint), (state, joint)


@pytest.mark.parametrize("name", SMALL)
def test_batch_dag_identical_on_bundled_worlds(name: str) -> None:
    """The batch build (memoised tables included) gives the per-joint-action DAG."""
    world = load_world(name)
    if world.max_steps > horizon_cap(world):
        world = with_horizon(world, horizon_cap(world))
    assert isinstance(world, BatchTransitionModel)
    batch = build_dag(world, max_states=100_000, progress=False)
    # Every configuration of a level recurs at the next (all agents still): the sweep empties the table memo.
    assert len(world._tables) == 0
    # The states share canonical parts: equal agents tuples (rocks, ...) are one object.
    for k in range(1, 6):
        assert len({id(s[k]) for s in batch.states}) == len({s[k] for s in batch.states})
    generic = build_dag(world, max_states=100_000, progress=False, batch=False)
    assert_same_dag(batch, generic)
    assert batch.transition_calls == int((~batch.terminal).sum())
    assert generic.transition_calls == batch.transition_calls * batch.num_profiles


@given(seed=st.integers(0, 2**32 - 1))
@FEW
def test_table_equals_per_action_on_random_worlds(seed: int) -> None:
    """Dense random worlds (rocks, blocks, doors, keys, lava, unsteady ground with p in {0, .3, .5, 1},
    terminated agents, agents side by side: conflict blocks are common)."""
    for make in (random_case, push_case):
        world, state, _ = make(seed)
        assert_table_matches(world, state, all_choices(world))


@given(seed=st.integers(0, 2**32 - 1))
@FEW
def test_robot_table_equals_per_action_on_random_worlds(seed: int) -> None:
    world, state, joint = random_case(seed)
    humans = [joint[h] for h in world.humans]
    table = world.transition_table(state, robot_choices(world, humans))
    for r in range(world.num_actions ** len(world.robots)):
        assert table[r] == world.transition_probabilities(state, compose_joint_action(world, humans, r))


@pytest.mark.parametrize("seed", range(12))
def test_batch_dag_identical_on_random_worlds(seed: int) -> None:
    world, _, _ = random_case(seed)
    world = with_horizon(world, 2 if world.num_agents <= 2 else 1)  # 7^4 joint actions per state with 4 agents
    kw = {"max_states": 10_000, "progress": False}
    assert_same_dag(build_dag(world, **kw), build_dag(world, batch=False, **kw))  # type: ignore[arg-type]


def test_table_equals_per_action_on_large() -> None:
    world = load_world("large")
    rng = np.random.default_rng(0)
    state = world.reset(seed=0)
    for _ in range(6):
        assert_table_matches(world, state, all_choices(world))
        state = world.step(tuple(int(a) for a in rng.integers(world.num_actions, size=world.num_agents)))


def test_transition_table_falls_back_for_worlds_without_the_hook() -> None:
    class PlainWorld:
        """A world model without the batch hook (delegates to a gridworld)."""

        def __init__(self, world: GridWorld) -> None:
            self.w = world
            self.num_agents, self.num_actions = world.num_agents, world.num_actions
            self.humans, self.robots, self.max_steps = world.humans, world.robots, world.max_steps

        def transition_probabilities(self, state: State, joint_action: JointAction) -> Successors:
            return self.w.transition_probabilities(state, joint_action)

    world = load_world("trivial")
    plain = PlainWorld(world)
    assert not isinstance(plain, BatchTransitionModel)
    state = world.initial_state()
    choices = all_choices(world)
    table = transition_table(plain, state, choices)  # type: ignore[arg-type]
    assert list(table.index) == list(range(16))
    assert [table[j] for j in range(16)] == [world.transition_table(state, choices)[j] for j in range(16)]
    assert generic_transition_table(world, state, choices).distributions == table.distributions


def test_no_effect_actions_share_one_distribution() -> None:
    """Facing walls on all sides but one, forward is a no-op: the table stores it once with still."""
    world = load_world("trivial")  # the human (agent 1) stands in a pocket, facing a wall (east)
    table = world.transition_table(world.initial_state(), all_choices(world))
    assert len(table.distributions) < len(table)
    joints = choice_combinations(all_choices(world))
    still = joints.index((0, 0))
    forward = joints.index((0, 3))
    assert table.index[still] == table.index[forward]


def test_bad_choices_are_refused() -> None:
    world = load_world("trivial")
    with pytest.raises(ValueError, match="2 agents"):
        world.transition_table(world.initial_state(), [[0]])
    with pytest.raises(ValueError, match="out of range"):
        world.transition_table(world.initial_state(), [[0], [9]])
    with pytest.raises(ValueError, match="empty"):
        world.transition_table(world.initial_state(), [[0], []])


def many_agents_yaml(n: int) -> str:
    """An open room with ``n`` agents (one human, the rest robots)."""
    width = n + 2
    row = ["We"] * (width + 2)
    agents = ["Ay"] + ["Ae"] * (n - 1)
    lines = [row, ["We", *agents, "..", "..", "We"], ["We"] + [".."] * width + ["We"], row]
    text = "\n".join("  " + " ".join(r) for r in lines)
    return f"map: |\n{text}\nmax_steps: 5\n"


def test_too_many_joint_actions_refused_up_front(tmp_path: Path) -> None:
    """11 agents: 4^11 joint actions per state. The CLI refuses in seconds, naming the estimate."""
    path = tmp_path / "crowd.yaml"
    path.write_text(many_agents_yaml(11))
    proc = subprocess.run(
        [sys.executable, "-m", "humanpower.cli.main", "solve", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "4,194,304 joint actions" in lines[0] and "TiB" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    world = load_world(str(path))
    with pytest.raises(UserError, match=f"at most {MAX_JOINT_ACTIONS:,}"):
        build_dag(world, max_states=10, progress=False)


def test_row_table_memory_refused_up_front(tmp_path: Path) -> None:
    path = tmp_path / "crowd.yaml"
    path.write_text(many_agents_yaml(6))  # 4,096 joint actions: 16 KiB of row table per state
    world = load_world(str(path))
    with pytest.raises(UserError, match=r"lower --max-states to at most 32,768"):
        build_dag(world, max_states=2_000_000, progress=False, max_bytes=2**29)


def test_state_limit_checked_while_a_state_expands(tmp_path: Path) -> None:
    """The generic path stops inside the first state's expansion, not after all its joint actions."""
    path = tmp_path / "crowd.yaml"
    path.write_text(many_agents_yaml(6))
    world = load_world(str(path))
    calls = 0
    original = world.transition_probabilities

    def counting(state: State, joint: JointAction) -> Successors:
        nonlocal calls
        calls += 1
        return original(state, joint)

    world.transition_probabilities = counting  # type: ignore[method-assign]
    with pytest.raises(UserError, match=r"max_states=5 .*0 expanded"):
        build_dag(world, max_states=5, progress=False, batch=False)
    assert calls < 100 < 4**6


def _steps_of(state: GridState, world: GridWorld) -> list[GridState]:
    """``state`` at every non-terminal step, in order (the memo's generations one after another)."""
    return [state._replace(step=k) for k in range(world.max_steps)]


@given(seed=st.integers(0, 2**32 - 1))
@FEW
def test_memoised_tables_equal_per_action_at_later_steps(seed: int) -> None:
    """The same configuration one step later comes from TableMemo (no new computation) and still equals the
    per-joint-action distributions there, for all agents' choices and for robot choices."""
    for make in (random_case, push_case):
        world, state, joint = make(seed)
        humans = [joint[h] for h in world.humans]
        for choices in (all_choices(world), robot_choices(world, humans)):
            world.clear_transition_cache()
            with mock.patch.object(memo, "transition_table", wraps=memo.transition_table) as computed:
                for s in _steps_of(state, world):
                    assert_table_matches(world, s, choices)
            assert computed.call_count == 1


def test_memo_keeps_two_steps_and_forgets_on_a_jump() -> None:
    world = with_horizon(load_world("warehouse"), 6)
    choices = all_choices(world)
    s0 = world.initial_state()
    moved = world.transition_table(s0, choices)[3][0][1]  # agent 1 turned left
    world.transition_table(s0, choices)
    assert len(world._tables) == 1
    world.transition_table(moved._replace(step=0), choices)
    world.transition_table(s0._replace(step=1), choices)  # moves s0's entry to the step-1 generation
    assert len(world._tables) == 2 and len(world._tables.previous) == 1
    world.transition_table(s0._replace(step=2), choices)  # the step-0 generation (moved's entry) is dropped
    assert len(world._tables) == 1
    world.transition_table(s0._replace(step=5), choices)  # the last non-terminal step: nothing is kept
    assert len(world._tables) == 0
    world.transition_table(s0._replace(step=3), choices)
    world.transition_table(s0._replace(step=1), choices)  # an episode reset: a new memo
    assert len(world._tables) == 1 and not world._tables.previous
    copy = pickle.loads(pickle.dumps(world))
    assert len(copy._tables) == 0 and copy._tables.last_step == world._tables.last_step
    assert copy.transition_table(s0, choices) == world.transition_table(s0, choices)


class FaultyWorld:
    """Two agents with two actions over ``(step, node)`` states; joint action ``fault_at`` breaks the protocol
    in the way ``fault`` names (from the initial state on). With ``batch``, it also has the batch hook."""

    num_agents, num_actions, humans, robots, max_steps = 2, 2, (0,), (1,), 3

    def __init__(self, fault: str, fault_at: JointAction) -> None:
        self.fault, self.fault_at = fault, fault_at

    def initial_state(self) -> State:
        return (0, 0)

    def is_terminal(self, state: tuple[int, int]) -> bool:
        return state[0] >= self.max_steps

    def step_count(self, state: tuple[int, int]) -> int:
        return state[0]

    def transition_probabilities(self, state: tuple[int, int], joint_action: JointAction) -> Successors:
        step, node = state
        if tuple(joint_action) != self.fault_at:
            return [(0.5, (step + 1, node)), (0.5, (step + 1, 1 - node))]
        return {
            "empty": [],
            "sum": [(0.5, (step + 1, node))],
            "skip": [(1.0, (step + 2, node))],
            "back": [(1.0, (step, node))],
        }[self.fault]


class FaultyBatchWorld(FaultyWorld):
    def transition_table(self, state: State, choices: list[list[int]]) -> TransitionTable:
        return generic_transition_table(self, state, choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("empty", r"\(0, 0\) has no successors under \(1, 0\)"),
        ("sum", r"\(0, 0\) under \(1, 0\) sum to 0.5, not 1"),
        ("skip", r"from \(0, 0\) \(step 0\) to \(2, 0\) \(step 2\) does not advance"),
        ("back", r"from \(0, 0\) leads back to \(0, 0\) at step 0"),
    ],
)
def test_protocol_faults_named(batched: bool, fault: str, message: str) -> None:
    """A world breaking the protocol is refused with the state and the first joint action showing it."""
    world = (FaultyBatchWorld if batched else FaultyWorld)(fault, (1, 0))
    assert isinstance(world, BatchTransitionModel) == batched
    with pytest.raises(UserError, match=message):
        build_dag(world, progress=False)  # type: ignore[arg-type]
    fine = (FaultyBatchWorld if batched else FaultyWorld)(fault, (2, 2))  # never taken: no fault
    assert build_dag(fine, progress=False).num_states == 7  # type: ignore[arg-type]
