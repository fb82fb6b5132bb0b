"""Regression tests for two bugs the scenario tests found (both fixed).

Governance weight is active stake (SPEC 10): stake bonded in the voting round
does not vote, and a delegator's override weighs only its active stake.

The round-n reward of a position that changed before its operator's
checkpoint is slashed like everyone else's (SPEC 4 "whatever the order",
SPEC 7): once the reward is known it joins the bond at the next settlement,
and what still sits in escrow at the end of the round shares a pool slash.
"""

from __future__ import annotations

import contextlib

from protocol import PPM, TOKEN, Params, Protocol, ProtocolError

# --- bug 1: governance weight is not active stake ----------------------------


def test_stake_bonded_this_round_has_no_voting_weight() -> None:
    p = Protocol(Params(voting_period=2), {"op": 10**24, "d": 10**24, "e": 10**24})
    p.bond("op", "op", 900 * TOKEN)
    p.register_operator("op", reward_cut=100_000)
    p.bond("d", "op", 100 * TOKEN)
    p.initialize_round()  # round 1: active stake is op's 1,000 tokens
    assert p.total_active_stake == 1_000 * TOKEN
    p.bond("e", "op", 5_000 * TOKEN)  # counts from round 2 (SPEC 2)
    pid = p.propose("op", {"unbonding_period": 3})
    p.vote("op", pid, "against")  # all of round 1's active stake
    with contextlib.suppress(ProtocolError):  # refusing (NoVotingPower) is correct too
        p.vote("e", pid, "for")  # e has no active stake in round 1
    p.initialize_round()
    p.initialize_round()
    assert p.proposal_status(pid) == "defeated"
    assert p.params.unbonding_period == 7


def test_delegator_weight_is_its_active_stake_only() -> None:
    p = Protocol(Params(voting_period=2), {"op": 10**24, "d": 10**24})
    p.bond("op", "op", 900 * TOKEN)
    p.register_operator("op", reward_cut=100_000)
    p.bond("d", "op", 100 * TOKEN)
    p.initialize_round()
    p.bond("d", "op", 2_000 * TOKEN)  # d's active stake in round 1 stays 100
    pid = p.propose("op", {"unbonding_period": 3})
    p.vote("op", pid, "against")
    p.vote("d", pid, "for")  # should weigh 100 (for 100, against 900)
    p.initialize_round()
    p.initialize_round()
    assert p.proposal_status(pid) == "defeated"


# --- bug 2: the carried round-n reward escapes slashing ----------------------


def twin_delegators(params: Params) -> Protocol:
    p = Protocol(params, {"op": 10**24, "d": 10**24, "e": 10**24})
    p.bond("op", "op", 500 * TOKEN)
    p.register_operator("op", reward_cut=100_000)
    p.bond("d", "op", 200 * TOKEN)
    p.bond("e", "op", 200 * TOKEN)  # d and e are identical
    p.initialize_round()
    return p


def test_pool_slash_does_not_depend_on_a_claim_before_the_checkpoint() -> None:
    p = twin_delegators(Params(slash_delegators=True))
    p.claim_earnings("d")  # a claim changes nothing economically ...
    p.reward("op")
    assert p.pending_stake("d") == p.pending_stake("e")  # ... both earned round 1
    p.slash_operator("op", 500_000)  # the whole pool loses 50 % at the end of round 1
    p.initialize_round()
    assert abs(p.pending_stake("d") - p.pending_stake("e")) <= 2


def test_own_slash_penalty_is_the_fraction_of_the_operators_stake() -> None:
    p = twin_delegators(Params())
    p.claim_earnings("op")  # before its own checkpoint
    p.reward("op")
    own = p.pending_stake("op")
    penalty = p.slash_operator("op", 500_000)
    assert penalty == own * 500_000 // PPM
