"""Fault injection for ``stakeray run --chaos``: kill actors and nodes at random times."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.errors import StakerayError

log = logging.getLogger("stakeray.chaos")

FAULTS = ("kill-coordinator", "kill-coprocessor", "kill-node")


MAX_STRIKES = 100
"""The most strikes of one kind a run takes (each kills something and waits for it)."""


class ChaosError(StakerayError, ValueError):
    """A ``--chaos`` value that cannot be parsed (one line naming the part)."""


@dataclass(frozen=True)
class ChaosPlan:
    """How many times each fault strikes during the run."""

    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> ChaosPlan:
        """Parse ``kill-coordinator=N,kill-coprocessor=N,kill-node=N`` (any subset)."""
        counts: dict[str, int] = {}
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            if name not in FAULTS:
                raise ChaosError(
                    f"--chaos {part!r}: unknown fault; choose from {', '.join(FAULTS)}"
                )
            if not sep or not value.isdigit():
                raise ChaosError(f"--chaos {part!r}: give a count, e.g. {name}=1")
            if len(value) > 4 or int(value) > MAX_STRIKES:
                raise ChaosError(f"--chaos {part!r}: at most {MAX_STRIKES} strikes of a kind")
            counts[name] = int(value)
        return cls(counts)

    def schedule(self, duration_s: float, seed: int) -> list[tuple[float, str]]:
        """Return ``(seconds after start, fault)`` for every strike, spread over the run."""
        rng = random.Random(seed)
        events = [
            (rng.uniform(0.15, 0.7) * duration_s, name)
            for name in FAULTS
            for _ in range(self.counts.get(name, 0))
        ]
        return sorted(events)

    def __bool__(self) -> bool:
        return any(self.counts.values())


class ChaosMonkey(threading.Thread):
    """Runs the scheduled strikes in the background; ``strike(fault)`` does the killing."""

    def __init__(self, events: list[tuple[float, str]], strike: Callable[[str], str]) -> None:
        super().__init__(name="stakeray-chaos", daemon=True)
        self.events = events
        self.strike = strike
        self.stopped = threading.Event()
        self.done: list[tuple[float, str, str]] = []

    def run(self) -> None:
        started = time.monotonic()
        for at, fault in self.events:
            if self.stopped.wait(max(0.0, at - (time.monotonic() - started))):
                return
            try:
                what = self.strike(fault)
            except Exception as exc:  # a failed strike is reported, never fatal to the run
                what = f"failed: {type(exc).__name__}: {exc}"
            elapsed = time.monotonic() - started
            log.warning("chaos: %s at %.1f s: %s", fault, elapsed, what)
            self.done.append((round(elapsed, 2), fault, what))

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)
