"""The paper's figures from a simulated sweep: seven valid PNGs on one self-contained page."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import PNG_MAGIC, check_self_contained, find_chromium, images_loaded_in_chromium
from test_simulate import SMALL

from cluster.analysis.experiment_report import PAPER_FIGURES, write_experiment_report
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
    """Seven data URIs, one caption each, nothing external."""
    return check_self_contained(path, len(NAMES))


def test_seven_figures_and_a_self_contained_page(report: Path) -> None:
    assert [f.name for f in PAPER_FIGURES] == NAMES
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
    for name in NAMES:
        assert png_width(tmp_path / "figures" / f"{name}.png") == 500, name
    assert "No summary.json" in report.read_text()


@pytest.mark.skipif(find_chromium() is None, reason="no chromium binary on PATH")
def test_every_image_loads_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    assert images_loaded_in_chromium(report, tmp_path) == (len(NAMES), len(NAMES))
