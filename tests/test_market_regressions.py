"""Regression tests for two market bugs the market tests found (both fixed)."""

from __future__ import annotations

from refusals import assert_refused

from protocol import TOKEN, Params, Protocol
from protocol.errors import ProtocolError

RICH = 10**24


def two_operators() -> Protocol:
    p = Protocol(Params(), dict.fromkeys(("op", "op2", "client", "finder"), RICH))
    for op in ("op", "op2"):
        p.bond(op, op, 1_000 * TOKEN)
        p.register_operator(op)
    p.initialize_round()
    return p


def test_audit_fault_slashes_only_the_operator_that_settled_the_task() -> None:
    """SPEC 7 slashes "a wrong result it settled": only the operator that settled it.

    Finished tasks now remember their operator; before, an audit of op's task
    could slash op2, who never touched it.
    """
    p = two_operators()
    p.escrow_tasks("client", [(1, 10 * TOKEN)])
    p.assign_task(1, "op")
    p.settle_tasks([1])
    assert_refused(p, ProtocolError, p.audit_fault, 1, "op2", "finder")


def test_escrow_refuses_a_malformed_row_with_a_protocol_error() -> None:
    """A malformed row gets ``InvalidAmount``, not a bare ``TypeError`` (fixed).

    The facade used to convert every row with ``tuple(row)`` before the checks,
    so a non-iterable row (``5``, ``None``) raised a bare ``TypeError``.
    """
    p = two_operators()
    assert_refused(p, ProtocolError, p.escrow_tasks, "client", [5])
