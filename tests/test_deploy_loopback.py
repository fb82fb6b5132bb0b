"""The multi-process deployment path on loopback: a real ``ray start --head``, the CLI against it.

A head and a GPU worker (a fake GPU) are started as in docs/operations.md, each
``ray start ... --block`` in a subprocess, with token authentication on and the
custom resources of ``deploy/network.yaml``. Every ``stakeray`` command is its
own process joining by ``--address``: ``up``, ``ray job submit -- stakeray
submit``, ``status --json``, the Prometheus endpoint, a client with a wrong
token; then both nodes are killed and started again, ``up --resume``
redeploys onto the ledger, and ``down`` finishes the run directory, which
``stakeray verify`` replays.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster.runtime.head import kill_session, ray_command, session_members, start_ray, stop_head

ROOT = Path(__file__).resolve().parent.parent
NETWORK = ROOT / "deploy" / "network.yaml"
NETWORK_LOCAL = ROOT / "examples" / "quickstart.yaml"  # no GPUs or custom resources
# deploy/workload.yaml's tasks are sized for GPUs; the same mix, small, for 2 shared cores.
WORKLOAD_YAML = """
seed: 11
count: 60
deadline_rounds: 3
fees: {shape: lognormal, mean: 2, sigma: 0.5}
mix:
  - {kind: matmul, size: 128, weight: 3}
  - {kind: fft, size: 4096, weight: 2}
  - {kind: sort, size: 50000, weight: 1}
  - {kind: sort, size: 10000, weight: 1}
  - {kind: montecarlo, size: 20000, weight: 1}
  - {kind: hashsearch, size: 256, weight: 1}
"""
# A refused client retries joining for ~20 s by default (Ray waits out a restarting head).
GIVE_UP_SOON = {"RAY_gcs_server_port_wait_time_s": "2"}


RAY = ray_command()
# The installed console script, as a user runs it (else the module it runs).
_script = Path(sys.executable).parent / "stakeray"
STAKERAY = [str(_script)] if _script.exists() else [sys.executable, "-m", "cluster.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """One Ray node in a subprocess (``ray start ... --block``): the head or a GPU worker."""

    name: str
    options: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_ray(["--node-ip-address=127.0.0.1", *self.options], self.log, self.env)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Stop the node as ``down`` does (SIGTERM), or crash it with every process (SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        if sig == signal.SIGTERM:
            stop_head(self.process.pid)
        else:
            kill_session(self.process.pid, sig)
        self.process.wait(30)
        self.log.write_text("")  # the next start waits for its own "started" line


@dataclass
class LoopbackCluster:
    """A head (coordinator resource, dashboard) and a GPU worker, as in docs/operations.md."""

    ports: dict[str, int]
    env: dict[str, str]
    head: Node
    worker: Node

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['gcs']}"

    def start(self) -> None:
        self.head.start()
        self.worker.start()

    def kill(self, sig: int = signal.SIGTERM) -> None:
        self.worker.kill(sig)
        self.head.kill(sig)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    # A short root: Ray's unix socket paths must stay under 108 bytes.
    temp_dir = tempfile.mkdtemp(prefix="sr-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") or k == "RAY_DEDUP_LOGS"}
    env.update(
        RAY_AUTH_MODE="token",  # on, as in a deployment
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_metrics_report_interval_ms="500",  # export metrics every 0.5 s, not 10 s
        PYTHONPATH=str(ROOT),
    )
    names = ("gcs", "dashboard", "agent", "client", "metrics", "worker_agent", "worker_metrics")
    ports = {n: free_port() for n in names}
    common = ["--object-store-memory=100000000", f"--temp-dir={temp_dir}"]
    head = [
        "--head", f"--port={ports['gcs']}", "--num-cpus=2",
        '--resources={"stakeray-coordinator": 1}',
        "--include-dashboard=true", "--dashboard-host=127.0.0.1",
        f"--dashboard-port={ports['dashboard']}",
        f"--dashboard-agent-listen-port={ports['agent']}",
        f"--ray-client-server-port={ports['client']}",
        f"--metrics-export-port={ports['metrics']}", "--disable-usage-stats",
    ]  # fmt: skip
    worker = [
        f"--address=127.0.0.1:{ports['gcs']}", "--num-cpus=1", "--num-gpus=1",
        '--resources={"stakeray-coprocessor": 1}',
        f"--dashboard-agent-listen-port={ports['worker_agent']}",
        f"--metrics-export-port={ports['worker_metrics']}",
    ]  # fmt: skip
    root = Path(temp_dir)
    c = LoopbackCluster(
        ports,
        env,
        Node("head", head + common, env, root / "head.log"),
        Node("worker", worker + common, env, root / "worker.log"),
    )
    c.start()
    try:
        yield c
    finally:
        c.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def run(
    command: list[str], env: dict[str, str], timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


def stakeray(env: dict[str, str], *args: str) -> str:
    """Run one ``stakeray`` command in its own process; return stdout, fail on an error."""
    done = run([*STAKERAY, *args], env)
    assert done.returncode == 0, f"stakeray {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def samples(cluster: LoopbackCluster, name: str, network: str) -> list[float]:
    """Every sample of ``name`` for ``network`` on the head's and the worker's endpoint."""
    found: list[float] = []
    for port in (cluster.ports["metrics"], cluster.ports["worker_metrics"]):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        except OSError:
            continue
        pattern = rf'^{name}\{{[^}}]*network="{network}"[^}}]*\}} ([0-9.e+-]+)$'
        found += [float(v) for v in re.findall(pattern, body.decode(), re.MULTILINE)]
    return found


def scraped(
    cluster: LoopbackCluster, name: str, expected: Callable[[float], bool], network: str = "net"
) -> float:
    """Wait until the sum of ``name``'s samples over both nodes is as ``expected``; return it."""
    deadline = time.monotonic() + 30.0
    while True:
        values = samples(cluster, name, network)
        if values and expected(sum(values)):
            return sum(values)
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: samples {values} on the Prometheus endpoints")
        time.sleep(0.25)


def test_network_on_a_loopback_cluster_survives_the_head_and_finishes(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    out = tmp_path / "net"
    address = ["--address", cluster.address]

    # The coordinator goes to the head (its resource), the coprocessor hosts to the
    # worker: it alone has a GPU and the coprocessors' resource.
    printed = stakeray(cluster.env, "up", str(NETWORK), "--out", str(out), *address)
    assert "network up" in printed and (out / "ledger" / "events.log").exists()
    assert (out / "config.json").exists() and (out / "cluster.json").exists()

    # Work submitted as a Ray job (docs/operations.md, step 6): the CLI runs on the head,
    # with the workload from --working-dir and RAY_ADDRESS set for it (no --address).
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    workload = jobdir / "workload.yaml"
    workload.write_text(WORKLOAD_YAML)
    job = run(
        [
            *RAY, "job", "submit",
            f"--address=http://127.0.0.1:{cluster.ports['dashboard']}",
            f"--working-dir={jobdir}",
            "--", *STAKERAY, "submit", "workload.yaml", "--count", "60", "--no-pace",
        ],
        cluster.env,
    )  # fmt: skip
    assert job.returncode == 0, job.stdout + job.stderr
    assert "submitted 60 tasks" in job.stdout

    status = json.loads(stakeray(cluster.env, "status", "--json", *address))
    assert status["directory"] == str(out) and status["round"] >= 1
    metrics = status["metrics"]
    finished = sum(metrics[f"stakeray_tasks_{k}"] for k in ("settled", "refunded", "failed"))
    assert metrics["stakeray_tasks_settled"] > 0 and finished == status["finished_tasks"] == 60
    assert metrics["stakeray_total_stake_tokens"] > 0
    assert metrics["stakeray_slashes"] == 0  # honest coprocessors, every answer in time
    wins = {c["coprocessor"]: c["wins"] for c in status["coprocessors"]}
    assert set(wins) == {"gpu-a", "gpu-b", "gpu-c", "gpu-d"} and sum(wins.values()) > 0

    # Ray's Prometheus endpoints serve the same figures (gauges too, though nothing has
    # set them since the work ended: they are kept alive).
    time.sleep(2.0)
    count = metrics["stakeray_tasks_settled"]
    scraped(cluster, "ray_stakeray_tasks_settled_total", lambda v: v == count)
    scraped(cluster, "ray_stakeray_round", lambda v: v == status["round"])
    stake = metrics["stakeray_total_stake_tokens"]
    scraped(cluster, "ray_stakeray_total_stake_tokens", lambda v: v == pytest.approx(stake))
    latencies = "ray_stakeray_settlement_latency_seconds_count"
    scraped(cluster, latencies, lambda v: v == count)
    scraped(cluster, "ray_stakeray_auction_clearing_margin_count", lambda v: 0 < v <= count)

    # Token authentication is on: a client with the wrong token is refused in one line.
    wrong = {**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(32), **GIVE_UP_SOON}
    refused = run([*STAKERAY, "status", *address], wrong, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: --address") and refused.stderr.count("\n") == 1

    # The head dies: Ray's state is gone with it, the ledger on disk is not. The head
    # comes back, the worker joins it again, and the network is redeployed onto the ledger.
    cluster.kill(signal.SIGKILL)
    cluster.start()
    printed = stakeray(cluster.env, "up", "--resume", "--out", str(out), *address)
    assert "network resumed" in printed
    resumed = json.loads(stakeray(cluster.env, "status", "--json", *address))
    assert resumed["recovered"] is True and resumed["finished_tasks"] == 60
    assert resumed["round"] >= status["round"]

    printed = stakeray(cluster.env, "submit", str(workload), *address, "--count", "20", "--no-pace")
    assert "submitted 20 tasks" in printed
    printed = stakeray(cluster.env, "down", *address)
    assert "network down" in printed and "conservation ok" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks_submitted"] == 80 and summary["conservation_ok"] is True
    assert (out / "report.html").exists() and not (out / "cluster.json").exists()
    assert "matches summary.json" in stakeray(cluster.env, "verify", str(out))


def test_up_without_an_address_starts_a_token_head_and_down_stops_only_it(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    """``up`` alone: a local head with token authentication on, found again by ``--dir``."""
    home = tmp_path / "home"  # the token goes to ~/.ray/auth_token: a home of its own
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
    out = tmp_path / "net"
    workload = tmp_path / "workload.yaml"
    workload.write_text(WORKLOAD_YAML)
    port = str(free_port())
    printed = stakeray(env, "up", str(NETWORK_LOCAL), "--out", str(out), "--port", port)
    head_pid = json.loads((out / "cluster.json").read_text())["head_pid"]
    try:
        assert "network up" in printed and (home / ".ray" / "auth_token").exists()
        dirs = ["--dir", str(out)]
        printed = stakeray(env, "submit", str(workload), *dirs, "--count", "20", "--no-pace")
        assert "submitted 20 tasks" in printed
        assert json.loads(stakeray(env, "status", "--json", *dirs))["finished_tasks"] == 20
        # A client that does not present the token is refused.
        no_token = {**env, "RAY_AUTH_MODE": "disabled", **GIVE_UP_SOON}
        refused = run([*STAKERAY, "status", *dirs], no_token)
        assert refused.returncode == 2 and "refused this client's token" in refused.stderr
        assert "network down" in stakeray(env, "down", *dirs)
    finally:
        stop_head(head_pid)
    assert session_members(head_pid) == []  # down stopped the head it started
    assert cluster.head.process is not None  # and no other Ray on the machine (`ray stop` would)
    assert session_members(cluster.head.process.pid)
    assert "matches summary.json" in stakeray(env, "verify", str(out))


def own_env(tmp_path: Path) -> dict[str, str]:
    """An environment with a home of its own (its own Ray token) and no Ray settings."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
    return env


def test_many_clients_submit_and_sign_at_once(tmp_path: Path) -> None:
    """Three ``submit`` and two ``tx`` processes at once: every task its own id, settled once."""
    env = own_env(tmp_path)
    keystore = ["--keystore", str(tmp_path / "keys")]
    alice = stakeray(env, "keys", "new", "alice", *keystore).strip()
    bob = stakeray(env, "keys", "new", "bob", *keystore).strip()
    network = tmp_path / "net.yaml"
    text = NETWORK_LOCAL.read_text().split("\nworkload:")[0]
    network.write_text(text + f"\n  accounts: {{{alice}: 100, {bob}: 100}}\n")
    workload = tmp_path / "workload.yaml"
    workload.write_text(WORKLOAD_YAML)
    out = tmp_path / "net"
    stakeray(env, "up", str(network), "--out", str(out), "--port", str(free_port()))
    head_pid = json.loads((out / "cluster.json").read_text())["head_pid"]
    dirs = ["--dir", str(out)]
    try:
        submits = [
            [*STAKERAY, "submit", str(workload), *dirs, "--count", "25", "--no-pace", "--quiet"]
            for _ in range(3)
        ]
        bond = ["tx", "bond", "operator=op-alpha", "amount=5"]
        txs = [[*STAKERAY, *bond, "--key", name, *dirs, *keystore] for name in ("alice", "bob")]
        procs = [
            subprocess.Popen(c, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for c in [*submits, *txs]
        ]
        outputs = [p.communicate(timeout=300) for p in procs]
        for p, (_, stderr) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, stderr.decode()[-2000:]
        assert all(b"submitted 25 tasks" in o for o, _ in outputs[:3])
        assert all(b"accepted bond" in o for o, _ in outputs[3:])
        assert "network down" in stakeray(env, "down", *dirs)
    finally:
        stop_head(head_pid)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks_submitted"] == 75 and summary["conservation_ok"] is True
    rows = (out / "tasks.csv").read_text().splitlines()[1:]
    ids = [int(r.split(",")[0]) for r in rows]
    assert len(ids) == len(set(ids)) == 75
    assert "matches summary.json" in stakeray(env, "verify", str(out))


def test_a_killed_run_is_recovered_and_verifies(tmp_path: Path) -> None:
    """``kill -9`` of the ``run`` driver, then the documented recovery: ``up --resume``,
    ``down``; the run directory is rebuilt from the ledger and ``verify`` passes."""
    env = own_env(tmp_path)
    out = tmp_path / "run"
    # Enough tasks that the run is still going when it is killed (a batch takes milliseconds).
    run_cmd = [*STAKERAY, "run", str(NETWORK_LOCAL), "--out", str(out), "--quiet", "--no-pace"]
    run_cmd += ["--count", "20000"]
    driver = subprocess.Popen(
        run_cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = out / "ledger" / "events.log"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            log.exists() and b"settle_batch" in log.read_bytes()  # some tasks settled
        ):
            time.sleep(0.5)
        assert driver.poll() is None, "the run ended before it could be killed"
        time.sleep(2.0)  # a few batches more
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it embedded
        driver.wait(timeout=30)
    assert not (out / "summary.json").exists()
    port = str(free_port())
    stakeray(env, "up", "--resume", "--out", str(out), "--port", port)
    head_pid = json.loads((out / "cluster.json").read_text())["head_pid"]
    try:
        assert "network down" in stakeray(env, "down", "--dir", str(out))
    finally:
        stop_head(head_pid)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks_submitted"] > 0 and summary["conservation_ok"] is True
    assert "matches summary.json" in stakeray(env, "verify", str(out))
