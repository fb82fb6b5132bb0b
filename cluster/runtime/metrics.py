"""Ray's side of the cluster metrics: ``ray.util.metrics`` objects tagged with the network.

Ray's metrics agent on each node serves them on its Prometheus endpoint
(``ray start --metrics-export-port``) with the prefix ``ray_``, and the Ray
dashboard's Metrics view charts them.

Ray 2.60 exports a gauge only in the report interval after it was set (a
gauge set once is gone from the endpoint a moment later), so a thread sets
the gauges again with their last values twice per interval: an idle
network keeps showing its round and stake.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from ray.util import metrics

from cluster.engine.telemetry import METRICS

TAG_KEYS = ("network",)


class RayExporter:
    """Send one actor's metrics (``names`` of :data:`METRICS`) to Ray for ``network``."""

    def __init__(self, network: str, names: tuple[str, ...]) -> None:
        self.tags = {"network": network}
        self.exported: dict[str, Any] = {}
        kinds = {"counter": metrics.Counter, "gauge": metrics.Gauge}
        for name in names:
            m = METRICS[name]
            if m.kind == "histogram":
                self.exported[name] = metrics.Histogram(
                    name, m.description, boundaries=list(m.boundaries), tag_keys=TAG_KEYS
                )
            else:
                self.exported[name] = kinds[m.kind](name, m.description, tag_keys=TAG_KEYS)
        self.gauges: dict[str, float] = {
            n: 0.0 for n in names if METRICS[n].kind == "gauge"
        }
        if self.gauges:
            threading.Thread(target=self.keep_gauges, name="stakeray-gauges", daemon=True).start()

    def keep_gauges(self) -> None:
        """Set every gauge again, twice per Ray report interval, for as long as the process."""
        # Ray's own setting, read by every Ray process (its config names are lower case).
        setting = os.environ.get("RAY_metrics_report_interval_ms", "10000")  # noqa: SIM112
        interval_s = float(setting) / 1000
        while True:
            time.sleep(max(0.1, interval_s / 2))
            for name, value in list(self.gauges.items()):
                self.exported[name].set(value, tags=self.tags)

    def count(self, name: str, n: int) -> None:
        self.exported[name].inc(n, tags=self.tags)

    def set(self, name: str, value: float) -> None:
        self.gauges[name] = value
        self.exported[name].set(value, tags=self.tags)

    def observe(self, name: str, values: list[float]) -> None:
        histogram = self.exported[name]
        for v in values:
            histogram.observe(v, tags=self.tags)
