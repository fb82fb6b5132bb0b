"""The live cluster at paper scale: 100 operators, 100 coprocessors, real tasks.

Runs ``examples/paper-live.yaml`` (100 operators with 500 delegators, 100
coprocessors of which 8 are faulty, all hosted on 2 operator hosts and 2
coprocessor hosts; slashing factor 0.1) through ``cluster.runner.run_cluster``
unpaced (``--no-pace``) on a local Ray it starts itself, and prints the wall
time of the whole run (deploy, feed, drain, reconcile, ledger close, run
files), the throughput, the outcomes and rounds, ``conservation_ok``, then
``stakeray verify``'s result on the run directory and, separately, how long
``stakeray report`` takes on it. While it runs, a sampler records the
machine's memory in use and the CPU time of this process and of each Ray
process it started (so other work on the machine is not counted).

Run from the repository root::

    python bench/paper_live.py                    # 100,000 tasks, ~1.5 min on 2 cores
    python bench/paper_live.py --count 1000000    # ~16 min; 1.3 GB ledger, 2.3 GB RAM
    python bench/paper_live.py --quick            # 2,000 tasks, smoke run
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402

from cluster import cli  # noqa: E402
from cluster.config.schema import load_config  # noqa: E402
from cluster.runtime.actors import NAMESPACE  # noqa: E402
from cluster.runtime.runner import run_cluster  # noqa: E402

CONFIG = ROOT / "examples" / "paper-live.yaml"
TICK = os.sysconf("SC_CLK_TCK")


def mem_used_mb() -> int:
    """Memory in use on the machine (MemTotal - MemAvailable), MB."""
    info: dict[str, int] = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) // 1024


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (Ray's raylet, GCS and workers of this driver)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_of(pid: int) -> tuple[str, float] | None:
    """The process's name (Ray's ``ray::Class`` title) and its user + system CPU seconds."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    words = b" ".join(argv).decode(errors="replace").split()
    if not words:  # a title set over argv may leave it blank; comm is then the name
        try:
            with open(f"/proc/{pid}/comm") as fh:
                words = [fh.read().strip() or "?"]
        except OSError:
            words = ["?"]
    name = words[0]
    if name.startswith("ray::"):
        name = name.split(".")[0]  # ray::OperatorHost.process -> ray::OperatorHost
    else:
        name = os.path.basename(name)
        if name.startswith("python") and len(words) > 1:
            name = f"{name} {os.path.basename(words[-1] if words[1] == '-u' else words[1])}"
    return name, (int(fields[11]) + int(fields[12])) / TICK


class Sampler(threading.Thread):
    """Every ``every_s``: peak memory in use, and the last CPU time seen per process."""

    def __init__(self, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.base_mb = mem_used_mb()
        self.peak_mb = self.base_mb
        self.cpu: dict[int, tuple[str, float]] = {}
        self.stopped = threading.Event()

    def sample(self) -> None:
        self.peak_mb = max(self.peak_mb, mem_used_mb())
        for pid in descendants(os.getpid()):
            seen = cpu_of(pid)
            if seen is None:
                continue
            # A worker is ray::IDLE until it becomes an actor; a zombie's name is cut short.
            name = self.cpu.get(pid, seen)[0]
            better = seen[0].startswith("ray::") and not name.startswith("ray::")
            if better or (name == "ray::IDLE" and len(seen[0]) >= len(name)):
                name = seen[0]
            self.cpu[pid] = (name, seen[1])

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self.stopped.set()
        self.join()

    def by_name(self) -> list[tuple[str, int, float]]:
        totals: dict[str, tuple[int, float]] = {}
        for name, seconds in self.cpu.values():
            n, s = totals.get(name, (0, 0.0))
            totals[name] = (n + 1, s + seconds)
        return sorted(((k, n, s) for k, (n, s) in totals.items()), key=lambda r: -r[2])


def du(path: Path) -> str:
    done = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True)
    return done.stdout.split()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=None, help="tasks (default: the config's)")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks, a smoke run")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: temp)")
    parser.add_argument("--no-report", action="store_true", help="skip timing write_report")
    args = parser.parse_args()

    config = load_config(args.config)
    assert config.workload is not None
    count = 2000 if args.quick else args.count or config.workload.count
    workload = config.workload.with_count(count)
    config = config.model_copy(update={"workload": workload})
    net = config.network
    print(
        f"{args.config.name}: {len(net.operators)} operators, {net.delegators.count} delegators,"
        f" {len(net.coprocessors)} coprocessors on {net.hosts.operator_hosts} + "
        f"{net.hosts.coprocessor_hosts} hosts; {count:,} tasks, batches of "
        f"{net.market.batch_size} ({net.market.max_inflight} in flight), a round per "
        f"{net.market.clock.every_tasks} settled tasks"
    )

    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="stakeray-paper-live-")
        out = Path(tmp)
    else:
        out = args.out
        if (out / "ledger").exists():
            raise SystemExit(f"--out {out}: already holds a run")
    sampler = Sampler()
    try:
        ray.init(
            address="local",  # a fresh local Ray, never one a `ray start` left running
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=1024**3,
            logging_level=logging.WARNING,
            log_to_driver=False,
            namespace=NAMESPACE,
        )
        print(f"ray {ray.__version__}, {os.cpu_count()} cores, run directory {out}")
        sampler.start()
        cpu0 = time.process_time()
        start = time.perf_counter()
        result = run_cluster(config, out, paced=False, progress=True)
        wall = time.perf_counter() - start
        driver_cpu = time.process_time() - cpu0
        sampler.stop()
        ray.shutdown()

        s = result.summary
        ledger = du(out / "ledger")
        print()
        print(f"tasks                {s['tasks_submitted']:,}")
        print(f"wall (run_cluster)   {wall:,.1f} s  (deploy, feed, drain, close, run files)")
        print(f"  of which feed+drain {s['elapsed_s']:,.1f} s (summary elapsed_s)")
        print(f"throughput           {s['tasks_submitted'] / wall:,.1f} tasks/s over the wall")
        print(f"                     {s['throughput_tasks_per_s']:,.1f} settled/s (summary)")
        print(
            f"outcomes             settled {s['tasks_settled']:,}, refunded"
            f" {s['tasks_refunded']:,}, failed {s['tasks_failed']:,};"
            f" coprocessor slashes {s['coprocessor_slashes']:,}"
        )
        print(f"rounds               {s['rounds']:,}")
        print(f"conservation_ok      {s['conservation_ok']}")
        print(f"ledger               {ledger}  ({out / 'ledger'})")
        print(
            f"memory in use        peak {sampler.peak_mb:,} MB,"
            f" {sampler.peak_mb - sampler.base_mb:,} MB above the start"
            " (whole machine, sampled every 1 s)"
        )
        print(f"CPU seconds          driver {driver_cpu:,.1f}")
        for name, n, seconds in sampler.by_name()[:8]:
            print(f"                     {name} (x{n}) {seconds:,.1f}")

        print("\nstakeray verify:")
        start = time.perf_counter()
        code = cli.main(["verify", str(out)])
        print(f"verify exit {code} in {time.perf_counter() - start:,.1f} s")
        if not args.no_report:
            from cluster.analysis.report import write_report

            start = time.perf_counter()
            path = write_report(out)
            print(f"write_report -> {path.name} in {time.perf_counter() - start:,.1f} s")
        return 0 if code == 0 and s["conservation_ok"] else 1
    finally:
        if sampler.is_alive():
            sampler.stop()
        ray.shutdown()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
