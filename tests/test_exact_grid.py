"""The exact solver on bundled gridworlds: Bellman identities recomputed independently, terminal values, the
locked_in rescue, save/load, the X_h = 0 error and the ``solve`` command."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from humanpower.cli.main import main
from humanpower.errors import CheckpointError, UserError
from humanpower.exact import ExactSolution, hitting_probability, solve
from humanpower.humans import joint_human_distribution
from humanpower.params import TheoryParams
from humanpower.worlds.grid.library import load_world
from humanpower.worlds.grid.world import GridWorld
from humanpower.worlds.protocol import RobotPolicy, compose_joint_action

PARAMS = TheoryParams(beta_r=5.0, beta_h=4.0, gamma_r=0.95, gamma_h=0.9)


@pytest.fixture(scope="module")
def trivial() -> tuple[GridWorld, ExactSolution]:
    world = load_world("trivial")
    return world, solve(world, PARAMS)


def test_bellman_identities_on_trivial(trivial: tuple[GridWorld, ExactSolution]) -> None:
    world, sol = trivial
    prior = sol.prior
    assert prior is not None
    goal_sets = [world.goal_set(h) for h in world.humans]
    checked = 0
    for i, s in enumerate(sol.states):
        if world.is_terminal(s):
            continue
        # (4) recomputed from the world's transitions and the prior's marginals (humans independent).
        humans = joint_human_distribution(world, prior, s)
        for a_r in range(sol.num_robot_actions):
            ev = 0.0
            for p_h, acts in humans:
                joint = compose_joint_action(world, acts, a_r)
                ev += p_h * sum(p * sol.v_r[sol.state_id(s2)] for p, s2 in world.transition_probabilities(s, joint))
            assert sol.q_r[i, a_r] == pytest.approx(PARAMS.gamma_r * ev, rel=1e-10, abs=1e-13)
        # (9)
        assert sol.v_r[i] == pytest.approx(sol.u_r[i] + float(sol.pi_r[i] @ sol.q_r[i]), rel=1e-12)
        checked += 1
        if i % 7:
            continue
        # (6) for every goal of the human, on a sample of states.
        for hi, h in enumerate(world.humans):
            for gi, goal in enumerate(goal_sets[hi].goals):
                expected = 0.0
                for p_h, acts in joint_human_distribution(world, prior, s, {h: goal}):
                    for a_r in range(sol.num_robot_actions):
                        joint = compose_joint_action(world, acts, a_r)
                        for p, s2 in world.transition_probabilities(s, joint):
                            nxt = 1.0 if goal.is_achieved(s2) else PARAMS.gamma_h * sol.v_h_e[hi][sol.state_id(s2), gi]
                            expected += p_h * sol.pi_r[i, a_r] * p * nxt
                assert sol.v_h_e[hi][i, gi] == pytest.approx(expected, abs=1e-12)
    assert checked > 500


def test_terminal_values_and_bounds(trivial: tuple[GridWorld, ExactSolution]) -> None:
    world, sol = trivial
    term = sol.terminal
    assert term.any() and np.all([world.is_terminal(s) == t for s, t in zip(sol.states, term, strict=True)])
    assert np.all(sol.v_r[term] == PARAMS.terminal_v_r)
    assert np.all(sol.x_h[term] == 0.0) and all(np.all(v[term] == 0.0) for v in sol.v_h_e)
    live = ~term
    assert np.all(sol.q_r[live] < 0) and np.all(sol.v_r[live] < 0) and np.all(sol.u_r[live] < 0)
    assert np.all(sol.x_h[live] > 0)
    assert np.all(sol.x_h[live] <= world.goal_set(world.humans[0]).total_weight + 1e-12)
    assert all(np.all((v >= 0) & (v <= 1 + 1e-12)) for v in sol.v_h_e)
    np.testing.assert_allclose(sol.pi_r.sum(axis=1), 1.0, atol=1e-12)


def test_locked_in_robot_frees_the_human() -> None:
    world = load_world("locked_in")
    sol = solve(world)
    rock = world.initial_state().rocks[0]
    assert sol.prior is not None
    # Exact forward propagation of the state distribution under pi_r and the prior's goal-marginal policy.
    p = hitting_probability(world, sol, sol.prior, lambda s: rock not in s.rocks)  # type: ignore[attr-defined]
    assert p > 0.5
    init = sol.values_at(world.initial_state())
    assert init["pi_r"][3] == max(init["pi_r"])  # forward (towards the rock) is the most likely first move


def test_save_load_round_trip(tmp_path: Path, trivial: tuple[GridWorld, ExactSolution]) -> None:
    world, sol = trivial
    path = tmp_path / "solution.npz"
    sol.save(path)
    loaded = ExactSolution.load(path, world)
    assert loaded.states == sol.states and loaded.params == sol.params and loaded.human_prior == "exact"
    for name in ("q_r", "pi_r", "v_r", "u_r", "x_h", "terminal"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(sol, name))
    for a, b in zip(loaded.v_h_e, sol.v_h_e, strict=True):
        np.testing.assert_array_equal(a, b)
    s0 = world.initial_state()
    assert loaded.values_at(s0) == sol.values_at(s0)
    assert loaded.action_distributions([s0]).tolist() == [sol.pi_r[0].tolist()]
    # A different world, a corrupt file, a truncated file, a missing file.
    with pytest.raises(CheckpointError, match="does not match this world"):
        ExactSolution.load(path, load_world("locked_in"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable solution file"):
        ExactSolution.load(bad, world)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        ExactSolution.load(cut, world)
    with pytest.raises(CheckpointError, match="no such"):
        ExactSolution.load(tmp_path / "missing.npz", world)


def test_x_h_zero_error_on_a_grid() -> None:
    base = load_world("trivial")
    # The only goal (4,1) is out of the human's reach (the rock can only be pushed towards it).
    world = GridWorld(base.layout, base.initial_state(), 4, goals=["4,1"], name="unreachable")
    with pytest.raises(UserError, match=r"human 1 has X_h = 0 at the non-terminal state GridState\(step=3"):
        solve(world)


def test_solution_is_a_robot_policy_over_its_states(trivial: tuple[GridWorld, ExactSolution]) -> None:
    _, sol = trivial
    assert isinstance(sol, RobotPolicy)
    ids = [0, sol.num_states - 1, 1]
    rows = sol.action_distributions([sol.states[i] for i in ids])
    np.testing.assert_array_equal(rows, sol.pi_r[ids])
    rows[0, 0] = -1.0  # a copy: the solution is untouched
    assert sol.pi_r[0, 0] >= 0.0 and sol.action_distributions([]).shape == (0, sol.num_robot_actions)
    with pytest.raises(KeyError, match="not a reachable state"):
        sol.action_distributions([("not", "a", "state")])


EXPECTED_KEYS = {"states", "V_r", "U_r", "Q_r", "pi_r", "X_h", "V_h_e", "actions", "params", "seconds"}


def test_cli_solve_json_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "trivial", "--json", "--beta-r", "5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert set(data) == EXPECTED_KEYS
    assert data["states"] == 1115 and data["actions"] == ["still", "left", "right", "forward"]
    assert data["params"]["beta_r"] == 5.0 and data["params"]["gamma_r"] == TheoryParams().gamma_r
    assert sum(data["pi_r"]) == pytest.approx(1.0)
    assert list(data["V_h_e"][0]) == [str(g) for g in load_world("trivial").goal_set(1).goals]
    for name in ("solution.npz", "rollout.gif", "x_h_heatmap.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert ExactSolution.load(tmp_path / "solution.npz", load_world("trivial")).num_states == 1115
    # Table output, the heuristic prior and a horizon override.
    assert main(["solve", "trivial", "--human-prior", "heuristic", "--max-steps", "4"]) == 0
    text = capsys.readouterr().out
    assert "human prior: heuristic" in text and "X_h" in text and "forward" in text
    assert main(["solve", "trivial", "--gamma-r", "2"]) == 2
    assert "--gamma-r" in capsys.readouterr().err


def test_cli_subprocess_under_10_seconds() -> None:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "humanpower.cli.main", "solve", "trivial", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == EXPECTED_KEYS and data["states"] == 1115
    assert elapsed < 10.0
