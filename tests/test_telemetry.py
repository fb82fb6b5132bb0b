"""Cluster metrics: the table is consistent and the in-memory counts follow the calls."""

from __future__ import annotations

import re

from cluster.engine.telemetry import COORDINATOR_METRICS, METRICS, OPERATOR_HOST_METRICS, Telemetry


def test_every_metric_has_one_recorder_and_a_prometheus_name() -> None:
    recorded = [*COORDINATOR_METRICS, *OPERATOR_HOST_METRICS]
    assert sorted(recorded) == sorted(METRICS)  # each recorded once, none orphaned
    for name, metric in METRICS.items():
        assert re.fullmatch(r"stakeray_[a-z_]+", name), name
        assert metric.kind in ("counter", "gauge", "histogram")
        assert (metric.kind == "histogram") == bool(metric.boundaries), name
        assert list(metric.boundaries) == sorted(set(metric.boundaries)), name


def test_counts_sets_and_observations_are_kept_in_memory() -> None:
    t = Telemetry(COORDINATOR_METRICS)
    assert t.snapshot() == dict.fromkeys(COORDINATOR_METRICS, 0.0)
    t.count("stakeray_tasks_settled", 5)
    t.count("stakeray_tasks_settled", 0)
    t.count("stakeray_tasks_settled", -3)  # a counter never goes down
    t.count("stakeray_slashes")
    t.set("stakeray_round", 7)
    t.set("stakeray_round", 4)
    snap = t.snapshot()
    assert snap["stakeray_tasks_settled"] == 5 and snap["stakeray_slashes"] == 1
    assert snap["stakeray_round"] == 4
    hosts = Telemetry(OPERATOR_HOST_METRICS)
    hosts.observe("stakeray_auction_clearing_margin", [0.5, 0.25])
    hosts.observe("stakeray_auction_clearing_margin", [])
    assert hosts.snapshot()["stakeray_auction_clearing_margin"] == 2
    assert set(hosts.snapshot()) == set(OPERATOR_HOST_METRICS)


def test_an_exporter_gets_every_call_that_changes_a_value() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, object]] = []

        def count(self, name: str, n: int) -> None:
            self.calls.append(("count", name, n))

        def set(self, name: str, value: float) -> None:
            self.calls.append(("set", name, value))

        def observe(self, name: str, values: list[float]) -> None:
            self.calls.append(("observe", name, list(values)))

    recorder = Recorder()
    t = Telemetry((*COORDINATOR_METRICS, *OPERATOR_HOST_METRICS), recorder)
    t.count("stakeray_slashes", 2)
    t.count("stakeray_slashes", 0)
    t.set("stakeray_round", 3)
    t.observe("stakeray_auction_clearing_margin", [0.5])
    t.observe("stakeray_auction_clearing_margin", [])
    assert recorder.calls == [
        ("count", "stakeray_slashes", 2),
        ("set", "stakeray_round", 3),
        ("observe", "stakeray_auction_clearing_margin", [0.5]),
    ]
