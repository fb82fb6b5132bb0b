"""Stake-weighted governance of parameters and the treasury (SPEC 10)."""

from __future__ import annotations

from typing import Any

import pytest
from refusals import assert_refused

from protocol import TOKEN, Params, Protocol
from protocol.errors import (
    AlreadyVoted,
    InvalidAmount,
    InvalidChoice,
    InvalidParams,
    NoVotingPower,
    UnknownProposal,
    VotingClosed,
)


def network(
    stakes: dict[str, int], delegations: dict[str, tuple[str, int]] | None = None, **overrides: Any
) -> Protocol:
    """Operators with own ``stakes`` (tokens) and delegators; active from round 1."""
    delegations = delegations or {}
    names = [*stakes, *delegations, "x"]
    p = Protocol(Params(**{"voting_period": 3, **overrides}), {n: 10**24 for n in names})
    for op, amount in stakes.items():
        p.bond(op, op, amount * TOKEN)
        p.register_operator(op, reward_cut=100_000)
    for who, (op, amount) in delegations.items():
        p.bond(who, op, amount * TOKEN)
    p.initialize_round()
    return p


def test_parameter_change_passes_and_executes_when_voting_ends() -> None:
    p = network({"big": 700, "small": 300})
    pid = p.propose("big", {"unbonding_period": 3})
    p.vote("big", pid, "for")  # 700 of 1000: quorum 33.33 % and majority
    p.initialize_round()  # round 2
    p.initialize_round()  # round 3: the last voting round
    assert p.proposal_status(pid) == "open"
    assert p.params.unbonding_period == 7
    p.initialize_round()  # round 4 == created (1) + voting_period (3)
    assert p.proposal_status(pid) == "executed"
    assert p.params.unbonding_period == 3
    lock = p.unbond("small", TOKEN)
    assert p.locks("small")[lock] == (TOKEN, 4 + 3)
    p.check_invariants()


def test_proposal_fails_without_quorum() -> None:
    p = network({"big": 700, "small": 300})
    pid = p.propose("small", {"unbonding_period": 3})
    p.vote("small", pid, "for")  # 300 < 33.33 % of 1000
    for _ in range(3):
        p.initialize_round()
    assert p.proposal_status(pid) == "defeated"
    assert p.params.unbonding_period == 7


def test_proposal_fails_without_majority_and_passes_on_a_tie() -> None:
    p = network({"big": 700, "small": 300})
    pid = p.propose("small", {"unbonding_period": 3})
    p.vote("small", pid, "for")
    p.vote("big", pid, "against")
    for _ in range(3):
        p.initialize_round()
    assert p.proposal_status(pid) == "defeated"

    q = network({"a": 500, "b": 500})
    pid = q.propose("a", {"unbonding_period": 3})
    q.vote("a", pid, "for")
    q.vote("b", pid, "against")  # for == 50 % of for + against: passes
    for _ in range(3):
        q.initialize_round()
    assert q.proposal_status(pid) == "executed"
    assert q.params.unbonding_period == 3


def test_abstain_counts_for_quorum_only() -> None:
    p = network({"a": 200, "b": 300, "c": 500})
    pid = p.propose("a", {"unbonding_period": 3})
    p.vote("a", pid, "for")  # 200 alone is below quorum ...
    p.vote("c", pid, "abstain")  # ... abstain brings it to 700
    for _ in range(3):
        p.initialize_round()
    assert p.proposal_status(pid) == "executed"


@pytest.mark.parametrize("delegator_votes", [False, True])
def test_delegator_vote_overrides_its_operators_weight(delegator_votes: bool) -> None:
    """op has own 400 and delegator d 600: op's 'for' (1000) loses once d votes 'against'."""
    p = network({"op": 400}, {"d": ("op", 600)})
    pid = p.propose("op", {"unbonding_period": 3})
    if delegator_votes:
        p.vote("d", pid, "against")  # 600 leaves op's tally: for 400, against 600
    p.vote("op", pid, "for")
    for _ in range(3):
        p.initialize_round()
    if delegator_votes:
        assert p.proposal_status(pid) == "defeated"
        assert p.params.unbonding_period == 7
    else:
        assert p.proposal_status(pid) == "executed"
        assert p.params.unbonding_period == 3


def test_treasury_transfer_by_proposal() -> None:
    p = network({"op": 1000}, treasury_cut=100_000)
    minted = p.reward("op")
    treasury = p.treasury
    assert treasury == minted * 100_000 // 1_000_000 > 0
    grant = treasury // 3 + 1
    pid = p.propose("op", transfers={"grantee": grant})
    too_much = p.propose("op", transfers={"greedy": treasury + 1})
    p.vote("op", pid, "for")
    p.vote("op", too_much, "for")
    supply = p.total_supply
    for _ in range(3):
        p.initialize_round()
    assert p.proposal_status(pid) == "executed"
    assert p.balance("grantee") == grant
    assert p.treasury == treasury - grant
    assert p.proposal_status(too_much) == "failed"  # the treasury cannot go negative
    assert p.balance("greedy") == 0
    assert p.total_supply == supply  # a transfer moves tokens, it mints nothing
    p.check_invariants()


def test_governance_errors_leave_state_unchanged() -> None:
    p = network({"op": 700, "op2": 300}, {"d": ("op", 100)})
    pid = p.propose("op", {"unbonding_period": 3})
    assert_refused(p, UnknownProposal, p.vote, "op", pid + 99, "for")
    assert_refused(p, InvalidChoice, p.vote, "op", pid, "yes")
    p.vote("op", pid, "for")
    assert_refused(p, AlreadyVoted, p.vote, "op", pid, "against")
    assert_refused(p, NoVotingPower, p.vote, "x", pid, "for")  # no stake at all
    assert_refused(p, NoVotingPower, p.propose, "x", {"unbonding_period": 2})
    assert_refused(p, InvalidParams, p.propose, "op", {"unbonding_period": -1})
    assert_refused(p, InvalidParams, p.propose, "op", {"bogus": 1})
    assert_refused(p, InvalidParams, p.propose, "op", {})  # nothing to do
    assert_refused(p, InvalidAmount, p.propose, "op", None, {"x": 0})
    for _ in range(3):
        p.initialize_round()
    assert p.proposal_status(pid) == "executed"
    assert_refused(p, VotingClosed, p.vote, "op2", pid, "for")
    # a defeated proposal is closed as well
    lost = p.propose("op2", {"unbonding_period": 5})
    for _ in range(3):
        p.initialize_round()
    assert p.proposal_status(lost) == "defeated"
    assert_refused(p, VotingClosed, p.vote, "op", lost, "for")
    p.check_invariants()


def test_proposal_without_votes_is_defeated() -> None:
    p = network({"op": 1000}, voting_period=1)
    pid = p.propose("op", {"unbonding_period": 3})
    p.initialize_round()  # round 2: tallied (no votes) -> defeated
    assert p.proposal_status(pid) == "defeated"
    assert_refused(p, VotingClosed, p.vote, "op", pid, "for")


def test_delegator_of_inactive_operator_has_no_voting_power() -> None:
    p = network({"op": 700}, {"d": ("op", 100)})
    p.unbond("op", 700 * TOKEN)  # resigns: inactive from round 2
    p.initialize_round()
    assert not p.is_active("op")
    assert_refused(p, NoVotingPower, p.propose, "d", {"unbonding_period": 2})
