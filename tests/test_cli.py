"""The command line on the in-process pipeline (``--local``): run, verify, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.cli import main
from cluster.config.schema import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent

NETWORK = """
seed: 3
network:
  operators:
    - {name: op-a, stake: 500, reward_cut: 100000, fee_share: 900000}
    - {name: op-b, stake: 300, miss_rate: 0.5}
  delegators: {count: 20, stake_min: 1, stake_max: 50}
  coprocessors:
    - {name: cop-a, collateral: 100, capacity: 8}
    - {name: cop-bad, collateral: 100, capacity: 8, cost_ppm: 10000, fault_rate: 0.5}
  params: {unbonding_period: 2, slash_fraction: 100000}
  market: {batch_size: 20, clock: {every_tasks: 20}}
workload:
  count: 120
  mix: [{kind: sort, size: 2000}, {kind: matmul, size: 48}, {kind: hashsearch, size: 256}]
"""
LOCAL = ["--quiet", "--local", "--no-pace"]


def write(tmp_path: Path, text: str, name: str = "net.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_writes_the_run_directory_and_verify_replays_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["run", str(write(tmp_path, NETWORK)), "--out", str(out), *LOCAL]) == 0
    table = capsys.readouterr().out
    assert "op-a" in table and "op-b" in table and "conservation ok" in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["conservation_ok"] is True and summary["tasks_submitted"] == 120
    assert summary["tasks_settled"] + summary["tasks_refunded"] + summary["tasks_failed"] == 120
    assert summary["rounds"] >= 6 and int(summary["minted"]) > 0
    assert summary["coprocessor_slashes"] > 0  # the faulty coprocessor was caught
    assert (out / "ledger" / "events.log").stat().st_size > 0
    rows = (out / "rounds.csv").read_text().splitlines()
    assert rows[0].startswith("round,participant,role") and len(rows) == 1 + 4 * summary["rounds"]
    tasks = (out / "tasks.csv").read_text().splitlines()
    assert tasks[0] == "task_id,kind,size,operator,coprocessor,fee,price,attempts,outcome,latency_s"
    assert len(tasks) == 121

    assert main(["verify", str(out)]) == 0
    assert summary["state_hash"] in capsys.readouterr().out


def test_verify_fails_when_the_recorded_hash_differs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(["run", str(write(tmp_path, NETWORK)), "--out", str(out), *LOCAL])
    summary = json.loads((out / "summary.json").read_text())
    summary["state_hash"] = "0" * 64
    (out / "summary.json").write_text(json.dumps(summary))
    assert main(["verify", str(out)]) == 1


def test_run_is_deterministic(tmp_path: Path) -> None:
    config = write(tmp_path, NETWORK)
    hashes = []
    for name in ("one", "two"):
        main(["run", str(config), "--out", str(tmp_path / name), *LOCAL])
        hashes.append(json.loads((tmp_path / name / "summary.json").read_text())["state_hash"])
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("seed: 1\n", "network: Field required"),
        ("network: {operators: []}\n", "network.operators"),
        ("network: {operators: [{name: a, stake: -5}]}\n", "network.operators.0.stake"),
        ("network: {operators: [{name: a, stake: 1, reward_cut: 2000000}]}\n", "reward_cut"),
        ("network: {operators: [{name: a, stake: 1}], params: {max_take: 7000000}}\n", "max_take"),
        ("network: {operators: [{name: a, stake: 1}]}\nbogus: 1\n", "bogus"),
        ("network: [\n", "invalid YAML"),
        ("network: {operators: [{name: a, stake: 1}], hosts: {operator_hosts: 0}}\n", "hosts"),
        (
            "network: {operators: [{name: a, stake: 1}],"
            " market: {clock: {every_s: 1, every_tasks: 5}}}\n",
            "network.market.clock",
        ),
        (
            "network: {operators: [{name: a, stake: 1}],"
            " coprocessors: [{name: c, collateral: 1, fault_rate: 2}]}\n",
            "network.coprocessors.0.fault_rate",
        ),
        ("network: {operators: [{name: a, stake: 1}]}\nworkload: {count: 5}\n", "workload.mix"),
    ],
)
def test_bad_config_gets_one_line_naming_the_field(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_cli_reports_config_errors_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(write(tmp_path, "seed: 1\n")), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    no_workload = "network: {operators: [{name: a, stake: 1}]}\n"
    assert main(["run", str(write(tmp_path, no_workload)), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    config = write(tmp_path, NETWORK)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), *LOCAL]) == 0
    assert main(["run", str(config), "--out", str(out), *LOCAL]) == 2


def test_overwrite_replaces_an_earlier_run(tmp_path: Path) -> None:
    config = write(tmp_path, NETWORK)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), *LOCAL]) == 0
    first = json.loads((out / "summary.json").read_text())["state_hash"]
    args = ["run", str(config), "--out", str(out), *LOCAL, "--overwrite", "--count", "30"]
    assert main(args) == 0
    second = json.loads((out / "summary.json").read_text())
    assert second["tasks_submitted"] == 30 and second["state_hash"] != first
    assert main(["verify", str(out)]) == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["status"], "give --address ADDR or --dir DIR"),
        (["down", "--dir", "{tmp}/none"], "--dir {tmp}/none: no network is up here"),
        (["submit", "{tmp}/w.yaml", "--dir", "{tmp}"], "no network is up here"),
        (["up", "--out", "{tmp}/empty"], "give the network CONFIG"),
        (["up", "--resume", "--out", "{tmp}/empty"], "--resume: {tmp}/empty holds no ledger"),
        (["up", "{tmp}/net.yaml", "--resume", "--out", "{tmp}/run"], "drop CONFIG"),
    ],
)
def test_network_commands_refuse_in_one_line_without_touching_ray(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needle: str,
) -> None:
    config = write(tmp_path, NETWORK)
    write(tmp_path, "count: 5\nmix: [{kind: sort, size: 100}]\n", "w.yaml")
    assert main(["run", str(config), "--out", str(tmp_path / "run"), *LOCAL]) == 0
    capsys.readouterr()
    tmp = str(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main([a.replace("{tmp}", tmp) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle.replace("{tmp}", tmp) in err, err


@pytest.mark.parametrize(
    "path", sorted(p for p in (ROOT / "examples").glob("*.yaml") if "\nnetwork:" in p.read_text())
)
def test_every_example_network_loads_and_its_genesis_is_made(path: Path, tmp_path: Path) -> None:
    """Registration obeys the take bounds: an example whose operators' takes exceed the
    network's max_take would fail at genesis (paper-live did, until it set max_take)."""
    from cluster.engine.network import create_network

    ledger = create_network(load_config(path), tmp_path / "ledger", fsync=False)
    assert ledger.protocol.round == 0 and ledger.protocol.state.pools
    ledger.close()
