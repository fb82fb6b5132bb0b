"""Commission changes with Bittensor bounds and cooldown (SPEC 4), Params defaults.

Defaults: min_take 0, max_take 180_000, take_cooldown_rounds 30. The bounds
apply to ``set_commission``; registration accepts any value in [0, PPM]
(a documented decision).
"""

from __future__ import annotations

from refusals import assert_refused

from protocol import PPM, TOKEN, Params, Protocol
from protocol.errors import (
    CommissionCooldown,
    CommissionTooHigh,
    CommissionTooLow,
    CommissionUnchanged,
    InvalidFraction,
    NotOwner,
    UnknownOperator,
)


def network(params: Params | None = None, reward_cut: int = 100_000) -> Protocol:
    """op (own 800) with delegator d (200), fee_share 90 %, active from round 1."""
    p = Protocol(params or Params(), {"op": 10**24, "d": 10**24, "x": 10**24})
    p.bond("op", "op", 800 * TOKEN)
    p.register_operator("op", reward_cut=reward_cut, fee_share=900_000)
    p.bond("d", "op", 200 * TOKEN)
    p.initialize_round()
    return p


def advance_to(p: Protocol, round_: int) -> None:
    while p.round < round_:
        p.initialize_round()


def test_too_high_is_refused() -> None:
    p = network()
    assert_refused(p, CommissionTooHigh, p.set_commission, "op", reward_cut=180_001)
    # fee take PPM - fee_share = 180_001
    assert_refused(p, CommissionTooHigh, p.set_commission, "op", fee_share=PPM - 180_001)
    p.set_commission("op", reward_cut=180_000, fee_share=PPM - 180_000)  # the bound itself
    p.check_invariants()


def test_registration_obeys_the_same_bounds_as_a_change() -> None:
    p = Protocol(Params(), {"op": 10**24, "lo": 10**24})
    p.bond("op", "op", 800 * TOKEN)
    # 20 % with max_take at 18 %: refused, as set_commission refuses it
    assert_refused(p, CommissionTooHigh, p.register_operator, "op", reward_cut=200_000)
    assert_refused(p, CommissionTooHigh, p.register_operator, "op", 0, fee_share=800_000)
    p.register_operator("op", reward_cut=180_000, fee_share=PPM - 180_000)  # the bounds
    assert p.commission("op") == (180_000, PPM - 180_000)
    q = Protocol(Params(min_take=10_000), {"lo": 10**24})
    q.bond("lo", "lo", TOKEN)
    assert_refused(q, CommissionTooLow, q.register_operator, "lo", reward_cut=0)


def test_resigning_and_registering_again_cannot_raise_the_take_at_once() -> None:
    """The attack: unbond the self-bond (resign; delegators stay), register again at a
    higher take and rebond in the same round. The old take stays in force this round;
    a raise inside the cooldown is refused."""
    p = network(reward_cut=50_000)
    p.set_commission("op", reward_cut=40_000)  # a change: the cooldown runs from here
    p.initialize_round()
    p.unbond("op", 800 * TOKEN)  # resigns
    assert not p.is_registered("op")
    assert_refused(p, CommissionCooldown, p.register_operator, "op", 180_000, 900_000)
    p.register_operator("op", reward_cut=30_000, fee_share=900_000)  # a decrease: allowed
    assert p.commission("op") == (40_000, 900_000)  # in force until next round
    p.initialize_round()
    assert p.commission("op") == (30_000, 900_000)
    q = network(Params(take_cooldown_rounds=0), reward_cut=50_000)
    q.unbond("op", 800 * TOKEN)
    q.register_operator("op", reward_cut=180_000, fee_share=900_000)  # no cooldown
    assert q.commission("op") == (50_000, 900_000)  # but not before the next round
    q.initialize_round()
    assert q.commission("op") == (180_000, 900_000)


def test_a_zero_cooldown_means_no_cooldown() -> None:
    p = network(Params(take_cooldown_rounds=0))
    p.set_commission("op", reward_cut=120_000)
    p.set_commission("op", reward_cut=150_000)  # a second increase in the same round
    p.initialize_round()
    assert p.commission("op") == (150_000, 900_000)


def test_too_low_is_refused() -> None:
    p = network(Params(min_take=10_000))
    assert_refused(p, CommissionTooLow, p.set_commission, "op", reward_cut=9_999, fee_share=950_000)
    # fee take PPM - fee_share = 0 < 10_000
    assert_refused(p, CommissionTooLow, p.set_commission, "op", reward_cut=50_000, fee_share=PPM)
    p.set_commission("op", reward_cut=10_000, fee_share=PPM - 10_000)


def test_first_change_is_always_allowed_even_an_increase() -> None:
    p = network()
    p.set_commission("op", reward_cut=170_000)  # an increase, round 1, never changed before
    assert p.commission("op") == (100_000, 900_000)  # in force from the next round
    p.initialize_round()
    assert p.commission("op") == (170_000, 900_000)


def test_increase_within_cooldown_is_refused() -> None:
    p = network()
    p.set_commission("op", reward_cut=120_000)  # round 1
    p.initialize_round()
    assert_refused(p, CommissionCooldown, p.set_commission, "op", reward_cut=130_000)
    # the fee take counts as well: a lower fee_share is an increase
    assert_refused(p, CommissionCooldown, p.set_commission, "op", fee_share=890_000)
    advance_to(p, 1 + 30)  # round - last_change_round == 30: not yet
    assert_refused(p, CommissionCooldown, p.set_commission, "op", reward_cut=130_000)
    p.initialize_round()  # 32 - 1 > 30
    p.set_commission("op", reward_cut=130_000)
    p.initialize_round()
    assert p.commission("op") == (130_000, 900_000)
    p.check_invariants()


def test_decrease_is_always_allowed_and_restarts_the_cooldown() -> None:
    p = network()
    p.set_commission("op", reward_cut=150_000)  # round 1
    p.initialize_round()
    p.set_commission("op", reward_cut=140_000)  # round 2: a decrease inside the cooldown
    p.set_commission("op", fee_share=950_000)  # round 2: another decrease (fee take down)
    assert_refused(p, CommissionCooldown, p.set_commission, "op", reward_cut=145_000)
    advance_to(p, 2 + 30)  # 30 rounds after the decrease: still cooling down
    assert p.commission("op") == (140_000, 950_000)
    assert_refused(p, CommissionCooldown, p.set_commission, "op", reward_cut=145_000)
    p.initialize_round()  # 33 - 2 > 30
    p.set_commission("op", reward_cut=145_000)
    p.check_invariants()


def test_sender_must_own_the_operator() -> None:
    p = network()
    assert_refused(p, NotOwner, p.set_commission, "op", reward_cut=50_000, sender="d")
    p.set_commission("op", reward_cut=50_000, sender="op")


def test_unknown_operator_is_refused() -> None:
    p = network()
    assert_refused(
        p, UnknownOperator, p.set_commission, "ghost", reward_cut=50_000, fee_share=900_000
    )
    assert_refused(p, UnknownOperator, p.set_commission, "d", reward_cut=50_000, fee_share=900_000)
    # with only one field given, the missing one cannot be looked up: still UnknownOperator
    assert_refused(p, UnknownOperator, p.set_commission, "ghost", reward_cut=50_000)
    assert_refused(p, UnknownOperator, p.set_commission, "ghost", fee_share=900_000)


def test_registration_range() -> None:
    p = Protocol(Params(max_take=PPM), {"a": 10**24, "b": 10**24})
    p.bond("a", "a", TOKEN)
    assert_refused(p, InvalidFraction, p.register_operator, "a", reward_cut=PPM + 1)
    assert_refused(p, InvalidFraction, p.register_operator, "a", reward_cut=0, fee_share=-1)
    p.register_operator("a", reward_cut=PPM, fee_share=0)  # both ends of [0, PPM]
    assert p.commission("a") == (PPM, 0)


def test_unchanged_is_refused() -> None:
    p = network()
    assert_refused(p, CommissionUnchanged, p.set_commission, "op", reward_cut=100_000)
    assert_refused(p, CommissionUnchanged, p.set_commission, "op")
    p.set_commission("op", reward_cut=90_000)
    # compared with the pending request, not with the commission in force
    assert_refused(p, CommissionUnchanged, p.set_commission, "op", reward_cut=90_000)


def test_change_applies_from_the_next_round() -> None:
    """A decrease requested in round 1 before the checkpoint: round 1 still pays the old cut."""
    p = network()
    p.set_commission("op", reward_cut=0)
    d0 = p.pending_stake("d")
    r1 = p.reward("op")
    dr1 = r1 - r1 * 100_000 // PPM  # the old cut
    s = 1000 * TOKEN
    crf1 = 10**27 + 10**27 * (dr1 * 10**27 // s) // 10**27
    assert p.pending_stake("d") - d0 == 200 * TOKEN * crf1 // 10**27 - 200 * TOKEN
    assert p.commission("op") == (100_000, 900_000)
    p.initialize_round()
    assert p.commission("op") == (0, 900_000)
    s2 = p.active_set["op"]
    op_before = p.pending_stake("op")
    d_before = p.pending_stake("d")
    r2 = p.reward("op")
    # cut 0: the whole reward is shared pro rata over the whole active stake
    gains = p.pending_stake("op") - op_before + p.pending_stake("d") - d_before
    assert r2 - 2 <= gains <= r2
    assert abs((p.pending_stake("d") - d_before) - r2 * d_before // s2) <= 1
    p.check_invariants()
