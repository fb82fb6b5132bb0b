"""Shared fixtures: a small network used by many protocol tests."""

from __future__ import annotations

import pytest

from protocol import TOKEN, Params, Protocol


@pytest.fixture
def bittensor_network() -> Protocol:
    """One operator with own 800 and delegators 100/70/30, cut 18 %, active in round 1."""
    p = Protocol(Params(), {"op": 10**24, "a": 10**24, "b": 10**24, "c": 10**24})
    p.bond("op", "op", 800 * TOKEN)
    p.register_operator("op", reward_cut=180_000, fee_share=1_000_000)
    for name, amount in (("a", 100), ("b", 70), ("c", 30)):
        p.bond(name, "op", amount * TOKEN)
    p.initialize_round()
    return p
