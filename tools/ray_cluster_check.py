"""Ray backend against an *existing* two-node cluster on this machine, and the loss of a node mid-run.

The recipe of docs/ASYNC.md, end to end:

1. ``ray start --head`` (2 CPUs) and a second ``ray start --address=HEAD`` node (1 CPU), each with its own temp
   dir under /tmp and its own ports, token authentication with a private token file;
2. ``humanpower train trivial --async-training true --backend ray --ray-address HEAD --num-actors 2 ...``;
3. once ``run.json`` shows the two actors on two different Ray nodes, every process of the worker node is killed
   (SIGKILL: the node is lost, as when a machine dies);
4. the run must finish: the actor that was on the lost node is recorded as a crash, restarted (on the head node)
   and the budget completed;
5. both nodes are stopped (only this script's Ray processes, found by their temp dirs: never ``ray stop``, which
   would stop every Ray instance on the machine).

Prints one JSON verdict (``ok`` plus what was observed) and exits 0 when every check passed.

    python tools/ray_cluster_check.py [--timeout 600] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment contains ``text``, and all their descendants.

    Every process of a node started by :class:`Cluster` inherits ``HUMANPOWER_RAY_NODE_DIR=<its temp dir>``,
    and its raylet's command line names that dir; Ray renames and re-environs some children (e.g.
    ``ray::DashboardAgent``), which the descendant walk catches.
    """
    needle = text.encode()
    parent: dict[int, int] = {}
    matched: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            parent[pid] = int(fields[1])
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                matched.add(pid)
        except OSError:
            continue  # ended while we looked, or not ours to read
    grew = True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in matched and pid not in matched}
        matched |= more
        grew = bool(more)
    return sorted(matched)


def kill_all(text: str) -> int:
    """SIGKILL every process mentioning ``text``; returns how many were signalled."""
    pids = processes_mentioning(text)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


class Cluster:
    """A Ray cluster of nodes started with ``ray start`` on this machine, each in its own temp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        token = root / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        self.address = ""
        self.nodes: list[Path] = []

    def start_node(self, name: str, num_cpus: int) -> Path:
        """Start the head node (first call) or a node joining it; returns the node's temp dir."""
        temp = self.root / name
        agent, dashboard, client, port = free_ports(4)
        args = [RAY, "start", f"--num-cpus={num_cpus}", f"--temp-dir={temp}", f"--dashboard-agent-listen-port={agent}"]
        if not self.address:
            args += [
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--include-dashboard=false",
                f"--dashboard-port={dashboard}",
                f"--ray-client-server-port={client}",
                "--disable-usage-stats",
            ]
        else:
            args += [f"--address={self.address}", "--node-ip-address=127.0.0.1"]
        env = {**self.env, "HUMANPOWER_RAY_NODE_DIR": str(temp)}
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        if not self.address:
            self.address = f"127.0.0.1:{port}"
        self.nodes.append(temp)
        return temp

    def stop(self) -> int:
        """Kill every process of every node (and anything else mentioning the cluster's root dir)."""
        return kill_all(str(self.root))


@contextlib.contextmanager
def cluster(keep: bool = False) -> Iterator[Cluster]:
    """A fresh cluster root under /tmp, stopped (and removed unless ``keep``) at the end."""
    root = Path(tempfile.mkdtemp(prefix="hpray", dir="/tmp"))  # short: Ray's socket paths must stay < 108 chars
    c = Cluster(root)
    try:
        yield c
    finally:
        c.stop()
        time.sleep(0.5)
        c.stop()  # anything a dying raylet started meanwhile
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def train_args(address: str, out: Path, num_episodes: int) -> list[str]:
    """The CLI command of the check's run: trivial world, 2 Ray actors, a small fast config."""
    settings = {
        "async-training": "true",
        "backend": "ray",
        "ray-address": address,
        "num-actors": "2",
        "num-episodes": str(num_episodes),
        "steps-per-episode": "10",
        "chunk-size": "10",
        "batch-size": "16",
        "buffer-size": "2000",
        "hidden-dim": "16",
        "warmup-v-h-e-steps": "50",
        "warmup-x-h-steps": "50",
        "warmup-q-r-steps": "50",
        "beta-r-rampup-steps": "100",
        "epsilon-decay-steps": "200",
        "actor-sync-freq": "20",
        "log-every-episodes": "10",
        "checkpoint-every-episodes": "10",
        "human-prior": "uniform",
    }
    args = [sys.executable, "-m", "humanpower.cli.main", "train", "trivial", "--out", str(out), "--no-progress"]
    for key, value in settings.items():
        args += [f"--{key}", value]
    return args


def ray_nodes(status: dict[str, Any]) -> set[str]:
    """The Ray node ids in ``run.json``'s ``actor_locations``."""
    return {
        str(e["location"]).split()[2]
        for e in status.get("actor_locations", [])
        if str(e.get("location", "")).startswith("ray node ")
    }


def check(timeout: float, keep: bool) -> dict[str, Any]:
    """Run the whole recipe; returns the verdict (``ok`` and the observations)."""
    verdict: dict[str, Any] = {"ok": False}
    t0 = time.monotonic()
    with cluster(keep) as c:
        head = c.start_node("head", num_cpus=2)
        worker = c.start_node("worker", num_cpus=1)
        verdict["cluster_start_s"] = round(time.monotonic() - t0, 1)
        verdict["address"] = c.address
        out = c.root / "run"
        proc = subprocess.Popen(
            train_args(c.address, out, 1000), env=c.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        status_path = out / "run.json"
        before: set[str] = set()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                status = json.loads(status_path.read_text()) if status_path.is_file() else {}
                before = ray_nodes(status)
                if len(before) >= 2:
                    break
                time.sleep(0.5)
            verdict["nodes_before_kill"] = sorted(before)
            if len(before) < 2 or proc.poll() is not None:
                verdict["error"] = "the actors never ran on two nodes"
                return verdict
            verdict["killed_processes"] = kill_all(str(worker))  # the worker node is lost
            verdict["killed_at_env_step"] = json.loads(status_path.read_text()).get("total_steps")
            output, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        verdict["train_exit_code"] = proc.returncode
        status = json.loads(status_path.read_text())
        verdict.update({k: status.get(k) for k in ("status", "total_steps", "crashes", "actor_locations")})
        verdict["head_node_processes_alive"] = len(processes_mentioning(str(head)))
        verdict["log_tail"] = output.splitlines()[-8:]
        verdict["ok"] = (
            proc.returncode == 0
            and status.get("status") == "finished"
            and status.get("total_steps") == 1000 * 10
            and int(status.get("crashes", 0)) >= 1
            and len(ray_nodes(status)) == 2
        )
    verdict["stopped_processes_left"] = len(processes_mentioning(str(c.root)))
    verdict["seconds"] = round(time.monotonic() - t0, 1)
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the training run may take")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's temp dir (logs, run folder)")
    args = parser.parse_args(argv)
    if shutil.which(RAY) is None and not Path(RAY).is_file():
        print(json.dumps({"ok": False, "error": f"no ray command at {RAY} (pip install 'humanpower[ray]')"}))
        return 2
    verdict = check(args.timeout, args.keep)
    print(json.dumps(verdict, indent=2))
    return 0 if verdict["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
