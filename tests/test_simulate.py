"""The simulator: protocol rules with drawn outcomes, reproducible, resumable, one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cluster.analysis.simulate import (
    ExperimentConfig,
    load_experiment,
    run_experiment,
    simulate_point,
)
from cluster.config.schema import ConfigError

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
