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
    finished = coordinator.p.state.finished
    assert finished[first][0] == finished[first + 1][0] == Outcome.REFUNDED
    assert first + 2 in coordinator.p.state.tasks  # not yet due
    while coordinator.p.round < start + 6:
        coordinator.advance_round()
    assert finished[first + 2][0] == Outcome.REFUNDED and not coordinator.p.state.tasks
