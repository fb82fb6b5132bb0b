"""One assignment frame and one settlement frame per batch: the same state as the
per-task transactions, refusals reported per order, settlement all or nothing."""

from __future__ import annotations

from refusals import assert_refused
from test_market import FEE, network

from protocol import Protocol
from protocol.errors import DuplicateTransaction, OperatorNotActive, TaskStateError
from protocol.state import Outcome


def prepared() -> Protocol:
    p = network()
    p.register_coprocessor("cop2", 10**22, 4)
    p.escrow_tasks("client", [(t, FEE) for t in range(6)])
    return p


def test_a_batch_of_assignments_is_the_same_state_as_one_by_one() -> None:
    orders = [(0, "op", "cop", 5), (1, "op", None, None), (2, "op", "cop2", 7)]
    orders.append((3, "op2", "cop", 1))
    one = prepared()
    for order in orders:
        one.assign_task(*order)
    batch = prepared()
    logged: list = []
    batch.sink = logged.append
    assert batch.assign_tasks(orders) == {}
    assert batch.state_hash() == one.state_hash()
    assert [t.kind for t in logged] == ["assign_tasks"]


def test_refused_orders_are_reported_and_the_others_stand() -> None:
    p = prepared()
    p.initialize_round()
    before = p.state_hash()
    refused = p.assign_tasks([(0, "op", "cop", 5), (1, "ghost", None, None), (0, "op", None, None)])
    assert set(refused) == {0, 1}  # ghost is no operator; task 0 is already assigned
    assert isinstance(refused[0], TaskStateError)
    assert p.state.tasks[0].assigned and not p.state.tasks[1].assigned
    assert p.state_hash() != before  # the order that stood is applied
    p.check_invariants()


def test_a_settlement_batch_is_faults_then_settlements_all_or_nothing() -> None:
    orders = [(0, "op", "cop", 5), (1, "op", "cop", 5), (2, "op", "cop2", 5), (3, "op", None, None)]
    one, batch = prepared(), prepared()
    one.assign_tasks(orders)
    batch.assign_tasks(orders)
    one.fail_coprocessor(0)
    one.miss_coprocessor(1)
    one.settle_tasks([2, 3])
    assert batch.settle_batch([2, 3], [0], [1]) == 2
    assert batch.state_hash() == one.state_hash()
    assert batch.state.finished[2][0] == Outcome.SETTLED
    cop = batch.state.coprocessors["cop"]
    assert (cop.slashes, cop.misses) == (1, 1)
    # All or nothing: a fault on a task nobody holds, two faults on one task, or a task
    # both faulted and settled refuses the whole batch, changing nothing.
    p = prepared()
    p.assign_tasks(orders)
    assert_refused(p, TaskStateError, p.settle_batch, [2], [4])
    assert_refused(p, DuplicateTransaction, p.settle_batch, [], [0], [0])
    assert_refused(p, TaskStateError, p.settle_batch, [0], [0])
    assert_refused(p, TaskStateError, p.settle_batch, [4])  # not assigned
    assert p.settle_batch([2, 2, 3]) == 2  # settled once each
    assert p.settle_batch([2]) == 0  # already finished: skipped, a retry changes nothing
    p.check_invariants()


def test_an_inactive_operator_is_refused_per_order() -> None:
    p = prepared()
    p.bond("client", "client", 10**18)
    p.register_operator("client")  # registered, not active until the next round
    refused = p.assign_tasks([(0, "client", None, None), (1, "op", None, None)])
    assert isinstance(refused[0], OperatorNotActive) and 1 not in refused
