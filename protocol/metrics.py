"""Decentralisation and yield metrics over stake and earnings distributions.

Inequality measures (Gini, Lorenz curve, Nakamoto coefficient, HHI, Theil,
top-k share) describe how concentrated stake or earnings are across
operators; yield measures (APR, APY, real yield, supply dilution) describe
what staking returns against the issuance that dilutes the supply; the
checkpoint ratio and funding shares describe how the network is run and
paid for. The report and the simulator use these; they never touch state.

Amounts may be Python ints far beyond int64 (token base units). Integer
inputs are kept as Python ints, and wherever a measure is a ratio of
integer sums it is computed exactly and rounded once to ``float``; other
inputs are read as ``float64``. The inequality measures refuse negative
values; empty or all-zero input is "no concentration" (0, or the line of
equality for the Lorenz curve).
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

__all__ = [
    "compute_apr",
    "compute_apy",
    "compute_checkpoint_ratio",
    "compute_correlation",
    "compute_funding_shares",
    "compute_gini",
    "compute_hhi",
    "compute_lorenz_curve",
    "compute_nakamoto_coefficient",
    "compute_real_yield",
    "compute_supply_dilution",
    "compute_theil_index",
    "compute_top_k_share",
]

FloatArray = npt.NDArray[np.float64]

THRESHOLD_MAX_DENOMINATOR = 10**9
"""A float Nakamoto threshold is read as the nearest fraction with at most this denominator."""


def _as_exact(values: ArrayLike) -> np.ndarray:
    """Return ``values`` as an array of Python ints if all are integers, else as ``float64``."""
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype.kind in "biu" or (
        arr.dtype == object and all(isinstance(v, numbers.Integral) for v in arr.flat)
    ):
        out = np.empty(arr.shape, dtype=object)
        out.flat[:] = [int(v) for v in arr.flat]
        return out
    if arr.dtype.kind not in "fO":
        raise ValueError("values: must be real numbers")  # e.g. strings or complex
    return arr.astype(np.float64)


def _as_amounts(values: ArrayLike, name: str = "values") -> np.ndarray:
    """Return ``values`` as a 1-D amount array, refusing negative or non-finite entries."""
    arr = _as_exact(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: must be one-dimensional")
    if arr.dtype == object:
        if any(v < 0 for v in arr):
            raise ValueError(f"{name}: must be >= 0")
    else:
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: must be finite")
        if np.any(arr < 0.0):
            raise ValueError(f"{name}: must be >= 0")
    return arr


def _get_total(arr: np.ndarray) -> int | float:
    """Return the exact (ints) or compensated (floats) sum of ``arr``."""
    if arr.dtype == object:
        return sum(arr.tolist())
    return math.fsum(arr.tolist())


def _get_shares(arr: np.ndarray) -> FloatArray | None:
    """Return each amount's share of the total, or None for empty or all-zero ``arr``."""
    if arr.size == 0:
        return None
    if arr.dtype == object:
        total = _get_total(arr)
        if total == 0:
            return None
        return np.array([v / total for v in arr.tolist()], dtype=np.float64)
    top = float(arr.max())
    if top == 0.0:
        return None
    scaled = arr / top
    return scaled / math.fsum(scaled.tolist())


def compute_gini(values: ArrayLike) -> float:
    """Return the Gini coefficient ``G = sum_i sum_j |x_i - x_j| / (2 n^2 mean)``.

    ``G = 0`` is perfect equality and ``G = 1 - 1/n`` one holder with
    everything. Computed on the values sorted ascending as
    ``G = sum_i (2 i - n - 1) x_(i) / (n sum x)`` for ``i = 1..n``, exactly
    for integers. Empty or all-zero input gives 0.0.
    """
    arr = _as_amounts(values)
    n = arr.size
    if arr.dtype == object:
        total = _get_total(arr)
        if n == 0 or total == 0:
            return 0.0
        ordered = sorted(arr.tolist())
        numerator = sum((2 * i - n - 1) * x for i, x in enumerate(ordered, start=1))
        return numerator / (n * total)
    shares = _get_shares(arr)
    if shares is None:
        return 0.0
    weights = 2.0 * np.arange(1, n + 1) - n - 1
    gini = math.fsum((weights * np.sort(shares)).tolist()) / n
    return min(max(gini, 0.0), 1.0 - 1.0 / n)


def compute_lorenz_curve(values: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return the Lorenz curve ``(p, L)`` of ``values`` sorted ascending.

    ``p_i = i / n`` and ``L_i = (x_(1) + ... + x_(i)) / sum x`` for
    ``i = 0..n``, so both have length ``n + 1``, start at 0.0 and end at 1.0;
    ``L`` is non-decreasing and ``L_i <= p_i``. All-zero input gives the
    line of equality ``L = p``; empty input gives ``([0, 1], [0, 1])``.
    """
    arr = _as_amounts(values)
    n = arr.size
    if n == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    population = np.arange(n + 1, dtype=np.float64) / n
    shares = _get_shares(arr)
    if shares is None:
        return population, population.copy()
    if arr.dtype == object:
        total = _get_total(arr)
        partial = np.cumsum(np.array(sorted(arr.tolist()), dtype=object))
        cumulative = np.array([0.0] + [int(c) / total for c in partial], dtype=np.float64)
    else:
        cumulative = np.concatenate(([0.0], np.cumsum(np.sort(shares))))
    cumulative[-1] = 1.0
    cumulative = np.minimum(np.maximum.accumulate(cumulative), population)
    return population, cumulative


def compute_nakamoto_coefficient(values: ArrayLike, threshold: float = 1 / 3) -> int:
    """Return the fewest holders, largest first, whose combined share exceeds ``threshold``.

    ``N = min { k : (x_(1) + ... + x_(k)) / sum x > threshold }`` with the
    values sorted descending; the comparison is exact (a float ``threshold``
    is read as the nearest fraction with denominator at most 10^9, so the
    default 1/3 is exactly one third). Empty or all-zero input gives 0.
    """
    if not 0 <= threshold < 1:
        raise ValueError("threshold: must be in [0, 1)")
    arr = _as_amounts(values)
    items = arr.tolist() if arr.dtype == object else [Fraction(v) for v in arr.tolist()]
    total = sum(items)
    if total == 0:
        return 0
    bound = Fraction(threshold).limit_denominator(THRESHOLD_MAX_DENOMINATOR) * total
    cumulative: int | Fraction = 0
    for k, x in enumerate(sorted(items, reverse=True), start=1):
        cumulative += x
        if cumulative > bound:
            return k
    raise AssertionError("unreachable: the full total exceeds any threshold < 1")


def compute_hhi(values: ArrayLike) -> float:
    """Return the Herfindahl-Hirschman index ``HHI = sum_i (x_i / sum x)^2``.

    ``HHI`` lies in ``[1/n, 1]``: ``1/n`` for equal holders, 1 for a single
    holder (the antitrust scale is this times 10,000). Exact for integers.
    Empty or all-zero input gives 0.0.
    """
    arr = _as_amounts(values)
    if arr.dtype == object:
        total = _get_total(arr)
        if total == 0:
            return 0.0
        return sum(v * v for v in arr.tolist()) / (total * total)
    shares = _get_shares(arr)
    if shares is None:
        return 0.0
    hhi = math.fsum((shares * shares).tolist())
    return min(max(hhi, 1.0 / arr.size), 1.0)


def compute_theil_index(values: ArrayLike) -> float:
    """Return the Theil index ``T = (1/n) sum_i (x_i / mean) ln(x_i / mean)``, with ``0 ln 0 = 0``.

    Written with shares ``s_i = x_i / sum x`` this is ``T = sum_i s_i ln(n s_i)``;
    ``T`` lies in ``[0, ln n]``: 0 for equal holders, ``ln n`` for a single
    holder. Empty or all-zero input gives 0.0.
    """
    arr = _as_amounts(values)
    shares = _get_shares(arr)
    if shares is None:
        return 0.0
    n = arr.size
    positive = shares[shares > 0.0]
    theil = math.fsum((positive * np.log(n * positive)).tolist())
    return min(max(theil, 0.0), math.log(n))


def compute_top_k_share(values: ArrayLike, k: int) -> float:
    """Return the share of the ``k`` largest holders, ``(x_(1) + ... + x_(k)) / sum x``.

    Values are sorted descending; ``k >= n`` gives 1.0 and ``k = 0`` gives
    0.0. Exact for integers. Empty or all-zero input gives 0.0.
    """
    if k < 0:
        raise ValueError("k: must be >= 0")
    arr = _as_amounts(values)
    total = _get_total(arr)
    if total == 0:
        return 0.0
    top = sorted(arr.tolist(), reverse=True)[:k]
    if arr.dtype == object:
        return sum(top) / total
    return min(math.fsum(top) / total, 1.0)


def _check_period(rounds: int, rounds_per_year: float) -> None:
    """Refuse a non-positive period length or year length."""
    if rounds <= 0:
        raise ValueError("rounds: must be > 0")
    if not rounds_per_year > 0:
        raise ValueError("rounds_per_year: must be > 0")


def _growth(start: object, end: object) -> float:
    """Return ``(end - start) / start`` (exact before rounding for ints), NaN if ``start == 0``."""
    if start == 0:
        return math.nan
    return float((end - start) / start)  # type: ignore[operator]


def _compute_growth(start: ArrayLike, end: ArrayLike) -> FloatArray:
    """Return the period growth ``end / start - 1`` elementwise, NaN where ``start == 0``."""
    growth = np.frompyfunc(_growth, 2, 1)(_as_exact(start), _as_exact(end))
    return np.asarray(growth, dtype=np.float64)


def compute_apr(
    start: ArrayLike, end: ArrayLike, rounds: int, rounds_per_year: float
) -> FloatArray:
    """Return the simple annualised return ``(end / start - 1) * rounds_per_year / rounds``.

    ``start`` and ``end`` are balances ``rounds`` rounds apart (broadcast
    elementwise); NaN where ``start == 0``.
    """
    _check_period(rounds, rounds_per_year)
    return np.asarray(_compute_growth(start, end) * (rounds_per_year / rounds))


def compute_apy(
    start: ArrayLike, end: ArrayLike, rounds: int, rounds_per_year: float
) -> FloatArray:
    """Return the compounded annualised return ``(end / start) ** (rounds_per_year / rounds) - 1``.

    Computed as ``expm1((rounds_per_year / rounds) * log1p(end / start - 1))``
    for accuracy at small returns; NaN where ``start == 0``.
    """
    _check_period(rounds, rounds_per_year)
    growth = _compute_growth(start, end)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(np.expm1((rounds_per_year / rounds) * np.log1p(growth)))


def compute_real_yield(nominal: ArrayLike, dilution: ArrayLike) -> FloatArray:
    """Return the real yield ``(1 + nominal) / (1 + dilution) - 1``.

    ``nominal`` is a return and ``dilution`` the growth of the total supply
    by issuance over the same period; computed as
    ``(nominal - dilution) / (1 + dilution)``.
    """
    nominal_arr = np.asarray(_as_exact(nominal), dtype=np.float64)
    dilution_arr = np.asarray(_as_exact(dilution), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray((nominal_arr - dilution_arr) / (1.0 + dilution_arr))


def compute_supply_dilution(
    supply_start: int, supply_end: int, rounds: int, rounds_per_year: float
) -> float:
    """Return the annualised growth of the total supply.

    ``(supply_end / supply_start - 1) * rounds_per_year / rounds``, the same
    convention as :func:`compute_apr`; NaN if ``supply_start == 0``.
    """
    _check_period(rounds, rounds_per_year)
    return _growth(supply_start, supply_end) * (rounds_per_year / rounds)


def compute_checkpoint_ratio(reward_calls: int, active_operator_rounds: int) -> float:
    """Return ``reward_calls / active_operator_rounds``, 0.0 if there are no active rounds.

    The share of (operator, round) pairs with the operator active in which
    it called reward (checkpointed its earnings).
    """
    if reward_calls < 0:
        raise ValueError("reward_calls: must be >= 0")
    if active_operator_rounds < 0:
        raise ValueError("active_operator_rounds: must be >= 0")
    if reward_calls > active_operator_rounds:
        raise ValueError("reward_calls: must be <= active_operator_rounds")
    if active_operator_rounds == 0:
        return 0.0
    return reward_calls / active_operator_rounds


def compute_funding_shares(issuance: ArrayLike, fees: ArrayLike) -> tuple[float, float]:
    """Return ``(F / (F + I), I / (F + I))`` with ``F = sum fees`` and ``I = sum issuance``.

    The fee-funded and issuance-funded shares of total earnings, exact for
    integers; ``(0.0, 0.0)`` when both sums are zero.
    """
    issued = _get_total(_as_amounts(np.ravel(_as_exact(issuance)), "issuance"))
    paid = _get_total(_as_amounts(np.ravel(_as_exact(fees)), "fees"))
    total = issued + paid
    if total == 0:
        return 0.0, 0.0
    return paid / total, issued / total


def compute_correlation(x: ArrayLike, y: ArrayLike) -> float:
    """Return Pearson's ``r = cov(x, y) / (std x * std y)``; NaN when undefined.

    Undefined means fewer than two points or a constant ``x`` or ``y``.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.size < 2 or float(np.std(a)) == 0.0 or float(np.std(b)) == 0.0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
