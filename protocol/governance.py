"""Stake-weighted governance of parameters and the treasury (SPEC section 10).

Weight is active stake: an active operator votes with its pool's stake for
the round; a delegator of an active operator may vote itself, and then its
weight leaves its operator's tally. Quorum and quota follow LivepeerGovernor.
"""

from __future__ import annotations

from typing import Any

from .earnings import get_active_stake
from .errors import (
    AlreadyVoted,
    InvalidAmount,
    InvalidChoice,
    InvalidParams,
    NoVotingPower,
    UnknownProposal,
    VotingClosed,
)
from .params import Params
from .staking import MAX_ID, check_amount, check_int
from .state import Proposal, ProposalStatus, State, Vote
from .units import Address, Amount, ppm_of

CHOICES = ("for", "against", "abstain")


def get_voting_power(state: State, voter: Address) -> tuple[Amount, Address | None]:
    """Return (weight, operator it overrides) of ``voter`` in the current round."""
    if voter in state.active:
        return state.active[voter], None
    weight, operator = get_active_stake(state, voter)
    if operator is None or operator not in state.active:
        return 0, None
    return weight, operator


def check_changes(params: Params, changes: dict[str, Any]) -> None:
    """Refuse parameter changes that do not validate."""
    if not isinstance(changes, dict):
        raise InvalidParams("changes: must be a mapping of parameter names to values")
    params.replace(**changes)


def propose(
    state: State,
    params: Params,
    proposer: Address,
    changes: dict[str, Any],
    transfers: dict[Address, Amount],
) -> int:
    """Open a proposal; voting lasts ``voting_period`` rounds from this one."""
    check_changes(params, changes)
    if not isinstance(transfers, dict):
        raise InvalidAmount("transfers: must be a mapping of addresses to amounts")
    for to, amount in transfers.items():
        check_amount(amount, f"transfers.{to}")
    if not changes and not transfers:
        raise InvalidParams("proposal: changes or transfers required")
    if get_voting_power(state, proposer)[0] == 0:
        raise NoVotingPower(f"proposer {proposer!r}: no active stake")
    pid = state.next_proposal_id
    state.next_proposal_id += 1
    state.proposals[pid] = Proposal(
        id=pid,
        proposer=proposer,
        changes=dict(changes),
        transfers=dict(transfers),
        created_round=state.round,
        end_round=state.round + params.voting_period,
        total_active_stake=state.total_active_stake,
    )
    return pid


def vote(state: State, voter: Address, proposal_id: int, choice: str) -> None:
    """Record ``voter``'s choice with its current weight."""
    check_int(proposal_id, "proposal_id", UnknownProposal, low=0, high=MAX_ID)
    proposal = state.proposals.get(proposal_id)
    if proposal is None:
        raise UnknownProposal(f"proposal_id {proposal_id!r}: no such proposal")
    if proposal.status != ProposalStatus.OPEN or state.round >= proposal.end_round:
        raise VotingClosed(f"proposal {proposal_id}: voting ended at round {proposal.end_round}")
    if choice not in CHOICES:
        raise InvalidChoice(f"choice: must be one of {', '.join(CHOICES)}, got {choice!r}")
    if voter in proposal.votes:
        raise AlreadyVoted(f"voter {voter!r}: already voted on proposal {proposal_id}")
    weight, delegate = get_voting_power(state, voter)
    if weight == 0:
        raise NoVotingPower(f"voter {voter!r}: no active stake")
    proposal.votes[voter] = Vote(choice=choice, weight=weight, delegate=delegate)


def compute_tally(proposal: Proposal) -> dict[str, Amount]:
    """Return weights per choice, delegators' own votes taken out of their operator's."""
    overridden: dict[Address, Amount] = {}
    for v in proposal.votes.values():
        if v.delegate is not None and v.delegate in proposal.votes:
            overridden[v.delegate] = overridden.get(v.delegate, 0) + v.weight
    tally = dict.fromkeys(CHOICES, 0)
    for voter, v in proposal.votes.items():
        tally[v.choice] += max(v.weight - overridden.get(voter, 0), 0)
    return tally


def is_passed(proposal: Proposal, params: Params) -> bool:
    """Return whether the proposal met quorum and quota."""
    tally = compute_tally(proposal)
    cast = sum(tally.values())
    decisive = tally["for"] + tally["against"]
    return (
        cast >= ppm_of(proposal.total_active_stake, params.quorum)
        and decisive > 0
        and tally["for"] >= ppm_of(decisive, params.quota)
    )


def execute_proposals(state: State, params: Params) -> Params:
    """Tally proposals whose voting ended and execute the passed ones (SPEC 2 step 5)."""
    for pid in sorted(state.proposals):
        proposal = state.proposals[pid]
        if proposal.status != ProposalStatus.OPEN or proposal.end_round > state.round:
            continue
        if not is_passed(proposal, params):
            proposal.status = ProposalStatus.DEFEATED
            continue
        try:
            new_params = params.replace(**proposal.changes)
        except InvalidParams:
            proposal.status = ProposalStatus.FAILED
            continue
        spend = sum(proposal.transfers.values())
        if spend > state.totals.treasury:
            proposal.status = ProposalStatus.FAILED
            continue
        for to in sorted(proposal.transfers):
            amount = proposal.transfers[to]
            state.balances[to] = state.balances.get(to, 0) + amount
        state.totals.treasury -= spend
        state.totals.liquid += spend
        if "inflation" in proposal.changes:
            state.minter.inflation = new_params.inflation
        params = new_params
        proposal.status = ProposalStatus.EXECUTED
    return params
