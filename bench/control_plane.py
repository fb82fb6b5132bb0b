"""Control-plane CPU per task: the market engine in one process with drawn outcomes.

Runs ``examples/paper-live.yaml`` (100 operators, 100 coprocessors on 2 + 2
hosts, its market and small-task mix) in this process (``deploy_local``, ``LocalTransport``) with
``DrawnExecution``: no kernel runs, so what is measured is everything but
execution and verification (escrow, operator choice, auctions, assignment,
settlement, faults, rounds, the durable ledger with its group commits). The
workload (unpaced, a task-count clock of 1,000 tasks) is fed in ``--chunks``
equal submissions, and for each the CPU time (``time.thread_time``: all of
it is this one thread) is split by where it is spent:

* coordinator: its methods (the ledger and the protocol included);
* operator hosts: ``process`` less the coordinator and coprocessor calls in it;
* coprocessor hosts: drawing outcomes (execution; not the control plane);
* gateway: the rest (batching, operator choice, bookkeeping).

It prints µs per task per part and chunk, the flatness (tasks/s of the last
chunk over the first), and the newest snapshot's size after each chunk.
The target (issue 13) is <= 10 µs of control plane per task at 10^6 tasks and
flatness >= 0.9; this script measures where the engine stands.

Run from the repository root::

    python bench/control_plane.py                  # 100,000 tasks in 10 chunks
    python bench/control_plane.py --count 1000000  # the issue's scale
    python bench/control_plane.py --quick          # 10,000 tasks
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.config.schema import load_config  # noqa: E402
from cluster.config.workload import generate_tasks  # noqa: E402
from cluster.engine.execution import DrawnExecution  # noqa: E402
from cluster.engine.gateway import Gateway  # noqa: E402
from cluster.engine.transport import LocalTransport  # noqa: E402
from cluster.runtime.actors import deploy_local  # noqa: E402
from protocol.ledger import SNAPSHOT_PREFIX  # noqa: E402

CONFIG = ROOT / "examples" / "paper-live.yaml"
PARTS = ("coordinator", "operator hosts", "coprocessor hosts", "gateway")


class Clock:
    """Exclusive CPU time per part: a call's time less the timed calls inside it."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.stack: list[float] = []

    def wrap(self, part: str, method: Callable[..., Any]) -> Callable[..., Any]:
        clock = self

        def call(*args: Any, **kwargs: Any) -> Any:
            clock.stack.append(0.0)
            started = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.thread_time() - started
                inner = clock.stack.pop()
                clock.spent[part] += elapsed - inner
                if clock.stack:
                    clock.stack[-1] += elapsed

        return call

    def timed(self, part: str, target: Any) -> Any:
        clock = self

        class Timed:
            def __getattr__(self, name: str) -> Any:
                return clock.wrap(part, getattr(target, name))

        return Timed()


def rss_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def snapshot_bytes(ledger: Path) -> int:
    snapshots = sorted(ledger.glob(f"{SNAPSHOT_PREFIX}*"))
    return snapshots[-1].stat().st_size if snapshots else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="tasks in all")
    parser.add_argument("--chunks", type=int, default=10, help="equal submissions")
    parser.add_argument("--quick", action="store_true", help="10,000 tasks")
    args = parser.parse_args()
    count = 10_000 if args.quick else args.count
    per_chunk = max(1, count // args.chunks)
    live = load_config(CONFIG)
    assert live.workload is not None
    # paper-live's own network, market and task mix, fed in equal chunks.
    config = live.model_copy(update={"workload": live.workload.with_count(per_chunk)})
    network = config.network
    assert config.workload is not None
    execution = DrawnExecution([*network.coprocessors, *network.operators], config.seed)
    print(
        f"{len(network.operators)} operators, {len(network.coprocessors)} coprocessors,"
        f" {count:,} tasks in {args.chunks} chunks, drawn outcomes, fsync on"
    )
    header = ("chunk", "tasks/s", *(f"{p} µs" for p in PARTS), "control µs", "snapshot B", "RSS MB")
    print("  ".join(f"{h:>16}" for h in header))
    rates: list[float] = []
    control: list[float] = []
    snapshots: list[int] = []
    rss: list[int] = []
    with tempfile.TemporaryDirectory(prefix="control-plane-") as tmp:
        out = Path(tmp)
        deployment = deploy_local(config, out, execution=execution)
        clock = Clock()
        coordinator = clock.timed("coordinator", deployment.coordinator)
        coprocessor_hosts = [
            clock.timed("coprocessor hosts", h) for h in deployment.coprocessor_hosts
        ]
        for host in deployment.operator_hosts:
            host.coordinator, host.hosts = coordinator, coprocessor_hosts
        operator_hosts = [clock.timed("operator hosts", h) for h in deployment.operator_hosts]
        transport = LocalTransport()
        gateway = Gateway(
            transport, coordinator, operator_hosts, deployment.host_of, config, session="bench"
        )
        tasks = generate_tasks(config.workload)
        for chunk in range(args.chunks):
            before = dict(clock.spent)
            cpu, wall = time.thread_time(), time.perf_counter()
            gateway.run(tasks, paced=False)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            spent = {p: (clock.spent[p] - before.get(p, 0.0)) * 1e6 / len(tasks) for p in PARTS}
            spent["gateway"] = cpu * 1e6 / len(tasks) - sum(
                spent[p] for p in PARTS if p != "gateway"
            )
            plane = spent["coordinator"] + spent["operator hosts"] + spent["gateway"]
            rates.append(len(tasks) / wall)
            control.append(plane)
            snapshots.append(snapshot_bytes(out / "ledger"))
            rss.append(rss_bytes())
            row = [
                f"{chunk + 1}",
                f"{rates[-1]:,.0f}",
                *(f"{spent[p]:,.1f}" for p in PARTS),
                f"{plane:,.1f}",
                f"{snapshots[-1]:,}",
                f"{rss[-1] / 2**20:,.1f}",
            ]
            print("  ".join(f"{c:>16}" for c in row))
        deployment.coordinator.close()
    first_snapshot = next((b for b in snapshots if b), 0)
    print(
        f"control plane: {control[0]:,.1f} µs/task (first chunk), {control[-1]:,.1f} (last);"
        f" flatness (last/first tasks/s) {rates[-1] / rates[0]:.2f}; target <= 10 µs, >= 0.9"
    )
    print(
        f"snapshot bytes last/first {snapshots[-1] / max(1, first_snapshot):.2f} (target <= 1.1);"
        f" RSS last/first {rss[-1] / max(1, rss[0]):.2f} (target <= 1.2)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
