"""Liveness faults (no result in time) are not safety faults (a wrong result): a crash is
never fraud. Unpaid, a reputation failure, the task re-offered, and only the separate
``liveness_penalty`` (default 0) taken; expected numbers computed here from the rule."""

from __future__ import annotations

from refusals import assert_refused
from test_market import COLLATERAL, FEE, RICH, cop, network, required

from protocol import PPM, TOKEN
from protocol.errors import TaskStateError
from protocol.state import Outcome


def test_a_missed_coprocessor_is_not_slashed_by_default() -> None:
    p = network()
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop", TOKEN)
    op_balance, supply = p.balance("op"), p.total_supply
    observed = cop(p).observed
    assert p.miss_coprocessor(1) == 0
    c = cop(p)
    assert (c.free, c.locked, c.load) == (COLLATERAL, 0, 0)  # collateral back, whole
    assert (c.slashes, c.misses, c.observed) == (0, 1, observed + 1)  # a reputation failure
    assert p.balance("op") == op_balance and p.total_supply == supply
    task = p.state.tasks[1]
    assert (task.assigned, task.attempts, task.excluded) == (False, 1, ["cop"])  # re-offered
    p.check_invariants()


def test_the_liveness_penalty_is_separate_from_the_slash_and_burned() -> None:
    p = network(liveness_penalty=50_000, slash_fraction=300_000)
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop", TOKEN)
    op_balance, supply = p.balance("op"), p.total_supply
    penalty = required(FEE) * 50_000 // PPM
    assert p.miss_coprocessor(1) == penalty
    assert cop(p).free == COLLATERAL - penalty and cop(p).slashes == 0
    assert p.balance("op") == op_balance  # no redistribution: nobody gains from a crash
    assert p.total_supply == supply - penalty
    p.check_invariants()


def test_missed_attempts_end_in_a_refund() -> None:
    p = network(max_attempts=2)
    p.register_coprocessor("cop2", COLLATERAL, 4)
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop", 0)
    p.miss_coprocessor(1)
    assert_refused(p, TaskStateError, p.miss_coprocessor, 1)  # nobody holds it now
    p.assign_task(1, "op", "cop2", 0)
    p.miss_coprocessor(1)
    assert p.state.finished[1][0] == Outcome.REFUNDED
    assert p.balance("client") == RICH
    p.check_invariants()


def test_an_expired_assignment_refunds_without_slashing_its_operator() -> None:
    p = network(slash_fraction=200_000)
    p.escrow_tasks("client", [(1, FEE), (2, FEE)])
    assert_refused(p, TaskStateError, p.expire_task, 1)  # nobody holds it
    p.assign_task(1, "op", "cop", TOKEN)
    own, supply = p.pending_stake("op"), p.total_supply
    observed = p.state.pools["op"].observed
    assert p.expire_task(1) == 0
    assert p.pending_stake("op") == own and p.total_supply == supply
    assert p.state.pools["op"].observed == observed + 1
    assert p.state.finished[1][0] == Outcome.FAILED
    assert p.balance("client") == RICH - FEE  # task 1 refunded, task 2 still escrowed
    assert (cop(p).free, cop(p).locked, cop(p).slashes) == (COLLATERAL, 0, 0)
    p.check_invariants()


def test_an_expired_assignment_takes_only_the_liveness_penalty() -> None:
    p = network(slash_fraction=200_000, liveness_penalty=10_000)
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op")
    own = p.pending_stake("op")
    penalty = own * 10_000 // PPM
    assert p.expire_task(1) == penalty
    assert p.pending_stake("op") == own - penalty
    p.check_invariants()
