"""Kill, interrupt and damage tiny training runs at random points, resume them, and count what was lost.

    python tools/fuzz_runs.py [--runs 8] [--seed 0] [--workdir DIR]

One uninterrupted reference run, then ``--runs`` runs of the same config (``humanpower train`` in a subprocess,
tabular networks on ``trivial``), each stopped up to ``--rounds`` times at a random logged row by kill -9, SIGTERM
or SIGINT, sometimes damaged after a kill -9 (newest checkpoint cut short or deleted, a partial metrics row),
sometimes evaluated while killed (``humanpower eval``) or raced by a second writer, and resumed with
``humanpower train --resume`` until it finishes. Synchronous resume is exact, so every finished run must equal the
reference: same metric rows (every column but the two speeds) and a bit-identical policy. Prints the counts; exits
1 if any data was lost, a traceback was printed or an exit status was unexpected.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from humanpower.learn.checkpoint import RunFolder, load_torch

CONFIG: dict[str, str | int] = {
    "networks": "tabular",
    "num-episodes": 12,
    "steps-per-episode": 10,
    "batch-size": 16,
    "buffer-size": 500,
    "warmup-v-h-e-steps": 10,
    "warmup-x-h-steps": 10,
    "warmup-q-r-steps": 10,
    "beta-r-rampup-steps": 20,
    "epsilon-decay-steps": 50,
    "log-every-episodes": 1,
    "checkpoint-every-episodes": 2,
    "keep-checkpoints": 3,
}
TIMING_COLUMNS = {"env_steps_per_s", "train_steps_per_s"}
EXIT = {"kill -9": -signal.SIGKILL, "SIGTERM": 128 + signal.SIGTERM, "SIGINT": 128 + signal.SIGINT}


@dataclass
class Tally:
    runs: int = 0
    finished: int = 0
    stops: Counter[str] = field(default_factory=Counter)
    damage: Counter[str] = field(default_factory=Counter)
    evals: int = 0
    second_writers: int = 0
    redone_max: int = 0
    rows_lost: int = 0
    policies_differing: int = 0
    tracebacks: int = 0
    bad_exits: list[str] = field(default_factory=list)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "humanpower.cli.main", *args]


def flags() -> list[str]:
    return [f"--{k}={v}" for k, v in CONFIG.items()] + ["--no-progress"]


def rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


def logged_episodes(folder: RunFolder) -> int:
    done = [int(r["episode"]) for r in rows(folder.metrics_path) if r.get("episode", "").isdigit()]
    return max(done, default=0)


def params(path: Path) -> dict[str, torch.Tensor]:
    nets = load_torch(path)["nets"]
    return {f"{n}.{k}": v for n, sd in nets.items() for k, v in sd.items()}


def same_policy(a: Path, b: Path) -> bool:
    pa, pb = params(a), params(b)
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def check(
    proc: subprocess.CompletedProcess[str] | subprocess.Popen[str],
    err: str,
    expected: set[int],
    what: str,
    tally: Tally,
) -> None:
    if "Traceback" in err:
        tally.tracebacks += 1
        print(f"  traceback in {what}:\n{err}", file=sys.stderr)
    if proc.returncode not in expected:
        tally.bad_exits.append(f"{what}: exit {proc.returncode} (expected {sorted(expected)}): {err.strip()[-300:]}")


def damage(folder: RunFolder, rng: random.Random, tally: Tally) -> None:
    """What a kill -9 or a disk problem may leave besides the lost progress."""
    ckpts = folder.checkpoints()
    roll = rng.random()
    if ckpts and roll < 0.25:
        ckpts[0].write_bytes(ckpts[0].read_bytes()[: rng.randrange(1, 4000)])
        tally.damage["newest checkpoint cut short"] += 1
    elif ckpts and roll < 0.4:
        ckpts[0].unlink()
        tally.damage["newest checkpoint deleted"] += 1
    if folder.metrics_path.is_file() and rng.random() < 0.3:
        with folder.metrics_path.open("a") as f:
            f.write("99,12")
        tally.damage["partial metrics row"] += 1


def one_run(root: Path, reference: Path, rng: random.Random, rounds: int, tally: Tally) -> None:
    folder = RunFolder(root)
    total_rows = int(CONFIG["num-episodes"]) // int(CONFIG["log-every-episodes"])
    command = cli("train", "trivial", "--out", str(root), *flags())
    for round_ in range(rounds + 1):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stop = rng.choice(list(EXIT)) if round_ < rounds else None
        before = 0
        at_row = rng.randrange(0, total_rows)
        if stop is not None:
            # Aim at the training itself, not the interpreter's start-up: wait for the lock, then for the row.
            while proc.poll() is None and not folder.is_busy():
                time.sleep(0.05)
            while proc.poll() is None and len(rows(folder.metrics_path)) <= at_row:
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 0.3))
            if proc.poll() is None and rng.random() < 0.15:
                second = subprocess.run(
                    cli("train", "--resume", str(root), "--no-progress"), capture_output=True, text=True, timeout=300
                )
                tally.second_writers += 1
                check(second, second.stderr, {2} if proc.poll() is None else {0, 2}, "second writer", tally)
                if second.returncode == 2 and "another humanpower process" not in second.stderr:
                    tally.bad_exits.append(f"second writer: {second.stderr.strip()}")
            if proc.poll() is None:
                before = logged_episodes(folder)
                proc.send_signal({"kill -9": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}[stop])
                tally.stops[stop] += 1
        _, err = proc.communicate(timeout=600)
        if proc.returncode == 0:
            check(proc, err, {0}, f"{root.name} round {round_}", tally)
            break
        check(proc, err, {EXIT[stop]} if stop else {0}, f"{root.name} {stop}", tally)
        if stop == "kill -9":
            damage(folder, rng, tally)
            if rng.random() < 0.4:
                ev = subprocess.run(
                    cli("eval", str(root), "--json", "--episodes", "1", "--no-exact"),
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                tally.evals += 1
                check(ev, ev.stderr, {0, 2}, f"eval {root.name}", tally)
        found, _ = folder.newest_readable_checkpoint(set_aside=False)
        resumed_from = int(found.data["state"]["episode"]) if found else 0
        tally.redone_max = max(tally.redone_max, before - resumed_from)
        command = cli("train", "--resume", str(root), "--no-progress")
    status = folder.read_status()["status"]
    tally.finished += status == "finished"
    want, got = rows(reference / "metrics.csv"), rows(folder.metrics_path)
    tally.rows_lost += sum(r not in got for r in want) + max(len(got) - len(want), 0)
    if status != "finished" or not same_policy(reference / "policy.pt", folder.policy_path):
        tally.policies_differing += 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="interruptions per run at most (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="keep the run folders here (default: a temp dir)")
    args = p.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fuzz_runs-"))
    work.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    reference = work / "reference"
    ref = subprocess.run(cli("train", "trivial", "--out", str(reference), *flags()), capture_output=True, text=True)
    check(ref, ref.stderr, {0}, "reference run", tally)
    for i in range(args.runs):
        tally.runs += 1
        one_run(work / f"run{i}", reference, rng, rng.randint(1, args.rounds), tally)
        print(f"  run {i}: {dict(tally.stops)} so far", file=sys.stderr, flush=True)
    interval = CONFIG["checkpoint-every-episodes"]
    print(
        f"runs: {tally.runs}, interruptions: {sum(tally.stops.values())} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(tally.stops.items()))})"
    )
    print(f"damage after kill -9: {dict(tally.damage) or 'none'}")
    print(f"runs killed and resumed to the end: {tally.finished} of {tally.runs}")
    print(f"evals of killed runs: {tally.evals}; second writers refused: {tally.second_writers}")
    print(f"episodes redone after an interruption: at most {tally.redone_max} (checkpoint every {interval})")
    print(
        f"data lost beyond the episodes since the last checkpoint: {tally.rows_lost} metric rows, "
        f"{tally.policies_differing} policies differing from the uninterrupted run"
    )
    print(f"tracebacks: {tally.tracebacks}")
    print(f"unexpected exit statuses: {len(tally.bad_exits)}")
    for line in tally.bad_exits:
        print(f"  {line}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    bad = tally.rows_lost or tally.policies_differing or tally.tracebacks or tally.bad_exits
    return 1 if bad or tally.finished != tally.runs else 0


if __name__ == "__main__":
    sys.exit(main())
