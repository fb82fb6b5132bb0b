"""One progress reporter on stderr: the gateway's tasks and the simulator's rounds.

On a terminal it is a :mod:`rich.progress` bar, redrawn at most every
``every_s`` seconds (0.25). Off a terminal (CI logs, pipes) it writes a plain
line every ``plain_every_s`` seconds (5) and one at :meth:`Progress.close`:
no ANSI codes, no carriage returns. ``enabled=False`` writes nothing at all
(the counts are still kept).

A line reads ``tasks 80/100 (80%)  refunded 3  settled 77  round 4  21.5 tasks/s``:
the description (``note``, else the unit), done/total, the counts per outcome,
the round, and the mean rate since the reporter was made.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


class HasOutcome(Protocol):
    """A finished task's row as :meth:`Progress.update` reads it (``TaskRecord`` is one)."""

    @property
    def outcome(self) -> str: ...


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Done/total, counts per outcome, round and rate, shown on ``stream`` (stderr)."""

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        unit: str = "tasks",
        note: str = "",
        stream: TextIO | None = None,
        tty: bool | None = None,
        every_s: float = 0.25,
        plain_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.unit = unit
        self.note = note
        self.stream = sys.stderr if stream is None else stream
        self.tty = is_tty(self.stream) if tty is None else tty
        self.every_s = every_s if self.tty else plain_every_s
        self.clock = clock
        self.started = clock()
        self.last = -math.inf  # the first update draws
        self.done = 0
        self.counts: dict[str, int] = {}
        self.round: int | None = None
        self.closed = False
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    # --- what the callers report ---------------------------------------------------------

    def update(self, records: Iterable[HasOutcome], round_: int, *, force: bool = False) -> None:
        """Count finished tasks by outcome (the gateway: one call per batch that came back)."""
        n = 0
        for r in records:
            self.counts[r.outcome] = self.counts.get(r.outcome, 0) + 1
            n += 1
        self.advance(n, round_=round_, force=force)

    def advance(
        self,
        n: int = 1,
        *,
        round_: int | None = None,
        note: str | None = None,
        force: bool = False,
    ) -> None:
        """Add ``n`` done (the simulator: one per round); set the round or the description."""
        self.done += n
        if round_ is not None:
            self.round = round_
        if note is not None:
            self.note = note
        if not self.enabled or self.closed:
            return
        now = self.clock()
        if force or now - self.last >= self.every_s:
            self.last = now
            self.draw(now)

    def close(self) -> None:
        """Draw the final state (a last plain line off a terminal) and end the display."""
        if self.closed:
            return
        self.closed = True
        if not self.enabled:
            return
        now = self.clock()
        self.draw(now)
        if self._bar is not None:
            self._bar.stop()
        self.stream.flush()

    # --- what is shown ---------------------------------------------------------------------

    @property
    def description(self) -> str:
        return self.note or self.unit

    def detail(self, now: float) -> str:
        """Counts per outcome, round and rate: what follows done/total."""
        parts = [f"{k} {v}" for k, v in sorted(self.counts.items())]
        if self.round is not None:
            parts.append(f"round {self.round}")
        rate = self.done / max(1e-9, now - self.started)
        parts.append(f"{rate:.1f} {self.unit}/s")
        return "  ".join(parts)

    def line(self, now: float | None = None) -> str:
        """The plain one-line form (written off a terminal)."""
        now = self.clock() if now is None else now
        percent = 100 * self.done // self.total if self.total > 0 else 100
        return f"{self.description} {self.done}/{self.total} ({percent}%)  {self.detail(now)}"

    def draw(self, now: float) -> None:
        if not self.tty:
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()
            return
        if self._bar is None:
            self._bar = self.make_bar()
            self._task = self._bar.add_task(
                self.description, total=max(self.total, 0), completed=self.done, detail=""
            )
        assert self._task is not None
        self._bar.update(
            self._task,
            completed=self.done,
            description=self.description,
            detail=self.detail(now),
        )
        if not self._bar.live.is_started:
            self._bar.start()  # draws
        else:
            self._bar.refresh()

    def make_bar(self) -> RichProgress:
        console = Console(file=self.stream, force_terminal=True)
        return RichProgress(
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=28),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            TimeElapsedColumn(),
            console=console,
            get_time=self.clock,
            auto_refresh=False,  # redrawn by draw(), at most every every_s
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
