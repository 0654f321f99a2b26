"""The default configuration rule (learn/autoconfig.py): pure derivation from world facts, and its wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from humanpower.api import auto_config
from humanpower.cli.main import main
from humanpower.cli.train_cmd import resolve_config
from humanpower.errors import ConfigError
from humanpower.learn import autoconfig as ac
from humanpower.learn.autoconfig import WorldFacts, derive_config, env_steps_for_budget, hidden_width, schedule
from humanpower.learn.autoprobe import estimate_reachable_states, state_count, world_facts
from humanpower.learn.config import Phase2Config
from humanpower.learn.schedules import StageTable, beta_r_at
from humanpower.worlds.grid.library import load_world

ONE_HUMAN = WorldFacts(horizon=10, num_humans=1, num_robots=1, num_actions=4, goals_per_human=(6,), num_states=1115)
THREE_HUMANS = WorldFacts(
    horizon=50, num_humans=3, num_robots=2, num_actions=4, goals_per_human=(9, 9, 9), num_states=10**6
)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"horizon": 0},
        {"num_humans": 0, "goals_per_human": ()},
        {"goals_per_human": (6, 6)},
        {"goals_per_human": (0,)},
        {"num_states": 0},
    ],
)
def test_world_facts_are_validated(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "horizon": 10,
        "num_humans": 1,
        "num_robots": 1,
        "num_actions": 4,
        "goals_per_human": (6,),
        "num_states": 100,
    }
    with pytest.raises(ValueError, match="WorldFacts"):
        WorldFacts(**{**base, **kwargs})  # type: ignore[arg-type]


def test_all_goals_options_follow_their_cost() -> None:
    assert ONE_HUMAN.all_action_calls == 16
    assert THREE_HUMANS.all_action_calls == 3 * 4 * 16
    small = ac.accuracy_options(ONE_HUMAN)
    big = ac.accuracy_options(THREE_HUMANS)
    assert small["v_h_e_all_goals"] and small["x_h_all_goals"]
    assert not big["v_h_e_all_goals"] and big["x_h_all_goals"]
    many_goals = WorldFacts(10, 1, 1, 4, (ac.MAX_EXACT_GOALS + 1,), 1000)
    assert not ac.accuracy_options(many_goals)["x_h_all_goals"]
    assert ac.deterministic_targets(ONE_HUMAN) and not ac.deterministic_targets(THREE_HUMANS)


def test_backend_specific_options() -> None:
    neural = ac.accuracy_options(ONE_HUMAN, "neural")
    assert neural["q_r_loss"] == "log" and neural["probability_loss"] == "bce" and neural["lr_q_r"] == ac.NEURAL_LR
    exact = ac.accuracy_options(ONE_HUMAN, "tabular")
    noisy = ac.accuracy_options(WorldFacts(10, 2, 1, 4, (6, 6), 1000), "tabular")
    assert exact["lr_v_h_e"] == ac.TABULAR_LR_EXACT and noisy["lr_v_h_e"] == ac.TABULAR_LR_NOISY
    assert exact["weight_decay"] == 0.0 and "q_r_loss" not in exact


def test_hidden_width_grows_with_the_states() -> None:
    assert hidden_width(1) == ac.MIN_HIDDEN
    assert hidden_width(1115) == 64
    assert hidden_width(12_465) == 128
    assert hidden_width(10**7) == ac.MAX_HIDDEN


@pytest.mark.parametrize("env_steps", [20_000, 60_000, 10**6])
def test_schedule_with_enough_budget(env_steps: int) -> None:
    fields, warnings = schedule(ONE_HUMAN, env_steps, all_actions=True)
    assert warnings == []
    total = fields["num_episodes"] * ONE_HUMAN.horizon
    assert env_steps <= total < env_steps + ONE_HUMAN.horizon
    interval = fields["target_update_interval_q_r"]
    assert ac.MIN_TARGET_INTERVAL <= interval <= ac.MAX_TARGET_INTERVAL
    # each stage lets values cross the horizon: H target copies
    assert fields["warmup_v_h_e_steps"] == ONE_HUMAN.horizon * interval
    warmup = 3 * fields["warmup_v_h_e_steps"] + fields["beta_r_rampup_steps"]
    assert warmup <= ac.WARMUP_SHARE * total
    assert fields["epsilon_decay_steps"] == warmup


def test_longer_budgets_give_longer_stages_up_to_the_cap() -> None:
    stages = [schedule(ONE_HUMAN, t, True)[0]["warmup_v_h_e_steps"] for t in (4_000, 8_000, 10**6, 10**7)]
    assert stages[0] < stages[1] < stages[2] == stages[3] == ONE_HUMAN.horizon * ac.MAX_TARGET_INTERVAL


def test_short_budget_warns_and_still_completes_the_ramp() -> None:
    auto = derive_config(ONE_HUMAN, 300)
    assert len(auto.warnings) == 1 and "short for the warm-up" in auto.warnings[0]
    cfg = auto.config
    assert cfg.warmup_env_steps <= ac.MAX_WARMUP_SHARE * auto.env_steps
    assert beta_r_at(auto.env_steps, cfg) == cfg.beta_r
    assert derive_config(ONE_HUMAN, 60_000).warnings == ()


def test_exploring_starts_follow_coverage() -> None:
    n = ONE_HUMAN.nonterminal_states
    covered = schedule(ONE_HUMAN, ac.COVERAGE_VISITS * n + 10, True)[0]
    sparse = schedule(ONE_HUMAN, ac.COVERAGE_VISITS * n // 2, True)[0]
    assert covered["exploring_starts_prob"] == 1.0
    assert sparse["exploring_starts_prob"] == ac.PARTIAL_EXPLORING_PROB


def test_buffer_is_bounded_by_memory() -> None:
    assert ac.buffer_capacity(ONE_HUMAN, True, 5_000) == 5_000
    per = THREE_HUMANS.robot_actions * (1 + 3 * 3)
    assert ac.buffer_capacity(THREE_HUMANS, True, 10**8) == ac.REPLAY_DISTRIBUTIONS // per
    assert ac.buffer_capacity(THREE_HUMANS, False, 10**8) == ac.REPLAY_DISTRIBUTIONS // 16


@pytest.mark.parametrize("facts", [ONE_HUMAN, THREE_HUMANS])
@pytest.mark.parametrize("networks", ["neural", "tabular"])
def test_derived_config_is_valid_and_keeps_the_base(facts: WorldFacts, networks: str) -> None:
    base = Phase2Config(seed=7, beta_r=5.0)
    auto = derive_config(facts, 50_000, networks, base)
    cfg = auto.config
    assert cfg.seed == 7 and cfg.beta_r == 5.0 and cfg.networks == networks
    assert cfg.steps_per_episode == facts.horizon and auto.env_steps == cfg.total_env_steps
    assert StageTable.from_config(cfg).rampup_end < cfg.total_env_steps
    assert not cfg.clear_buffer_at_rampup
    assert "episodes" in auto.summary()


def test_env_steps_for_budget() -> None:
    assert env_steps_for_budget(100.0, 0.001, 0.009) == 9_000
    assert env_steps_for_budget(100.0, 0.001, 0.009, loop_share=1.0) == 10_000
    with pytest.raises(ValueError, match="seconds"):
        env_steps_for_budget(0.0, 0.001, 0.01)


def test_world_facts_of_a_gridworld() -> None:
    world = load_world("two_humans")
    facts = world_facts(world, num_states=1234)
    assert (facts.horizon, facts.num_humans, facts.num_robots, facts.num_actions) == (12, 2, 1, 4)
    assert facts.goals_per_human == (16, 16) and facts.num_states == 1234 and facts.states_exact


def test_state_estimate_without_a_dag() -> None:
    """Capture-recapture over random rollouts: the right order of magnitude on trivial (1,115 states)."""
    world = load_world("trivial")
    estimate = estimate_reachable_states(world, rollouts=100, seed=0)
    assert 200 <= estimate <= 2_000
    assert not world_facts(world).states_exact


def test_state_count_respects_a_failed_enumeration() -> None:
    """An enumeration that stopped at its limit is a lower bound the (low-leaning) estimate must exceed."""
    assert state_count(1_518, 0) == 1_518
    assert state_count(1_518, 60_000) == 60_001
    assert state_count(250_000, 60_000) == 250_000


def test_auto_config_budget_from_num_episodes_and_explicit_overrides() -> None:
    world = load_world("trivial")
    auto, setup = auto_config(world, {"num_episodes": 200, "hidden_dim": 16, "seed": 3})
    cfg = auto.config
    assert cfg.num_episodes == 200 and cfg.hidden_dim == 16 and cfg.seed == 3  # explicit values win
    assert cfg.total_env_steps == 2_000 and cfg.warmup_env_steps <= 1_000  # stages sized for 2,000 env steps
    assert setup.reference is not None
    with pytest.raises(ConfigError, match="batch_size"):
        auto_config(world, {"num_episodes": 20, "batch_size": -1}, setup=setup)


def test_seed_defaults_config_is_bundled() -> None:
    assert resolve_config("seed-defaults") == Phase2Config()


def test_budget_minutes_needs_the_derived_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["train", "trivial", "--config", "seed-defaults", "--budget-minutes", "1", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--budget-minutes" in err and "\n" not in err
