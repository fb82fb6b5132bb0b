"""The market's one pluggable step: run a task and check its result.

Everything else in a batch's path (escrow, operator choice, the auction,
settlement, faults, rounds) is the same code whichever execution is used:

- :class:`RealExecution`: the task's kernel on the coprocessor host (CuPy on a
  GPU, NumPy otherwise; a faulty coprocessor returns wrong results at its
  ``fault_rate``), and the kind's cheap verifier on the operator host.
- :class:`DrawnExecution`: no kernel; each attempt's outcome is drawn from the
  coprocessor's reliability (``1 - fault_rate``) by a keyed hash of the
  network seed, the coprocessor, the task and the attempt, so a replay draws
  the same. For simulation and for measuring the control plane alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import workers
from cluster.config.schema import CoprocessorConfig
from cluster.engine.messages import Job


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

    def run_own(self, spec: workers.TaskSpec) -> None:
        """The operator's own run of a task it keeps (trusted; audits check it later)."""
        ...


class RealExecution:
    """Real kernels and verifiers (``workers``), with each coprocessor's injected faults."""

    def __init__(self, coprocessors: Sequence[CoprocessorConfig], seed: int = 0) -> None:
        self.faults = {
            c.name: workers.FaultConfig(
                rate=c.fault_rate, late_s=c.late_s, seed=_key(f"{seed}:{c.name}")
            )
            for c in coprocessors
        }

    def prepare(self, job: Job) -> Any:
        return workers.make_inputs(job.spec)

    def run(self, job: Job) -> Any:
        # Kernels hand back host arrays (workers.backend.to_numpy), so results pickle anywhere.
        return workers.execute(job.spec, fault=self.faults.get(job.coprocessor))

    def check(self, job: Job, result: Any, prepared: Any) -> bool:
        return workers.verify(job.spec, result, prepared)

    def run_own(self, spec: workers.TaskSpec) -> None:
        workers.execute(spec)


class DrawnExecution:
    """Outcomes drawn from each coprocessor's reliability; no kernel runs."""

    def __init__(self, coprocessors: Sequence[CoprocessorConfig], seed: int = 0) -> None:
        self.seed = seed
        self.fault_rates = {c.name: c.fault_rate for c in coprocessors}

    def prepare(self, job: Job) -> Any:
        return None

    def run(self, job: Job) -> bool:
        rate = self.fault_rates.get(job.coprocessor, 0.0)
        if rate <= 0.0:
            return True
        draw = _key(f"{self.seed}:{job.coprocessor}:{job.task_id}:{job.attempt}") / 2**32
        return draw >= rate

    def check(self, job: Job, result: Any, prepared: Any) -> bool:
        return result is True

    def run_own(self, spec: workers.TaskSpec) -> None:
        return None


def _key(text: str) -> int:
    """A 32-bit key of ``text``, the same in every process (unlike ``hash``)."""
    return zlib.crc32(text.encode())
