"""``stakeray simulate --workers N``: the sweep's points as Ray tasks, same bytes as serial.

The Ray tests join the session's local Ray (``ray_cluster`` in conftest, 2 CPUs);
``ray_sweep`` finds it connected and leaves it up. The serial reference run is
made once per module, in this process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cluster.analysis.simulate import (
    ExperimentConfig,
    PointResult,
    Run,
    load_experiment,
    run_experiment,
)
from cluster.cli import main
from cluster.config.schema import ConfigError
from cluster.runtime.errors import RunError
from cluster.runtime.sweep import RaySweep, fetch, ray_sweep

TINY = {
    "name": "tiny",
    "seed": 7,
    "seeds": 2,
    "rounds": 12,
    "operators": {"count": 10, "stake": [1000, 4000], "reliability": [0.85, 0.95]},
    "coprocessors": {"count": 6, "stake": [500, 2000], "reliability": [0.6, 0.99]},
    "tasks": {"per_round": 80},
    "params": {
        "max_active_operators": 10,
        "min_operator_bond": 500 * 10**18,
        "audit_rate": 500_000,
        "inflation_change": 0,
    },
    "sweep": {"slash_fraction": [10_000, 500_000]},
}
OUTPUTS = ("rewards.csv", "rounds.csv")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("experiment") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def serial(experiment: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "sim"
    run_experiment(load_experiment(experiment), out, progress=False)
    return out


def rows(out: Path) -> list[dict[str, Any]]:
    sweep = json.loads((out / "summary.json").read_text())["sweep"]
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in sweep]


def point_files(out: Path) -> list[Path]:
    return sorted((out / "points").iterdir())


def assert_same(out: Path, reference: Path) -> None:
    """Same sweep rows (but the time), CSV bytes and per-point files as ``reference``."""
    assert rows(out) == rows(reference)
    assert len(rows(out)) == 4
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert [p.name for p in point_files(out)] == [p.name for p in point_files(reference)]
    for mine, theirs in zip(point_files(out), point_files(reference), strict=True):
        if mine.suffix == ".json":
            a, b = json.loads(mine.read_text()), json.loads(theirs.read_text())
            a["row"].pop("elapsed_s"), b["row"].pop("elapsed_s")
            assert a == b, mine.name
        else:
            with np.load(mine) as x, np.load(theirs) as y:
                assert x.files == y.files
                for key in x.files:
                    assert np.array_equal(x[key], y[key]), (mine.name, key)


class Recording:
    """A runner that records what it was asked to run and hands it on (or to Ray)."""

    def __init__(self, inner: Any, stop_after: int | None = None) -> None:
        self.inner = inner
        self.stop_after = stop_after
        self.asked: list[Run] = []

    def __call__(
        self, config: ExperimentConfig, runs: list[Run]
    ) -> Iterator[tuple[int, PointResult]]:
        self.asked = list(runs)
        inner = self.inner(config, runs)
        try:
            for n, item in enumerate(inner):
                if self.stop_after is not None and n >= self.stop_after:
                    raise KeyboardInterrupt  # the user's ^C while tasks are in flight
                yield item
        finally:
            inner.close()


def reversed_serial(config: ExperimentConfig, runs: list[Run]) -> Iterator[tuple[int, PointResult]]:
    """Points finishing last-first (no Ray): the outputs must not care."""
    from cluster.analysis.simulate import simulate_point

    for i in reversed(range(len(runs))):
        yield i, simulate_point(config, *runs[i], None)


def test_completion_order_does_not_matter(experiment: Path, serial: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    run_experiment(load_experiment(experiment), out, progress=False, runner=reversed_serial)
    assert_same(out, serial)


def test_workers_on_ray_same_bytes_as_serial(
    ray_cluster: object, experiment: Path, serial: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sim"
    argv = ["simulate", str(experiment), "--out", str(out), "--workers", "2", "--quiet"]
    assert main(argv) == 0
    assert_same(out, serial)
    assert (out / "report.html").exists()


def test_resume_on_ray_runs_only_the_missing_point(
    ray_cluster: object, experiment: Path, serial: Path, tmp_path: Path
) -> None:
    config = load_experiment(experiment)
    out = tmp_path / "sim"
    # Interrupted after the first point came back: its files are on disk already.
    first = Recording(RaySweep(2), stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, out, progress=False, runner=first)
    assert len(first.asked) == 4
    assert len(point_files(out)) == 2 and not (out / "summary.json").exists()
    # Resume: the three others run; then lose one point and resume again.
    with ray_sweep(2) as sweep:
        second = Recording(sweep)
        run_experiment(config, out, progress=False, runner=second)
        assert len(second.asked) == 3
        assert_same(out, serial)
        lost = out / "points" / "slash_fraction=500000-seed=0"
        lost.with_suffix(".json").unlink()
        lost.with_suffix(".npz").unlink()
        kept = {p.name: p.stat().st_mtime_ns for p in point_files(out)}
        third = Recording(sweep)
        run_experiment(config, out, progress=False, runner=third)
    assert third.asked == [("slash_fraction", 500_000, 0)]
    assert {p.name: p.stat().st_mtime_ns for p in point_files(out) if p.name in kept} == kept
    assert_same(out, serial)


def test_a_failed_point_is_one_line_naming_it(ray_cluster: object) -> None:
    import ray

    @ray.remote(num_cpus=0)
    def refuse() -> None:
        raise ConfigError("params: something refused")

    @ray.remote(num_cpus=0)
    def crash() -> None:
        raise ZeroDivisionError("division by zero")

    runs: list[Run] = [("slash_fraction", 5, 1), ("slash_fraction", 7, 0)]
    with pytest.raises(RunError) as err:
        fetch([refuse.remote(), refuse.remote()], runs)
    assert str(err.value) == "point slash_fraction=5 seed 1: params: something refused"
    with pytest.raises(RunError) as err:
        fetch([crash.remote()], runs[1:])
    assert str(err.value) == "point slash_fraction=7 seed 0: ZeroDivisionError: division by zero"


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_must_be_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    out = tmp_path / "sim"
    with pytest.raises(SystemExit) as err:
        main(["simulate", "x.yaml", "--out", str(out), "--workers", workers])
    assert err.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and "--workers" in stderr, stderr
    assert sum(line.startswith("stakeray") for line in stderr.splitlines()) == 1
    assert not out.exists()
