"""``humanpower train [WORLD] [--config FILE] [--out DIR] [--resume RUN_DIR] [--key value ...]``.

Every :class:`~humanpower.learn.config.Phase2Config` field is a flag (``--num-episodes 200``,
``--networks tabular``, ``--device cuda``...). Without ``--config``, the config is derived from the world by the
default configuration rule (``learn/autoconfig.py``, docs/LEARNER.md) for a training time of ``--budget-minutes``
(default 10); explicit flags replace derived values. ``--config seed-defaults`` gives the seed's literal numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from humanpower.errors import ConfigError, UserError
from humanpower.learn.config import Phase2Config, field_docs, parse_overrides
from humanpower.learn.config_tools import format_default

DEFAULT_WORLD = "trivial"
DEFAULT_BUDGET_MINUTES = 10.0
"""Equals :data:`humanpower.api.DEFAULT_BUDGET_MINUTES` (not imported: the CLI imports the API lazily)."""


def bundled_configs_dir() -> Path:
    """Folder of the configs shipped inside the package (also linked from the repository's ``configs/``)."""
    return Path(__file__).resolve().parent.parent / "configs"


def resolve_config(spec: str) -> Phase2Config:
    """A config from a YAML path or a bundled config name."""
    path = Path(spec)
    if not path.is_file():
        bundled = bundled_configs_dir() / f"{spec}.yaml"
        if not bundled.is_file():
            names = sorted(p.stem for p in bundled_configs_dir().glob("*.yaml"))
            raise ConfigError(f"--config: {spec!r} is neither a file nor a bundled config ({', '.join(names)})")
        path = bundled
    return Phase2Config.from_yaml(path)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``train`` subcommand (one flag per config field)."""
    p = subparsers.add_parser(
        "train",
        help="train the Phase 2 learner and write a run folder",
        description="Train the Phase 2 learner on a world and write a run folder (config, metrics, TensorBoard "
        "logs, checkpoints, policy, rollout GIF). Every config field is also a flag, e.g. --num-episodes 200.",
    )
    p.add_argument(
        "world",
        nargs="?",
        default=None,
        metavar="WORLD",
        help=f"bundled world name or world file (default: {DEFAULT_WORLD})",
    )
    p.add_argument("--config", metavar="FILE", help="YAML config file or bundled config name")
    p.add_argument(
        "--budget-minutes",
        type=float,
        metavar="M",
        default=None,
        help=f"without --config: training time the derived config plans for (default {DEFAULT_BUDGET_MINUTES:g}; "
        "--num-episodes instead fixes the env steps)",
    )
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<world>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its newest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = p.add_argument_group("config fields (see docs/CONFIG.md)")
    for name, type_text, default, doc in field_docs():
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"cfg__{name}",
            metavar=flag_metavar(type_text),
            default=argparse.SUPPRESS,
            help=flag_help(doc, default),
        )
    p.set_defaults(func=run)


def flag_metavar(type_text: str) -> str:
    """Placeholder of a config flag's value from the field's type text (``int | None`` -> ``N|none``)."""
    base, _, optional = type_text.partition(" | ")
    word = {"int": "N", "float": "X", "bool": "BOOL", "str": "TEXT"}.get(base, "V")
    return f"{word}|none" if optional else word


def flag_help(doc: str, default: object) -> str:
    """The help text of a config flag: the field's docstring and its default (``%`` escaped for argparse)."""
    return f"{doc} (default: {format_default(default)})".replace("%", "%%")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    argv: list[str] = []
    for key, value in vars(args).items():
        if key.startswith("cfg__"):
            argv += ["--" + key[5:].replace("_", "-"), value]
    return parse_overrides(argv)


def run(args: argparse.Namespace) -> int:
    from humanpower.api import auto_config, build_setup, train, uses_learned_prior
    from humanpower.learn.checkpoint import RunFolder, create_run_dir
    from humanpower.learn.phases import read_run_status, with_phase1_steps
    from humanpower.learn.trainer import TrainingSetup
    from humanpower.worlds.grid.files import safe_name
    from humanpower.worlds.grid.library import load_world

    overrides = _overrides(args)
    setup: TrainingSetup | None = None
    if args.budget_minutes is not None and (args.config or args.resume):
        raise UserError("--budget-minutes: only without --config and --resume (it sizes the derived config)")
    if args.resume:
        run_dir = Path(args.resume)
        folder = RunFolder(run_dir)
        read_run_status(folder)  # a clear error if this is not a run folder
        if args.world or args.config or args.out:
            raise UserError("--resume takes the world and config from the run folder; drop WORLD/--config/--out")
        extra = set(overrides) - {"num_episodes"}
        if extra:
            raise UserError(f"--resume: only --num-episodes may change on resume (got {', '.join(sorted(extra))})")
        folder.check_not_busy()  # fail before building the setup; the trainer takes the lock itself
        if "num_episodes" in overrides:  # the episodes asked for are trained: a budget's time limit is lifted
            overrides["max_seconds"] = None
        cfg = Phase2Config.from_yaml(folder.config_path).replace(**overrides)
        world = load_world(str(folder.world_path))
        world_name = world.name
    else:
        world_name = args.world or DEFAULT_WORLD
        world = load_world(world_name)
        if args.out:
            out = Path(args.out)
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise UserError(f"{out}: exists and is not an empty folder (use --resume to continue a run)")
        if args.config:
            cfg = resolve_config(args.config).replace(**overrides)
        else:
            auto, setup = auto_config(world, overrides, budget_minutes=args.budget_minutes)
            cfg = auto.config
            print(f"humanpower train: derived config (docs/LEARNER.md): {auto.summary()}")
            for line in auto.warnings:
                print(f"humanpower train: warning: {line}", file=sys.stderr)
        if args.out:
            run_dir = Path(args.out)
        else:  # a new folder, created atomically: two runs started in the same second get two folders
            run_dir = create_run_dir(Path("runs"), f"{safe_name(world.name)}-{time.strftime('%Y%m%d-%H%M%S')}")
    if setup is None and cfg.human_prior in ("learned", "auto"):
        setup = build_setup(world, cfg)
    if setup is not None and uses_learned_prior(setup):
        cfg = with_phase1_steps(cfg)
        limit = "" if cfg.phase1_max_seconds is None else f" or {cfg.phase1_max_seconds:.0f} s, whichever ends first"
        print(
            f"humanpower train: phase 1 (learned human prior, docs/LEARNER.md): {cfg.phase1_train_steps} training "
            f"steps{limit}, then phase 2",
            flush=True,
        )
    print(
        f"humanpower train: world {world_name}, {cfg.networks} networks, "
        f"{cfg.num_episodes} episodes, run folder {run_dir}",
        flush=True,
    )
    result = train(world, cfg, run_dir, progress=not args.no_progress, resume=bool(args.resume), setup=setup)
    if result.already_finished:
        print(
            f"humanpower train: {run_dir} already finished its {cfg.num_episodes} episodes; nothing to do "
            "(pass a larger --num-episodes to extend it)"
        )
        return 0
    status = (
        "interrupted (resume with: humanpower train --resume " + str(run_dir) + ")"
        if result.interrupted
        else "finished"
    )
    run_status = read_run_status(RunFolder(run_dir))
    if not result.interrupted and run_status.get("time_limit_stop"):
        status += f" at its time limit ({run_status['time_limit_stop']})"
    if not run_status.get("warmup_complete", True):
        status += f" with the warm-up incomplete (beta_r below its nominal {cfg.beta_r:g}; see run.json)"
    print(f"humanpower train: {status}; run folder {run_dir}")
    if result.metrics:
        last = result.metrics[-1]
        keys = [
            k
            for k in (
                "total_steps",
                "train_steps",
                "env_steps_per_s",
                "train_steps_per_s",
                "pi_r_rmse",
                "argmax_agreement",
                "V_r_rel_error",
            )
            if k in last
        ]
        print("  " + "  ".join(f"{k}={last[k]:.4g}" if isinstance(last[k], float) else f"{k}={last[k]}" for k in keys))
    return 128 + result.stopped_by if result.stopped_by is not None else 0
