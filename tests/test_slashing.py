"""Operator slashing with finder fee and burn (SPEC 7), hand-checked numbers."""

from __future__ import annotations

from typing import Any

import pytest
from refusals import assert_refused

from protocol import PPM, TOKEN, Params, Protocol
from protocol.errors import InvalidFraction, UnknownOperator

MEMBERS = ("op", "d", "e")


def network(params: Params) -> Protocol:
    """op (own 900, cut 10 %), delegators d (100) and e (333 + odd units); round 1 rewarded."""
    p = Protocol(params, {"op": 10**24, "d": 10**24, "e": 10**24})
    p.bond("op", "op", 900 * TOKEN)
    p.register_operator("op", reward_cut=100_000)
    p.bond("d", "op", 100 * TOKEN)
    p.bond("e", "op", 333 * TOKEN + 12_345)
    p.initialize_round()
    p.reward("op")
    return p


@pytest.mark.parametrize("finder", ["finder", None])
def test_own_bond_slash(finder: str | None) -> None:
    p = network(Params())
    own = p.pending_stake("op")
    others = {n: p.pending_stake(n) for n in ("d", "e")}
    pool = p.operator_stake("op")
    supply = p.total_supply
    fraction = 100_000
    penalty = own * fraction // PPM
    finder_cut = penalty * 50_000 // PPM if finder else 0  # default finder_fee 5 %
    assert p.slash_operator("op", fraction, finder) == penalty
    assert p.pending_stake("op") == own - penalty
    assert {n: p.pending_stake(n) for n in ("d", "e")} == others  # delegators untouched
    assert p.operator_stake("op") == pool - penalty
    assert p.total_supply == supply - (penalty - finder_cut)
    if finder:
        assert p.balance("finder") == finder_cut > 0
    p.initialize_round()
    assert p.active_set["op"] == pool - penalty
    assert {n: p.pending_stake(n) for n in ("d", "e")} == others
    p.check_invariants()


def test_own_slash_below_min_operator_bond_leaves_the_active_set() -> None:
    p = network(Params(min_operator_bond=850 * TOKEN))
    assert p.pending_stake("op") >= 900 * TOKEN
    p.slash_operator("op", 500_000)  # own bond (self-bond + round-1 earnings) halved
    assert p.pending_stake("op") < 850 * TOKEN
    assert p.is_active("op")  # for the rest of this round
    p.initialize_round()
    assert not p.is_active("op")
    p.check_invariants()


def test_pool_wide_slash_applies_at_the_end_of_the_round() -> None:
    p = network(Params(slash_delegators=True))
    fraction = 100_000
    before = {n: p.pending_stake(n) for n in MEMBERS}
    pool = p.operator_stake("op")
    supply = p.total_supply
    h = p.state_hash()
    assert p.slash_operator("op", fraction, "finder") == 0  # deferred
    assert p.state_hash() != h  # recorded
    assert {n: p.pending_stake(n) for n in MEMBERS} == before
    assert p.balance("finder") == 0
    p.initialize_round()
    for n in MEMBERS:
        expected = before[n] - before[n] * fraction // PPM
        assert abs(p.pending_stake(n) - expected) <= 2, n
    reduction = pool - p.operator_stake("op")
    assert reduction == pool * fraction // PPM
    finder_cut = reduction * 50_000 // PPM
    burned = supply - p.total_supply
    assert p.balance("finder") == finder_cut
    assert burned + finder_cut == reduction
    assert p.active_set["op"] == pool - reduction
    stake_dust, _ = p.unclaimable()
    assert 0 <= stake_dust <= 2 * len(MEMBERS)
    p.check_invariants()


def test_two_pool_slashes_in_a_round_compound() -> None:
    p = network(Params(slash_delegators=True))
    before = p.pending_stake("d")
    pool = p.operator_stake("op")
    p.slash_operator("op", 100_000)
    p.slash_operator("op", 200_000)
    p.initialize_round()
    kept = PPM - (PPM - (PPM - 100_000) * (PPM - 200_000) // PPM)  # 0.72
    assert kept == 720_000
    assert abs(p.pending_stake("d") - before * kept // PPM) <= 2
    assert p.operator_stake("op") == pool - pool * (PPM - kept) // PPM
    p.check_invariants()


@pytest.mark.parametrize("fraction", [0, -1, PPM + 1, 1.5, "100", True])
def test_invalid_fraction_is_refused(fraction: Any) -> None:
    p = network(Params())
    assert_refused(p, InvalidFraction, p.slash_operator, "op", fraction)


def test_unknown_operator_is_refused() -> None:
    p = network(Params())
    assert_refused(p, UnknownOperator, p.slash_operator, "ghost", 100_000)
    assert_refused(p, UnknownOperator, p.slash_operator, "d", 100_000)  # a delegator
