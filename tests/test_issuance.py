"""The Minter (SPEC 3) and the parameter model: hand-checked numbers."""

from __future__ import annotations

import pytest

from protocol import PPB, PRESETS, TOKEN, Params, Protocol
from protocol.errors import InvalidParams


def network(params: Params, supply_tokens: int, bonded_tokens: int) -> Protocol:
    """One operator bonding ``bonded_tokens`` out of a supply of ``supply_tokens``."""
    p = Protocol(
        params, {"op": bonded_tokens * TOKEN, "rest": (supply_tokens - bonded_tokens) * TOKEN}
    )
    p.bond("op", "op", bonded_tokens * TOKEN)
    p.register_operator("op", reward_cut=0)
    return p


def test_inflation_rises_below_target_bonding_rate() -> None:
    p = network(Params(), supply_tokens=10_000, bonded_tokens=4_999)
    p.initialize_round()
    assert p.total_active_stake * PPB // p.total_supply == 499_900_000
    assert p.inflation == 218_500 + 500
    assert p.mintable == 10_000 * TOKEN * 219_000 // PPB
    p.check_invariants()


def test_inflation_falls_above_target_bonding_rate() -> None:
    p = network(Params(), supply_tokens=10_000, bonded_tokens=5_001)
    p.initialize_round()
    assert p.inflation == 218_500 - 500
    assert p.mintable == 10_000 * TOKEN * 218_000 // PPB
    p.check_invariants()


def test_inflation_unchanged_at_exactly_the_target() -> None:
    p = network(Params(), supply_tokens=10_000, bonded_tokens=5_000)
    p.initialize_round()
    assert p.total_active_stake * PPB // p.total_supply == 500_000_000
    assert p.inflation == 218_500
    assert p.mintable == 10_000 * TOKEN * 218_500 // PPB
    # no reward minted, so round 2 sees the same rate again
    p.initialize_round()
    assert p.inflation == 218_500
    p.check_invariants()


def test_inflation_floors_at_zero() -> None:
    p = network(Params(inflation=300, inflation_change=500), supply_tokens=1_000, bonded_tokens=900)
    p.initialize_round()
    assert p.inflation == 0
    assert p.mintable == 0
    supply = p.total_supply
    assert p.reward("op") == 0
    assert p.total_supply == supply
    p.initialize_round()
    assert p.inflation == 0
    p.check_invariants()


def test_inflation_recovers_when_bonding_rate_drops() -> None:
    """The feedback moves one step per round in the direction of the target."""
    p = network(Params(), supply_tokens=10_000, bonded_tokens=6_000)
    p.initialize_round()
    p.initialize_round()
    assert p.inflation == 218_500 - 2 * 500
    p.unbond("op", 1_500 * TOKEN)  # counts from the next round: 4,500 / 10,000
    p.initialize_round()
    assert p.inflation == 218_500 - 2 * 500 + 500
    p.check_invariants()


def three_operators(params: Params | None = None) -> Protocol:
    p = Protocol(params or Params(), {"o1": 10**24, "o2": 10**24, "o3": 10**24, "x": 10**24})
    for name, amount in (("o1", 1 * TOKEN + 1), ("o2", 2 * TOKEN + 3), ("o3", 4 * TOKEN + 7)):
        p.bond(name, name, amount)
        p.register_operator(name, reward_cut=100_000)
    return p


def test_mintable_resets_each_round_and_is_never_exceeded() -> None:
    p = three_operators()
    genesis = p.total_supply
    minted_total = 0
    for _ in range(5):
        p.initialize_round()
        supply = p.total_supply
        assert p.mintable == supply * p.inflation // PPB
        assert p.minted_this_round == 0
        minted = [p.reward(op) for op in ("o1", "o2", "o3")]
        for op, amount in zip(("o1", "o2", "o3"), minted, strict=True):
            stake = p.active_set[op]
            assert amount == p.mintable * (stake * PPB // p.total_active_stake) // PPB
        assert sum(minted) == p.minted_this_round <= p.mintable
        # only truncation is lost: under one PPB step of mintable per operator
        assert p.mintable - sum(minted) <= 3 * (p.mintable // PPB + 1)
        assert p.total_supply == supply + sum(minted)
        minted_total += sum(minted)
        p.check_invariants()
    assert p.total_supply == genesis + minted_total


def test_inflation_accumulates_over_rounds() -> None:
    p = three_operators()
    for k in range(1, 6):
        p.initialize_round()
        assert p.inflation == 218_500 + 500 * k  # 7 tokens of 4M are bonded


def test_default_params_are_the_spec_defaults() -> None:
    d = Params()
    assert (d.inflation, d.inflation_change, d.target_bonding_rate) == (218_500, 500, 500_000_000)
    assert (d.unbonding_period, d.max_active_operators) == (7, 100)
    assert (d.treasury_cut, d.min_take, d.max_take, d.take_cooldown_rounds) == (0, 0, 180_000, 30)
    assert PRESETS["default"] == d


def test_livepeer_preset() -> None:
    lp = Params.livepeer()
    assert lp.min_take == 0
    assert lp.max_take == 1_000_000
    assert lp.take_cooldown_rounds == 0
    assert lp.treasury_cut == 100_000
    assert lp.finder_fee == 0
    # Minter and bonding values are the SPEC (Livepeer mainnet) defaults
    assert (lp.inflation, lp.inflation_change, lp.target_bonding_rate) == (
        218_500,
        500,
        500_000_000,
    )
    assert (lp.unbonding_period, lp.max_active_operators) == (7, 100)
    assert PRESETS["livepeer"] == lp
    assert Params.livepeer(treasury_cut=0, unbonding_period=2).treasury_cut == 0
    assert Params.livepeer(unbonding_period=2).max_take == 1_000_000


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"inflation": -1}, "inflation"),
        ({"inflation": PPB + 1}, "inflation"),
        ({"inflation_change": -5}, "inflation_change"),
        ({"target_bonding_rate": PPB + 1}, "target_bonding_rate"),
        ({"treasury_cut": 1_000_001}, "treasury_cut"),
        ({"max_take": 2_000_000}, "max_take"),
        ({"finder_fee": -1}, "finder_fee"),
        ({"unbonding_period": -1}, "unbonding_period"),
        ({"max_active_operators": 0}, "max_active_operators"),
        ({"voting_period": 0}, "voting_period"),
        ({"inflation": "5"}, "inflation"),  # strict: no coercion from strings
        ({"inflation": 1.5}, "inflation"),
        ({"bogus": 1}, "bogus"),
        ({"min_take": 200_000, "max_take": 100_000}, "min_take"),
    ],
)
def test_params_validation_names_the_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParams) as info:
        Params.build(**values)
    message = str(info.value)
    assert field in message
    assert "\n" not in message


def test_params_replace_validates() -> None:
    base = Params()
    assert base.replace(unbonding_period=3).unbonding_period == 3
    assert base.unbonding_period == 7  # frozen: replace returns a copy
    with pytest.raises(InvalidParams, match="quorum"):
        base.replace(quorum=-1)
