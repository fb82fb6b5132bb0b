"""What the actors send each other: cleared batches, work, jobs, faults, task states.

What travels once per task is a ``NamedTuple`` (built in a fraction of a frozen
dataclass's time: these are on the hot path); the rest are frozen dataclasses.

Outcomes and refusals travel as types, never as strings to parse: a task's
status is a :class:`protocol.state.Outcome` or a :class:`TaskStatus`, and a
refused transaction carries the :class:`protocol.ProtocolError` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import workers
from protocol import ProtocolError
from protocol.state import Outcome
from protocol.units import Address, Amount, Round


class TaskStatus(StrEnum):
    """A task without an outcome yet: escrowed, assigned, or an id the ledger never saw."""

    OPEN = "open"
    ASSIGNED = "assigned"
    UNKNOWN = "unknown"


def parse_status(text: str) -> Outcome | TaskStatus:
    """Read a status written as text (``tasks.csv``)."""
    return Outcome(text) if text in Outcome.__members__.values() else TaskStatus(text)


class FaultKind(StrEnum):
    """Safety: a result the verifier proved wrong (slashed). Liveness: no result in time
    (a lost host, a timeout; unpaid and re-offered, never treated as fraud)."""

    SAFETY = "safety"
    LIVENESS = "liveness"


class Fault(NamedTuple):
    """The coprocessor failed the task's attempt ``attempt``, in the way ``kind`` says."""

    task_id: int
    coprocessor: Address
    attempt: int
    kind: FaultKind


class Assignment(NamedTuple):
    """Who runs a task: its operator alone (``coprocessor`` None), or the auction's winner,
    paid ``fee - price``; ``attempt`` counts the coprocessors that failed it before."""

    task_id: int
    operator: Address
    coprocessor: Address | None
    price: Amount
    attempt: int


@dataclass(frozen=True, slots=True)
class Cleared:
    """An escrowed and cleared batch: its new tasks got the ids ``first_id``, ``first_id +
    1``, ... in order; ``assignments`` covers them and the client's re-offered tasks;
    ``batch`` is its place in the coordinator's order, ``round`` the round it cleared in."""

    first_id: int
    batch: int
    assignments: list[Assignment]
    round: Round


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task as the ledger holds it; ``refusal`` says why the last assignment was refused."""

    task_id: int
    status: Outcome | TaskStatus
    operator: Address | None = None
    coprocessor: Address | None = None
    price: Amount = 0
    attempts: int = 0
    refusal: ProtocolError | None = None

    @property
    def is_finished(self) -> bool:
        return isinstance(self.status, Outcome)

    @property
    def is_paid(self) -> bool:
        """Whether the task's fee went to its operator (settled, even if audited after)."""
        return self.status in (Outcome.SETTLED, Outcome.AUDITED)


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to a signed transaction: accepted with its result, or the refusal."""

    result: str = ""
    refusal: ProtocolError | None = None

    @property
    def accepted(self) -> bool:
        return self.refusal is None

    def describe(self) -> str:
        """Return the result, or the refusal as ``Kind: message`` (one line)."""
        if self.refusal is None:
            return self.result
        return f"{type(self.refusal).__name__}: {self.refusal}"


class Work(NamedTuple):
    """A cleared task for its operator's host: the assignment, the spec, the fee, and when
    the task arrived."""

    assignment: Assignment
    spec: workers.TaskSpec
    fee: Amount
    submitted_at: float


class Job(NamedTuple):
    """One task for its executor (a coprocessor, or the operator running it itself): the
    spec travels, the inputs are made where it runs (``None``: a simulated task)."""

    task_id: int
    coprocessor: str
    spec: workers.TaskSpec | None
    attempt: int = 0


class TaskRecord(NamedTuple):
    """One row of ``tasks.csv``."""

    task_id: int
    kind: str
    size: int
    operator: Address
    coprocessor: Address
    fee: Amount
    price: Amount
    attempts: int
    outcome: Outcome | TaskStatus
    latency_s: float
