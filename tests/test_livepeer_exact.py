"""Livepeer's own arithmetic, step by step, for an operator alone in its pool.

An operator with no delegators is the simplest conformance case: its pending
stake is ``bond * CRF_e / CRF_s + cumulativeRewards`` and its fees
``bond * (CFF_e - CFF_s) / CRF_s + cumulativeFees``, with Livepeer's
truncation order. No dust rule may move these numbers by a base unit.
"""

from __future__ import annotations

import pytest

from protocol import PRECISE, Params, Protocol
from protocol.units import precise_of


@pytest.mark.parametrize(("cut", "share"), [(0, 1_000_000), (123_457, 654_321), (500_000, 0)])
def test_lone_operator_matches_livepeer_to_the_base_unit(cut: int, share: int) -> None:
    bond = 10**21 + 12_345
    p = Protocol(Params(max_take=10**6), {"op": 10**24 + 7, "payer": 10**24})
    p.bond("op", "op", bond)
    p.register_operator("op", reward_cut=cut, fee_share=share)
    crf, cff, cumulative_rewards, cumulative_fees = PRECISE, 0, 0, 0
    for r in range(6):
        p.initialize_round()
        stake = p.active_set["op"]
        active = cumulative_rewards  # activeCumulativeRewards, read at reward()
        minted = p.reward("op")
        commission = minted * cut // 10**6
        delegators = minted - commission
        cumulative_rewards += precise_of(delegators, active, stake) + commission
        previous = crf
        crf += precise_of(crf, delegators, stake)
        fee = 10**18 + 7 * r
        p.pay_fees("payer", "op", fee)
        to_delegators = fee * share // 10**6
        cumulative_fees += precise_of(to_delegators, active, stake) + fee - to_delegators
        cff += precise_of(previous, to_delegators, stake)
        assert p.pending_stake("op") == precise_of(bond, crf, PRECISE) + cumulative_rewards
        assert p.pending_fees("op") == precise_of(bond, cff, PRECISE) + cumulative_fees
    p.check_invariants()
