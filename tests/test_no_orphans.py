"""SPEC 4 "no orphaned tokens": round n's rewards and fees belong to round n's stake.

Each test builds two worlds that differ only in the order of transactions
inside round n: in world A the acting account acts BEFORE its operator's
checkpoint and the round's fee payments, in world B AFTER them. After the
next round and a claim, every account's total wealth (liquid balance +
pending stake + unbonding locks + pending fees) must agree within
``BOUND`` base units (rounding of the carried share), and the rounding dust
that no one can claim must stay tiny. Livepeer would forfeit the acting
account's whole round-n share in world A; the tests check that this share is
large, so a forfeit could not hide inside the bound.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from protocol import PPM, TOKEN, Params, Protocol

ACCOUNTS = ("op", "op2", "d", "e", "payer")
STAKERS = ("op", "op2", "d", "e")
BOUND = 2  # base units: one truncation of the carried reward and one of its fees
ROUND_N = 2

Action = Callable[[Protocol], object]


def wealth(p: Protocol, who: str) -> int:
    locked = sum(amount for amount, _ in p.locks(who).values())
    return p.balance(who) + p.pending_stake(who) + locked + p.pending_fees(who)


def build(params: Params) -> Protocol:
    """Two operators, two delegators of ``op``; round 1 earns rewards and fees; now round 2."""
    p = Protocol(params, {a: 10**24 for a in ACCOUNTS})
    p.bond("op", "op", 500 * TOKEN)
    p.register_operator("op", reward_cut=100_000, fee_share=600_000)
    p.bond("op2", "op2", 300 * TOKEN)
    p.register_operator("op2", reward_cut=50_000, fee_share=900_000)
    p.bond("d", "op", 300 * TOKEN + 17)
    p.bond("e", "op", 200 * TOKEN)
    p.initialize_round()
    p.reward("op")
    p.reward("op2")
    p.pay_fees("payer", "op", 7 * TOKEN + 123)
    p.initialize_round()
    assert p.round == ROUND_N
    return p


def round_n_events(p: Protocol) -> None:
    """The operators' checkpoints and the fee payments of round n."""
    p.reward("op")
    p.pay_fees("payer", "op", 5 * TOKEN + 77)
    p.reward("op2")
    p.pay_fees("payer", "op2", 3 * TOKEN + 9)


ACTIONS: dict[str, tuple[str, Action]] = {
    "claim_earnings": ("d", lambda p: p.claim_earnings("d")),
    "bond_more": ("d", lambda p: p.bond("d", "op", 50 * TOKEN)),
    "partial_unbond": ("d", lambda p: p.unbond("d", 100 * TOKEN)),
    "full_unbond": ("d", lambda p: p.unbond("d", p.pending_stake("d"))),
    "move_operator": ("d", lambda p: p.bond("d", "op2", TOKEN)),
    "withdraw_fees": ("d", lambda p: p.withdraw_fees("d", TOKEN // 2)),
    "operator_claim": ("op", lambda p: p.claim_earnings("op")),
    "operator_partial_unbond": ("op", lambda p: p.unbond("op", 100 * TOKEN)),
}

PARAMS = {
    # fee_share 600_000 is a 40 % fee take: above the default max_take, so the bound is wide.
    "default": Params(unbonding_period=2, max_take=PPM),
    "treasury": Params(unbonding_period=2, treasury_cut=150_000, max_take=PPM),
}


def run_world(params: Params, who: str, action: Action, before: bool) -> Protocol:
    p = build(params)
    if before:
        action(p)
        round_n_events(p)
    else:
        round_n_events(p)
        action(p)
    p.initialize_round()
    p.claim_earnings(who)
    p.check_invariants()
    return p


@pytest.mark.parametrize("params_id", sorted(PARAMS))
@pytest.mark.parametrize("name", list(ACTIONS))
def test_action_before_or_after_checkpoint_gives_the_same_wealth(name: str, params_id: str) -> None:
    params = PARAMS[params_id]
    who, action = ACTIONS[name]

    # The acting account's round-n share, measured in a world where it does nothing.
    ref = build(params)
    share_before = ref.pending_stake(who) + ref.pending_fees(who)
    round_n_events(ref)
    share = ref.pending_stake(who) + ref.pending_fees(who) - share_before
    assert share > 10 * TOKEN  # what Livepeer's restart would forfeit: far above BOUND

    world_a = run_world(params, who, action, before=True)
    world_b = run_world(params, who, action, before=False)
    wa, wb = wealth(world_a, who), wealth(world_b, who)
    assert abs(wa - wb) <= BOUND, (wa - wb, share)

    # nobody else gains or loses either
    for other in ACCOUNTS:
        assert abs(wealth(world_a, other) - wealth(world_b, other)) <= BOUND, other

    # and both equal the wealth of an account that did nothing: round n was fully paid
    assert abs(wa - wealth(ref, who)) <= BOUND

    # rounding dust stays dust (<= accounts * rounds), and is never negative
    for p in (world_a, world_b):
        stake_dust, fee_dust = p.unclaimable()
        assert 0 <= stake_dust <= len(ACCOUNTS) * p.round
        assert 0 <= fee_dust <= len(ACCOUNTS) * p.round


@pytest.mark.parametrize("name", list(ACTIONS))
def test_every_minted_unit_is_claimable_after_all_claims(name: str) -> None:
    """After everyone claims, supply == liquid + claims + locks + treasury, up to the dust."""
    _, action = ACTIONS[name]
    p = build(PARAMS["treasury"])
    action(p)
    round_n_events(p)
    p.initialize_round()
    for staker in STAKERS:
        p.claim_earnings(staker)
    total_wealth = sum(wealth(p, a) for a in ACCOUNTS)
    stake_dust, fee_dust = p.unclaimable()
    assert p.total_supply == total_wealth + p.treasury + stake_dust + fee_dust
    assert 0 <= stake_dust + fee_dust <= 2 * len(ACCOUNTS) * p.round
    p.check_invariants()
