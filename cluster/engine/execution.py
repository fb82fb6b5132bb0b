"""The market's one pluggable step: run a task and check its result.

Everything else in a batch's path (escrow, operator choice, the auction,
settlement, faults, rounds) is the same code whichever execution is used:

- :class:`RealExecution`: the task's kernel on the coprocessor host (CuPy on a
  GPU, NumPy otherwise; a faulty executor returns wrong results at its
  ``fault_rate``), and the kind's cheap verifier on the operator host.
- :class:`DrawnExecution`: no kernel; each attempt's outcome is drawn from the
  executor's reliability (``1 - fault_rate``) by a keyed hash of the network
  seed, the executor, the task and the attempt (:func:`draw_outcome`), so a
  replay draws the same. For simulation and for measuring the control plane.

The executor is a coprocessor, or an operator running a task itself (a
:class:`Job` names it either way); an operator's own result is checked only
when an audit samples it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import workers
from cluster.engine.messages import Job


class Executor(Protocol):
    """Whoever runs tasks (a coprocessor's or an operator's config): a name, a fault rate."""

    @property
    def name(self) -> str: ...

    @property
    def fault_rate(self) -> float: ...


class Execution(Protocol):
    """Run a job where the coprocessor is, check its result where the operator is."""

    def prepare(self, job: Job) -> Any:
        """What the check needs, made while the coprocessor computes (verifier inputs)."""
        ...

    def run(self, job: Job) -> Any:
        """The coprocessor's result of ``job``."""
        ...

    def check(self, job: Job, result: Any, prepared: Any) -> bool:
        """Whether ``result`` is right (a wrong one is a safety fault)."""
        ...


class RealExecution:
    """Real kernels and verifiers (``workers``), with each executor's injected faults."""

    def __init__(self, executors: Sequence[Executor], seed: int = 0) -> None:
        self.faults = {
            c.name: workers.FaultConfig(
                rate=c.fault_rate,
                late_s=getattr(c, "late_s", 0.0),
                seed=_key(f"{seed}:{c.name}"),
            )
            for c in executors
        }

    def prepare(self, job: Job) -> Any:
        return workers.make_inputs(job.spec)

    def run(self, job: Job) -> Any:
        # Kernels hand back host arrays (workers.backend.to_numpy), so results pickle anywhere.
        return workers.execute(job.spec, fault=self.faults.get(job.coprocessor))

    def check(self, job: Job, result: Any, prepared: Any) -> bool:
        assert job.spec is not None
        return workers.verify(job.spec, result, prepared)


class DrawnExecution:
    """Outcomes drawn from each executor's reliability; no kernel runs."""

    def __init__(self, executors: Sequence[Executor], seed: int = 0) -> None:
        self.seed = seed
        self.fault_rates = {c.name: c.fault_rate for c in executors}

    def prepare(self, job: Job) -> Any:
        return None

    def run(self, job: Job) -> bool:
        return draw_outcome(
            self.seed,
            job.coprocessor,
            job.task_id,
            job.attempt,
            self.fault_rates.get(job.coprocessor, 0.0),
        )

    def check(self, job: Job, result: Any, prepared: Any) -> bool:
        return result is True


def draw_outcome(seed: int, executor: str, task_id: int, attempt: int, fault_rate: float) -> bool:
    """Whether ``executor``'s attempt at a task is right: a keyed draw against its fault rate
    (the CRC-32 of ``seed:executor:task_id:attempt``, over ``2**32``, at least the rate)."""
    return draw_outcomes(seed, [executor], [task_id], [attempt], {executor: fault_rate})[0]


def draw_outcomes(
    seed: int,
    executors: Sequence[str],
    task_ids: Sequence[int],
    attempts: Sequence[int],
    fault_rates: Mapping[str, float],
) -> list[bool]:
    """:func:`draw_outcome` for many attempts at once (the one implementation of the draw).

    ``fault_rates`` gives each executor's rate (absent: 0). The key's prefix
    ``seed:executor:`` is hashed once per executor and continued with
    ``task_id:attempt`` (CRC-32 continues exactly), and the comparison is made
    on the integer key (``key / 2**32 >= rate`` is ``key >= rate * 2**32``,
    both exact in binary floating point). About 25 % less time than a call per
    attempt; a numpy CRC over the digits was slower still at 1,000 attempts.
    """
    crc32 = zlib.crc32
    prefix: dict[str, tuple[int, float]] = {}
    for executor in set(executors):
        rate = fault_rates.get(executor, 0.0)
        start = crc32(f"{seed}:{executor}:".encode())
        prefix[executor] = (start, rate * 2**32 if rate > 0.0 else -1.0)
    known = [prefix[e] for e in executors]
    return [
        threshold < 0.0 or crc32(b"%d:%d" % (task_id, attempt), start) >= threshold
        for (start, threshold), task_id, attempt in zip(known, task_ids, attempts, strict=True)
    ]


def _key(text: str) -> int:
    """A 32-bit key of ``text``, the same in every process (unlike ``hash``)."""
    return zlib.crc32(text.encode())
