"""`humanpower train` / `humanpower eval` end to end on a tiny budget, and their error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from humanpower.cli.main import main

TINY = [
    "--num-episodes",
    "8",
    "--warmup-v-h-e-steps",
    "10",
    "--warmup-x-h-steps",
    "10",
    "--warmup-q-r-steps",
    "10",
    "--beta-r-rampup-steps",
    "20",
    "--batch-size",
    "8",
    "--hidden-dim",
    "16",
    "--log-every-episodes",
    "4",
    "--no-progress",
]


def test_train_then_eval_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "trivial", "--out", str(run), *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--episodes", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "V_r_s0",
        "V_r_s0_exact",
        "V_r_rel_error",
        "pi_r_rmse",
        "argmax_agreement",
        "states_compared",
        "W_h",
        "goal_reach_rate",
    ):
        assert key in out, key
    for key in (
        "V_r_s0_policy",
        "V_r_s0_uniform",
        "policy_gap_closed",
        "W_h_s0_policy",
        "W_h_s0_exact",
        "goal_reach_policy",
        "goal_reach_exact",
        "pi_r_rmse_on_policy",
        "argmax_agreement_on_policy",
        "discriminates",
    ):
        assert key in out, key
    assert out["discriminates"] is True  # trivial: uniform V_r(s0) -8.50 vs exact -4.23
    assert out["V_r_s0_uniform"] < out["V_r_s0_exact"] < 0 and out["V_r_s0_policy"] < 0
    gap = (out["V_r_s0_policy"] - out["V_r_s0_uniform"]) / (out["V_r_s0_exact"] - out["V_r_s0_uniform"])
    assert out["policy_gap_closed"] == pytest.approx(gap)
    assert len(out["W_h_s0_policy"]) == len(out["goal_reach_exact"]) == 1
    assert out["states_compared"] == 892  # reachable non-terminal states of trivial
    assert len(out["W_h"]) == 1 and out["V_r_s0"] < 0 and out["V_r_s0_exact"] < 0
    assert (run / "eval" / "rollout.gif").is_file() and (run / "eval" / "learning_curves.png").is_file()
    # prior fidelity: the run's prior (auto = exact here) and the heuristic one against exact Phase 1
    for prefix in ("prior_tv", "heuristic_prior_tv"):
        for suffix in ("mean", "p95", "mean_on_policy", "p95_on_policy", "mean_per_human", "pairs"):
            assert f"{prefix}_{suffix}" in out, f"{prefix}_{suffix}"
    assert out["human_prior"] == "auto" and out["prior_tv_mean"] == out["prior_tv_p95_on_policy"] == 0.0
    assert 0.0 < out["heuristic_prior_tv_mean"] <= out["heuristic_prior_tv_p95"] <= 1.0
    assert out["heuristic_prior_tv_pairs"] == 4460 and len(out["heuristic_prior_tv_mean_per_human"]) == 1


def test_train_tabular_backend_flag(tmp_path: Path) -> None:
    run = tmp_path / "tab"
    assert main(["train", "trivial", "--networks", "tabular", "--out", str(run), *TINY]) == 0
    assert "networks: tabular" in (run / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "trivial", "--batch-size", "-3"], "batch_size"),
        (["train", "trivial", "--num-episodes", "many"], "--num-episodes"),
        (["train", "no_such_world"], "no_such_world"),
        (["train", "trivial", "--config", "no_such_config"], "--config"),
        (["eval", "/nonexistent/run"], "run.json"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_existing_run_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").write_text("")
    assert main(["train", "trivial", "--out", str(tmp_path), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err


def test_out_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "file"
    out.write_text("")
    assert main(["train", "trivial", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert str(out) in err and "not an empty folder" in err and "\n" not in err
