"""The cluster on a real local Ray: end to end, chaos, multi-node, fake GPUs, signed txs.

One session-scoped Ray (``ray_cluster`` in conftest) serves every test that
asks for it; worker nodes are added and removed by the tests that need them.
Each run joins that Ray, so ``run_cluster`` names its actors with a fresh
prefix and kills them at the end. The tests without the fixture never start Ray.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import (
    HEAD_RESOURCE,
    BackgroundRun,
    RayTestCluster,
    check_run,
    make_config,
    read_rows,
    scan_ledger,
)

from cluster.cli import main
from cluster.config.schema import ConfigError, load_config
from cluster.runtime.chaos import ChaosError, ChaosPlan
from cluster.runtime.rundir import TASK_COLUMNS, RunResult
from cluster.runtime.runner import RunError, check_resources, run_cluster

HEADER = "task_id,kind,size,operator,coprocessor,fee,price,attempts,outcome,latency_s"
SUMMARY_KEYS = {
    "tasks_submitted",
    "tasks_settled",
    "tasks_refunded",
    "tasks_failed",
    "rounds",
    "minted",
    "burned",
    "conservation_ok",
    "state_hash",
    "throughput_tasks_per_s",
}
QUICKSTART = str(Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml")


def wait_for(predicate: Any, timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- without Ray ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("kill-everything=1", "kill-everything=1"),
        ("kill-node", "kill-node"),
        ("kill-coordinator=x", "kill-coordinator=x"),
        ("kill-coprocessor=1,kill-node=-1", "kill-node=-1"),
        ("kill-coordinator=1, bogus", "bogus"),
        ("kill-coordinator=101", "kill-coordinator=101"),
        ("kill-node=" + "9" * 23, "kill-node=" + "9" * 23),
    ],
)
def test_chaos_plan_errors_are_one_line_naming_the_part(text: str, part: str) -> None:
    with pytest.raises(ChaosError) as err:
        ChaosPlan.parse(text)
    message = str(err.value)
    assert repr(part) in message and "\n" not in message


def test_chaos_plan_parses_and_schedules_inside_the_run() -> None:
    plan = ChaosPlan.parse("kill-coordinator=2, kill-node=1")
    assert plan.counts == {"kill-coordinator": 2, "kill-node": 1} and plan
    assert not ChaosPlan.parse("") and not ChaosPlan.parse(None)
    assert not ChaosPlan.parse("kill-node=0")
    events = plan.schedule(10.0, seed=4)
    assert [name for _, name in events].count("kill-coordinator") == 2
    assert all(1.5 <= at <= 7.0 for at, _ in events)
    assert events == sorted(events) == plan.schedule(10.0, seed=4)


def test_cli_refuses_a_bad_chaos_value_and_chaos_without_ray(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", QUICKSTART, "--out", str(tmp_path / "a"), "--local", "--quiet"]
    assert main([*args, "--chaos", "kill-all=1"]) == 2
    err = capsys.readouterr().err
    assert "kill-all=1" in err and err.count("\n") == 1
    args = ["run", QUICKSTART, "--out", str(tmp_path / "b"), "--local", "--quiet"]
    assert main([*args, "--chaos", "kill-node=1"]) == 2
    err = capsys.readouterr().err
    assert "--chaos" in err and err.count("\n") == 1


NET = "network:\n  operators: [{name: a, stake: 1}]\n"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("  hosts: {operator_hosts: 0}\n", "network.hosts.operator_hosts"),
        ("  hosts: {coprocessor_hosts: 65}\n", "network.hosts.coprocessor_hosts"),
        ("  hosts: {gpus_per_coprocessor_host: -0.5}\n", "network.hosts.gpus_per_coprocessor_host"),
        ("  hosts: {cpus_per_coprocessor_host: x}\n", "network.hosts.cpus_per_coprocessor_host"),
        ("  hosts: {gpu: 1}\n", "network.hosts.gpu"),
        ("  market: {batch_size: 0}\n", "network.market.batch_size"),
        ("  market: {max_inflight: 0}\n", "network.market.max_inflight"),
        ("  market: {execute_timeout_s: 0}\n", "network.market.execute_timeout_s"),
        ("  market: {host_cooldown_s: -1}\n", "network.market.host_cooldown_s"),
        ("  market: {self_execute_max_size: {bogus: 5}}\n", "network.market.self_execute_max_size"),
        ("  market: {clock: {every_tasks: 0}}\n", "network.market.clock.every_tasks"),
        ("  market: {clock: {every_s: .inf}}\n", "network.market.clock.every_s"),
        ("  market: {clock: {every_s: null, every_tasks: null}}\n", "network.market.clock"),
        ("  coprocessors: [{name: c, collateral: 1, capacity: 0}]\n", "coprocessors.0.capacity"),
        ("  coprocessors: [{name: c, collateral: -1}]\n", "network.coprocessors.0.collateral"),
        ("  coprocessors: [{name: c, collateral: 1, cost_ppm: 2000000}]\n", "0.cost_ppm"),
        ("  coprocessors: [{name: c, collateral: 1, late_s: -1}]\n", "coprocessors.0.late_s"),
        ("  coprocessors: [{name: c, collateral: 1, host: -1}]\n", "network.coprocessors.0.host"),
        ("  coprocessors: [{name: c, collateral: 1, host: 3}]\n", "hosts.coprocessor_hosts"),
        ("  coprocessors: [{collateral: 1}]\n", "network.coprocessors.0.name"),
        ("  coprocessors: [{name: a, collateral: 1}]\n", "'a'"),
    ],
)
def test_bad_cluster_sections_name_the_field(tmp_path: Path, extra: str, needle: str) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(NET + extra)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert needle in message and "\n" not in message and str(path) in message


def test_check_resources_refuses_what_no_node_has() -> None:
    config = make_config(hosts={"gpus_per_coprocessor_host": 1.0, "coprocessor_hosts": 2})
    with pytest.raises(RunError, match=r"^hosts\.gpus_per_coprocessor_host: needs 2 GPUs"):
        check_resources(config, {"CPU": 2.0, "GPU": 1.0})
    check_resources(config, {"CPU": 2.0, "GPU": 2.0})
    config = make_config(hosts={"coprocessor_resource": "gpu-node"})
    with pytest.raises(RunError, match="'gpu-node'"):
        check_resources(config, {"CPU": 2.0})
    check_resources(config, {"CPU": 2.0, "gpu-node": 1.0})


def check_metrics(result: RunResult) -> None:
    """The coordinator's metrics count what the summary and ledger say (no restarts here)."""
    metrics, summary = result.status["metrics"], result.summary
    for outcome in ("settled", "refunded", "failed"):
        assert metrics[f"stakeray_tasks_{outcome}"] == summary[f"tasks_{outcome}"], outcome
    assert metrics["stakeray_round"] == summary["rounds"]
    assert metrics["stakeray_open_tasks"] == 0
    assert metrics["stakeray_total_stake_tokens"] > 0


def test_local_run_writes_the_same_kind_of_run_directory(tmp_path: Path) -> None:
    config = make_config()
    out = tmp_path / "local"
    result = run_cluster(config, out, local=True, progress=False, paced=False)
    assert (out / "tasks.csv").read_text().splitlines()[0] == HEADER
    assert set(result.summary) >= SUMMARY_KEYS
    summary, _rows = check_run(out, result)
    assert summary["tasks_submitted"] == 60 and summary["tasks_settled"] > 0
    check_metrics(result)
    with pytest.raises(RunError, match="--chaos"):
        run_cluster(config, tmp_path / "x", local=True, chaos=ChaosPlan.parse("kill-node=1"))


# --- on Ray: end to end ------------------------------------------------------------------------


def test_quickstart_end_to_end_and_verify(
    ray_cluster: RayTestCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "quick"
    args = ["run", QUICKSTART, "--out", str(out), "--count", "150", "--no-pace", "--quiet"]
    assert main(args) == 0
    assert "conservation ok" in capsys.readouterr().out
    assert (out / "ledger" / "events.log").stat().st_size > 0
    lines = (out / "tasks.csv").read_text().splitlines()
    assert lines[0] == HEADER == ",".join(TASK_COLUMNS)
    assert len(lines) == 1 + 150
    rounds = (out / "rounds.csv").read_text().splitlines()
    assert rounds[0].startswith("round,participant,role") and len(rounds) > 1
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["tasks_submitted"] == 150
    assert summary["tasks_settled"] + summary["tasks_refunded"] + summary["tasks_failed"] == 150
    assert summary["tasks_settled"] > 0 and int(summary["minted"]) > 0
    assert summary["conservation_ok"] is True and summary["throughput_tasks_per_s"] > 0
    rows = read_rows(out)
    assert sorted(int(r["task_id"]) for r in rows) == list(range(150))
    assert len({r["kind"] for r in rows}) >= 3
    check_run(out)

    summary["state_hash"] = "f" * 64
    (out / "summary.json").write_text(json.dumps(summary))
    assert main(["verify", str(out)]) != 0


def test_quickstart_is_reproducible_on_ray_and_in_one_process(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    """With a task-count clock, batches clear and settle in submission order, so the same
    config and seed give the same state hash on Ray (hosts answering in any order) and in
    one process (``--local``), run after run; the workload has faults, so re-offers too."""
    hashes = []
    for name, extra in (
        ("ray-1", []),
        ("local-1", ["--local"]),
        ("ray-2", []),
        ("local-2", ["--local"]),
    ):
        out = tmp_path / name
        args = ["run", QUICKSTART, "--out", str(out), "--count", "400", "--no-pace", "--quiet"]
        assert main([*args, *extra]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["coprocessor_slashes"] > 0  # gpu-faulty's wrong results were re-offered
        hashes.append(summary["state_hash"])
    assert len(set(hashes)) == 1, hashes


def test_coordinator_killed_mid_run_restarts_and_recovers(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    # A paced workload of ~8 s; the strike lands at 15-70 % of it, so always mid-run.
    config = make_config(workload={"count": 120, "rate_per_s": 15}, seed=9)
    out = tmp_path / "coord"
    result = run_cluster(config, out, chaos=ChaosPlan.parse("kill-coordinator=1"), progress=False)
    [(_at, fault, what)] = result.summary["chaos"]
    assert fault == "kill-coordinator" and not what.startswith("failed"), what
    assert result.status["recovered"] is True  # the restarted coordinator rebuilt its ledger
    summary, _rows = check_run(out, result)
    assert summary["tasks_submitted"] == 120
    assert summary["tasks_settled"] > 0


def test_coprocessor_host_killed_while_holding_jobs_is_reauctioned(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    # Heavy jobs (~0.1 s each), all submitted at once: each host has a queue of
    # execute calls of several jobs, so it is busy for most of the run.
    config = make_config(
        coprocessors=[
            {"name": "cop-a", "collateral": 2000, "capacity": 32, "cost_ppm": 200000},
            {"name": "cop-b", "collateral": 2000, "capacity": 32, "cost_ppm": 200000},
        ],
        market={"batch_size": 16, "max_inflight": 2, "execute_timeout_s": 30},
        workload={"count": 48, "mix": [{"kind": "matmul", "size": 1024}]},
        seed=13,
    )
    out = tmp_path / "copro"
    run = BackgroundRun(config, out, paced=False)
    run.start()
    host = run.actor("stakeray-coprocessor-host-0")
    import ray

    ray.get(host.info.remote(), timeout=60)  # started (its name exists before it is up)

    def busy() -> bool:
        # The host runs one call at a time: an info() that does not answer within
        # 0.3 s waits behind an execute of ~0.1 s per job, so the host holds jobs now.
        ready, _ = ray.wait([host.info.remote()], timeout=0.3)
        return not ready

    wait_for(busy, 30.0, "coprocessor host 0 to hold jobs", every=0.1)
    ray.kill(host, no_restart=False)
    result = run.finish()
    summary, rows = check_run(out, result)
    scan = scan_ledger(out)
    retried = [r for r in rows if int(r["attempts"]) >= 2]
    assert retried or summary["coprocessor_misses"] > 0
    # The lost jobs are liveness faults, re-offered: a crash is not fraud, so the two
    # honest coprocessors are never slashed.
    assert scan.missed_coprocessor > 0
    assert scan.failed_coprocessor == 0 and summary["coprocessor_slashes"] == 0
    assert summary["coprocessor_misses"] == scan.missed_coprocessor
    assert result.status["metrics"]["stakeray_liveness_faults"] >= scan.missed_coprocessor
    assert summary["tasks_submitted"] == 48 and summary["tasks_settled"] > 0


def test_node_lost_mid_run_and_replaced(ray_cluster: RayTestCluster, tmp_path: Path) -> None:
    import ray

    node = ray_cluster.add_node(num_cpus=1, resources={"copro-node": 1})
    config = make_config(
        hosts={"coprocessor_resource": "copro-node", "coordinator_resource": HEAD_RESOURCE},
        market={"execute_timeout_s": 3, "host_cooldown_s": 0.5},
        workload={"count": 150, "rate_per_s": 12},  # ~12 s of arrivals
        seed=21,
    )
    out = tmp_path / "node"
    run = BackgroundRun(config, out)
    run.start()
    try:
        hosts = [run.actor(f"stakeray-coprocessor-host-{i}") for i in range(2)]
        infos = ray.get([h.info.remote() for h in hosts], timeout=60)
        assert {i["node_id"] for i in infos} == {node.node_id} != {ray_cluster.head_node_id}
        time.sleep(2.5)  # let work flow to the node first
        ray_cluster.remove_node(node)
        time.sleep(1.0)
        node = ray_cluster.add_node(num_cpus=1, resources={"copro-node": 1})

        def moved() -> bool:
            try:
                ready, _ = ray.wait([hosts[0].info.remote()], timeout=1.0)
                return bool(ready) and ray.get(ready[0])["node_id"] == node.node_id
            except ray.exceptions.RayError:
                return False

        # The host restarts on the replacement while the run goes on (~1 s here).
        wait_for(moved, 30.0, "coprocessor host 0 to restart on the new node")
        result = run.finish()
    finally:
        if node in ray_cluster.nodes:
            ray_cluster.remove_node(node)
    summary, _rows = check_run(out, result)
    assert summary["tasks_submitted"] == 150 and summary["tasks_settled"] > 0


def test_fake_gpus_place_coprocessor_hosts_and_a_run_settles(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    import ray

    from cluster.config.workload import generate_tasks
    from cluster.runtime.actors import deploy
    from cluster.runtime.runner import execute
    from cluster.runtime.transport import RayTransport

    node = ray_cluster.add_node(num_cpus=1, num_gpus=1, resources={"gpu-node": 1})
    try:
        too_many = make_config(
            hosts={"gpus_per_coprocessor_host": 1.0, "coprocessor_resource": "gpu-node"}
        )
        with pytest.raises(RunError, match=r"hosts\.gpus_per_coprocessor_host"):
            check_resources(too_many, ray.cluster_resources())
        with pytest.raises(RunError, match=r"hosts\.gpus_per_coprocessor_host"):
            run_cluster(too_many, tmp_path / "refused", progress=False)

        config = make_config(
            hosts={"gpus_per_coprocessor_host": 0.5, "coprocessor_resource": "gpu-node"},
            workload={"count": 30},
        )
        check_resources(config, ray.cluster_resources())
        out = tmp_path / "gpu"
        out.mkdir()
        deployment = deploy(config, out, detached=True, prefix="gpu-test-")
        try:
            infos = ray.get([h.info.remote() for h in deployment.coprocessor_hosts], timeout=60)
            assert len(infos) == 2
            for info in infos:
                assert info["gpu_ids"] == ["0"], info
                assert info["cuda_visible_devices"] == "0", info
                assert info["backend"] == "numpy", info  # no CuPy here: a clean fallback
                assert info["node_id"] == node.node_id != ray_cluster.head_node_id
            tasks = generate_tasks(config.workload)
            result = execute(config, out, deployment, RayTransport(), tasks, None, False, False)
            done = ray.get([h.info.remote() for h in deployment.coprocessor_hosts], timeout=60)
        finally:
            for handle in deployment.handles():
                ray.kill(handle, no_restart=True)
    finally:
        ray_cluster.remove_node(node)
    summary, rows = check_run(out, result)
    assert summary["tasks_settled"] == 30
    assert sum(i["executed"] for i in done) > 0  # the GPU-placed hosts did the work
    assert any(r["coprocessor"] for r in rows)


def test_faulty_coprocessor_is_slashed_and_honest_ones_never(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    config = make_config(
        coprocessors=[
            {
                "name": "cop-bad",
                "collateral": 2000,
                "capacity": 16,
                "cost_ppm": 50000,
                "fault_rate": 0.5,
            },
            {"name": "cop-a", "collateral": 2000, "capacity": 16, "cost_ppm": 200000},
            {"name": "cop-b", "collateral": 2000, "capacity": 16, "cost_ppm": 250000},
        ],
        workload={"count": 120},
        seed=17,
    )
    out = tmp_path / "faulty"
    result = run_cluster(config, out, progress=False, paced=False)
    summary, rows = check_run(out, result)
    slashes = {c["coprocessor"]: c["slashes"] for c in result.status["coprocessors"]}
    assert slashes["cop-bad"] > 0
    assert slashes["cop-a"] == 0 and slashes["cop-b"] == 0
    # Every fault in the ledger is the faulty one's: one FailCoprocessor per slash.
    assert scan_ledger(out).failed_coprocessor == slashes["cop-bad"]
    assert summary["coprocessor_slashes"] == slashes["cop-bad"]
    check_metrics(result)
    assert result.status["metrics"]["stakeray_slashes"] >= slashes["cop-bad"]
    settled = [r for r in rows if r["outcome"] == "settled"]
    by = Counter(r["coprocessor"] for r in settled)
    assert by["cop-bad"] > 0  # it won (cheapest) and half its results passed verification
    for r in settled:
        assert int(r["attempts"]) >= 1 and int(r["price"]) <= int(r["fee"])
        if r["coprocessor"]:
            assert int(r["price"]) > 0
    # A task the faulty coprocessor failed was re-offered: it took more than one attempt.
    assert any(int(r["attempts"]) >= 2 for r in rows)
    rounds = (out / "rounds.csv").read_text()
    assert "cop-bad" in rounds


def test_signed_transactions_through_a_network_that_is_up(
    ray_cluster: RayTestCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    from cluster.cli.keys import load_key
    from cluster.engine.signing import sign_tx
    from cluster.runtime.actors import COORDINATOR_NAME
    from protocol.errors import BadSignature, DuplicateTransaction, NonceError, WrongChain
    from protocol.transactions import parse_tx
    from protocol.units import tokens

    keystore = str(tmp_path / "keys")
    assert main(["keys", "new", "alice", "--keystore", keystore]) == 0
    alice = capsys.readouterr().out.strip()
    assert len(alice) == 64
    net = tmp_path / "net.yaml"
    net.write_text(
        "seed: 2\n"
        "network:\n"
        "  operators: [{name: op-a, stake: 500}, {name: op-b, stake: 300}]\n"
        "  coprocessors: [{name: cop-a, collateral: 500, capacity: 8}]\n"
        f"  accounts: {{'{alice}': 100}}\n"
        "  hosts: {operator_hosts: 1, coprocessor_hosts: 1}\n"
        "  market: {batch_size: 10}\n"
    )
    workload = tmp_path / "work.yaml"
    workload.write_text("count: 20\nmix: [{kind: sort, size: 2000}, {kind: matmul, size: 64}]\n")
    d = tmp_path / "net"
    keys = ["--key", "alice", "--dir", str(d), "--keystore", keystore]
    assert main(["up", str(net), "--out", str(d), "--address", ray_cluster.address]) == 0
    try:
        assert main(["submit", str(workload), "--dir", str(d), "--no-pace", "--quiet"]) == 0
        assert "submitted 20 tasks" in capsys.readouterr().out
        assert main(["status", "--dir", str(d)]) == 0
        assert "op-a" in capsys.readouterr().out

        coordinator = ray.get_actor(COORDINATOR_NAME, namespace="stakeray")
        assert main(["tx", "bond", "operator=op-a", "amount=10", *keys]) == 0
        assert "accepted bond" in capsys.readouterr().out
        assert ray.get(coordinator.nonce.remote(alice)) == 1
        before = ray.get(coordinator.status.remote())
        stake = {o["operator"]: o["stake"] for o in before["operators"]}

        def refused(args: list[str], error: str) -> None:
            assert main(["tx", *args, *keys]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith("error: refused: " + error), err
            assert ray.get(coordinator.status.remote()) == before
            assert ray.get(coordinator.nonce.remote(alice)) == 1

        refused(["bond", "operator=op-a", "amount=10", "--nonce", "0"], "DuplicateTransaction")
        refused(["bond", "operator=op-a", "amount=10", "--nonce", "5"], "NonceError")
        refused(["bond", "operator=op-a", "amount=1000"], "")  # more than alice holds

        key = load_key("alice", keystore)
        tx = parse_tx({"kind": "bond", "delegator": alice, "operator": "op-a", "amount": 10**18})
        chain = ray.get(coordinator.chain_id.remote())
        assert before["chain_id"] == chain == ray.get(coordinator.describe.remote())["chain_id"]
        elsewhere = sign_tx(key, 1, tx, "e1" * 32)  # signed for another network
        receipt = ray.get(coordinator.submit_signed.remote(elsewhere))
        assert isinstance(receipt.refusal, WrongChain), receipt
        signed = sign_tx(key, 1, tx, chain)
        flipped = "0" if signed.signature[0] != "0" else "1"
        forged = signed.model_copy(update={"signature": flipped + signed.signature[1:]})
        receipt = ray.get(coordinator.submit_signed.remote(forged))
        assert isinstance(receipt.refusal, BadSignature), receipt
        other = signed.model_copy(update={"tx": {**signed.tx, "amount": 2 * 10**18}})
        receipt = ray.get(coordinator.submit_signed.remote(other))
        assert isinstance(receipt.refusal, BadSignature), receipt
        assert ray.get(coordinator.status.remote()) == before

        receipt = ray.get(coordinator.submit_signed.remote(signed))
        assert receipt.accepted, receipt
        receipt = ray.get(coordinator.submit_signed.remote(signed))  # the same, replayed
        assert isinstance(receipt.refusal, DuplicateTransaction), receipt
        assert receipt.describe().startswith("DuplicateTransaction: ")
        receipt = ray.get(coordinator.submit_signed.remote(sign_tx(key, 7, tx, chain)))
        assert isinstance(receipt.refusal, NonceError), receipt
        assert ray.get(coordinator.nonce.remote(alice)) == 2
        after = ray.get(coordinator.status.remote())
        moved = {o["operator"]: o["stake"] for o in after["operators"]}
        assert moved["op-a"] == stake["op-a"] + tokens(1) and moved["op-b"] == stake["op-b"]
    finally:
        assert main(["down", "--dir", str(d)]) == 0
    assert "network down" in capsys.readouterr().out
    summary = json.loads((d / "summary.json").read_text())
    assert summary["tasks_submitted"] == 20 and summary["conservation_ok"] is True
    assert main(["verify", str(d)]) == 0
    with pytest.raises(ValueError):
        ray.get_actor(COORDINATOR_NAME, namespace="stakeray")  # down stopped it


# --- the CLI's own multi-node cluster (a separate process) -----------------------------------


def test_cli_chaos_kill_node_on_its_own_local_cluster(tmp_path: Path) -> None:
    """`stakeray run --chaos kill-node=1` builds a head and a worker node, removes the worker
    node mid-run and adds a fresh one; the run completes and verifies."""
    import os
    import subprocess
    import sys

    out = tmp_path / "kill-node"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "cluster.cli", "run", QUICKSTART, "--out", str(out)]
    command += ["--count", "240", "--quiet", "--chaos", "kill-node=1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    [(_at, fault, what)] = summary["chaos"]
    assert fault == "kill-node" and what.startswith("removed a worker node"), what
    assert summary["tasks_submitted"] == 240 and summary["conservation_ok"] is True
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert main(["verify", str(out)]) == 0


def test_run_files_are_written_on_the_coordinators_node(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    """``on_node`` sends a writer to another node; the coordinator follows its resource."""
    import ray

    from cluster.runtime.actors import deploy
    from cluster.runtime.nodes import current_node_id, on_node

    node = ray_cluster.add_node(num_cpus=1, resources={"ledger-node": 1})
    try:
        assert on_node(node.node_id, current_node_id) == node.node_id
        assert on_node(None, current_node_id) == ray_cluster.head_node_id  # here
        here = deploy(make_config(), tmp_path / "here", detached=True, prefix="pin-a-")
        there = deploy(
            make_config(hosts={"coordinator_resource": "ledger-node"}),
            tmp_path / "there",
            detached=True,
            prefix="pin-b-",
        )
        try:
            # Without a resource the coordinator stays on the deploying process's node.
            info = ray.get(here.coordinator.describe.remote())
            assert info["node_id"] == ray_cluster.head_node_id
            assert info["directory"] == str(tmp_path / "here")
            assert ray.get(there.coordinator.describe.remote())["node_id"] == node.node_id
        finally:
            for handle in [*here.handles(), *there.handles()]:
                ray.kill(handle, no_restart=True)
    finally:
        ray_cluster.remove_node(node)
