"""The round clock: a round lasts a number of settled tasks or of seconds (``market.clock``)."""

from __future__ import annotations

import time

from cluster.config.schema import ClockConfig


class RoundClock:
    """Say when the next round is due; restart when it begins."""

    def __init__(self, config: ClockConfig) -> None:
        self.config = config
        self.settled = 0
        self.started = time.monotonic()

    def count(self, settled: int) -> None:
        """Count tasks settled in this round."""
        self.settled += settled

    def is_due(self) -> bool:
        every_tasks, every_s = self.config.every_tasks, self.config.every_s
        return (every_tasks is not None and self.settled >= every_tasks) or (
            every_s is not None and time.monotonic() - self.started >= every_s
        )

    def restart(self) -> None:
        self.settled = 0
        self.started = time.monotonic()
