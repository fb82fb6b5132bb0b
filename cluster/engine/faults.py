"""Faults injected for experiments: operators that miss their reward call (``miss_rate``)."""

from __future__ import annotations

import random

from cluster.config.schema import RunConfig
from protocol.units import Address, Round


class RewardMisses:
    """Decide, seeded and replayable, which operators skip their reward call in a round."""

    def __init__(self, config: RunConfig) -> None:
        self.seed = config.seed
        self.rates = {op.name: op.miss_rate for op in config.network.operators}

    def is_missed(self, operator: Address, n: Round) -> bool:
        """Whether ``operator`` misses its reward call in round ``n``."""
        rate = self.rates.get(operator, 0.0)
        return rate > 0 and random.Random(f"{self.seed}:{n}:{operator}").random() < rate
