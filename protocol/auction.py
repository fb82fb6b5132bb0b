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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .units import PPM, Amount

Ask = int | float


@dataclass(frozen=True, slots=True)
class AuctionResult:
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

    ``collateral`` is free collateral and ``required`` (per task) the
    collateral a win locks, both in the same integer unit; ``capacity`` and
    ``load`` count concurrent tasks. Clearing updates ``load`` and
    ``collateral`` in place.
    """

    asks: npt.NDArray[np.float64]
    capacity: npt.NDArray[np.int64]
    load: npt.NDArray[np.int64]
    collateral: npt.NDArray[np.int64]
    reputation: npt.NDArray[np.float64]
    min_reputation: float = 0.0

    def eligible(self, required: int) -> npt.NDArray[np.bool_]:
        """Return who can take a task that locks ``required`` collateral now."""
        return (
            (self.load < self.capacity)
            & (self.collateral >= required)
            & (self.reputation >= self.min_reputation)
        )


def clear_batch(
    fees: Sequence[Amount],
    book: CoprocessorBook,
    *,
    step_ppm: int,
    reserve_ppm: int,
    required: Sequence[int] | None = None,
) -> list[AuctionResult]:
    """Clear tasks in order as if one by one, updating loads and collateral as winners take them.

    Equal to calling :func:`run_dutch_auction` per task with the book's state
    at that moment. A winner that cannot take the task (full, or short of
    collateral) declines and the clock resumes from the same tick with the
    others, which is what excluding it from ``eligible`` computes.
    """
    results: list[AuctionResult] = []
    asks = book.asks
    for j, fee in enumerate(fees):
        check_auction_args(fee, step_ppm, reserve_ppm)
        need = required[j] if required is not None else 0
        tick = compute_tick(fee, step_ppm)
        last = (fee - compute_reserve(fee, reserve_ppm)) // tick
        able = book.eligible(need)
        if not able.any():
            results.append(AuctionResult(winner=None, price=0))
            continue
        ks = np.maximum(np.ceil(asks / tick), 0.0)
        # Exact ceil for float asks: fix entries where float rounding crossed an integer.
        ks = np.where(ks * tick < asks, ks + 1, ks)
        ks = np.where((ks > 0) & ((ks - 1) * tick >= asks), ks - 1, ks)
        ks = np.where(able, ks, np.inf)
        k = ks.min()
        if k > last:
            results.append(AuctionResult(winner=None, price=0))
            continue
        tied = np.flatnonzero(ks == k)
        if len(tied) > 1:
            order = np.lexsort((tied, book.load[tied], -book.reputation[tied]))
            winner = int(tied[order[0]])
        else:
            winner = int(tied[0])
        book.load[winner] += 1
        book.collateral[winner] -= need
        price = fee - int(k) * tick
        results.append(AuctionResult(winner=winner, price=price, tick=int(k), payment=fee - price))
    return results
