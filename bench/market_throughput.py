"""Market throughput end to end vs the baselines named in the cluster and engine issues.

Three comparisons, each measured side by side in one run on one local Ray:

* small tasks: the same tasks through the market (escrow, auction, execution
  on coprocessor hosts, verification, settlement on the durable ledger) vs
  submitted as bare Ray tasks with no market (one ``ray.remote`` task each,
  all submitted at once, one ``ray.get``). Target: market / bare >= 8.
* small tasks: the market vs the same specs executed *and verified* as batched
  Ray tasks (1,000 specs a task, all cores busy: what a good Ray user writes
  without stakeray). Target: market / batched >= 0.8, i.e. stake, auctions,
  escrow and a durable ledger cost at most 20 % over plain batched Ray doing
  the same work.
* large tasks (matmul, n = 6144 by default; the issue asks n >= 1024): through
  the market vs plain NumPy in one process (a loop of ``workers.execute``).
  Target: market / plain >= 0.9. On 2 shared cores the market pays for
  verification (the operator draws the inputs again, O(n^2)) and for moving
  the result; both shrink against the O(n^3) product as n grows (about 0.9 at
  n = 4096, 0.6 at n = 1024; see docs/benchmarks.md).

Each side runs ``--reps`` times, alternating which goes first; the ratio is
of the medians. The market side is timed from the first submission until
every task has its outcome (``Gateway.run``), with the actors already up.

Run from the repository root::

    python bench/market_throughput.py            # full run, ~4 minutes
    python bench/market_throughput.py --quick    # smoke run, target not enforced
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402

import workers  # noqa: E402
from cluster.config.schema import RunConfig  # noqa: E402
from cluster.config.workload import GeneratedTask, WorkloadSpec, generate_tasks  # noqa: E402
from cluster.engine.gateway import Gateway  # noqa: E402
from cluster.runtime.actors import NAMESPACE, deploy  # noqa: E402
from cluster.runtime.transport import RayTransport  # noqa: E402

SMALL_TARGET = 8.0
BATCHED_TARGET = 0.8
LARGE_TARGET = 0.9
BATCH = 1000
"""Specs per batched Ray task in the batched baseline."""


def network(hosts: int, cpus: int, **market: Any) -> dict[str, Any]:
    """Operators and coprocessors on ``hosts`` hosts each (``cpus`` per coprocessor host)."""
    return {
        "operators": [{"name": f"op-{i}", "stake": 5000 - i} for i in range(hosts)],
        "coprocessors": [
            {"name": f"cop-{i}", "collateral": 10**7, "capacity": 100_000} for i in range(hosts)
        ],
        "client_balance": 10**9,
        "params": {"max_active_operators": hosts},
        "hosts": {
            "operator_hosts": hosts,
            "coprocessor_hosts": hosts,
            "cpus_per_coprocessor_host": cpus,
        },
        "market": {"execute_timeout_s": 600, "clock": {"every_tasks": 1000}, **market},
    }


SMALL_MIX = [
    {"kind": "sort", "size": 1000},
    {"kind": "matmul", "size": 32},
    {"kind": "fft", "size": 1024},
    {"kind": "hashsearch", "size": 64},
]


def market_rate(config: RunConfig, tasks: list[GeneratedTask]) -> float:
    """Deploy fresh actors, warm them with a few tasks, then time the whole workload."""
    with tempfile.TemporaryDirectory(prefix="stakeray-bench-") as tmp:
        deployment = deploy(config, Path(tmp), detached=False, prefix="bench-")
        try:
            transport = RayTransport()
            gateway = Gateway(
                transport,
                deployment.coordinator,
                deployment.operator_hosts,
                deployment.host_of,
                config,
            )
            warm = [GeneratedTask(10**9 + i, 0.0, t.spec, t.fee) for i, t in enumerate(tasks[:8])]
            gateway.run(warm, paced=False)
            start = time.perf_counter()
            records = gateway.run(tasks, paced=False)
            elapsed = time.perf_counter() - start
        finally:
            for handle in deployment.handles():
                ray.kill(handle, no_restart=True)
    settled = sum(r.outcome == "settled" for r in records)
    if settled != len(tasks):
        raise SystemExit(f"market settled {settled} of {len(tasks)} tasks")
    return len(tasks) / elapsed


@ray.remote(num_cpus=1)
def bare_task(spec: workers.TaskSpec) -> Any:
    return workers.execute(spec)


def bare_rate(tasks: list[GeneratedTask]) -> float:
    ray.get([bare_task.remote(t.spec) for t in tasks[:64]])  # warm the worker pool
    start = time.perf_counter()
    ray.get([bare_task.remote(t.spec) for t in tasks])
    return len(tasks) / (time.perf_counter() - start)


@ray.remote(num_cpus=1)
def batched_task(specs: list[workers.TaskSpec]) -> int:
    """Execute and verify a batch of specs; return how many verified."""
    ok = 0
    for spec in specs:
        ok += bool(workers.verify(spec, workers.execute(spec), workers.make_inputs(spec)))
    return ok


def batched_rate(tasks: list[GeneratedTask]) -> float:
    specs = [t.spec for t in tasks]
    chunks = [specs[i : i + BATCH] for i in range(0, len(specs), BATCH)]
    ray.get([batched_task.remote(c[:8]) for c in chunks[:2]])  # warm the worker pool
    start = time.perf_counter()
    verified = sum(ray.get([batched_task.remote(c) for c in chunks]))
    elapsed = time.perf_counter() - start
    if verified != len(tasks):
        raise SystemExit(f"batched baseline verified {verified} of {len(tasks)} tasks")
    return len(tasks) / elapsed


def plain_rate(tasks: list[GeneratedTask]) -> float:
    workers.execute(tasks[0].spec)  # warm BLAS
    start = time.perf_counter()
    for t in tasks:
        workers.execute(t.spec)
    return len(tasks) / (time.perf_counter() - start)


def compare(
    name: str,
    ours: Any,
    baseline: Any,
    reps: int,
) -> tuple[float, list[float], list[float]]:
    market, base = [], []
    for rep in range(reps):
        pair = [(market, ours), (base, baseline)]
        for samples, fn in pair if rep % 2 == 0 else reversed(pair):
            samples.append(fn())
        print(f"  {name} rep {rep + 1}: market {market[-1]:,.3f}/s  baseline {base[-1]:,.3f}/s")
    return statistics.median(market) / statistics.median(base), market, base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, target not enforced")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--part", choices=["small", "batched", "large", "both", "all"], default="all"
    )
    parser.add_argument("--size", type=int, default=6144, help="matmul n of the large tasks")
    parser.add_argument("--count", type=int, default=4, help="large tasks per repetition")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    ray.init(
        address="local",  # a fresh local Ray, never one a `ray start` left running
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=3 * 1024**3,
        logging_level=logging.WARNING,
        log_to_driver=False,
        namespace=NAMESPACE,
    )
    backend = workers.backend.get_xp().__name__
    print(f"ray {ray.__version__}, {os.cpu_count()} cores, backend {backend}")
    rows = []

    def measure(
        label: str,
        tasks: list[GeneratedTask],
        network_: dict[str, Any],
        baseline: Any,
        target: float,
    ) -> None:
        config = RunConfig.model_validate({"seed": 1, "network": network_})
        ratio, m, b = compare(
            label.split(":")[0], lambda: market_rate(config, tasks), lambda: baseline(tasks), reps
        )
        rows.append((label, m, b, ratio, target, ratio >= target))

    try:
        count = 1000 if args.quick else 8000
        small = generate_tasks(WorkloadSpec(mix=SMALL_MIX, count=count, rate_per_s=10**6, seed=3))
        net = network(2, 1, batch_size=1000, max_inflight=4)
        if args.part in ("small", "both", "all"):
            label = "small tasks: market / bare Ray tasks"
            measure(label, small, net, bare_rate, SMALL_TARGET)
        if args.part in ("batched", "all"):
            label = "small tasks: market / batched Ray (exec+verify)"
            measure(label, small, net, batched_rate, BATCHED_TARGET)
        if args.part in ("large", "both", "all"):
            n = 1024 if args.quick else args.size
            count = 4 if args.quick else args.count
            mix = [{"kind": "matmul", "size": n}]
            spec = WorkloadSpec(mix=mix, count=count, rate_per_s=10**6, seed=4)
            # One host whose BLAS gets both cores, as plain NumPy does; one task in
            # flight, so the verifier draws its inputs while the coprocessor draws its own.
            net = network(1, 2, batch_size=1, max_inflight=1)
            label = f"large tasks (matmul n={n}): market / plain NumPy"
            measure(label, generate_tasks(spec), net, plain_rate, LARGE_TARGET)
    finally:
        ray.shutdown()
    print()
    print(f"{'comparison':<48} {'market/s':>10} {'baseline/s':>11} {'ratio':>7} {'target':>7}")
    for label, m, b, ratio, target, passed in rows:
        verdict = "PASS" if passed else "FAIL"
        print(
            f"{label:<48} {statistics.median(m):>10,.3f} {statistics.median(b):>11,.3f}"
            f" {ratio:>7.2f} {'>= ' + str(target):>7}  {verdict}"
        )
    if args.quick:
        return 0
    return 0 if all(row[-1] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
