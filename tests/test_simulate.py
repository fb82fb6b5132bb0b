"""The simulator: the market engine with drawn outcomes, reproducible, resumable, one-line
errors, and totals that reconcile with the protocol it ran on."""

from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cluster.analysis.simulate import (
    CLIENT,
    ExperimentConfig,
    load_experiment,
    run_experiment,
    run_point,
    simulate_point,
)
from cluster.config.schema import ConfigError
from cluster.engine.execution import draw_outcome, draw_outcomes
from protocol.state import Outcome
from protocol.units import TOKEN

SMALL = {
    "name": "small",
    "seed": 5,
    "rounds": 40,
    "operators": {"count": 12, "stake": [1000, 4000], "reliability": [0.9, 0.95]},
    "coprocessors": {"count": 8, "stake": [500, 2000], "reliability": [0.6, 0.99]},
    "tasks": {"per_round": 120},
    "params": {
        "max_active_operators": 12,
        "min_operator_bond": 500 * 10**18,
        "audit_rate": 500_000,
        "inflation_change": 0,
    },
    "sweep": {"slash_fraction": [10_000, 500_000]},
}


def config(**changes: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**SMALL, **changes})


def test_harsher_slashing_leaves_fewer_active_operators() -> None:
    mild = simulate_point(config(), "slash_fraction", 10_000, 0).row
    harsh = simulate_point(config(), "slash_fraction", 500_000, 0).row
    assert mild["active_operators_final"] == 12
    assert harsh["active_operators_final"] < mild["active_operators_final"]
    assert mild["tasks"] == 40 * 120 and harsh["slashing"] == 0.5


def test_same_seed_same_result_and_other_seed_differs() -> None:
    one = simulate_point(config(), "slash_fraction", 10_000, 0).row
    two = simulate_point(config(), "slash_fraction", 10_000, 0).row
    other = simulate_point(config(), "slash_fraction", 10_000, 1).row
    for row in (one, two, other):
        row.pop("elapsed_s")
    assert one == two and one != other


def test_outputs_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    summary = run_experiment(config(), out, progress=False)
    keys = {
        "slashing",
        "operators",
        "coprocessors",
        "rounds",
        "tasks",
        "active_operators_final",
        "cumulative_reward_final",
        "reputation_reward_corr",
        "gini_rewards",
    }
    assert len(summary["sweep"]) == 2 and all(keys <= set(r) for r in summary["sweep"])
    rewards = list(csv.DictReader((out / "rewards.csv").open()))
    assert {"slash_fraction", "role", "id", "total_reward", "reputation"} <= set(rewards[0])
    assert len(rewards) == 2 * (12 + 8)
    rounds = list(csv.DictReader((out / "rounds.csv").open()))
    assert len(rounds) == 2 * 40 and {"active_operators", "cumulative_reward"} <= set(rounds[0])
    # Resuming reuses every finished point: same summary rows, nothing recomputed.
    again = run_experiment(config(), out, progress=False)
    assert [r["elapsed_s"] for r in again["sweep"]] == [r["elapsed_s"] for r in summary["sweep"]]
    assert json.loads((out / "summary.json").read_text())["sweep"] == again["sweep"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("rounds: 10\n", "operators"),
        ("operators: {count: 0}\ncoprocessors: {count: 1}\n", "operators.count"),
        (
            "operators: {count: 1, reliability: [0.9, 1.5]}\ncoprocessors: {count: 1}\n",
            "reliability",
        ),
        ("operators: {count: 1}\ncoprocessors: {count: 1}\nsweep: {bogus: [1]}\n", "sweep"),
        (
            "operators: {count: 1}\ncoprocessors: {count: 1}\nsweep: {slash_fraction: [2000000]}\n",
            "slash_fraction",
        ),
    ],
)
def test_bad_experiment_files_name_the_field(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_reputation_following_delegators_concentrate_stake() -> None:
    """The future-work loop: bonds that follow reputation move, and stake concentrates."""
    delegators = {"count": 60, "stake": [100, 500], "redelegate_share": 0.5}
    base = config(delegators=delegators, sweep={"redelegate_every": [0, 5]})
    static = simulate_point(base, "redelegate_every", 0, 0).row
    moving = simulate_point(base, "redelegate_every", 5, 0).row
    assert static["redelegations"] == 0 and moving["redelegations"] > 0
    assert moving["gini_stake_final"] > static["gini_stake_final"]
    assert moving["nakamoto_stake_final"] <= static["nakamoto_stake_final"]


def test_a_sweep_is_reproducible(tmp_path: Path) -> None:
    """The same configuration writes the same outputs (but the times), byte for byte."""
    one, two = tmp_path / "one", tmp_path / "two"
    first = run_experiment(config(), one, progress=False)
    second = run_experiment(config(), two, progress=False)
    for summary in (first, second):
        summary.pop("elapsed_s")
        for row in summary["sweep"]:
            row.pop("elapsed_s")
    assert first == second
    for name in ("rewards.csv", "rounds.csv"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    for mine in sorted((one / "points").glob("*.npz")):
        with np.load(mine) as a, np.load(two / "points" / mine.name) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                assert np.array_equal(a[key], b[key]), (mine.name, key)


def by_role(participants: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return [r for r in participants if r["role"] == role]


def test_totals_reconcile_with_the_protocol() -> None:
    """What a point reports is what its protocol holds: no second set of books."""
    cfg = config(params={**SMALL["params"], "coprocessor_issuance_share": 50_000})
    result, p = run_point(cfg, "slash_fraction", 100_000, 0)
    state = p.state
    cops = by_role(result.participants, "coprocessor")
    ops = by_role(result.participants, "operator")
    # A coprocessor's collateral moved into the protocol at registration: its whole
    # liquid balance is what it earned (fee - price, and the uptime incentive).
    for row in cops:
        assert row["total_reward"] == round(p.balance(row["id"]) / TOKEN, 6), row["id"]
        c = state.coprocessors[row["id"]]
        assert row["stake"] == round((c.free + c.locked) / TOKEN, 6)
        assert row["slashes"] == c.slashes and row["tasks"] == c.wins
    assert sum(r["issuance"] for r in cops) > 0
    # Operators' fees are the fees the protocol credited (nothing was withdrawn).
    fees = sum(r["total_reward"] - r["issuance"] for r in ops)
    assert fees == pytest.approx(state.totals.fees / TOKEN, abs=1e-5 * len(ops))
    for row in ops:
        assert row["stake"] == round(p.operator_stake(row["id"]) / TOKEN, 6)
        assert row["reputation"] == round(p.reputation(row["id"]), 6)
    # Operators are slashed by audits only; coprocessors by safety faults only.
    audited = state.outcome_counts.get(Outcome.AUDITED, 0)
    assert audited > 0 and sum(r["slashes"] for r in ops) == audited
    assert sum(r["operator_slashes"] for r in result.rounds) == audited
    assert sum(r["coprocessor_failures"] for r in result.rounds) == sum(r["slashes"] for r in cops)
    # Every task escrowed is open or finished; fees paid in equal what the client lost.
    counts = state.outcome_counts
    assert sum(counts.values()) + len(state.tasks) == result.row["tasks"] == 40 * 120
    series = result.series
    assert series is not None
    assert series["coprocessor_tasks"].sum() == sum(r["tasks"] for r in cops)
    assert series["coprocessor_reward"].sum() == pytest.approx(sum(r["total_reward"] for r in cops))
    assert series["operator_reward"].sum() == pytest.approx(sum(r["total_reward"] for r in ops))
    assert result.rounds[-1]["cumulative_reward"] == result.row["cumulative_reward_final"]
    assert p.balance(CLIENT) > 0


def test_without_audits_no_operator_is_slashed() -> None:
    cfg = config(params={**SMALL["params"], "audit_rate": 0})
    result, p = run_point(cfg, "slash_fraction", 500_000, 0)
    ops = by_role(result.participants, "operator")
    assert all(r["slashes"] == 0 for r in ops)
    assert all(r["active"] == 1 for r in ops) and result.row["active_operators_final"] == 12
    assert p.state.outcome_counts.get(Outcome.AUDITED, 0) == 0
    assert sum(r["slashes"] for r in by_role(result.participants, "coprocessor")) > 0


def test_perfect_reliability_slashes_nobody() -> None:
    cfg = config(
        operators={**SMALL["operators"], "reliability": [1.0, 1.0]},
        coprocessors={**SMALL["coprocessors"], "reliability": [1.0, 1.0]},
    )
    result, p = run_point(cfg, "slash_fraction", 500_000, 0)
    assert all(r["slashes"] == 0 for r in result.participants)
    assert all(r["coprocessor_failures"] == r["operator_slashes"] == 0 for r in result.rounds)
    assert p.state.totals.burned == 0 and result.row["active_operators_final"] == 12
    assert sum(r["tasks"] for r in by_role(result.participants, "coprocessor")) > 0
    assert p.state.outcome_counts[Outcome.SETTLED] == 40 * 120


def test_rewards_csv_has_the_slashing_factor(tmp_path: Path) -> None:
    run_experiment(config(), tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "rewards.csv").open()))
    assert {r["slashing"] for r in rows} == {"0.01", "0.5"}
    for r in rows:
        assert float(r["slashing"]) == int(r["slash_fraction"]) / 1_000_000


def test_batched_draws_equal_one_by_one_draws() -> None:
    rng = np.random.default_rng(3)
    executors = [f"cop-{i:04d}" for i in rng.integers(0, 6, 2000)] + ["op-0001"] * 10
    task_ids = [int(t) for t in rng.integers(0, 10**12, len(executors))]
    attempts = [int(a) for a in rng.integers(0, 12, len(executors))]
    rates = {f"cop-{i:04d}": r for i, r in enumerate([0.0, 0.01, 0.3, 0.5, 0.999, 1.0])}
    drawn = draw_outcomes(41, executors, task_ids, attempts, rates)
    # The rule, stated plainly: the CRC-32 of "seed:executor:task:attempt" over 2**32.
    assert drawn == [
        rates.get(e, 0.0) <= 0.0 or zlib.crc32(f"41:{e}:{t}:{a}".encode()) / 2**32 >= rates[e]
        for e, t, a in zip(executors, task_ids, attempts, strict=True)
    ]
    assert drawn[:50] == [
        draw_outcome(41, e, t, a, rates.get(e, 0.0))
        for e, t, a in zip(executors[:50], task_ids[:50], attempts[:50], strict=True)
    ]
    assert 0 < sum(drawn) < len(drawn)


# --- --seeds and the intervals over seeds -------------------------------------------------------


def write_experiment(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(json.dumps({**SMALL, **changes}))  # JSON is YAML
    return path


def test_seeds_override_runs_every_point_over_n_seeds_and_prints_intervals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cluster.cli import main

    experiment = write_experiment(tmp_path, rounds=8)  # seeds: 1 in the file
    out = tmp_path / "sim"
    assert main(["simulate", str(experiment), "--out", str(out), "--seeds", "3", "--quiet"]) == 0
    sweep = json.loads((out / "summary.json").read_text())["sweep"]
    assert [(r["slash_fraction"], r["seed"]) for r in sweep] == [
        (v, s) for v in (10_000, 500_000) for s in range(3)
    ]
    printed = capsys.readouterr().out
    assert "seeds" in printed and "[95 % CI]" in printed
    rows = {line.split()[0]: line for line in printed.splitlines()}
    assert rows["10000"].split()[1] == "3" and rows["500000"].split()[1] == "3"
    with (out / "points.csv").open() as fh:
        points = list(csv.DictReader(fh))
    assert [p["seeds"] for p in points] == ["3", "3"]
    # More seeds on --resume: only the new ones run; the earlier three are kept.
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*seed=[012].json")}
    argv = ["simulate", str(experiment), "--out", str(out), "--seeds", "4", "--resume", "--quiet"]
    assert main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*seed=[012].json")} == kept
    assert len(json.loads((out / "summary.json").read_text())["sweep"]) == 8


def test_seeds_override_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cluster.cli import main

    experiment = write_experiment(tmp_path, rounds=2)
    for bad in ("0", "1001", "two"):
        with pytest.raises(SystemExit) as exc:
            main(["simulate", str(experiment), "--out", str(tmp_path / "x"), "--seeds", bad])
        assert exc.value.code == 2
        assert "--seeds: must be an integer from 1 to 1,000" in capsys.readouterr().err
    live = Path(__file__).resolve().parent.parent / "examples" / "paper-live.yaml"
    argv = ["simulate", str(live), "--out", str(tmp_path / "y"), "--seeds", "2"]
    assert main(argv) == 2
    assert "--seeds: for experiment sweeps" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_sweep_table_one_row_per_seed_or_mean_and_interval_per_point() -> None:
    from cluster.cli.tables import sweep_table

    def row(value: int, seed: int, active: int, reward: float, corr: float | None) -> dict:
        return {
            "slash_fraction": value,
            "seed": seed,
            "active_operators_final": active,
            "cumulative_reward_final": reward,
            "reputation_reward_corr": corr,
            "gini_rewards": 0.25,
        }

    one = sweep_table(config(), [row(10_000, 0, 12, 100.0, 0.5), row(500_000, 0, 3, 50.0, None)])
    head, _, *lines = one.splitlines()
    assert head.split() == [
        "slash_fraction", "seed", "active", "cum.", "reward", "corr(rep,rew)", "gini"
    ]  # fmt: skip
    assert lines[0].split() == ["10000", "0", "12", "100.0", "0.500", "0.250"]
    assert lines[1].split() == ["500000", "0", "3", "50.0", "-", "0.250"]
    # Five seeds of 1..5 active: mean 3, half-width t(4) * sqrt(2.5 / 5) = 1.963.
    many = [row(10_000, s, s + 1, 10.0, 0.1 * s) for s in range(5)]
    many += [row(500_000, s, 2, 20.0, None) for s in range(5)]
    head, _, first, second = sweep_table(config(), many).splitlines()
    assert "seeds" in head and "active [95 % CI]" in head
    assert first.split()[:4] == ["10000", "5", "3.0", "[1.0,"] and "5.0]" in first
    assert "10.0 [10.0, 10.0]" in first and "0.200 [0.004, 0.396]" in first
    assert second.split()[:2] == ["500000", "5"] and "2.0 [2.0, 2.0]" in second
    assert second.split()[-4] == "-"  # no correlation in any seed
