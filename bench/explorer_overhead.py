"""The explorer beside a running market: tasks/s with it open vs without (target: within 5 %).

Runs ``examples/paper-live.yaml`` (real small tasks, unpaced) on a local Ray
through ``run_cluster``, ``--reps`` times each way, alternating which goes
first: once alone, once with ``stakeray explorer --dir RUN_DIR`` started in its
own process as soon as the ledger exists, and a client fetching its network,
operators and distribution pages every 2 s, as an open browser tab does. The
measure is the run's own settled tasks/s (``summary.json``: feed and drain).
The explorer reads the log's tail and applies each new frame to its own copy
of the protocol, so its CPU is the protocol's work over again: on 2 shared
cores it competes with the market for the same cores, which is what this
measures.

Run from the repository root::

    python bench/explorer_overhead.py               # 50,000 tasks, 2 reps each way
    python bench/explorer_overhead.py --quick       # 10,000 tasks, 1 rep, no target
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402

from cluster.config.schema import load_config  # noqa: E402
from cluster.runtime.actors import NAMESPACE  # noqa: E402
from cluster.runtime.runner import run_cluster  # noqa: E402

CONFIG = ROOT / "examples" / "paper-live.yaml"
TARGET = 0.95
PAGES = ("", "operators", "distribution")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Watcher(threading.Thread):
    """Starts the explorer once the ledger exists, then fetches pages every 2 s."""

    def __init__(self, out: Path) -> None:
        super().__init__(daemon=True)
        self.out = out
        self.port = free_port()
        self.stop = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.fetched = 0
        self.failed = 0

    def run(self) -> None:
        log = self.out / "ledger" / "events.log"
        while not self.stop.is_set() and not log.exists():
            time.sleep(0.1)
        command = [sys.executable, "-m", "cluster.cli", "explorer", "--dir", str(self.out)]
        command += ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{self.port}/"
        while not self.stop.wait(2.0):
            for page in PAGES:
                try:
                    with urllib.request.urlopen(base + page, timeout=10) as reply:
                        reply.read()
                    self.fetched += 1
                except OSError:
                    self.failed += 1

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def one_run(count: int, with_explorer: bool) -> tuple[float, int]:
    """Return the run's settled tasks/s and how many pages the explorer served."""
    config = load_config(CONFIG)
    assert config.workload is not None
    config = config.model_copy(update={"workload": config.workload.with_count(count)})
    with tempfile.TemporaryDirectory(prefix="stakeray-explorer-bench-") as tmp:
        out = Path(tmp) / "run"
        watcher = Watcher(out) if with_explorer else None
        if watcher is not None:
            watcher.start()
        try:
            result = run_cluster(config, out, paced=False, progress=False)
        finally:
            if watcher is not None:
                watcher.close()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["conservation_ok"] and result.summary["tasks_submitted"] == count
        return float(summary["throughput_tasks_per_s"]), watcher.fetched if watcher else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10,000 tasks, 1 rep, no target")
    args = parser.parse_args()
    count, reps = (10_000, 1) if args.quick else (args.count, args.reps)
    ray.init(
        address="local",  # a fresh local Ray, never one a `ray start` left running
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=1024**3,
        logging_level=logging.WARNING,
        log_to_driver=False,
        namespace=NAMESPACE,
    )
    alone: list[float] = []
    watched: list[float] = []
    try:
        for rep in range(reps):
            order = [False, True] if rep % 2 == 0 else [True, False]
            for with_explorer in order:
                rate, pages = one_run(count, with_explorer)
                (watched if with_explorer else alone).append(rate)
                side = f"with the explorer ({pages} pages served)" if with_explorer else "alone"
                print(f"rep {rep + 1}: {rate:,.0f} settled tasks/s {side}", flush=True)
    finally:
        ray.shutdown()
    ratio = statistics.median(watched) / statistics.median(alone)
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(
        f"paper-live, {count:,} tasks: with the explorer / alone = {ratio:.3f}"
        f" (target >= {TARGET}) {verdict}"
    )
    return 0 if args.quick or ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
