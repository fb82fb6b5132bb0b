"""Task ids: allocated fresh by the coordinator, never chosen by a client, escrowed once.

Many clients at once each get their own ids; a retried escrow (its key) is escrowed
once; a run directory whose client died is rebuilt from the ledger, and verify passes.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cluster_fixtures import check_run, make_config
from refusals import assert_refused
from test_market import FEE, RICH, network

import protocol.market
from cluster.config.workload import generate_tasks
from cluster.engine.gateway import Gateway
from cluster.engine.transport import LocalTransport
from cluster.runtime.actors import deploy_local
from cluster.runtime.rundir import finish_directory
from protocol.errors import DuplicateTransaction, InvalidAmount


def test_ids_must_be_fresh_and_increasing() -> None:
    p = network()
    assert p.state.next_task_id == 0
    p.escrow_tasks("client", [(0, FEE), (1, FEE), (5, FEE)])  # gaps are allowed
    assert p.state.next_task_id == 6
    assert_refused(p, DuplicateTransaction, p.escrow_tasks, "client", [(5, FEE)])
    assert_refused(p, DuplicateTransaction, p.escrow_tasks, "client", [(4, FEE)])  # behind
    assert_refused(p, DuplicateTransaction, p.escrow_tasks, "client", [(8, FEE), (7, FEE)])
    assert_refused(p, DuplicateTransaction, p.escrow_tasks, "client", [(9, FEE), (9, FEE)])
    p.escrow_tasks("client", [(6, FEE)])
    assert p.balance("client") == RICH - 4 * FEE
    p.check_invariants()


def test_a_batch_key_escrows_once_and_is_remembered_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(protocol.market, "ESCROW_KEYS_KEPT", 2)
    p = network()
    p.escrow_tasks("client", [(0, FEE), (1, FEE)], "batch-a")
    assert p.state.escrow_keys == {"batch-a": 0}
    assert_refused(p, DuplicateTransaction, p.escrow_tasks, "client", [(2, FEE)], "batch-a")
    assert_refused(p, InvalidAmount, p.escrow_tasks, "client", [(2, FEE)], "")
    p.escrow_tasks("client", [(2, FEE)], "batch-b")
    p.escrow_tasks("client", [(3, FEE)], "batch-c")  # the oldest key is forgotten
    assert p.state.escrow_keys == {"batch-b": 2, "batch-c": 3}
    assert p.state.escrow_key_order == ["batch-b", "batch-c"]
    p.check_invariants()


def test_a_retried_escrow_gets_the_same_ids_and_pays_once(tmp_path: Path) -> None:
    deployment = deploy_local(make_config(), tmp_path, fsync=False)
    coordinator = deployment.coordinator
    balance = coordinator.p.balance("client")
    first = coordinator.escrow("k1", [FEE, FEE, FEE])
    again = coordinator.escrow("k1", [FEE, FEE, FEE])  # e.g. retried after a restart
    other = coordinator.escrow("k2", [FEE])
    assert first.first_id == again.first_id and other.first_id == first.first_id + 3
    assert coordinator.p.balance("client") == balance - 4 * FEE


def test_clients_submitting_at_once_get_their_own_ids(tmp_path: Path) -> None:
    config = make_config(workload={"count": 40})
    assert config.workload is not None
    deployment = deploy_local(config, tmp_path, fsync=False)
    transport = LocalTransport()
    results: dict[int, list] = {}
    lock = threading.Lock()  # the plain coordinator is one actor: Ray serialises its calls

    class Serial:
        def __init__(self, target: object) -> None:
            self.target = target

        def __getattr__(self, name: str) -> object:
            method = getattr(self.target, name)

            def call(*args: object) -> object:
                with lock:
                    return method(*args)

            return call

    coordinator = Serial(deployment.coordinator)
    hosts = [Serial(h) for h in deployment.operator_hosts]

    def client(n: int) -> None:
        gateway = Gateway(transport, coordinator, hosts, deployment.host_of, config)
        results[n] = gateway.run(generate_tasks(config.workload), paced=False)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = [r for n in range(3) for r in results[n]]
    ids = [r.task_id for r in rows]
    assert len(ids) == len(set(ids)) == 120  # the same workload three times, 120 own ids
    result = finish_directory(tmp_path, deployment, transport, rows, 1.0)
    summary, _ = check_run(tmp_path, result)
    assert summary["tasks_submitted"] == 120


def test_a_run_whose_client_died_is_rebuilt_from_the_ledger(tmp_path: Path) -> None:
    config = make_config(workload={"count": 30})
    assert config.workload is not None
    deployment = deploy_local(config, tmp_path, fsync=False)
    transport = LocalTransport()
    gateway = Gateway(
        transport, deployment.coordinator, deployment.operator_hosts, deployment.host_of, config
    )
    records = gateway.run(generate_tasks(config.workload), paced=False)
    assert len(records) == 30
    # The client died before writing tasks.csv: `down` finds no rows at all.
    result = finish_directory(tmp_path, deployment, transport, None, 1.0)
    summary, rows = check_run(tmp_path, result)
    assert summary["tasks_submitted"] == 30
    by_id = {r.task_id: r for r in records}
    for row in rows:
        known = by_id[int(row["task_id"])]
        assert row["kind"] == "" and int(row["fee"]) == known.fee
        assert row["operator"] == known.operator and row["outcome"] == known.outcome
        assert int(row["price"]) == known.price and row["coprocessor"] == known.coprocessor
