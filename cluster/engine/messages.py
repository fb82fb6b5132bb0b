"""What the actors send each other: task orders, jobs, assignments, faults, views, task states.

Outcomes and refusals travel as types, never as strings to parse: a task's
status is a :class:`protocol.state.Outcome` or a :class:`TaskStatus`, and a
refused transaction carries the :class:`protocol.ProtocolError` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import workers
from protocol import ProtocolError
from protocol.state import Coprocessor, Outcome
from protocol.units import Address, Amount, Round

Order = tuple[int, Address, Address | None, Amount | None]
"""``(task_id, operator, coprocessor or None, price or None)``: an assignment to record."""


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


@dataclass(frozen=True, slots=True)
class Fault:
    """The coprocessor failed the task's attempt ``attempt``, in the way ``kind`` says."""

    task_id: int
    coprocessor: Address
    attempt: int
    kind: FaultKind


@dataclass(frozen=True, slots=True)
class MarketView:
    """What operator hosts and the gateway need: the round, active stakes, coprocessors."""

    round: Round
    active: dict[Address, Amount]
    coprocessors: dict[Address, Coprocessor]


@dataclass(frozen=True, slots=True)
class Escrowed:
    """An escrowed batch: its tasks got the ids ``first_id``, ``first_id + 1``, ... in order."""

    first_id: int
    view: MarketView


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


@dataclass(frozen=True, slots=True)
class TaskOrder:
    """A task routed to an operator: its place in its escrowed batch (its id is the batch's
    ``first_id + slot``, known once the escrow is in), the operator, the spec, the fee, and
    when it arrived."""

    slot: int
    operator: Address
    spec: workers.TaskSpec
    fee: Amount
    submitted_at: float


@dataclass(frozen=True, slots=True)
class Job:
    """One task for one coprocessor: the spec travels, the inputs are made where it runs."""

    task_id: int
    coprocessor: str
    spec: workers.TaskSpec
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class TaskRecord:
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
