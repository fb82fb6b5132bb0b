"""Cluster metrics: exported through ``ray.util.metrics`` inside Ray, counted in memory always.

Ray's metrics agent on each node serves them on its Prometheus endpoint
(``ray start --metrics-export-port``) with the prefix ``ray_``, and the Ray
dashboard's Metrics view charts them. The in-memory values serve
``stakeray status --json`` and runs without Ray (``--local``), so the
plain actor classes record the same way in either setting.

Ray 2.60 exports a gauge only in the report interval after it was set (a
gauge set once is gone from the endpoint a moment later), so a thread sets
the gauges again with their last values twice per interval: an idle
network keeps showing its round and stake.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("stakeray.telemetry")


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: its kind (counter, gauge, histogram), help text, histogram buckets."""

    kind: str
    description: str
    boundaries: tuple[float, ...] = ()


LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MARGIN_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

METRICS: dict[str, Metric] = {
    "stakeray_tasks_settled": Metric("counter", "Tasks settled (verified and paid)"),
    "stakeray_tasks_refunded": Metric("counter", "Tasks refunded to the client"),
    "stakeray_tasks_failed": Metric("counter", "Tasks failed (operator fault or no taker)"),
    "stakeray_slashes": Metric("counter", "Slashes of coprocessors and operators"),
    "stakeray_round": Metric("gauge", "Current protocol round"),
    "stakeray_total_stake_tokens": Metric("gauge", "Total active stake, in tokens"),
    "stakeray_open_tasks": Metric("gauge", "Tasks escrowed and not yet finished"),
    "stakeray_settlement_latency_seconds": Metric(
        "histogram", "Seconds from a task's submission to its settlement", LATENCY_BUCKETS
    ),
    "stakeray_auction_clearing_margin": Metric(
        "histogram", "Auction clearing price over the task's fee", MARGIN_BUCKETS
    ),
}
TAG_KEYS = ("network",)
COORDINATOR_METRICS = (
    "stakeray_tasks_settled",
    "stakeray_tasks_refunded",
    "stakeray_tasks_failed",
    "stakeray_slashes",
    "stakeray_round",
    "stakeray_total_stake_tokens",
    "stakeray_open_tasks",
)
OPERATOR_HOST_METRICS = ("stakeray_settlement_latency_seconds", "stakeray_auction_clearing_margin")


class Telemetry:
    """Record some of :data:`METRICS` for one network; export them when running inside Ray."""

    def __init__(self, network: str, names: tuple[str, ...]) -> None:
        self.tags = {"network": network}
        self.values: dict[str, float] = dict.fromkeys(names, 0.0)
        self.exported: dict[str, Any] = self.make_exporters(names)
        self.gauges = [n for n in self.exported if METRICS[n].kind == "gauge"]
        if self.gauges:
            threading.Thread(target=self.keep_gauges, name="stakeray-gauges", daemon=True).start()

    def keep_gauges(self) -> None:
        """Set every gauge again, twice per Ray report interval, for as long as the process."""
        # Ray's own setting, read by every Ray process (its config names are lower case).
        setting = os.environ.get("RAY_metrics_report_interval_ms", "10000")  # noqa: SIM112
        interval_s = float(setting) / 1000
        while True:
            time.sleep(max(0.1, interval_s / 2))
            for name in self.gauges:
                self.exported[name].set(self.values[name], tags=self.tags)

    @staticmethod
    def make_exporters(names: tuple[str, ...]) -> dict[str, Any]:
        """Create Ray's metric objects, or none outside a Ray worker process."""
        try:
            import ray
            from ray.util import metrics
        except ImportError:
            return {}
        if not ray.is_initialized():
            return {}
        kinds = {"counter": metrics.Counter, "gauge": metrics.Gauge}
        out: dict[str, Any] = {}
        for name in names:
            m = METRICS[name]
            if m.kind == "histogram":
                out[name] = metrics.Histogram(
                    name, m.description, boundaries=list(m.boundaries), tag_keys=TAG_KEYS
                )
            else:
                out[name] = kinds[m.kind](name, m.description, tag_keys=TAG_KEYS)
        return out

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a counter (nothing is sent for zero)."""
        if n <= 0:
            return
        self.values[name] += n
        exporter = self.exported.get(name)
        if exporter is not None:
            exporter.inc(n, tags=self.tags)

    def set(self, name: str, value: float) -> None:
        self.values[name] = value
        exporter = self.exported.get(name)
        if exporter is not None:
            exporter.set(value, tags=self.tags)

    def observe(self, name: str, values: list[float]) -> None:
        """Record histogram observations (the in-memory value is their count)."""
        self.values[name] += len(values)
        exporter = self.exported.get(name)
        if exporter is not None:
            for v in values:
                exporter.observe(v, tags=self.tags)

    def snapshot(self) -> dict[str, float]:
        return dict(self.values)
