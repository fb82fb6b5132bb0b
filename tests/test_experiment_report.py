"""The paper's figures from a simulated sweep: seven valid PNGs on one self-contained page,
and every sweep point's mean and 95 % interval over seeds (table, points.csv, error bars)."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_report import PNG_MAGIC, check_self_contained, find_chromium, images_loaded_in_chromium
from test_simulate import SMALL

from cluster.analysis.experiment_report import (
    PAPER_FIGURES,
    T95,
    Interval,
    band,
    mean_interval,
    t95,
    write_experiment_report,
)
from cluster.analysis.simulate import ExperimentConfig, run_experiment

NAMES = [
    "fig2_active_and_cumulative",
    "fig3_operator_rewards",
    "fig4_reputation_reward",
    "fig5_network",
    "fig6_load_reward",
    "fig7_coprocessor_tasks",
    "fig9_load_by_value",
]
IMAGES = len(NAMES) + 1  # and the sweep's error bars (sweep_intervals.png)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ExperimentConfig.model_validate({**SMALL, "rounds": 30})
    out = tmp_path_factory.mktemp("experiment") / "sim"
    run_experiment(config, out, progress=False)
    return write_experiment_report(out)


def png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and b"IEND" in data[-12:], path
    return int.from_bytes(data[16:20], "big")


def check_page(path: Path) -> str:
    """Eight data URIs (seven figures and the error bars), one caption each, nothing external."""
    return check_self_contained(path, IMAGES)


def test_seven_figures_and_a_self_contained_page(report: Path) -> None:
    assert [f.name for f in PAPER_FIGURES] == NAMES
    assert png_width(report.parent / "figures" / "sweep_intervals.png") > 500
    assert report.name == "report.html"
    for name in NAMES:
        assert png_width(report.parent / "figures" / f"{name}.png") > 500, name  # not "no data"
    page = check_page(report)
    assert page.count("Paper Fig.") == len(NAMES) and page.count("Ours:") == len(NAMES)
    assert "<th>active_operators_final</th>" in page  # the sweep table
    assert "s = 0.01" in page and "s = 0.5" in page
    assert "Pearson r" in page and "coefficient of variation" in page


def test_missing_data_draws_placeholders(tmp_path: Path) -> None:
    report = write_experiment_report(tmp_path)
    check_page(report)
    for name in [*NAMES, "sweep_intervals"]:
        assert png_width(tmp_path / "figures" / f"{name}.png") == 500, name
    assert "No summary.json" in report.read_text()


@pytest.mark.skipif(find_chromium() is None, reason="no chromium binary on PATH")
def test_every_image_loads_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    assert images_loaded_in_chromium(report, tmp_path) == (IMAGES, IMAGES)


# --- intervals over seeds ---------------------------------------------------------------------


def test_t_table_known_values() -> None:
    assert len(T95) == 30
    assert (t95(1), t95(2), t95(4), t95(9), t95(30)) == (12.706, 4.303, 2.776, 2.262, 2.042)
    assert t95(31) == t95(1000) == 1.96  # the normal's quantile beyond the table
    assert all(a > b for a, b in itertools.pairwise(T95))  # falls towards 1.96
    with pytest.raises(ValueError, match="degree"):
        t95(0)


def test_t_table_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for dof in range(1, 31):
        assert t95(dof) == round(float(stats.t.ppf(0.975, dof)), 3), dof


def test_mean_interval_known_values() -> None:
    # 1..5: mean 3, s = sqrt(2.5), half = 2.776 * sqrt(2.5 / 5) = 1.96293...
    i = mean_interval([1, 2, 3, 4, 5])
    assert i is not None and i.n == 5 and i.mean == 3.0
    half = 2.776 * math.sqrt(0.5)
    assert i.low == pytest.approx(3 - half) and i.high == pytest.approx(3 + half)
    assert i.half == pytest.approx(half)
    assert i.show(".2f") == "3.00 [1.04, 4.96]"
    # Two values: t(1) = 12.706, s = |a - b| / sqrt(2), half = 12.706 * |a - b| / 2.
    two = mean_interval([10.0, 12.0])
    assert two is not None and two.mean == 11.0
    assert two.half == pytest.approx(12.706)
    # Identical values: a zero-width interval.
    assert mean_interval([7, 7, 7]) == Interval(7.0, 7.0, 7.0, 3)
    # 40 values: 1.96 beyond 30 degrees of freedom.
    many = mean_interval([0, 1] * 20)
    assert many is not None
    s = math.sqrt(sum((v - 0.5) ** 2 for v in [0, 1] * 20) / 39)
    assert many.half == pytest.approx(1.96 * s / math.sqrt(40))


def test_one_seed_has_no_interval_and_missing_values_are_dropped() -> None:
    one = mean_interval([0.25])
    assert one == Interval(0.25, None, None, 1)
    assert one.half is None and one.show(".3f") == "0.250"  # the value alone
    assert mean_interval([None, float("nan"), 2.0, 4.0]) == mean_interval([2.0, 4.0])
    assert mean_interval([]) is None and mean_interval([None, float("nan")]) is None


def test_band_is_the_interval_of_every_column() -> None:
    samples = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 13.0], [6.0, 11.0]])
    mean, low, high = band(samples)
    for k in range(2):
        i = mean_interval(samples[:, k])
        assert i is not None
        assert (mean[k], low[k], high[k]) == pytest.approx((i.mean, i.low, i.high))
    mean, low, high = band(samples[:1])  # one seed: the value as both bounds
    assert list(mean) == list(low) == list(high) == [1.0, 10.0]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ExperimentConfig.model_validate({**SMALL, "rounds": 20, "seeds": 3})
    out = tmp_path_factory.mktemp("seeded") / "sim"
    run_experiment(config, out, progress=False)
    return write_experiment_report(out)


def read_points(out: Path) -> list[dict[str, str]]:
    with (out / "points.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_points_csv_has_the_mean_and_interval_of_every_metric(seeded: Path) -> None:
    out = seeded.parent
    rows = read_points(out)
    assert [r["slash_fraction"] for r in rows] == ["10000", "500000"]
    assert [r["slashing"] for r in rows] == ["0.01", "0.5"] and {r["seeds"] for r in rows} == {"3"}
    sweep = json.loads((out / "summary.json").read_text())["sweep"]
    for row in rows:
        mine = [s for s in sweep if str(s["slash_fraction"]) == row["slash_fraction"]]
        for key in ("cumulative_reward_final", "gini_rewards", "active_operators_final"):
            want = mean_interval(s[key] for s in mine)
            assert want is not None and want.low is not None and want.high is not None
            assert float(row[f"{key}_mean"]) == pytest.approx(want.mean, abs=1e-6)
            assert float(row[f"{key}_low"]) == pytest.approx(want.low, abs=1e-6)
            assert float(row[f"{key}_high"]) == pytest.approx(want.high, abs=1e-6)
        for key in (
            "active_at_2",
            "active_at_5",
            "active_at_10",
            "operator_audit_faults",
            "coprocessor_tasks_reward_corr",
            "coprocessor_mean_load",
        ):
            low, mean, high = (float(row[f"{key}_{p}"]) for p in ("low", "mean", "high"))
            assert low <= mean <= high, key


def test_report_shows_intervals_in_its_table_and_error_bars(seeded: Path) -> None:
    page = check_page(seeded)
    assert "(3 seeds)" in page and "95 %" in page and "points.csv" in page
    assert "<th>active_operators_final</th>" in page  # every seed's row still there
    assert png_width(seeded.parent / "figures" / "sweep_intervals.png") > 500
    assert "mean of 3 seeds [95 % interval]" in page  # Figure 2's caption
    assert "over 3 seeds" in page  # Figure 4's per-seed correlation


def test_one_seed_points_csv_has_no_bounds(report: Path) -> None:
    rows = read_points(report.parent)
    assert len(rows) == 2 and {r["seeds"] for r in rows} == {"1"}
    for row in rows:
        assert row["gini_rewards_mean"]
        assert row["gini_rewards_low"] == row["gini_rewards_high"] == ""
    page = report.read_text()
    table = page.split("<h2>Sweep</h2>")[1].split("<figure")[0]
    assert "(1 seed)" in table and "[" not in table  # the values alone
