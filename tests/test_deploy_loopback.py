"""The multi-process deployment path on loopback: a real ``ray start --head``, the CLI against it.

A head is started in a subprocess with token authentication on (as in a
deployment), the fake GPUs and the custom resources of ``deploy/network.yaml``;
every ``stakeray`` command is its own process joining it by ``--address``:
``up``, ``submit``, ``status --json``, ``ray job submit -- stakeray status``,
the Prometheus endpoint, a client with a wrong token, then the head is killed
and started again, ``up --resume`` redeploys onto the ledger, and ``down``
finishes the run directory, which ``stakeray verify`` replays.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NETWORK = ROOT / "deploy" / "network.yaml"
WORKLOAD = ROOT / "deploy" / "workload.yaml"
BIN = Path(sys.executable).parent


def command(script: str, module: str) -> list[str]:
    """The installed console script (as a user runs it), else the module it runs."""
    path = BIN / script
    return [str(path)] if path.exists() else [sys.executable, "-m", module]


STAKERAY = command("stakeray", "cluster.cli")
RAY = command("ray", "ray.scripts.scripts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Head:
    """A Ray head in a subprocess (``ray start --head --block``) and how to reach it."""

    ports: dict[str, int]
    env: dict[str, str]
    temp_dir: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['gcs']}"

    def start(self, timeout: float = 90.0) -> None:
        command = [
            *RAY, "start", "--head", "--block",
            "--node-ip-address=127.0.0.1", f"--port={self.ports['gcs']}",
            "--num-cpus=2", "--num-gpus=1",
            '--resources={"stakeray-coordinator": 1, "stakeray-coprocessor": 1}',
            "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.ports['dashboard']}",
            f"--dashboard-agent-listen-port={self.ports['agent']}",
            f"--ray-client-server-port={self.ports['client']}",
            f"--metrics-export-port={self.ports['metrics']}",
            "--object-store-memory=100000000", f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
        ]  # fmt: skip
        fh = self.log.open("ab")
        self.process = subprocess.Popen(
            command, stdout=fh, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("ray start failed:\n" + self.log.read_text()[-3000:])
            time.sleep(0.2)

    def kill(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        """Stop the head; its reaper takes every Ray process of this head along."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    # A short root: Ray's unix socket paths must stay under 108 bytes.
    temp_dir = tempfile.mkdtemp(prefix="sr-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") or k == "RAY_DEDUP_LOGS"}
    token = secrets.token_hex(32)
    env.update(
        RAY_AUTH_MODE="token",  # on, as in a deployment
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_metrics_report_interval_ms="500",  # export metrics every 0.5 s, not 10 s
        PYTHONPATH=str(ROOT),
    )
    names = ("gcs", "dashboard", "agent", "client", "metrics")
    h = Head({n: free_port() for n in names}, env, temp_dir, Path(temp_dir) / "head.log")
    h.start()
    try:
        yield h
    finally:
        h.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def run(
    command: list[str], env: dict[str, str], timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


def stakeray(head: Head, *args: str, env: dict[str, str] | None = None) -> str:
    """Run one ``stakeray`` command in its own process; return stdout, fail on an error."""
    done = run([*STAKERAY, *args], env or head.env)
    assert done.returncode == 0, f"stakeray {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def scrape(head: Head, pattern: str, timeout: float = 30.0) -> float:
    """Return the value of the first Prometheus sample matching ``pattern`` (regex)."""
    url = f"http://127.0.0.1:{head.ports['metrics']}/metrics"
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            body = ""
        found = re.search(rf"^{pattern}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", body, re.MULTILINE)
        if found:
            return float(found.group(1))
        time.sleep(0.5)
    stakeray_lines = [line for line in body.splitlines() if "stakeray" in line]
    raise AssertionError(f"no sample {pattern!r} at {url}; stakeray lines: {stakeray_lines}")


def test_network_on_a_loopback_head_survives_the_head_and_finishes(
    head: Head, tmp_path: Path
) -> None:
    out = tmp_path / "net"
    address = ["--address", head.address]

    printed = stakeray(head, "up", str(NETWORK), "--out", str(out), *address)
    assert "network up" in printed and (out / "ledger" / "events.log").exists()
    assert (out / "config.json").exists() and (out / "cluster.json").exists()

    printed = stakeray(head, "submit", str(WORKLOAD), *address, "--count", "60", "--no-pace")
    assert "submitted 60 tasks" in printed

    status = json.loads(stakeray(head, "status", "--json", *address))
    assert status["directory"] == str(out) and status["round"] >= 1
    metrics = status["metrics"]
    finished = sum(metrics[f"stakeray_tasks_{k}"] for k in ("settled", "refunded", "failed"))
    assert metrics["stakeray_tasks_settled"] > 0 and finished == status["finished_tasks"] == 60
    assert metrics["stakeray_total_stake_tokens"] > 0
    assert {c["coprocessor"] for c in status["coprocessors"]} >= {"gpu-a", "gpu-b"}

    # Ray's Prometheus endpoint on the head serves the same counts.
    settled = scrape(head, r'ray_stakeray_tasks_settled_total\{[^}]*network="net"[^}]*\}')
    assert settled == metrics["stakeray_tasks_settled"]
    assert scrape(head, r"ray_stakeray_round") == status["round"]
    assert scrape(head, r"ray_stakeray_settlement_latency_seconds_count") > 0

    # A Ray job runs the CLI on the head; RAY_ADDRESS is set for it, so no --address.
    job = run(
        [
            *RAY, "job", "submit",
            f"--address=http://127.0.0.1:{head.ports['dashboard']}",
            "--", *STAKERAY, "status", "--json",
        ],
        head.env,
    )  # fmt: skip
    assert job.returncode == 0, job.stdout + job.stderr
    assert '"finished_tasks": 60' in job.stdout

    # Token authentication is on: a client with the wrong token is refused in one line.
    wrong = {**head.env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    refused = run([*STAKERAY, "status", *address], wrong, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: --address") and refused.stderr.count("\n") == 1

    # The head dies: Ray's state is gone, the ledger on disk is not.
    head.kill(signal.SIGKILL)
    head.start()
    printed = stakeray(head, "up", "--resume", "--out", str(out), *address)
    assert "network resumed" in printed
    resumed = json.loads(stakeray(head, "status", "--json", *address))
    assert resumed["recovered"] is True and resumed["finished_tasks"] == 60
    assert resumed["round"] >= status["round"]

    printed = stakeray(head, "submit", str(WORKLOAD), *address, "--count", "20", "--no-pace")
    assert "submitted 20 tasks" in printed
    printed = stakeray(head, "down", *address)
    assert "network down" in printed and "conservation ok" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks_submitted"] == 80 and summary["conservation_ok"] is True
    assert (out / "report.html").exists() and not (out / "cluster.json").exists()
    assert "matches summary.json" in stakeray(head, "verify", str(out))
