"""Phase2Config: defaults, validation errors, YAML round trip, overrides, generated docs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from humanpower.errors import ConfigError, UserError
from humanpower.learn.config import Phase2Config, config_reference_markdown, field_docs, parse_overrides
from humanpower.params import TheoryParams

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "humanpower" / "configs"


def test_defaults_and_theory() -> None:
    c = Phase2Config()
    assert c.theory() == TheoryParams()
    assert c.total_env_steps == 10_000 * 50
    assert c.effective_x_h_batch_size == 64
    assert c.weight_decay > 0
    # warmup_u_r_steps only counts with the U_r network
    assert c.warmup_env_steps == 10_000 * 3 + 20_000
    assert c.replace(u_r_use_network=True).warmup_env_steps == 10_000 * 4 + 20_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.seed = 3  # type: ignore[misc]


def test_every_field_documented_and_typed() -> None:
    docs = field_docs()
    assert [d[0] for d in docs] == [f.name for f in dataclasses.fields(Phase2Config)]
    for name, type_text, default, doc in docs:
        assert type_text, name
        assert len(doc) > 15, f"{name} lacks a docstring"
        assert default is not dataclasses.MISSING, name
    assert dict((n, t) for n, t, _, _ in docs)["x_h_batch_size"] == "int | None"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"beta_r": -1.0}, "beta_r: must be >= 0"),
        ({"zeta": 0.0}, "zeta: must be > 0"),
        ({"gamma_h": 1.5}, "gamma_h: must be in (0, 1]"),
        ({"lr_q_r": -1e-3}, "lr_q_r: must be > 0"),
        ({"weight_decay": -0.1}, "weight_decay: must be >= 0"),
        ({"batch_size": 64, "buffer_size": 32}, "batch_size: must be <= buffer_size (64 > 32)"),
        ({"x_h_batch_size": 16}, "x_h_batch_size: must be >= batch_size (16 < 64)"),
        ({"epsilon_start": 0.1, "epsilon_end": 0.2}, "epsilon_end: must be <= epsilon_start"),
        ({"epsilon_start": 1.5}, "epsilon_start: must be in [0, 1]"),
        ({"networks": "lookup"}, "networks: must be one of neural, tabular"),
        ({"human_prior": "smart"}, "human_prior: must be one of auto, exact, learned, heuristic, uniform"),
        ({"backend": "dask"}, "backend: must be one of local, ray"),
        ({"device": "gpu"}, "device: must be cpu, cuda or cuda:N"),
        ({"num_episodes": 10}, "num_episodes: the warm-up stages need 50000 env steps"),
        ({"dropout": 1.0}, "dropout: must be in [0, 1)"),
        ({"target_update_interval_x_h": 0}, "target_update_interval_x_h: must be >= 1"),
        ({"warmup_q_r_steps": -5}, "warmup_q_r_steps: must be >= 0"),
        ({"checkpoint_every_episodes": 0}, "checkpoint_every_episodes: must be >= 1"),
        ({"replay_max_age": 10}, "replay_max_age: must be >= the largest batch size (10 < 64)"),
        ({"ray_address": "auto"}, "ray_address: only used with backend 'ray'"),
        ({"batch_size": 3.5}, "batch_size: must be an integer"),
        ({"rollout_gif": "yes"}, "rollout_gif: must be true or false"),
        ({"num_actors": True}, "num_actors: must be an integer"),
        ({"lr_x_h": float("nan")}, "lr_x_h: must be a number"),
        ({"max_env_steps_per_train_step": 0.0}, "max_env_steps_per_train_step: must be > 0 or none"),
    ],
)
def test_validation_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Phase2Config(**overrides)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert isinstance(info.value, UserError)


def test_valid_edge_cases() -> None:
    c = Phase2Config(num_episodes=1000, steps_per_episode=50)  # warm-up exactly fills the run
    assert c.warmup_env_steps == c.total_env_steps
    assert Phase2Config(device="cuda:1", backend="ray", ray_address="auto").device == "cuda:1"
    # ints are widened to float for float fields
    assert isinstance(Phase2Config(beta_r=3).beta_r, float)


def test_replace_and_unknown_field() -> None:
    c = Phase2Config().replace(batch_size=32, seed=7)
    assert (c.batch_size, c.seed) == (32, 7)
    with pytest.raises(ConfigError, match=r"unknown config field 'batchsize'.*did you mean 'batch_size'"):
        Phase2Config().replace(batchsize=3)


def test_yaml_round_trip(tmp_path: Path) -> None:
    c = Phase2Config(
        seed=3, x_h_batch_size=128, replay_max_age=5000, lr_q_r=2.5e-4, terminal_v_r=-1e-9, rollout_gif=False
    )
    for comments in (False, True):
        path = tmp_path / f"c{comments}.yaml"
        c.to_yaml(path, comments=comments)
        assert Phase2Config.from_yaml(path) == c
    assert Phase2Config.from_dict(c.to_dict()) == c


def test_yaml_partial_and_float_strings(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("num_episodes: 2000\nlr_q_r: 1e-3\nx_h_batch_size: null\n")  # YAML 1.1: 1e-3 is a str
    c = Phase2Config.from_yaml(path)
    assert c.num_episodes == 2000 and c.lr_q_r == 1e-3 and c.x_h_batch_size is None
    assert c.seed == 0


def test_yaml_errors(tmp_path: Path) -> None:
    bad_key = tmp_path / "k.yaml"
    bad_key.write_text("seed: 1\nnum_episode: 5\n")
    with pytest.raises(ConfigError, match=r"k\.yaml:2: unknown key 'num_episode' \(did you mean 'num_episodes'"):
        Phase2Config.from_yaml(bad_key)
    syntax = tmp_path / "s.yaml"
    syntax.write_text("seed: 1\nbatch_size: [1, 2\nlr_q_r: 0.1\n")
    with pytest.raises(ConfigError, match=r"s\.yaml:\d+: YAML syntax error"):
        Phase2Config.from_yaml(syntax)
    bad_value = tmp_path / "v.yaml"
    bad_value.write_text("batch_size: 100\nbuffer_size: 10\n")
    with pytest.raises(ConfigError, match=r"v\.yaml:1: batch_size: must be <= buffer_size \(100 > 10\)"):
        Phase2Config.from_yaml(bad_value)
    not_mapping = tmp_path / "l.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Phase2Config.from_yaml(not_mapping)
    with pytest.raises(ConfigError, match="cannot read"):
        Phase2Config.from_yaml(tmp_path / "missing.yaml")


def test_yaml_syntax_error_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("seed: 1\nbatch_size: 4\n  device: cpu\n")
    with pytest.raises(ConfigError, match=r"t\.yaml:3:"):
        Phase2Config.from_yaml(path)


def test_parse_overrides_types() -> None:
    parsed = parse_overrides(
        [
            "--num-episodes",
            "200",
            "--lr-q-r",
            "1e-4",
            "--rollout-gif",
            "no",
            "--include-step-count=YES",
            "--x-h-batch-size",
            "none",
            "--replay-max-age",
            "500",
            "--device",
            "cuda:0",
        ]
    )
    assert parsed == {
        "num_episodes": 200,
        "lr_q_r": 1e-4,
        "rollout_gif": False,
        "include_step_count": True,
        "x_h_batch_size": None,
        "replay_max_age": 500,
        "device": "cuda:0",
    }
    assert isinstance(parsed["num_episodes"], int)
    for word, value in (("true", True), ("1", True), ("0", False), ("False", False)):
        assert parse_overrides(["--async-training", word]) == {"async_training": value}
    c = Phase2Config().apply_overrides(["--num-episodes", "2000", "--seed", "4"])
    assert (c.num_episodes, c.seed) == (2000, 4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-episode", "5"], "--num-episode: unknown option (did you mean --num-episodes?)"),
        (["--num-episodes", "abc"], "--num-episodes: expected an integer, got 'abc'"),
        (["--num-episodes", "1.5"], "--num-episodes: expected an integer"),
        (["--lr-q-r", "fast"], "--lr-q-r: expected a number"),
        (["--lr-q-r", "inf"], "--lr-q-r: expected a number"),
        (["--rollout-gif", "maybe"], "--rollout-gif: expected true or false"),
        (["--batch-size", "none"], "--batch-size: expected an integer, got 'none'"),
        (["--seed"], "--seed: missing value"),
        (["seed", "3"], "seed: expected an option of the form --key-name VALUE"),
    ],
)
def test_parse_overrides_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides(argv)
    assert message in str(info.value)


def test_apply_overrides_validates() -> None:
    with pytest.raises(ConfigError, match="batch_size: must be <= buffer_size"):
        Phase2Config().apply_overrides(["--batch-size", "200000"])


def test_docs_config_md_is_generated() -> None:
    text = (ROOT / "docs" / "CONFIG.md").read_text(encoding="utf-8")
    assert text == config_reference_markdown(), "regenerate: python -m humanpower.learn.config --markdown"
    assert "| `x_h_batch_size` | int \\| None | `none` |" in text


def test_markdown_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "humanpower.learn.config", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == config_reference_markdown()


@pytest.mark.parametrize("name", ["seed-defaults", "trivial-tabular", "trivial-neural"])
def test_shipped_configs_load(name: str) -> None:
    c = Phase2Config.from_yaml(ROOT / "configs" / f"{name}.yaml")
    if name == "seed-defaults":
        assert c == Phase2Config()
    else:
        assert c.steps_per_episode == 10
        assert c.networks == name.split("-")[1]
        assert c.warmup_env_steps < c.total_env_steps / 2


def test_binary_config_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_bytes(b"seed: 1\n\xff\xfe\x00\x81garbage")
    with pytest.raises(ConfigError, match=r"b\.yaml: not a UTF-8 text file \(byte 0xff at offset 8\)"):
        Phase2Config.from_yaml(path)
    control = tmp_path / "c.yaml"
    control.write_bytes(b"seed: 1\nbatch_size: \x00\x01\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: YAML error: ") as info:
        Phase2Config.from_yaml(control)
    assert "\n" not in str(info.value)


def test_duplicate_config_keys_are_refused_with_line(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("seed: 1\nbatch_size: 8\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"d\.yaml:3: YAML syntax error: duplicate key 'seed'"):
        Phase2Config.from_yaml(path)


@pytest.mark.parametrize("spelling", ["none", "None", "NONE", "null", "~"])
def test_yaml_none_means_null_for_optional_fields(tmp_path: Path, spelling: str) -> None:
    path = tmp_path / "n.yaml"
    path.write_text(f"x_h_batch_size: {spelling}\nmax_policy_lag: {spelling}\nray_address: {spelling}\n")
    c = Phase2Config.from_yaml(path)
    assert c.x_h_batch_size is None and c.max_policy_lag is None and c.ray_address is None
    required = tmp_path / "r.yaml"
    required.write_text("batch_size: none\n")
    with pytest.raises(ConfigError, match=r"r\.yaml:1: batch_size: must be an integer, got 'none'"):
        Phase2Config.from_yaml(required)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"beta_r": 1e308}, r"beta_r: must be <= 1e\+06, got 1e\+308 \(larger values overflow"),
        ({"beta_h": 1e7}, r"beta_h: must be <= 1e\+06"),
        ({"torch_threads": 100_000}, r"torch_threads: must be <= 256, got 100000"),
        ({"memory_limit_gb": 0.0}, r"memory_limit_gb: must be > 0"),
        (
            {"buffer_size": 10**12},
            r"buffer_size: the replay buffer \(1000000000000 slots.* needs about 24 TB, "
            r"more than the memory limit of 2 GB",
        ),
        ({"hidden_dim": 100_000}, r"hidden_dim: 3 networks of 2 hidden layers x 100000 units .* needs about 2.4 TB"),
        ({"networks": "tabular", "tabular_max_states": 10**11}, r"tabular_max_states: .* needs about"),
        (
            {"exploring_starts_prob": 0.5, "exploring_starts_pool": 10**9, "num_episodes": 10**9},
            r"exploring_starts_pool: the exploring-starts pool \(1000000000 states\) needs about 200 GB",
        ),
        ({"async_training": True, "num_actors": 100}, r"num_actors: 100 actor processes needs about 15 GB"),
        (
            {"x_h_goal_samples": 10**9},
            r"x_h_goal_samples: the X_h targets of one batch \(64 rows x 1000000000 sampled goals\) needs about "
            r"1.02 TB",
        ),
    ],
)
def test_sizes_are_refused_up_front_with_an_estimate(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Phase2Config(**overrides)  # type: ignore[arg-type]


def test_memory_limit_can_be_raised_explicitly() -> None:
    big = {"async_training": True, "num_actors": 20}
    with pytest.raises(ConfigError, match=r"num_actors: .* memory limit of 2 GB"):
        Phase2Config(**big)  # type: ignore[arg-type]
    assert Phase2Config(**big, memory_limit_gb=4.0).num_actors == 20  # type: ignore[arg-type]
    assert Phase2Config(hidden_dim=4096, memory_limit_gb=100).hidden_dim == 4096


def test_default_and_bundled_configs_fit_the_default_memory_limit() -> None:
    from humanpower.learn.config_limits import memory_estimates
    from humanpower.limits import memory_limit_bytes

    configs = [Phase2Config()] + [Phase2Config.from_yaml(p) for p in sorted(BUNDLED.glob("*.yaml"))]
    assert len(configs) > 1
    for c in configs:
        for _, _, estimate in memory_estimates(c):
            assert estimate < memory_limit_bytes(c.memory_limit_gb) / 10


def test_oversized_config_file_is_refused_before_reading(tmp_path: Path) -> None:
    from humanpower.learn.config_tools import MAX_CONFIG_FILE_BYTES

    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * MAX_CONFIG_FILE_BYTES + b"\nseed: 1\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: the file has 1,000,009 bytes, more than the 1,000,000"):
        Phase2Config.from_yaml(path)
    assert len(Phase2Config().to_yaml(comments=True)) < MAX_CONFIG_FILE_BYTES / 50
