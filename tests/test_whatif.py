"""What-if previews (``stakeray whatif``): a run's ledger forked in memory, run forward twice.

The run is made once (``stakeray simulate`` of a small network: drawn outcomes, a
run directory as ``stakeray run`` writes it); every preview must leave it unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cluster.analysis.whatif import (
    WhatIfError,
    parse_changes,
    tasks_per_round,
    whatif,
    whatif_proposal,
)
from cluster.cli import main
from cluster.config.schema import load_config
from protocol import Params
from protocol.ledger import Ledger

NETWORK = """
seed: 3
network:
  operators:
    - {name: op-a, stake: 500, reward_cut: 100000, fee_share: 900000}
    - {name: op-b, stake: 300, reward_cut: 50000, fee_share: 850000, miss_rate: 0.2}
  delegators: {count: 12, stake_min: 1, stake_max: 50}
  coprocessors:
    - {name: cop-a, collateral: 100, capacity: 8}
    - {name: cop-bad, collateral: 100, capacity: 8, cost_ppm: 10000, fault_rate: 0.3}
  params: {unbonding_period: 2, slash_fraction: 100000}
  market: {batch_size: 20, clock: {every_tasks: 20}, self_execute_max_size: {sort: 4000}}
workload:
  count: 100
  fees: {shape: lognormal, mean: 1, sigma: 0.5}
  mix: [{kind: sort, size: 2000}, {kind: matmul, size: 48}, {kind: hashsearch, size: 256}]
"""
ROUNDS = "6"


def tree_hash(directory: Path) -> str:
    """A hash of every file's path and bytes (and every directory's path) under ``directory``."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("whatif")
    config = root / "net.yaml"
    config.write_text(NETWORK)
    out = root / "run"
    assert main(["simulate", str(config), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def proposal_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A run whose ledger holds an open proposal to raise inflation (made by op-a)."""
    root = tmp_path_factory.mktemp("whatif-proposal")
    config = root / "net.yaml"
    config.write_text(NETWORK)
    out = root / "run"
    assert main(["simulate", str(config), "--out", str(out), "--quiet"]) == 0
    with Ledger.open(out / "ledger") as ledger:
        pid = ledger.protocol.propose("op-a", {"inflation": 2_000_000, "inflation_change": 0})
        ledger.commit()
    return out, pid


def whatif_cli(run: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["whatif", str(run), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_same_arguments_same_output_and_the_run_directory_is_unchanged(
    run_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    before = tree_hash(run_dir)
    args = ["--set", "inflation_change=5000", "--set", "max_take=200000", "--rounds", ROUNDS]
    outputs, tables = [], []
    csv_path = tmp_path / "rows.csv"
    for _ in range(2):
        code, out, err = whatif_cli(run_dir, capsys, *args, "--seed", "7", "--csv", str(csv_path))
        assert code == 0, err
        outputs.append(out)
        tables.append(csv_path.read_bytes())
    assert outputs[0] == outputs[1] and tables[0] == tables[1]
    assert "inflation_change 500 -> 5000" in outputs[0] and "Gini of rewards" in outputs[0]
    assert tree_hash(run_dir) == before
    # Every operator and delegator has a row; amounts in base units.
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("staker,role,operator,stake,rewards_today,rewards_proposed")
    assert sum(r.split(",")[1] == "operator" for r in rows[1:]) == 2
    assert sum(r.split(",")[1] == "delegator" for r in rows[1:]) == 12
    # Another seed draws another workload.
    code, other, _ = whatif_cli(run_dir, capsys, *args, "--seed", "8")
    assert code == 0 and other != outputs[0]
    assert tree_hash(run_dir) == before


def test_todays_values_give_identical_projections(run_dir: Path) -> None:
    params = load_config(run_dir / "config.json").network.protocol_params()
    same = {"inflation_change": params.inflation_change, "max_take": params.max_take}
    preview = whatif(run_dir, same, 8)
    assert preview.today.state_hash == preview.proposed.state_hash
    for row in preview.rows():
        assert row["rewards_today"] == row["rewards_proposed"] and row["rewards_change"] == 0
        assert row["fees_today"] == row["fees_proposed"] and row["fees_change"] == 0
    summary = preview.summary()
    assert all(value == 0 for value in summary["change"].values())
    assert summary["today"]["minted"] > 0 and summary["today"]["settled"] > 0


@pytest.mark.parametrize(
    ("key", "factor"), [("inflation_change", 20), ("inflation", 3)], ids=["change", "rate"]
)
def test_more_inflation_projects_more_issuance_rewards(
    run_dir: Path, key: str, factor: int
) -> None:
    params = load_config(run_dir / "config.json").network.protocol_params()
    preview = whatif(run_dir, {key: getattr(params, key) * factor}, 8)
    today, proposed = preview.today, preview.proposed
    assert proposed.minted > today.minted
    assert proposed.inflation_ppb > today.inflation_ppb
    stakers = [s.address for s in preview.stakers]
    assert sum(proposed.rewards[a] for a in stakers) > sum(today.rewards[a] for a in stakers)
    for s in preview.stakers:  # every staker's projected issuance rewards grow
        assert proposed.rewards[s.address] >= today.rewards[s.address]
    # The rewards are the protocol's pending-stake growth: they add up to the issuance
    # (no treasury cut here), short only of rounding dust.
    for side in (today, proposed):
        total = sum(side.rewards[a] for a in stakers)
        assert 0 <= side.minted - total <= len(stakers) * preview.rounds
        assert side.fees_credited > 0
    # The same workload under both: only the parameters differ.
    assert today.tasks == proposed.tasks == preview.rounds * preview.tasks_per_round


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "bogus=1"], "--set bogus: not a protocol parameter"),
        (["--set", "inflaton=1"], "did you mean inflation?"),
        (["--set", "max_take=lots"], "--set max_take: 'lots' is not a number"),
        (["--set", "max_take=7000000"], "params.max_take"),
        (["--set", "max_take"], "expected KEY=VALUE"),
        (["--proposal", "99"], "--proposal 99: no such proposal"),
        ([], "give --set KEY=VALUE"),
    ],
)
def test_a_bad_change_is_one_line_exit_2(
    run_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    before = tree_hash(run_dir)
    code, out, err = whatif_cli(run_dir, capsys, *args, "--rounds", "2")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err, err
    assert tree_hash(run_dir) == before


def test_not_a_run_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = whatif_cli(tmp_path, capsys, "--set", "inflation=1")
    assert code == 2 and err.count("\n") == 1 and "not a stakeray run directory" in err


def test_set_values_parse_as_literals() -> None:
    assert parse_changes(["max_take=100_000", "slash_delegators=true", "w_stake=0.5"]) == {
        "max_take": 100_000,
        "slash_delegators": True,
        "w_stake": 0.5,
    }
    assert parse_changes(['gas={"alpha": 0.9}']) == {"gas": {"alpha": 0.9}}
    with pytest.raises(WhatIfError, match="nan"):
        parse_changes(["min_reputation=nan"])


def test_a_proposal_is_previewed_as_if_it_passed_now(
    proposal_run: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    run, pid = proposal_run
    before = tree_hash(run)
    preview = whatif_proposal(run, pid, 12)  # past the vote's end (voting_period 10)
    assert preview.changes == {"inflation": 2_000_000, "inflation_change": 0}
    assert preview.proposed.minted > preview.today.minted
    assert preview.proposed.params.inflation_change == 0
    assert preview.today.params == Params.build(**load_config(run / "config.json").network.params)
    # The same as setting its changes by hand (unvoted, the proposal fails in both forks).
    by_hand = whatif(run, preview.changes, 12)
    assert by_hand.rows() == preview.rows()
    code, out, err = whatif_cli(run, capsys, "--proposal", str(pid), "--rounds", "12")
    assert code == 0, err
    assert f"what-if proposal {pid}: inflation" in out
    assert tree_hash(run) == before
    # Only an open proposal: once executed or defeated there is nothing to preview.
    with Ledger.open(run / "ledger") as ledger:
        for _ in range(11):
            ledger.protocol.initialize_round()
        ledger.commit()
    with pytest.raises(WhatIfError, match="defeated, not open"):
        whatif_proposal(run, pid, 2)


def test_a_time_clock_uses_the_runs_mean_tasks_per_round(run_dir: Path) -> None:
    config = load_config(run_dir / "config.json")
    preview = whatif(run_dir, {"inflation": 1}, 1)
    assert (preview.tasks_per_round, preview.clock) == (20, "market.clock.every_tasks")
    data = json.loads((run_dir / "config.json").read_text())
    data["network"]["market"]["clock"] = {"every_s": 1.0}
    timed = type(config).model_validate(data)
    ledger = Ledger.replay(run_dir / "ledger")
    count, source = tasks_per_round(timed, ledger)
    assert count == round(ledger.state.next_task_id / ledger.round) and "mean" in source
