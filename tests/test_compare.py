"""Live against simulated: one network run with real kernels and with drawn outcomes.

The bounds are derived in docs/experiments.md ("Live against simulated"), not tuned:
without faults the two ledgers are identical; with faults, each coprocessor's slash
rate is a binomial draw of its fault rate in both runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.analysis.compare import compare, format_comparison, slash_rate_bound
from cluster.cli.app import main

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
COUNT = "300"


def live_and_simulated(tmp_path: Path, config: Path) -> tuple[Path, Path]:
    live, sim = tmp_path / "live", tmp_path / "sim"
    run = ["run", str(config), "--out", str(live), "--local", "--no-pace", "--count", COUNT]
    assert main([*run, "--quiet"]) == 0
    assert main(["simulate", str(config), "--out", str(sim), "--count", COUNT, "--quiet"]) == 0
    return live, sim


def test_without_faults_live_and_simulated_ledgers_are_identical(tmp_path: Path) -> None:
    """Execution is the only difference and every result verifies: divergence 0."""
    honest = tmp_path / "honest.yaml"
    honest.write_text(QUICKSTART.read_text().replace("fault_rate: 0.3", "fault_rate: 0.0"))
    live, sim = live_and_simulated(tmp_path, honest)
    result = compare(live, sim)
    assert result["state_hash"][0] == result["state_hash"][1]
    for role in ("operator", "coprocessor"):
        assert result["roles"][role]["divergence"] == 0.0
    assert "ledgers: identical" in format_comparison(result)


def test_with_faults_each_slash_rate_is_within_its_binomial_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live, sim = live_and_simulated(tmp_path, QUICKSTART)
    capsys.readouterr()
    assert main(["compare", str(live), str(sim)]) == 0
    table = capsys.readouterr().out
    assert "gpu-faulty" in table and "divergence" in table
    result = compare(live, sim)
    rates = {"gpu-a": 0.0, "gpu-b": 0.0, "gpu-c": 0.0, "gpu-faulty": 0.3}
    for p in result["roles"]["coprocessor"]["participants"]:
        for side in ("live", "sim"):
            slashes, settled = p[f"{side}_slashes"], p[f"{side}_tasks"]
            low, high = slash_rate_bound(slashes + settled, rates[p["name"]])
            rate = slashes / max(1, slashes + settled)
            assert low <= rate <= high, (side, p)
    assert sum(p["sim_slashes"] for p in result["roles"]["coprocessor"]["participants"]) > 0
    page = (live / "report.html").read_text()  # the report carries the comparison
    assert "Live against simulated" in page and "gpu-faulty" in page
    for summary in (live, sim):
        assert json.loads((summary / "summary.json").read_text())["conservation_ok"] is True


def test_compare_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2


def test_a_faulty_operator_is_caught_by_audits_in_a_live_run(tmp_path: Path) -> None:
    """An operator's own wrong runs are found only by audits (is_audit_sample): its tasks
    are settled then marked audited, it is slashed, and the run directory and verify agree."""
    text = QUICKSTART.read_text().replace(
        "{name: op-alpha, stake: 5000, reward_cut: 100000, fee_share: 900000}",
        "{name: op-alpha, stake: 5000, reward_cut: 100000, fee_share: 900000, fault_rate: 0.5}",
    )
    text = text.replace("slash_fraction: 100000}", "slash_fraction: 100000, audit_rate: 500000}")
    config = tmp_path / "audited.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    run = ["run", str(config), "--out", str(out), "--local", "--no-pace", "--count", COUNT]
    assert main([*run, "--quiet"]) == 0
    rows = (out / "tasks.csv").read_text().splitlines()[1:]
    audited = [r for r in rows if r.split(",")[8] == "audited"]
    assert audited and all(r.split(",")[3] == "op-alpha" for r in audited)
    result = compare(out, out)
    slashes = {p["name"]: p["live_slashes"] for p in result["roles"]["operator"]["participants"]}
    assert slashes["op-alpha"] == len(audited) and slashes["op-beta"] == 0
    assert main(["verify", str(out)]) == 0
