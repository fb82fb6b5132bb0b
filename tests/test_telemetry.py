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
    t = Telemetry("net", COORDINATOR_METRICS)
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
    hosts = Telemetry("net", OPERATOR_HOST_METRICS)
    hosts.observe("stakeray_auction_clearing_margin", [0.5, 0.25])
    hosts.observe("stakeray_auction_clearing_margin", [])
    assert hosts.snapshot()["stakeray_auction_clearing_margin"] == 2
    assert set(hosts.snapshot()) == set(OPERATOR_HOST_METRICS)
