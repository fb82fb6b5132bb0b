"""Bonding, unbonding locks and the active set (SPEC sections 2 and 5)."""

from __future__ import annotations

from typing import Any

import pytest
from refusals import assert_refused

from protocol import TOKEN, Params, Protocol
from protocol.errors import (
    InsufficientBalance,
    InsufficientBond,
    InvalidAmount,
    LockNotWithdrawable,
    OperatorCannotDelegate,
    UnknownLock,
    UnknownOperator,
)

START = 10_000 * TOKEN


def two_operators(**overrides: Any) -> Protocol:
    """op1 (own 300) and op2 (own 200), delegator d (100 to op1), active from round 1."""
    params = Params(unbonding_period=2, **overrides)
    p = Protocol(params, {n: START for n in ("op1", "op2", "d", "e", "x")})
    p.bond("op1", "op1", 300 * TOKEN)
    p.register_operator("op1", reward_cut=100_000)
    p.bond("op2", "op2", 200 * TOKEN)
    p.register_operator("op2", reward_cut=100_000)
    p.bond("d", "op1", 100 * TOKEN)
    p.initialize_round()
    return p


# --- locks -------------------------------------------------------------------


def test_unbond_lock_and_withdraw() -> None:
    p = two_operators()
    lock = p.unbond("d", 40 * TOKEN)
    assert p.locks("d") == {lock: (40 * TOKEN, 1 + 2)}
    assert p.pending_stake("d") == 60 * TOKEN
    assert p.operator_stake("op1") == 360 * TOKEN
    assert p.active_set["op1"] == 400 * TOKEN  # frozen for round 1
    assert_refused(p, LockNotWithdrawable, p.withdraw_stake, "d", lock)
    p.initialize_round()  # round 2
    assert_refused(p, LockNotWithdrawable, p.withdraw_stake, "d", lock)
    p.initialize_round()  # round 3 == withdraw_round
    balance = p.balance("d")
    assert p.withdraw_stake("d", lock) == 40 * TOKEN
    assert p.balance("d") == balance + 40 * TOKEN
    assert p.locks("d") == {}
    assert_refused(p, UnknownLock, p.withdraw_stake, "d", lock)
    p.check_invariants()


def test_unknown_lock_is_refused() -> None:
    p = two_operators()
    assert_refused(p, UnknownLock, p.withdraw_stake, "d", 7)
    assert_refused(p, UnknownLock, p.rebond, "d", 7)
    lock = p.unbond("d", TOKEN)
    assert_refused(p, UnknownLock, p.rebond, "op1", lock)  # another account's lock id
    p.check_invariants()


def test_rebond_returns_the_lock_and_counts_from_next_round() -> None:
    p = two_operators()
    lock = p.unbond("d", 50 * TOKEN)
    p.initialize_round()  # round 2: the unbonded 50 are out of the active stake
    assert p.active_set["op1"] == 350 * TOKEN
    p.rebond("d", lock)
    assert p.locks("d") == {}
    assert p.pending_stake("d") == 100 * TOKEN
    assert p.operator_stake("op1") == 400 * TOKEN
    assert p.active_set["op1"] == 350 * TOKEN  # still frozen in round 2
    p.initialize_round()
    assert p.active_set["op1"] == 400 * TOKEN
    p.check_invariants()


# --- bond --------------------------------------------------------------------


def test_bonding_to_another_operator_moves_the_whole_bond() -> None:
    p = two_operators()
    p.initialize_round()  # round 2, no rewards: stakes are round numbers
    p.bond("d", "op2", 5 * TOKEN)
    assert p.delegate_of("d") == "op2"
    assert p.pending_stake("d") == 105 * TOKEN
    assert p.operator_stake("op1") == 300 * TOKEN
    assert p.operator_stake("op2") == 305 * TOKEN
    assert p.active_set == {"op1": 400 * TOKEN, "op2": 200 * TOKEN}  # frozen
    p.initialize_round()
    assert p.active_set == {"op1": 300 * TOKEN, "op2": 305 * TOKEN}
    p.check_invariants()


def test_registered_operator_cannot_delegate() -> None:
    p = two_operators()
    assert_refused(p, OperatorCannotDelegate, p.bond, "op1", "op2", TOKEN)


def test_bond_to_unregistered_address_is_refused() -> None:
    p = two_operators()
    assert_refused(p, UnknownOperator, p.bond, "d", "nobody", TOKEN)
    assert_refused(p, UnknownOperator, p.bond, "d", "e", TOKEN)  # an account, not an operator
    p.bond("e", "e", TOKEN)  # a self-bond before registering is fine
    assert_refused(p, UnknownOperator, p.bond, "d", "e", TOKEN)


@pytest.mark.parametrize("amount", [0, -1, -TOKEN, 1.5, "10", None, True])
def test_invalid_amounts_are_refused(amount: Any) -> None:
    p = two_operators()
    assert_refused(p, InvalidAmount, p.bond, "d", "op1", amount)
    assert_refused(p, InvalidAmount, p.unbond, "d", amount)


def test_over_balance_and_over_bond_are_refused() -> None:
    p = two_operators()
    liquid = p.balance("d")
    assert_refused(p, InsufficientBalance, p.bond, "d", "op1", liquid + 1)
    p.bond("d", "op1", liquid)  # exactly the balance is fine
    assert p.balance("d") == 0
    assert_refused(p, InsufficientBond, p.unbond, "d", p.pending_stake("d") + 1)
    assert_refused(p, InsufficientBond, p.unbond, "op2", 200 * TOKEN + 1)
    p.check_invariants()


def test_unbond_of_pending_rewards_is_allowed() -> None:
    """A bond includes unclaimed rewards: they can be unbonded without a claim."""
    p = two_operators()
    p.reward("op1")
    stake = p.pending_stake("d")
    assert stake > 100 * TOKEN
    lock = p.unbond("d", stake)
    assert p.locks("d")[lock][0] == stake
    assert p.pending_stake("d") == 0
    p.check_invariants()


# --- resigning and the active set --------------------------------------------


def test_unbonding_the_whole_self_bond_resigns_from_next_round() -> None:
    p = two_operators()
    p.unbond("op2", 200 * TOKEN)
    assert p.is_active("op2")  # still active in round 1
    assert not p.is_registered("op2")
    p.reward("op2")  # and may still checkpoint round 1
    assert_refused(p, UnknownOperator, p.bond, "e", "op2", TOKEN)
    p.initialize_round()
    assert not p.is_active("op2")
    assert p.active_set == {"op1": p.operator_stake("op1")}
    p.check_invariants()


def test_stake_changes_count_from_the_next_round() -> None:
    p = two_operators()
    frozen = p.active_set
    total = p.total_active_stake
    p.bond("e", "op2", 1_000 * TOKEN)
    p.unbond("d", 30 * TOKEN)
    assert p.active_set == frozen
    assert p.total_active_stake == total
    # this round's rewards are shares of the frozen stakes
    m = p.reward("op2")
    assert m == p.mintable * (200 * TOKEN * 10**9 // (600 * TOKEN)) // 10**9
    p.initialize_round()
    assert p.active_set["op2"] == 1_200 * TOKEN + m  # the whole reward, commission included
    assert p.active_set["op1"] == 370 * TOKEN
    p.check_invariants()


def active_set_network(**overrides: Any) -> Protocol:
    params = Params(max_active_operators=2, **overrides)
    return Protocol(params, {n: START for n in ("a", "b", "c", "d")})


def register(p: Protocol, name: str, amount: int) -> None:
    p.bond(name, name, amount)
    p.register_operator(name, reward_cut=0)


def test_active_set_is_the_top_by_stake_and_evicts_the_smallest() -> None:
    p = active_set_network()
    register(p, "a", 300 * TOKEN)
    register(p, "b", 200 * TOKEN)
    p.initialize_round()
    assert p.active_set == {"a": 300 * TOKEN, "b": 200 * TOKEN}
    register(p, "c", 250 * TOKEN)
    assert not p.is_active("c")  # counts from the next round
    p.initialize_round()
    assert p.active_set == {"a": 300 * TOKEN, "c": 250 * TOKEN}
    assert p.total_active_stake == 550 * TOKEN
    p.check_invariants()


def test_a_tie_does_not_evict_an_incumbent() -> None:
    p = active_set_network()
    register(p, "a", 300 * TOKEN)
    register(p, "b", 200 * TOKEN)
    p.initialize_round()
    register(p, "c", 200 * TOKEN)  # equal to the smallest incumbent
    p.initialize_round()
    assert p.active_set == {"a": 300 * TOKEN, "b": 200 * TOKEN}
    p.bond("d", "c", 1)  # one base unit more: now it evicts b
    p.initialize_round()
    assert p.active_set == {"a": 300 * TOKEN, "c": 200 * TOKEN + 1}


def test_a_tie_keeps_an_incumbent_registered_later() -> None:
    """Incumbency beats registration order in a tie."""
    p = Protocol(Params(max_active_operators=1), {n: START for n in ("early", "late")})
    register(p, "early", 100 * TOKEN)
    register(p, "late", 200 * TOKEN)
    p.initialize_round()
    assert p.active_set == {"late": 200 * TOKEN}
    p.unbond("late", 100 * TOKEN)  # now 100 each
    p.initialize_round()
    assert p.active_set == {"late": 100 * TOKEN}


def test_min_operator_bond() -> None:
    p = Protocol(Params(min_operator_bond=500 * TOKEN), {n: START for n in ("small", "big", "d")})
    register(p, "small", 400 * TOKEN)
    register(p, "big", 500 * TOKEN)
    p.bond("d", "small", 1_000 * TOKEN)  # delegated stake does not count as own bond
    p.initialize_round()
    assert p.active_set == {"big": 500 * TOKEN}
    p.unbond("big", 1)  # own bond below the minimum: out from the next round
    assert p.is_active("big")
    p.initialize_round()
    assert p.active_set == {}
    p.check_invariants()
