"""Deadlines live in the ledger with their tasks, and expiring is O(expired), not O(open)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_fixtures import make_config
from refusals import assert_refused
from test_market import FEE, network

from cluster.engine.coordinator import Coordinator
from protocol.errors import InvalidAmount
from protocol.market import get_due_tasks
from protocol.state import Outcome


def test_tasks_fall_due_after_their_deadline_and_leave_the_index_when_done() -> None:
    p = network()  # round 1
    p.escrow_tasks("client", [(0, FEE), (1, FEE)], None, 2)  # due from round 1 + 2 + 1
    p.escrow_tasks("client", [(2, FEE)])  # the network's default, 3 rounds
    assert p.state.tasks[0].due_round == 4 and p.state.tasks[2].due_round == 5
    assert get_due_tasks(p.state, 3) == [] and get_due_tasks(p.state, 4) == [0, 1]
    p.assign_task(0, "op")
    p.settle_tasks([0])
    p.refund_task(2)
    assert p.state.expiries == {4: {1}}  # only open tasks are indexed
    assert get_due_tasks(p.state, 9) == [1]
    p.refund_task(1)
    assert p.state.expiries == {}
    p.check_invariants()


@pytest.mark.parametrize("deadline", [0, -1, True, 1.5, 10**7])
def test_a_bad_deadline_is_refused(deadline: object) -> None:
    p = network()
    assert_refused(p, InvalidAmount, p.escrow_tasks, "client", [(0, FEE)], None, deadline)


def test_a_recovered_coordinator_expires_by_the_ledgers_deadlines(tmp_path: Path) -> None:
    config = make_config(workload={"deadline_rounds": 5})
    coordinator = Coordinator(config, str(tmp_path), fsync=False)
    start = coordinator.p.round
    first = coordinator.escrow("short", [FEE, FEE], 1).first_id  # this batch's own deadline
    coordinator.escrow("default", [FEE])  # the workload's 5 rounds
    coordinator.close()
    coordinator = Coordinator(config, str(tmp_path), fsync=False)  # a restart: from the ledger
    assert coordinator.recovered
    while coordinator.p.round < start + 2:
        coordinator.advance_round()
    # Escrow clears the batch at once, so a late task is its operator's (liveness) failure.
    finished = coordinator.p.state.finished
    assert finished[first][0] == finished[first + 1][0] == Outcome.FAILED
    assert first + 2 in coordinator.p.state.tasks  # not yet due
    while coordinator.p.round < start + 6:
        coordinator.advance_round()
    assert finished[first + 2][0] == Outcome.FAILED and not coordinator.p.state.tasks


def test_old_outcomes_leave_the_state_but_stay_finished() -> None:
    """Live state keeps the outcomes of the last rounds only (audits, retried reports);
    an older id is still finished (it is below next_task_id and not open), counted, and
    its outcome is in the log."""
    from protocol.errors import DuplicateTransaction, TaskStateError
    from protocol.market import OUTCOME_ROUNDS_KEPT, is_finished

    p = network()
    p.escrow_tasks("client", [(0, FEE), (1, FEE), (2, FEE)])
    p.assign_task(0, "op")
    p.assign_task(1, "op")
    p.settle_tasks([0, 1])
    p.refund_task(2)
    assert set(p.state.finished) == {0, 1, 2}
    for _ in range(OUTCOME_ROUNDS_KEPT):
        p.initialize_round()
    assert p.state.finished == {} and p.state.finished_in == {}
    assert all(is_finished(p.state, t) for t in (0, 1, 2)) and not is_finished(p.state, 3)
    assert p.state.outcome_counts == {Outcome.SETTLED: 2, Outcome.REFUNDED: 1}
    assert p.settle_tasks([0]) == 0  # a retried settlement still changes nothing
    assert_refused(p, DuplicateTransaction, p.refund_task, 1)
    assert_refused(p, TaskStateError, p.audit_fault, 0, "op", None)  # past the audit window
    p.check_invariants()


def test_a_replay_gives_every_outcome_the_state_forgot(tmp_path: Path) -> None:
    from cluster.analysis.history import replay_tasks
    from protocol import Params
    from protocol.ledger import Ledger

    ledger = Ledger.create(tmp_path, Params(), {"op": 10**24, "client": 10**24}, fsync=False)
    p = ledger.protocol
    p.bond("op", "op", 10**21)
    p.register_operator("op")
    p.initialize_round()
    for t in range(6):
        p.escrow_tasks("client", [(t, FEE)])
        p.assign_task(t, "op")
        if t % 2 == 0:
            p.settle_tasks([t])
        else:
            p.expire_task(t)
        p.initialize_round()
    ledger.commit()
    assert len(p.state.finished) < 6
    outcomes, _ = replay_tasks(tmp_path)
    expected = {t: Outcome.SETTLED if t % 2 == 0 else Outcome.FAILED for t in range(6)}
    assert {t: o for t, (o, _) in outcomes.items()} == expected
    ledger.close()
