"""The market's money (SPEC 6-9, 11): collateral, escrow, settlement, faults, GAS, uptime.

Hand-checked scenarios: every expected number is computed here from the
SPEC formulas with the protocol's integer rounding, never read back from
the code under test. Every refusal leaves ``state_hash()`` unchanged, and
every scenario ends with ``check_invariants()``.
"""

from __future__ import annotations

from typing import Any

import pytest
from refusals import assert_refused

from protocol import PPB, PPM, TOKEN, Params, Protocol
from protocol.errors import (
    AlreadyRegistered,
    CoprocessorUnavailable,
    DuplicateTransaction,
    InsufficientBalance,
    InsufficientCollateral,
    InvalidAmount,
    LockNotWithdrawable,
    OperatorNotActive,
    TaskStateError,
    UnknownAccount,
    UnknownCoprocessor,
    UnknownLock,
    UnknownOperator,
    UnknownTask,
)
from protocol.loadcurve import compute_uptime_shares
from protocol.reputation import compute_gas_update, sigmoid

RICH = 10**24
ACCOUNTS = ("op", "op2", "d", "client", "cop", "cop2", "finder")
OWN = 1_000 * TOKEN
DELEGATED = 500 * TOKEN
COLLATERAL = 100 * TOKEN
FEE = 10 * TOKEN
FEE_SHARE = 900_000


def network(active: bool = True, **overrides: Any) -> Protocol:
    """op (own 1000, fee_share 90 %) with delegator d (500); op2 alone (own 1000).

    ``cop`` is registered with 100 tokens of collateral and capacity 4.
    """
    p = Protocol(Params(**overrides), dict.fromkeys(ACCOUNTS, RICH))
    p.bond("op", "op", OWN)
    p.register_operator("op", reward_cut=100_000, fee_share=FEE_SHARE)
    p.bond("d", "op", DELEGATED)
    p.bond("op2", "op2", OWN)
    p.register_operator("op2")
    if active:
        p.initialize_round()
    p.register_coprocessor("cop", COLLATERAL, 4)
    return p


def cop(p: Protocol, name: str = "cop") -> Any:
    return p.state.coprocessors[name]


def required(fee: int, ratio: int = 200_000) -> int:
    return fee * ratio // PPM


# --- collateral ---------------------------------------------------------------


def test_register_moves_collateral_out_of_the_balance() -> None:
    p = network()
    supply = p.total_supply
    assert p.balance("cop") == RICH - COLLATERAL
    c = cop(p)
    assert (c.free, c.locked, c.load, c.capacity) == (COLLATERAL, 0, 0, 4)
    assert p.state.totals.collateral == COLLATERAL
    assert p.reputation("cop") == sigmoid(Params().gas.initial_f)
    p.register_coprocessor("cop2", RICH, 1)  # the whole balance
    assert p.balance("cop2") == 0
    assert p.state.totals.collateral == COLLATERAL + RICH
    assert p.total_supply == supply
    p.check_invariants()


def test_register_refusals() -> None:
    p = network()
    assert_refused(p, AlreadyRegistered, p.register_coprocessor, "cop", 1, 1)
    assert_refused(p, InsufficientBalance, p.register_coprocessor, "cop2", RICH + 1, 1)
    assert_refused(p, UnknownAccount, p.register_coprocessor, "nobody", 1, 1)
    for collateral in (0, -1, True, "1"):
        assert_refused(p, InvalidAmount, p.register_coprocessor, "cop2", collateral, 1)
    for capacity in (0, -1, True, 1.0):
        assert_refused(p, InvalidAmount, p.register_coprocessor, "cop2", 1, capacity)
    p.check_invariants()


def test_top_up() -> None:
    p = network()
    p.top_up_collateral("cop", 7 * TOKEN + 3)
    assert cop(p).free == COLLATERAL + 7 * TOKEN + 3
    assert p.balance("cop") == RICH - COLLATERAL - 7 * TOKEN - 3
    assert p.state.totals.collateral == COLLATERAL + 7 * TOKEN + 3
    assert_refused(p, InsufficientBalance, p.top_up_collateral, "cop", p.balance("cop") + 1)
    assert_refused(p, UnknownCoprocessor, p.top_up_collateral, "cop2", 1)
    assert_refused(p, InvalidAmount, p.top_up_collateral, "cop", 0)
    p.check_invariants()


def test_unbond_only_free_collateral_and_withdraw_after_the_period() -> None:
    p = network(unbonding_period=2)
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop", 4 * TOKEN)
    locked = required(FEE)
    free = COLLATERAL - locked
    assert (cop(p).free, cop(p).locked) == (free, locked)
    assert_refused(p, InsufficientCollateral, p.unbond_collateral, "cop", free + 1)
    assert_refused(p, InvalidAmount, p.unbond_collateral, "cop", 0)
    assert_refused(p, UnknownCoprocessor, p.unbond_collateral, "cop2", 1)
    start = p.round
    lock_id = p.unbond_collateral("cop", free - 5)
    assert cop(p).free == 5
    assert cop(p).locks[lock_id].withdraw_round == start + 2
    assert p.state.totals.collateral == COLLATERAL  # still collateral while unbonding
    second = p.unbond_collateral("cop", 5)
    assert second == lock_id + 1 and cop(p).free == 0
    assert_refused(p, UnknownLock, p.withdraw_collateral, "cop", 99)
    assert_refused(p, UnknownLock, p.withdraw_collateral, "cop", "0")
    assert_refused(p, UnknownCoprocessor, p.withdraw_collateral, "cop2", lock_id)
    assert_refused(p, LockNotWithdrawable, p.withdraw_collateral, "cop", lock_id)
    p.initialize_round()
    assert_refused(p, LockNotWithdrawable, p.withdraw_collateral, "cop", lock_id)
    p.initialize_round()
    balance = p.balance("cop")
    assert p.withdraw_collateral("cop", lock_id) == free - 5
    assert p.balance("cop") == balance + free - 5
    assert p.state.totals.collateral == COLLATERAL - (free - 5)
    assert_refused(p, UnknownLock, p.withdraw_collateral, "cop", lock_id)  # once only
    assert (cop(p).free, cop(p).locked) == (0, locked)
    p.check_invariants()


# --- escrow ---------------------------------------------------------------------


def test_escrow_moves_fees_into_task_escrow() -> None:
    p = network()
    total = p.escrow_tasks("client", [(1, FEE), (2, 3), (7, 2 * FEE)])
    assert total == 3 * FEE + 3
    assert p.balance("client") == RICH - total
    assert p.state.totals.task_escrow == total
    assert sorted(p.state.tasks) == [1, 2, 7]
    assert p.escrow_tasks("client", []) == 0
    p.check_invariants()


def test_escrow_is_all_or_nothing() -> None:
    p = network()
    p.escrow_tasks("client", [(1, FEE)])
    esc = p.escrow_tasks
    assert_refused(p, DuplicateTransaction, esc, "client", [(2, FEE), (3, FEE), (2, FEE)])
    assert_refused(p, DuplicateTransaction, esc, "client", [(2, FEE), (1, FEE)])  # open
    assert_refused(p, InsufficientBalance, esc, "client", [(2, FEE), (3, RICH)])
    assert_refused(p, InvalidAmount, esc, "client", [(2, FEE), (3, 0)])
    assert_refused(p, InvalidAmount, esc, "client", [(2, FEE), (-3, 1)])
    assert_refused(p, InvalidAmount, esc, "client", [(2, FEE), (True, 1)])
    assert_refused(p, InvalidAmount, esc, "client", [(2, FEE), (3, 1, 1)])
    assert_refused(p, UnknownAccount, esc, "nobody", [(2, FEE)])
    # Finished ids can never come back.
    p.assign_task(1, "op")
    p.settle_tasks([1])
    assert_refused(p, DuplicateTransaction, esc, "client", [(2, FEE), (1, FEE)])
    p.escrow_tasks("client", [(2, FEE)])
    p.refund_task(2)
    assert_refused(p, DuplicateTransaction, esc, "client", [(2, FEE)])
    assert 3 not in p.state.tasks
    p.check_invariants()


# --- assignment -----------------------------------------------------------------


def test_assign_locks_collateral_and_raises_load() -> None:
    p = network()
    p.escrow_tasks("client", [(1, FEE), (2, FEE + 7)])
    p.assign_task(1, "op", "cop", 3 * TOKEN)
    p.assign_task(2, "op", "cop", 0)
    locked = required(FEE) + required(FEE + 7)
    c = cop(p)
    assert (c.free, c.locked, c.load) == (COLLATERAL - locked, locked, 2)
    assert p.state.totals.collateral == COLLATERAL
    task = p.state.tasks[1]
    assert (task.operator, task.coprocessor, task.price, task.collateral) == (
        "op",
        "cop",
        3 * TOKEN,
        required(FEE),
    )
    assert_refused(p, TaskStateError, p.assign_task, 1, "op", "cop", 1)  # already assigned
    p.check_invariants()


def test_assign_refusals() -> None:
    p = network(collateral_ratio=500_000)
    p.escrow_tasks("client", [(i, FEE) for i in range(1, 8)])
    a = p.assign_task
    assert_refused(p, UnknownTask, a, 99, "op")
    assert_refused(p, UnknownCoprocessor, a, 1, "op", "cop2", 0)
    assert_refused(p, UnknownOperator, a, 1, "d", "cop", 0)
    for price in (-1, FEE + 1, None, True, 1.0):
        assert_refused(p, InvalidAmount, a, 1, "op", "cop", price)
    # Collateral: 100 tokens cover 20 tasks of 10 at 50 %; capacity 4 binds first.
    for i in range(1, 5):
        a(i, "op", "cop", FEE)  # price == fee is allowed
    assert cop(p).load == 4
    assert_refused(p, CoprocessorUnavailable, a, 5, "op", "cop", 0)  # full
    # Short of collateral: one task locks 5 tokens.
    p.register_coprocessor("cop2", 5 * TOKEN - 1, 10)
    assert_refused(p, InsufficientCollateral, a, 5, "op", "cop2", 0)
    p.top_up_collateral("cop2", 1)
    a(5, "op", "cop2", 0)
    assert cop(p, "cop2").free == 0
    assert_refused(p, InsufficientCollateral, a, 6, "op", "cop2", 0)
    p.check_invariants()


def test_assign_refuses_below_min_reputation() -> None:
    p = network(min_reputation=0.7)  # a newcomer starts at sigmoid(0.5) = 0.622
    p.escrow_tasks("client", [(1, FEE)])
    assert p.reputation("cop") < 0.7
    assert_refused(p, CoprocessorUnavailable, p.assign_task, 1, "op", "cop", 0)
    p.assign_task(1, "op")  # self-execution needs no reputation
    p.check_invariants()


def test_assign_refuses_an_operator_that_is_not_active() -> None:
    p = network(active=False)
    p.escrow_tasks("client", [(1, FEE)])
    assert_refused(p, OperatorNotActive, p.assign_task, 1, "op")
    assert_refused(p, OperatorNotActive, p.assign_task, 1, "op", "cop", 0)
    p.initialize_round()
    p.assign_task(1, "op", "cop", 0)
    p.check_invariants()


# --- settlement -----------------------------------------------------------------


def test_settlement_pays_like_pay_fees() -> None:
    p = network()
    twin = network()
    price = 3 * TOKEN + 123_457
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop", price)
    cop_balance = p.balance("cop")
    supply = p.total_supply
    assert p.settle_tasks([1]) == 1
    assert p.balance("cop") == cop_balance + FEE - price
    c = cop(p)
    assert (c.free, c.locked, c.load) == (COLLATERAL, 0, 0)
    assert p.state.totals.task_escrow == 0
    assert p.state.finished[1][0] == "settled"
    twin.pay_fees("client", "op", price)
    for who in ("op", "d"):
        assert p.pending_fees(who) == twin.pending_fees(who)
    assert p.pending_fees("op") + p.pending_fees("d") <= price
    # fee_share 90 % of the price goes to delegators in proportion to stake.
    d_share = p.pending_fees("d")
    assert abs(d_share - price * FEE_SHARE // PPM * DELEGATED // (OWN + DELEGATED)) <= 2
    assert p.total_supply == supply
    p.check_invariants()


def test_self_executed_task_gives_the_whole_fee() -> None:
    p = network()
    twin = network()
    p.escrow_tasks("client", [(1, FEE + 1)])
    p.assign_task(1, "op", None, 5)  # a price is ignored without a coprocessor
    assert p.state.tasks[1].price == FEE + 1
    p.settle_tasks([1])
    twin.pay_fees("client", "op", FEE + 1)
    for who in ("op", "d"):
        assert p.pending_fees(who) == twin.pending_fees(who)
    assert p.balance("client") == twin.balance("client")
    p.check_invariants()


def test_settle_is_idempotent_and_a_batch_counts_each_id_once() -> None:
    p = network()
    twin = network()
    p.escrow_tasks("client", [(1, FEE), (2, FEE), (3, FEE)])
    p.assign_task(1, "op", "cop", TOKEN)
    p.assign_task(2, "op")
    p.assign_task(3, "op", "cop", 2 * TOKEN)
    assert_refused(p, UnknownTask, p.settle_tasks, [1, 99])
    p.escrow_tasks("client", [(4, FEE)])
    assert_refused(p, TaskStateError, p.settle_tasks, [1, 4])  # 4 not assigned
    assert p.settle_tasks([1, 2, 1, 2]) == 2
    twin.pay_fees("client", "op", TOKEN + FEE)
    assert p.pending_fees("op") == twin.pending_fees("op")
    assert p.pending_fees("d") == twin.pending_fees("d")
    before = p.state_hash()
    assert p.settle_tasks([1, 2]) == 0
    assert p.settle_tasks([2, 1, 2]) == 0
    assert p.state_hash() == before
    assert p.settle_tasks([1, 3, 3]) == 1
    assert p.balance("cop") == RICH - COLLATERAL + (FEE - TOKEN) + (FEE - 2 * TOKEN)
    assert p.state.totals.task_escrow == FEE
    p.check_invariants()


def test_refund_returns_the_fee() -> None:
    p = network()
    p.escrow_tasks("client", [(1, FEE), (2, FEE)])
    p.assign_task(2, "op")
    assert_refused(p, TaskStateError, p.refund_task, 2)  # assigned
    assert_refused(p, UnknownTask, p.refund_task, 3)
    p.refund_task(1)
    assert p.balance("client") == RICH - FEE
    assert p.state.finished[1][0] == "refunded"
    assert_refused(p, DuplicateTransaction, p.refund_task, 1)
    assert_refused(p, DuplicateTransaction, p.assign_task, 1, "op")
    assert p.settle_tasks([1]) == 0  # a refunded id is finished: skipped
    p.check_invariants()


# --- coprocessor faults -----------------------------------------------------------


def test_coprocessor_fault_at_or_below_F_slashes_without_amplification() -> None:
    # capacity 5, four tasks held: utilisation 0.8 == F, amplification 1.
    p = network(slash_fraction=300_000, redistribution=400_000)
    p.register_coprocessor("cop2", COLLATERAL, 5)
    fee = FEE + 3
    p.escrow_tasks("client", [(i, fee) for i in range(4)])
    for i in range(4):
        p.assign_task(i, "op", "cop2", TOKEN)
    assert cop(p, "cop2").load / cop(p, "cop2").capacity == p.params.load_curve.F
    locked = required(fee)
    slash = locked * 300_000 // PPM
    to_op = slash * 400_000 // PPM
    op_balance = p.balance("op")
    supply = p.total_supply
    assert p.fail_coprocessor(0) == slash
    c = cop(p, "cop2")
    assert (c.free, c.locked, c.load) == (COLLATERAL - 3 * locked - slash, 3 * locked, 3)
    assert p.balance("op") == op_balance + to_op
    assert p.total_supply == supply - (slash - to_op)
    assert p.state.totals.collateral == 2 * COLLATERAL - slash
    task = p.state.tasks[0]
    assert (task.assigned, task.attempts, task.excluded) == (False, 1, ["cop2"])
    p.check_invariants()


def test_coprocessor_fault_above_F_is_amplified() -> None:
    p = network()
    p.register_coprocessor("cop2", COLLATERAL, 1)
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop2", 0)
    x = 1 / 1  # load / capacity
    assert x > p.params.load_curve.F
    amplification = p.params.load_curve.compute_slash_amplification(x)
    assert amplification > 1.5
    factor = int(amplification * PPM)
    locked = required(FEE)
    slash = min(locked, locked * 100_000 // PPM * factor // PPM)
    assert slash > locked * 100_000 // PPM
    supply = p.total_supply
    assert p.fail_coprocessor(1) == slash
    to_op = slash * 500_000 // PPM
    assert p.total_supply == supply - (slash - to_op)
    p.check_invariants()


def test_amplified_slash_is_capped_at_the_locked_collateral() -> None:
    p = network(slash_fraction=PPM)
    p.register_coprocessor("cop2", COLLATERAL, 1)
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop2", 0)
    assert p.fail_coprocessor(1) == required(FEE)
    assert cop(p, "cop2").free == COLLATERAL - required(FEE)
    p.check_invariants()


def test_failed_task_is_reoffered_until_max_attempts_then_refunded() -> None:
    p = network(max_attempts=3)
    p.register_coprocessor("cop2", COLLATERAL, 4)
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop", 0)
    p.fail_coprocessor(1)
    assert_refused(p, TaskStateError, p.fail_coprocessor, 1)  # nobody holds it now
    assert_refused(p, CoprocessorUnavailable, p.assign_task, 1, "op", "cop", 0)  # excluded
    assert_refused(p, TaskStateError, p.assign_task, 1, "op2")  # belongs to op
    p.assign_task(1, "op", "cop2", 0)
    p.fail_coprocessor(1)
    assert p.state.tasks[1].attempts == 2
    assert_refused(p, CoprocessorUnavailable, p.assign_task, 1, "op", "cop2", 0)
    p.register_coprocessor("client", COLLATERAL, 4)  # a third coprocessor
    p.assign_task(1, "op", "client", 0)
    client = p.balance("client")
    p.fail_coprocessor(1)
    assert p.state.finished[1][0] == "refunded" and 1 not in p.state.tasks
    assert p.balance("client") == client + FEE
    assert p.state.totals.task_escrow == 0
    for name in ("cop", "cop2", "client"):
        assert (cop(p, name).locked, cop(p, name).load, cop(p, name).slashes) == (0, 0, 1)
    p.check_invariants()


def test_operator_may_run_a_failed_task_itself() -> None:
    p = network()
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op", "cop", TOKEN)
    p.fail_coprocessor(1)
    p.assign_task(1, "op")
    p.settle_tasks([1])
    twin = network()
    twin.pay_fees("client", "op", FEE)
    assert p.pending_fees("op") == twin.pending_fees("op")
    p.check_invariants()


# --- operator faults and audits ---------------------------------------------------


@pytest.mark.parametrize("finder", [None, "finder"])
def test_operator_fault_slashes_own_bond_and_refunds(finder: str | None) -> None:
    p = network(slash_fraction=200_000)
    p.escrow_tasks("client", [(1, FEE), (2, FEE)])
    assert_refused(p, TaskStateError, p.fail_operator, 1)  # nobody holds it
    p.assign_task(1, "op", "cop", TOKEN)
    own = p.pending_stake("op")
    d_stake = p.pending_stake("d")
    supply = p.total_supply
    penalty = own * 200_000 // PPM
    finder_cut = penalty * 50_000 // PPM if finder else 0
    assert p.fail_operator(1, finder) == penalty
    assert p.pending_stake("op") == own - penalty
    assert p.pending_stake("d") == d_stake
    assert p.balance("client") == RICH - FEE  # task 1 refunded, task 2 still escrowed
    assert p.state.finished[1][0] == "failed"
    c = cop(p)
    assert (c.free, c.locked, c.load) == (COLLATERAL, 0, 0)  # collateral released, no slash
    assert p.total_supply == supply - (penalty - finder_cut)
    if finder:
        assert p.balance("finder") == RICH + finder_cut
    assert_refused(p, DuplicateTransaction, p.fail_operator, 1)
    p.check_invariants()


def test_operator_fault_with_zero_slash_fraction_only_refunds() -> None:
    p = network(slash_fraction=0)
    p.escrow_tasks("client", [(1, FEE)])
    p.assign_task(1, "op")
    own = p.pending_stake("op")
    assert p.fail_operator(1) == 0
    assert p.pending_stake("op") == own
    assert p.balance("client") == RICH
    p.check_invariants()


@pytest.mark.parametrize("finder", [None, "finder"])
def test_audit_fault_only_on_settled_tasks(finder: str | None) -> None:
    p = network()
    p.escrow_tasks("client", [(1, FEE), (2, FEE), (3, FEE)])
    p.assign_task(1, "op", "cop", TOKEN)
    assert_refused(p, TaskStateError, p.audit_fault, 1, "op", finder)  # assigned, open
    assert_refused(p, TaskStateError, p.audit_fault, 99, "op", finder)
    p.refund_task(3)
    assert_refused(p, TaskStateError, p.audit_fault, 3, "op", finder)  # refunded
    p.settle_tasks([1])
    assert_refused(p, UnknownOperator, p.audit_fault, 1, "nobody", finder)
    own = p.pending_stake("op")
    supply = p.total_supply
    penalty = own * 100_000 // PPM
    finder_cut = penalty * 50_000 // PPM if finder else 0
    assert p.audit_fault(1, "op", finder) == penalty
    assert p.pending_stake("op") == own - penalty
    assert p.total_supply == supply - (penalty - finder_cut)
    assert p.balance("finder") == RICH + finder_cut
    assert p.state.finished[1][0] == "audited"
    assert_refused(p, TaskStateError, p.audit_fault, 1, "op", finder)  # once
    assert p.settle_tasks([1]) == 0
    p.check_invariants()


# --- reputation ---------------------------------------------------------------------


def test_reputation_follows_one_gas_step_per_round() -> None:
    p = network()
    p.register_coprocessor("cop2", COLLATERAL, 4)
    gas = p.params.gas
    p.escrow_tasks("client", [(i, FEE) for i in range(6)])
    for i in range(3):
        p.assign_task(i, "op", "cop", TOKEN)
    p.assign_task(3, "op", "cop2", TOKEN)
    p.assign_task(4, "op", "cop2", TOKEN)
    p.assign_task(5, "op")
    p.settle_tasks([0, 1, 3, 5])
    p.fail_coprocessor(2)  # cop: 3 observed, 2 succeeded
    p.fail_coprocessor(4)  # cop2: 2 observed, 1 succeeded
    assert p.reputation("cop") == sigmoid(gas.initial_f)  # until the round ends
    p.initialize_round()
    f_cop = compute_gas_update(gas.initial_f, 3, 2, gas)
    f_cop2 = compute_gas_update(gas.initial_f, 2, 1, gas)
    assert p.reputation("cop") == sigmoid(f_cop)
    assert p.reputation("cop2") == sigmoid(f_cop2)
    # The operator: four settled tasks, all succeeded; its initial_f decayed once (round 1).
    f_op = compute_gas_update(compute_gas_update(gas.initial_f, 0, 0, gas), 4, 4, gas)
    assert p.reputation("op") == sigmoid(f_op)
    # An idle round only decays.
    p.initialize_round()
    assert p.reputation("cop") == sigmoid(compute_gas_update(f_cop, 0, 0, gas))
    assert_refused(p, UnknownOperator, p.reputation, "nobody")
    p.check_invariants()


def test_coprocessor_below_min_reputation_after_failures_is_ineligible() -> None:
    p = network(max_attempts=10)
    gas = p.params.gas
    f = gas.initial_f
    for round_ in range(3):
        p.escrow_tasks("client", [(round_, FEE)])
        p.assign_task(round_, "op", "cop", 0)
        p.fail_coprocessor(round_)
        p.initialize_round()
        f = compute_gas_update(f, 1, 0, gas)
        assert p.reputation("cop") == sigmoid(f)
    assert p.reputation("cop") < p.params.min_reputation
    p.escrow_tasks("client", [(10, FEE)])
    assert_refused(p, CoprocessorUnavailable, p.assign_task, 10, "op", "cop", 0)
    p.check_invariants()


# --- uptime incentive (SPEC 9) -------------------------------------------------------


def expected_uptime(p: Protocol, mintable: int) -> dict[str, int]:
    """The shares SPEC 9 prescribes, from the state before the round's GAS step."""
    names = sorted(p.state.coprocessors)
    cs = [p.state.coprocessors[n] for n in names]
    weights = p.params.load_curve.compute_uptime_weights(
        [c.free + c.locked for c in cs],
        [p.reputation(n) for n in names],
        [c.load / c.capacity for c in cs],
    )
    pot = mintable * p.params.coprocessor_issuance_share // PPM
    return dict(zip(names, compute_uptime_shares(pot, weights), strict=True))


def predicted_mintable(p: Protocol) -> int:
    """Mintable of the next round: inflation moved one step, times the supply (SPEC 3)."""
    supply = p.total_supply
    stake = sum(p.operator_stake(o) for o in p.state.pools if p.is_registered(o))
    rate = stake * PPB // supply
    params = p.params
    inflation = p.inflation
    if rate < params.target_bonding_rate:
        inflation += params.inflation_change
    elif rate > params.target_bonding_rate:
        inflation = max(inflation - params.inflation_change, 0)
    return supply * inflation // PPB


@pytest.mark.parametrize("share", [1, 250_000, PPM])
def test_uptime_incentive_is_paid_from_mintable(share: int) -> None:
    p = network(coprocessor_issuance_share=share)
    p.register_coprocessor("cop2", 3 * COLLATERAL + 11, 10)
    p.escrow_tasks("client", [(i, FEE) for i in range(4)])
    p.assign_task(0, "op", "cop", 0)
    p.assign_task(1, "op", "cop", 0)
    p.assign_task(2, "op", "cop2", 0)
    p.assign_task(3, "op", "cop2", 0)
    p.settle_tasks([3])  # cop2 ends at load 1, with one success (applied after the payment)
    mintable = predicted_mintable(p)
    shares = expected_uptime(p, mintable)
    assert 0 < shares["cop"] < shares["cop2"]  # cop2: more collateral, load near B
    balances = {n: p.balance(n) for n in shares}
    supply = p.total_supply
    p.initialize_round()
    assert p.mintable == mintable
    paid = mintable * share // PPM
    assert sum(shares.values()) == paid
    for name, amount in shares.items():
        assert p.balance(name) == balances[name] + amount
    assert p.state.minter.uptime == paid == p.minted_this_round
    assert p.total_supply == supply + paid
    stake = p.active_set["op"]
    minted = p.reward("op")
    assert minted == (mintable - paid) * (stake * PPB // p.total_active_stake) // PPB
    assert p.minted_this_round == paid + minted <= mintable
    p.check_invariants()


def test_uptime_with_no_weight_mints_nothing() -> None:
    p = network(coprocessor_issuance_share=500_000)
    p.unbond_collateral("cop", COLLATERAL)  # unbonding collateral earns nothing
    mintable = predicted_mintable(p)
    supply = p.total_supply
    balance = p.balance("cop")
    p.initialize_round()
    assert p.mintable == mintable
    assert p.state.minter.uptime == 0 == p.minted_this_round
    assert p.balance("cop") == balance and p.total_supply == supply
    stake = p.active_set["op"]
    assert p.reward("op") == mintable * (stake * PPB // p.total_active_stake) // PPB
    p.check_invariants()


def test_uptime_share_zero_changes_nothing() -> None:
    with_market = network()
    p = Protocol(Params(), dict.fromkeys(ACCOUNTS, RICH))
    p.bond("op", "op", OWN)
    p.register_operator("op", reward_cut=100_000, fee_share=FEE_SHARE)
    p.bond("d", "op", DELEGATED)
    p.bond("op2", "op2", OWN)
    p.register_operator("op2")
    p.initialize_round()
    # The same network without a coprocessor: the collateral is only moved out of supply
    # circulation, not out of supply, so the mintable and reward are identical.
    balance = with_market.balance("cop")
    with_market.initialize_round()
    p.initialize_round()
    assert with_market.state.minter.uptime == 0
    assert with_market.balance("cop") == balance
    assert with_market.mintable == p.mintable
    assert with_market.reward("op") == p.reward("op")
    with_market.check_invariants()
    p.check_invariants()


def test_ask_grows_with_load_and_risk() -> None:
    from protocol.market import compute_ask, compute_coprocessor_slash, compute_required_collateral
    from protocol.reputation import compute_reputation
    from protocol.state import Coprocessor

    params = Params()
    fee, cost_ppm, margin_ppm = 10 * TOKEN, 200_000, 10_000
    cost, margin = fee * cost_ppm // PPM, fee * margin_ppm // PPM
    idle = Coprocessor(address="c", capacity=10, free=100 * TOKEN, reputation_f=3.0)
    busy = Coprocessor(address="c", capacity=10, free=100 * TOKEN, load=10, reputation_f=3.0)
    shaky = Coprocessor(address="c", capacity=10, free=100 * TOKEN, reputation_f=-1.0)
    # Idle and reliable: no premium below the curve's peak; risk = slash * (1 - reputation).
    # The rule is a rate of the fee, each term rounded up in PPM, then the ask rounded up.
    slash = compute_coprocessor_slash(idle, compute_required_collateral(fee, params), params)
    failure = int((1.0 - compute_reputation(3.0)) * PPM)
    risk_ppm = -(-(slash * PPM // fee) * failure // PPM)
    assert compute_ask(idle, fee, cost_ppm, margin_ppm, params) == -(
        -fee * (cost_ppm + risk_ppm + margin_ppm) // PPM
    )
    assert cost + slash * failure // PPM + margin <= compute_ask(
        idle, fee, cost_ppm, margin_ppm, params
    )
    assert compute_ask(busy, fee, cost_ppm, margin_ppm, params) > compute_ask(
        idle, fee, cost_ppm, margin_ppm, params
    )
    assert compute_ask(shaky, fee, cost_ppm, margin_ppm, params) > compute_ask(
        idle, fee, cost_ppm, margin_ppm, params
    )


def test_a_price_without_a_coprocessor_is_still_an_integer() -> None:
    """Found by the long property run: ``assign_task(t, op, None, True)`` was accepted and
    logged with ``price=True``, which a replay (strict integers) then refused."""
    p = network()
    p.escrow_tasks("client", [(1, FEE)])
    assert_refused(p, InvalidAmount, p.assign_task, 1, "op", None, True)
    p.assign_task(1, "op", None, 5)  # an integer is taken (and ignored: the operator runs it)
    assert p.state.tasks[1].price == FEE
