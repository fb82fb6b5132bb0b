"""Cluster metrics: counted in memory by the plain actors, exported by an optional exporter.

The in-memory values serve ``stakeray status --json`` and runs without Ray
(``--local``), so the plain actor classes record the same way in either
setting. Inside Ray, ``cluster.runtime.metrics.RayExporter`` sends the same
calls to ``ray.util.metrics``: each node's metrics agent serves them on its
Prometheus endpoint with the prefix ``ray_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
    "stakeray_slashes": Metric("counter", "Safety faults slashed (a result proven wrong)"),
    "stakeray_liveness_faults": Metric(
        "counter", "Liveness faults (no result in time: lost host, timeout, deadline)"
    ),
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
COORDINATOR_METRICS = (
    "stakeray_tasks_settled",
    "stakeray_tasks_refunded",
    "stakeray_tasks_failed",
    "stakeray_slashes",
    "stakeray_liveness_faults",
    "stakeray_round",
    "stakeray_total_stake_tokens",
    "stakeray_open_tasks",
)
OPERATOR_HOST_METRICS = ("stakeray_settlement_latency_seconds", "stakeray_auction_clearing_margin")


class Exporter(Protocol):
    """Where recorded values go besides memory (Ray's metrics inside Ray)."""

    def count(self, name: str, n: int) -> None: ...

    def set(self, name: str, value: float) -> None: ...

    def observe(self, name: str, values: list[float]) -> None: ...


class Telemetry:
    """Record some of :data:`METRICS` in memory, and through ``exporter`` when one is given."""

    def __init__(self, names: tuple[str, ...], exporter: Exporter | None = None) -> None:
        self.values: dict[str, float] = dict.fromkeys(names, 0.0)
        self.exporter = exporter

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a counter (nothing is sent for zero)."""
        if n <= 0:
            return
        self.values[name] += n
        if self.exporter is not None:
            self.exporter.count(name, n)

    def set(self, name: str, value: float) -> None:
        self.values[name] = value
        if self.exporter is not None:
            self.exporter.set(name, value)

    def observe(self, name: str, values: list[float]) -> None:
        """Record histogram observations (the in-memory value is their count)."""
        self.values[name] += len(values)
        if self.exporter is not None and values:
            self.exporter.observe(name, values)

    def snapshot(self) -> dict[str, float]:
        return dict(self.values)
