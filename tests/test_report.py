"""The run report: figures as valid PNGs, one self-contained HTML page, loaded by Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cluster.analysis.report import FIGURES, write_report
from cluster.cli import main
from cluster.config.schema import RunConfig
from cluster.runtime.runner import run_cluster
from protocol import Params
from protocol.ledger import Ledger

NETWORK = """
seed: 5
network:
  operators:
    - {name: op-a, stake: 500, reward_cut: 100000, fee_share: 900000}
    - {name: op-b, stake: 300}
  delegators: {count: 12, stake_min: 1, stake_max: 50}
  coprocessors:
    - {name: cop-a, collateral: 100, capacity: 8}
    - {name: cop-bad, collateral: 100, capacity: 8, cost_ppm: 10000, fault_rate: 0.5}
  params: {unbonding_period: 2, slash_fraction: 100000}
  market: {batch_size: 20, clock: {every_tasks: 20}}
workload:
  count: 80
  mix: [{kind: sort, size: 2000}, {kind: matmul, size: 48}]
"""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URI = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"')


def make_run(directory: Path, text: str = NETWORK) -> Path:
    config = RunConfig.model_validate(yaml.safe_load(text))
    run_cluster(config, directory, local=True, paced=False, progress=False)
    return directory


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(make_run(tmp_path_factory.mktemp("report") / "run"))


def check_report(path: Path) -> str:
    """Every figure is a valid PNG and embedded once; nothing external is referenced."""
    assert path.name == "report.html"
    for spec in FIGURES:
        png = path.parent / "figures" / f"{spec.name}.png"
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and b"IEND" in data[-12:], png
    return check_self_contained(path, len(FIGURES))


def check_self_contained(path: Path, figures: int) -> str:
    """``figures`` embedded images, one caption each, and nothing loaded from elsewhere."""
    page = path.read_text()
    assert len(DATA_URI.findall(page)) == figures == page.count("<img ")
    charts = page.count('<figure class="chart">')  # inline SVG (the distribution section)
    assert page.count("<figcaption>") == figures + charts
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page):
        assert ref.startswith("data:"), ref
    assert "http://" not in page and "https://" not in page and "url(" not in page
    return page


def test_report_embeds_every_figure(report: Path) -> None:
    page = check_report(report)
    assert "state_hash" in page and "conservation_ok" in page  # the summary table
    for measure in ("Gini", "Nakamoto 1/3", "Nakamoto 1/2", "HHI", "Theil", "top-5 share"):
        assert f"<th>{measure}</th>" in page
    assert "fee-funded" in page and "issuance-funded" in page
    # The explorer's distribution section, at the top: every staker, now and over rounds.
    top = page.index("<h2>Summary</h2>")
    assert 0 < page.index("Concentration now") < top and "Lorenz curves of stake" in page[:top]
    assert page.count('<figure class="chart"><svg') >= 4


def test_a_run_without_coprocessors_still_reports(tmp_path: Path) -> None:
    text = NETWORK.split("  coprocessors:")[0] + NETWORK.split("fault_rate: 0.5}\n")[1]
    report = write_report(make_run(tmp_path / "run", text))
    check_report(report)
    for name in ("clearing_margin", "coprocessor_load"):  # small "no data" placeholders
        header = (report.parent / "figures" / f"{name}.png").read_bytes()[16:24]
        assert int.from_bytes(header[:4], "big") == 500, name


def test_report_command(report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(report.parent)]) == 0
    assert str(report) in capsys.readouterr().out
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not a run directory" in err and "\n" not in err


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


def images_loaded_in_chromium(report: Path, tmp_path: Path) -> tuple[int, int]:
    """Open ``report`` in headless Chromium; return (images loaded, <img> tags in the DOM)."""
    chromium = find_chromium()
    assert chromium is not None
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    command += [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    command += ["--dump-dom", report.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body, done.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(0))
    assert loaded, f"the load script did not run: {body.group(0)}"
    return int(loaded.group(1)), done.stdout.count("<img ")


@pytest.mark.skipif(find_chromium() is None, reason="no chromium binary on PATH")
def test_every_image_loads_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    assert images_loaded_in_chromium(report, tmp_path) == (len(FIGURES), len(FIGURES))


def test_a_bare_ledger_reports_with_placeholders(tmp_path: Path) -> None:
    """No rounds, no rounds.csv, tasks.csv or summary.json: every figure is "no data"."""
    Ledger.create(tmp_path / "ledger", Params(), {"a": 1}, fsync=False).close()
    report = write_report(tmp_path)
    check_report(report)
    assert "No summary.json" in report.read_text()
