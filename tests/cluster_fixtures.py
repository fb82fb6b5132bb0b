"""Helpers for the cluster tests: one real local Ray, configs, background runs, ledger scans."""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.config.schema import RunConfig
from cluster.runtime.actors import NAMESPACE
from cluster.runtime.rundir import RunResult
from cluster.runtime.runner import run_cluster

HEAD_RESOURCE = "stakeray-test-head"
"""A custom resource only the head node has (pins the coordinator off the worker nodes)."""


@dataclass
class RayTestCluster:
    """A ``ray.cluster_utils.Cluster`` joined by this process; worker nodes come and go."""

    cluster: Any
    head_node_id: str
    nodes: list[Any] = field(default_factory=list)

    @classmethod
    def start(cls) -> RayTestCluster:
        import ray
        from ray.cluster_utils import Cluster

        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 2,
                "include_dashboard": False,
                "object_store_memory": 200 * 1024**2,
                "resources": {HEAD_RESOURCE: 1},
            },
        )
        ray.init(
            address=cluster.address,
            namespace=NAMESPACE,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        return cls(cluster, ray.get_runtime_context().get_node_id())

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add_node(self, **node_args: Any) -> Any:
        node = self.cluster.add_node(
            object_store_memory=80 * 1024**2, include_dashboard=False, **node_args
        )
        self.cluster.wait_for_nodes()
        self.nodes.append(node)
        return node

    def remove_node(self, node: Any) -> None:
        self.cluster.remove_node(node)
        # Ray 2.60's atexit hook of a removed node reads this attribute it has deleted.
        if not hasattr(node, "all_processes"):
            node.all_processes = {}
        self.nodes.remove(node)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        for node in list(self.nodes):
            if not hasattr(node, "all_processes"):
                node.all_processes = {}
        self.cluster.shutdown()


# --- configs -------------------------------------------------------------------------


def make_config(
    *,
    coprocessors: list[dict[str, Any]] | None = None,
    hosts: dict[str, Any] | None = None,
    market: dict[str, Any] | None = None,
    workload: dict[str, Any] | None = None,
    accounts: dict[str, Any] | None = None,
    seed: int = 5,
) -> RunConfig:
    """A small network: three operators, a few delegators, honest coprocessors by default."""
    return RunConfig.model_validate(
        {
            "seed": seed,
            "network": {
                "operators": [
                    {"name": "op-a", "stake": 3000},
                    {"name": "op-b", "stake": 2000, "reward_cut": 150000},
                    {"name": "op-c", "stake": 1000},
                ],
                "delegators": {"count": 12, "stake_min": 10, "stake_max": 200},
                "coprocessors": coprocessors
                or [
                    {"name": "cop-a", "collateral": 2000, "capacity": 16, "cost_ppm": 200000},
                    {"name": "cop-b", "collateral": 2000, "capacity": 16, "cost_ppm": 250000},
                ],
                "accounts": accounts or {},
                "params": {"unbonding_period": 2, "slash_fraction": 50000},
                "hosts": {"operator_hosts": 2, "coprocessor_hosts": 2, **(hosts or {})},
                "market": {
                    "batch_size": 10,
                    "max_inflight": 4,
                    "execute_timeout_s": 5,
                    "host_cooldown_s": 0.5,
                    "clock": {"every_tasks": 40},
                    **(market or {}),
                },
            },
            "workload": {
                "seed": 3,
                "count": 60,
                "rate_per_s": 20,
                "deadline_rounds": 3,
                "mix": [
                    {"kind": "matmul", "size": 128, "weight": 2},
                    {"kind": "fft", "size": 4096},
                    {"kind": "sort", "size": 5000},
                    {"kind": "hashsearch", "size": 256},
                ],
                **(workload or {}),
            },
        }
    )


# --- a run in the background, and its actors --------------------------------------------


def named_actors() -> set[str]:
    import ray

    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}


class BackgroundRun(threading.Thread):
    """``run_cluster`` in a thread; :meth:`actor` finds the actors it deployed by name."""

    def __init__(self, config: RunConfig, out: Path, **kwargs: Any) -> None:
        super().__init__(name="stakeray-test-run", daemon=True)
        self.config, self.out, self.kwargs = config, out, kwargs
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.before = named_actors()

    def run(self) -> None:
        try:
            self.result = run_cluster(self.config, self.out, progress=False, **self.kwargs)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def actor(self, suffix: str, timeout: float = 60.0) -> Any:
        """Return the handle of this run's actor whose name ends with ``suffix``."""
        import ray

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = [n for n in named_actors() - self.before if n.endswith(suffix)]
            if fresh:
                assert len(fresh) == 1, fresh
                return ray.get_actor(fresh[0], namespace=NAMESPACE)
            assert self.is_alive(), f"the run ended before {suffix} appeared: {self.error!r}"
            time.sleep(0.05)
        raise AssertionError(f"no actor named *{suffix} within {timeout} s")

    def finish(self, timeout: float = 180.0) -> RunResult:
        self.join(timeout)
        assert not self.is_alive(), f"the run did not finish within {timeout} s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


# --- run directory checks ------------------------------------------------------------------


def read_rows(out: Path) -> list[dict[str, str]]:
    with (out / "tasks.csv").open() as fh:
        return list(csv.DictReader(fh))


@dataclass
class LedgerScan:
    """What the ledger's frames say about tasks, replayed from genesis."""

    finished: dict[int, tuple[Any, ...]]
    open_tasks: int
    settled: Counter[int]
    failed_coprocessor: int  # safety faults (FailCoprocessor frames)
    missed_coprocessor: int  # liveness faults (MissCoprocessor frames)
    state_hash: str


def scan_ledger(out: Path) -> LedgerScan:
    from cluster.analysis.history import replay_tasks
    from protocol.eventlog import EventLog
    from protocol.ledger import LOG_NAME, Ledger
    from protocol.transactions import (
        FailCoprocessor,
        MissCoprocessor,
        SettleBatch,
        SettleTasks,
        decode_tx,
    )

    protocol = Ledger.replay(out / "ledger")
    protocol.check_invariants()
    settled: Counter[int] = Counter()
    failed = missed = 0
    with EventLog(out / "ledger" / LOG_NAME, fsync=False) as events:
        for payload in events.frames(1):
            tx = decode_tx(payload)
            if isinstance(tx, SettleTasks):
                settled.update(tx.task_ids)
            elif isinstance(tx, SettleBatch):
                settled.update(tx.settled)
                failed += len(tx.safety)
                missed += len(tx.liveness)
            elif isinstance(tx, FailCoprocessor):
                failed += 1
            elif isinstance(tx, MissCoprocessor):
                missed += 1
    outcomes, _ = replay_tasks(out / "ledger")  # the state keeps only recent outcomes
    counts = {o: n for o, n in protocol.state.outcome_counts.items() if n}
    assert counts == dict(Counter(o for o, _ in outcomes.values()))
    return LedgerScan(
        outcomes,
        len(protocol.state.tasks),
        settled,
        failed,
        missed,
        protocol.state_hash(),
    )


def check_run(out: Path, result: RunResult | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Common checks of a finished run: one row and one outcome per task, ledger agrees."""
    import json

    from cluster.cli import main

    summary = json.loads((out / "summary.json").read_text())
    rows = read_rows(out)
    assert summary["conservation_ok"] is True
    ids = [int(r["task_id"]) for r in rows]
    assert len(ids) == len(set(ids)) == summary["tasks_submitted"]
    outcomes = Counter(r["outcome"] for r in rows)
    assert set(outcomes) <= {"settled", "refunded", "failed"}, outcomes
    assert outcomes["settled"] == summary["tasks_settled"]
    assert outcomes["refunded"] == summary["tasks_refunded"]
    assert outcomes["failed"] == summary["tasks_failed"]
    scan = scan_ledger(out)
    assert scan.open_tasks == 0
    assert set(scan.finished) == set(ids)  # every task finished exactly once (a dict: once)
    for r in rows:
        assert scan.finished[int(r["task_id"])][0] == r["outcome"], r
    assert max(scan.settled.values(), default=1) == 1, "a task id was settled twice"
    assert len(scan.settled) == summary["tasks_settled"]
    assert scan.state_hash == summary["state_hash"]
    assert main(["verify", str(out)]) == 0
    if result is not None:
        assert result.summary["state_hash"] == summary["state_hash"]
    return summary, rows
