"""The Dutch auction against a tick-by-tick reference, and batch clearing against one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.auction import (
    AuctionResult,
    CoprocessorBook,
    clear_batch,
    clear_one_by_one,
    compute_accept_tick,
    run_dutch_auction,
)

PPM = 10**6


def reference_auction(
    fee: int,
    asks: list[int | float],
    step_ppm: int,
    reserve_ppm: int,
    reputation: list[float] | None,
    load: list[float] | None,
    eligible: list[bool] | None,
) -> AuctionResult:
    """The clock as the issue states it, one tick at a time."""
    tick = max(1, fee * step_ppm // PPM)
    reserve = fee * reserve_ppm // PPM
    k = 0
    while fee - k * tick >= reserve:
        price = fee - k * tick
        takers = [
            i
            for i, ask in enumerate(asks)
            if (eligible is None or eligible[i]) and fee - price >= ask
        ]
        if takers:
            best = min(
                takers,
                key=lambda i: (
                    -(reputation[i] if reputation else 0.0),
                    load[i] if load else 0.0,
                    i,
                ),
            )
            return AuctionResult(winner=best, price=price, tick=k, payment=fee - price)
        k += 1
    return AuctionResult(winner=None, price=0)


ask_values = st.one_of(
    st.integers(min_value=-5, max_value=3_000),
    st.floats(min_value=-5, max_value=3_000, allow_nan=False),
)


@settings(max_examples=3000, deadline=None)
@given(
    fee=st.integers(min_value=0, max_value=2_000),
    asks=st.lists(ask_values, min_size=0, max_size=8),
    step_ppm=st.integers(min_value=0, max_value=PPM),
    reserve_ppm=st.integers(min_value=0, max_value=PPM),
    with_rep=st.booleans(),
    with_load=st.booleans(),
    with_eligible=st.booleans(),
    data=st.data(),
)
def test_clock_equals_tick_by_tick_reference(
    fee: int,
    asks: list[int | float],
    step_ppm: int,
    reserve_ppm: int,
    with_rep: bool,
    with_load: bool,
    with_eligible: bool,
    data: st.DataObject,
) -> None:
    n = len(asks)
    reputation = (
        data.draw(st.lists(st.sampled_from([0.2, 0.5, 0.9]), min_size=n, max_size=n))
        if with_rep
        else None
    )
    load = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)) if with_load else None
    eligible = data.draw(st.lists(st.booleans(), min_size=n, max_size=n)) if with_eligible else None
    got = run_dutch_auction(
        fee,
        asks,
        step_ppm=step_ppm,
        reserve_ppm=reserve_ppm,
        reputation=reputation,
        load=load,
        eligible=eligible,
    )
    assert got == reference_auction(fee, asks, step_ppm, reserve_ppm, reputation, load, eligible)


def test_worked_example() -> None:
    # fee 1000, tick 10, reserve 500: ask 250 accepts at tick 25, price (margin) 750.
    r = run_dutch_auction(1000, [300, 250, 900], step_ppm=10_000, reserve_ppm=500_000)
    assert (r.winner, r.price, r.payment, r.tick) == (1, 750, 250, 25)
    # Nobody below the reserve: ask 900 would need margin 100 < 500.
    r = run_dutch_auction(1000, [900], step_ppm=10_000, reserve_ppm=500_000)
    assert (r.winner, r.price) == (None, 0)


def test_ties_go_to_reputation_then_load_then_index() -> None:
    asks = [100, 100, 100, 100]
    r = run_dutch_auction(
        1000,
        asks,
        step_ppm=100_000,
        reserve_ppm=0,
        reputation=[0.5, 0.9, 0.9, 0.9],
        load=[0, 2, 1, 1],
    )
    assert r.winner == 2


def test_accept_tick_is_exact_for_floats() -> None:
    for ask in (0.1 * 3, 1e-9, 7.0, 7.000000001, 1e15 + 0.5):
        for tick in (1, 3, 7, 10**6):
            k = compute_accept_tick(ask, tick)
            assert k * tick >= ask and (k == 0 or (k - 1) * tick < ask)


def test_bad_arguments_get_one_line_errors() -> None:
    for kwargs, field in (
        ({"fee": -1}, "fee"),
        ({"fee": 10, "step_ppm": PPM + 1}, "step_ppm"),
        ({"fee": 10, "reserve_ppm": -1}, "reserve_ppm"),
    ):
        args = {"fee": 10, "step_ppm": 1, "reserve_ppm": 0} | kwargs
        with pytest.raises(ValueError, match=field):
            run_dutch_auction(args.pop("fee"), [1], **args)


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_cop=st.integers(1, 12),
    n_tasks=st.integers(0, 60),
    step_ppm=st.integers(1, 200_000),
    reserve_ppm=st.integers(0, 900_000),
)
def test_batch_clearing_equals_one_by_one(
    seed: int, n_cop: int, n_tasks: int, step_ppm: int, reserve_ppm: int
) -> None:
    rng = np.random.default_rng(seed)
    book = CoprocessorBook(
        ask_ppm=rng.choice([50_000, 100_000, 100_000, 250_500, 400_000, 900_000], size=n_cop),
        capacity=rng.integers(0, 5, size=n_cop),
        load=np.zeros(n_cop, dtype=np.int64),
        collateral=rng.integers(0, 3_000, size=n_cop),
        reputation=rng.choice([0.3, 0.6, 0.9], size=n_cop),
        min_reputation=0.5 if seed % 2 else 0.0,
    )
    fees = [int(f) for f in rng.integers(100, 2_000, size=n_tasks)]
    required = [f * 300_000 // PPM for f in fees]
    # Some tasks are re-offers: the coprocessors that failed them are excluded.
    excluded = [
        frozenset(int(i) for i in rng.choice(n_cop, size=rng.integers(0, 3)))
        if j % 3 == 0
        else frozenset()
        for j in range(n_tasks)
    ]
    reference = CoprocessorBook(
        book.ask_ppm,
        book.capacity,
        book.load.copy(),
        book.collateral.copy(),
        book.reputation,
        book.min_reputation,
    )
    expected = clear_one_by_one(
        fees,
        reference,
        step_ppm=step_ppm,
        reserve_ppm=reserve_ppm,
        required=required,
        excluded=excluded,
    )
    got = clear_batch(
        fees,
        book,
        step_ppm=step_ppm,
        reserve_ppm=reserve_ppm,
        required=required,
        excluded=excluded,
    )
    for result, skip in zip(got, excluded, strict=True):
        assert result.winner is None or result.winner not in skip
    assert got == expected
    assert (book.load == reference.load).all() and (book.collateral == reference.collateral).all()
    # Winners who filled up declined later tasks: loads never exceed capacity.
    assert (book.load <= book.capacity).all()
    assert (book.collateral >= 0).all()
