"""The modified Dutch auction (SPEC section 6), computed exactly without ticking.

The clock price is the operator's margin: it starts at the client's fee
``F`` (the operator would keep everything) and falls by ``tick`` each step;
a coprocessor that accepts at clock price ``P`` is paid ``F - P``. So the
auction discovers the smallest payment some eligible coprocessor accepts,
and the operator keeps the rest as its margin, while the reserve bounds how
much of the fee the operator may give away.

Coprocessor ``i`` accepts at tick ``k`` when ``F - P_k = k * tick >= ask_i``,
i.e. from ``k_i = ceil(ask_i / tick)`` on; the clock stops at the first tick
with an acceptor, ``k* = min k_i`` over eligible coprocessors, if
``P_k* >= reserve``. Among acceptors at ``k*`` the higher reputation wins,
then the lower load, then the lower index.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .units import PPM, Amount

Ask = int | float


class AuctionResult(NamedTuple):
    """The outcome of one clock.

    ``winner`` is an index or None; ``price`` is the operator's margin
    ``P_k*`` (0 when nobody accepted); ``payment = fee - price`` is what the
    winner earns on verified success; ``tick`` is where the clock stopped.
    """

    winner: int | None
    price: Amount
    tick: int | None = None
    payment: Amount = 0


def compute_tick(fee: Amount, step_ppm: int) -> int:
    """Return the clock's step: ``max(1, fee * step_ppm // PPM)``."""
    return max(1, fee * step_ppm // PPM)


def compute_reserve(fee: Amount, reserve_ppm: int) -> Amount:
    """Return the lowest clock price: ``fee * reserve_ppm // PPM``."""
    return fee * reserve_ppm // PPM


def compute_accept_tick(ask: Ask, tick: int) -> int:
    """Return the first tick ``k`` with ``k * tick >= ask`` (exact for ints and floats)."""
    if ask <= 0:
        return 0
    if isinstance(ask, int):
        return -(-ask // tick)
    k = math.ceil(ask / tick)
    # Float division may round across an integer: settle it with exact comparisons.
    while k * tick < ask:
        k += 1
    while k > 0 and (k - 1) * tick >= ask:
        k -= 1
    return k


def check_auction_args(fee: Amount, step_ppm: int, reserve_ppm: int) -> None:
    """Refuse a fee or fraction outside its range (one line naming the field)."""
    if not isinstance(fee, int) or isinstance(fee, bool) or fee < 0:
        raise ValueError(f"fee: must be an integer >= 0, got {fee!r}")
    for name, value in (("step_ppm", step_ppm), ("reserve_ppm", reserve_ppm)):
        if not isinstance(value, int) or not 0 <= value <= PPM:
            raise ValueError(f"{name}: must be an integer in [0, {PPM}], got {value!r}")


def run_dutch_auction(
    fee: Amount,
    asks: Sequence[Ask],
    *,
    step_ppm: int,
    reserve_ppm: int,
    reputation: Sequence[float] | None = None,
    load: Sequence[float] | None = None,
    eligible: Sequence[bool] | None = None,
) -> AuctionResult:
    """Clear one task's clock exactly (SPEC 6); O(coprocessors), no ticking."""
    check_auction_args(fee, step_ppm, reserve_ppm)
    tick = compute_tick(fee, step_ppm)
    last = (fee - compute_reserve(fee, reserve_ppm)) // tick
    best: tuple[int, float, float, int] | None = None
    for i, ask in enumerate(asks):
        if eligible is not None and not eligible[i]:
            continue
        k = compute_accept_tick(ask, tick)
        if k > last:
            continue
        key = (
            k,
            -(reputation[i] if reputation is not None else 0.0),
            load[i] if load is not None else 0.0,
            i,
        )
        if best is None or key < best:
            best = key
    if best is None:
        return AuctionResult(winner=None, price=0)
    k, _, _, winner = best
    price = fee - k * tick
    return AuctionResult(winner=winner, price=price, tick=k, payment=fee - price)


# --- batch clearing ----------------------------------------------------------


@dataclass(slots=True)
class CoprocessorBook:
    """Coprocessor state for batch clearing, one array entry per coprocessor.

    ``ask_ppm`` is each one's ask as a rate of the fee (PPM, may exceed 1):
    the ask for a task of fee ``F`` is ``ceil(F * ask_ppm / PPM)``
    (:func:`protocol.market.compute_ask_ppm`). ``collateral`` is free
    collateral in base units (a ``dtype=object`` array of Python ints: base
    units overflow int64); ``capacity`` and ``load`` count concurrent tasks.
    Clearing updates ``load`` and ``collateral`` in place.
    """

    ask_ppm: npt.NDArray[Any]
    capacity: npt.NDArray[np.int64]
    load: npt.NDArray[np.int64]
    collateral: npt.NDArray[Any]
    reputation: npt.NDArray[np.float64]
    min_reputation: float = 0.0

    def eligible(self, required: int) -> npt.NDArray[np.bool_]:
        """Return who can take a task that locks ``required`` collateral now."""
        return (
            (self.load < self.capacity)
            & (self.collateral >= required)
            & (self.reputation >= self.min_reputation)
        )


NO_EXCLUSIONS: frozenset[int] = frozenset()


def clear_one_by_one(
    fees: Sequence[Amount],
    book: CoprocessorBook,
    *,
    step_ppm: int,
    reserve_ppm: int,
    required: Sequence[int] | None = None,
    excluded: Sequence[Collection[int]] | None = None,
) -> list[AuctionResult]:
    """Clear tasks with one :func:`run_dutch_auction` each, updating the book as winners take them.

    The plain reference :func:`clear_batch` must equal (and is measured against).
    """
    rates = [int(a) for a in book.ask_ppm]
    capacity = book.capacity.tolist()
    reputation = book.reputation.tolist()
    load = book.load.tolist()
    collateral = book.collateral.tolist()
    needs = required if required is not None else [0] * len(fees)
    skips = excluded if excluded is not None else [NO_EXCLUSIONS] * len(fees)
    out = []
    for fee, need, skip in zip(fees, needs, skips, strict=True):
        eligible = [
            load[i] < capacity[i]
            and collateral[i] >= need
            and reputation[i] >= book.min_reputation
            and i not in skip
            for i in range(len(rates))
        ]
        result = run_dutch_auction(
            fee,
            [-(-fee * r // PPM) for r in rates],
            step_ppm=step_ppm,
            reserve_ppm=reserve_ppm,
            reputation=reputation,
            load=load,
            eligible=eligible,
        )
        if result.winner is not None:
            load[result.winner] += 1
            collateral[result.winner] -= need
        out.append(result)
    book.load[:] = load
    book.collateral[:] = collateral
    return out


def clear_batch(
    fees: Sequence[Amount],
    book: CoprocessorBook,
    *,
    step_ppm: int,
    reserve_ppm: int,
    required: Sequence[int] | None = None,
    excluded: Sequence[Collection[int]] | None = None,
) -> list[AuctionResult]:
    """Clear tasks in order as if one by one, updating loads and collateral as winners take them.

    Equal to calling :func:`run_dutch_auction` per task with the book's state
    at that moment. A winner that cannot take the task (full, short of
    collateral, or in the task's ``excluded`` set: it already failed it)
    declines and the clock resumes from the same tick with the others, which
    is what skipping it computes.

    Why it is fast: a task's asks are the same rates of its fee, so acceptance
    ticks ``ceil(ask / tick)`` grow with the rate whatever the task, and
    coprocessors are sorted by rate once; a task's clock stops at the first
    able coprocessor in that order, and only those whose asks fall in the
    same tick (usually one or two) compete on reputation, load and index.
    Coprocessors that fill up leave the order.
    """
    check_auction_args(0, step_ppm, reserve_ppm)
    rates = [int(a) for a in book.ask_ppm]
    capacity = book.capacity.tolist()
    load = book.load.tolist()
    collateral = book.collateral.tolist()
    reputation = book.reputation.tolist()
    floor = book.min_reputation
    # Able coprocessors in rate order (ties by index); the full and the
    # disreputable never come back within a batch, so they are dropped.
    order = sorted(
        (i for i in range(len(rates)) if reputation[i] >= floor and load[i] < capacity[i]),
        key=lambda i: (rates[i], i),
    )
    results: list[AuctionResult] = []
    none = AuctionResult(winner=None, price=0)
    needs = required if required is not None else [0] * len(fees)
    skips = excluded if excluded is not None else [NO_EXCLUSIONS] * len(fees)
    append = results.append
    make = tuple.__new__  # a NamedTuple without its keyword-handling constructor
    for fee, need, skip in zip(fees, needs, skips, strict=True):
        if fee.__class__ is not int or fee < 0:
            check_auction_args(fee, step_ppm, reserve_ppm)
        tick = fee * step_ppm // PPM or 1
        last = (fee - fee * reserve_ppm // PPM) // tick
        end = len(order)
        first = 0
        while first < end and (collateral[order[first]] < need or order[first] in skip):
            first += 1
        if first == end:
            append(none)
            continue
        winner = order[first]
        ask = -(-fee * rates[winner] // PPM)
        k = -(-ask // tick) if ask > 0 else 0  # compute_accept_tick, inlined (hot path)
        if k > last:
            append(none)
            continue
        top = k * tick
        # Others accept at the same tick iff their ask is at most k * tick (rates are sorted).
        pos = first + 1
        if pos < end and -(-fee * rates[order[pos]] // PPM) <= top:
            best_rep, best_load = reputation[winner], load[winner]
            while pos < end:
                i = order[pos]
                if -(-fee * rates[i] // PPM) > top:
                    break
                if collateral[i] >= need and i not in skip:
                    rep = reputation[i]
                    # Higher reputation, then lower load, then lower index (no tuples: hot path).
                    if rep > best_rep or (
                        rep == best_rep
                        and (load[i] < best_load or (load[i] == best_load and i < winner))
                    ):
                        winner, best_rep, best_load = i, rep, load[i]
                pos += 1
        load[winner] += 1
        collateral[winner] -= need
        if load[winner] >= capacity[winner]:
            order.remove(winner)
        append(make(AuctionResult, (winner, fee - top, k, top)))
    book.load[:] = load
    book.collateral[:] = collateral
    return results
