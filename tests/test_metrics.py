"""Metrics: hand-computed values and properties of the inequality and yield measures."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.metrics import (
    compute_apr,
    compute_apy,
    compute_checkpoint_ratio,
    compute_correlation,
    compute_funding_shares,
    compute_gini,
    compute_hhi,
    compute_lorenz_curve,
    compute_nakamoto_coefficient,
    compute_real_yield,
    compute_supply_dilution,
    compute_theil_index,
    compute_top_k_share,
)

TOKEN = 10**18

INEQUALITY = [
    compute_gini,
    compute_lorenz_curve,
    compute_nakamoto_coefficient,
    compute_hhi,
    compute_theil_index,
    lambda v: compute_top_k_share(v, 2),
]

amounts = st.lists(st.integers(0, 10**30), min_size=1, max_size=40)
nonzero_amounts = amounts.filter(lambda v: sum(v) > 0)
# Zero or at least 1e-6: a subnormal amount scaled by c underflows to zero, which changes
# the distribution itself (hypothesis found [5e-324] * 0.5), not a metric's invariance.
float_amount = st.one_of(st.just(0.0), st.floats(1e-6, 1e12))
float_amounts = st.lists(float_amount, min_size=1, max_size=40).filter(lambda v: sum(v) > 0)


# --- Hand-computed values --------------------------------------------------------


def test_gini_hand_values() -> None:
    assert compute_gini([0, 0, 0, 1]) == 0.75
    assert compute_gini([1, 1, 1, 1]) == 0.0
    # pairs |1-2|, |1-3|, |2-3| twice over: 8 / (2 * 9 * 2) = 2/9.
    assert compute_gini([1, 2, 3]) == pytest.approx(2 / 9)
    assert compute_gini([1.0, 2.0, 3.0]) == pytest.approx(2 / 9)
    assert compute_gini([5]) == 0.0


def test_lorenz_hand_values() -> None:
    p, lorenz = compute_lorenz_curve([3, 1, 0, 4])
    np.testing.assert_allclose(p, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(lorenz, [0.0, 0.0, 0.125, 0.5, 1.0])
    p, lorenz = compute_lorenz_curve([2, 2])
    np.testing.assert_array_equal(p, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(lorenz, [0.0, 0.5, 1.0])


def test_lorenz_degenerate_inputs() -> None:
    p, lorenz = compute_lorenz_curve([])
    np.testing.assert_array_equal(p, [0.0, 1.0])
    np.testing.assert_array_equal(lorenz, [0.0, 1.0])
    p, lorenz = compute_lorenz_curve([0, 0, 0])
    np.testing.assert_allclose(lorenz, p)
    assert lorenz[0] == 0.0 and lorenz[-1] == 1.0


def test_nakamoto_hand_values() -> None:
    assert compute_nakamoto_coefficient([40, 30, 20, 10]) == 1
    assert compute_nakamoto_coefficient([10, 40, 20, 30], 1 / 2) == 2
    assert compute_nakamoto_coefficient([40, 30, 20, 10], 0.7) == 3  # 70 is not > 70
    assert compute_nakamoto_coefficient([25, 25, 25, 25], 1 / 2) == 3
    # Exactly one third is not more than one third.
    assert compute_nakamoto_coefficient([1, 1, 1]) == 2
    assert compute_nakamoto_coefficient([1.0, 1.0, 1.0]) == 2
    assert compute_nakamoto_coefficient([1, 1, 1], Fraction(1, 3)) == 2
    assert compute_nakamoto_coefficient([0, 0, 7], 0.0) == 1


def test_hhi_hand_values() -> None:
    assert compute_hhi([50, 50]) == 0.5
    assert compute_hhi([0, 0, 9]) == 1.0
    assert compute_hhi([1, 3]) == pytest.approx(0.625)  # 1/16 + 9/16
    assert compute_hhi([1.0, 3.0]) == pytest.approx(0.625)


def test_theil_hand_values() -> None:
    assert compute_theil_index([4, 4, 4]) == pytest.approx(0.0, abs=1e-15)
    for n in (1, 2, 5, 100):
        assert compute_theil_index([0] * (n - 1) + [1]) == pytest.approx(math.log(n))
    # s = (1/4, 3/4): 1/4 ln(1/2) + 3/4 ln(3/2).
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert compute_theil_index([1, 3]) == pytest.approx(expected)


def test_top_k_share_hand_values() -> None:
    values = [10, 40, 20, 30]
    assert compute_top_k_share(values, 0) == 0.0
    assert compute_top_k_share(values, 1) == 0.4
    assert compute_top_k_share(values, 2) == 0.7
    assert compute_top_k_share(values, 4) == 1.0
    assert compute_top_k_share(values, 10) == 1.0
    assert compute_top_k_share([10.0, 40.0, 20.0, 30.0], 2) == pytest.approx(0.7)
    with pytest.raises(ValueError, match=r"^k: must be >= 0$"):
        compute_top_k_share(values, -1)


@pytest.mark.parametrize("values", [[], [0], [0, 0, 0], [0.0, 0.0]])
def test_empty_and_all_zero_are_unconcentrated(values: list) -> None:
    assert compute_gini(values) == 0.0
    assert compute_nakamoto_coefficient(values) == 0
    assert compute_hhi(values) == 0.0
    assert compute_theil_index(values) == 0.0
    assert compute_top_k_share(values, 3) == 0.0


def test_apr_apy_doubling_over_a_year() -> None:
    rpy = 365.0
    np.testing.assert_allclose(compute_apr([100], [200], 365, rpy), [1.0])
    np.testing.assert_allclose(compute_apy([100], [200], 365, rpy), [1.0])
    # Doubling in half a year: simple 200 %, compounded 4x - 1 = 300 %.
    np.testing.assert_allclose(compute_apr(100, 200, 10, 20), 2.0)
    np.testing.assert_allclose(compute_apy(100, 200, 10, 20), 3.0)
    # 10 % over two years: 5 % simple, sqrt(1.1) - 1 compounded.
    np.testing.assert_allclose(compute_apr(100, 110, 2, 1), 0.05)
    np.testing.assert_allclose(compute_apy(100, 110, 2, 1), math.sqrt(1.1) - 1)


def test_apr_apy_zero_start_is_nan_and_broadcasts() -> None:
    apr = compute_apr([0, 100, 50], [5, 150, 50], 1, 1)
    assert isinstance(apr, np.ndarray)
    assert math.isnan(apr[0])
    np.testing.assert_allclose(apr[1:], [0.5, 0.0])
    apy = compute_apy([0, 100], 100, 1, 2)
    assert math.isnan(apy[0])
    assert apy[1] == pytest.approx(0.0)
    assert compute_apy([100], [0], 1, 2)[0] == -1.0


def test_apr_apy_huge_ints_are_exact() -> None:
    start = 10**30 * TOKEN
    end = start + 1
    # A 1e-48 gain must survive: end / start in floats would be exactly 1.
    assert compute_apr([start], [end], 1, 1)[0] == pytest.approx(1e-48)
    assert compute_apy([start], [end], 1, 2)[0] == pytest.approx(2e-48)


@pytest.mark.parametrize("fn", [compute_apr, compute_apy])
def test_apr_apy_refuse_bad_periods(fn) -> None:
    with pytest.raises(ValueError, match=r"^rounds: must be > 0$"):
        fn([1], [2], 0, 1.0)
    with pytest.raises(ValueError, match=r"^rounds_per_year: must be > 0$"):
        fn([1], [2], 1, 0.0)


def test_real_yield() -> None:
    np.testing.assert_allclose(compute_real_yield(0.10, 0.10), 0.0, atol=1e-15)
    np.testing.assert_allclose(compute_real_yield([0.21, 0.0], [0.10, 0.25]), [0.1, -0.2])
    assert isinstance(compute_real_yield(0.1, 0.0), np.ndarray)


def test_supply_dilution() -> None:
    supply = 1_000_000 * TOKEN
    assert compute_supply_dilution(supply, supply * 11 // 10, 100, 100) == pytest.approx(0.1)
    assert compute_supply_dilution(supply, supply * 11 // 10, 50, 100) == pytest.approx(0.2)
    assert compute_supply_dilution(supply, supply, 7, 365) == 0.0
    assert math.isnan(compute_supply_dilution(0, supply, 7, 365))
    # Same convention as the APR.
    assert compute_supply_dilution(40, 50, 3, 12) == pytest.approx(
        compute_apr(40, 50, 3, 12).item()
    )


def test_checkpoint_ratio() -> None:
    assert compute_checkpoint_ratio(0, 0) == 0.0
    assert compute_checkpoint_ratio(3, 4) == 0.75
    assert compute_checkpoint_ratio(10, 10) == 1.0
    with pytest.raises(ValueError, match=r"^reward_calls: must be <= active_operator_rounds$"):
        compute_checkpoint_ratio(5, 4)
    with pytest.raises(ValueError, match=r"^reward_calls: must be >= 0$"):
        compute_checkpoint_ratio(-1, 4)


def test_funding_shares() -> None:
    assert compute_funding_shares([0, 0], [0]) == (0.0, 0.0)
    assert compute_funding_shares([], []) == (0.0, 0.0)
    assert compute_funding_shares([30, 10], [60]) == (0.6, 0.4)
    assert compute_funding_shares([5 * TOKEN], [0]) == (0.0, 1.0)
    assert compute_funding_shares(0, 7) == (1.0, 0.0)
    fee_share, issuance_share = compute_funding_shares([1.5, 0.5], [2.0])
    assert (fee_share, issuance_share) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError, match=r"^fees: must be >= 0$"):
        compute_funding_shares([1], [-1])


@pytest.mark.parametrize("fn", INEQUALITY)
@pytest.mark.parametrize("values", [[1, -1], [1.0, -0.5], [10**30, -(10**30)], [2**63, -1]])
def test_negative_values_are_refused(fn, values: list) -> None:
    with pytest.raises(ValueError) as info:
        fn(values)
    assert str(info.value) == "values: must be >= 0"
    assert "\n" not in str(info.value)


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^values: must be finite$"):
        compute_gini([1.0, math.nan])
    with pytest.raises(ValueError, match=r"^values: must be finite$"):
        compute_hhi([1.0, math.inf])


def test_accepts_numpy_and_object_arrays() -> None:
    ints = np.array([0, 0, 0, 1], dtype=np.int64)
    objects = np.array([0, 0, 0, 10**40], dtype=object)
    assert compute_gini(ints) == compute_gini(objects) == 0.75
    assert compute_hhi(objects) == 1.0
    assert compute_nakamoto_coefficient(objects) == 1


def test_huge_ints_exact_where_floats_would_tie() -> None:
    # 10**30 + 1 vs 10**30 are equal as floats; the exact measures still see the 1.
    values = [10**30 + 1, 10**30]
    assert compute_nakamoto_coefficient(values, 1 / 2) == 1
    assert compute_nakamoto_coefficient([10**30, 10**30], 1 / 2) == 2
    assert compute_gini(values) > 0.0


# --- Properties -------------------------------------------------------------------


@given(amounts)
def test_gini_bounds(values: list[int]) -> None:
    n = len(values)
    assert 0.0 <= compute_gini(values) <= 1.0 - 1.0 / n + 1e-12


@given(float_amounts)
def test_gini_floats_match_the_pairwise_definition(values: list[float]) -> None:
    # The float path clamps into [0, 1 - 1/n], so bounds alone could not fail: compare
    # with the definition computed exactly on the same floats instead.
    exact = [Fraction(v) for v in values]
    n = len(exact)
    pairwise = sum(abs(a - b) for a in exact for b in exact)
    assert compute_gini(values) == pytest.approx(float(pairwise / (2 * n * sum(exact))), abs=1e-9)


@given(nonzero_amounts)
def test_gini_matches_pairwise_definition(values: list[int]) -> None:
    n = len(values)
    pairwise = sum(abs(Fraction(a) - b) for a in values for b in values)
    expected = pairwise / (2 * n * sum(values))
    assert compute_gini(values) == pytest.approx(float(expected), abs=1e-12)


@given(nonzero_amounts, st.integers(1, 10**12))
def test_scale_invariance(values: list[int], c: int) -> None:
    scaled = [v * c for v in values]
    assert compute_gini(scaled) == pytest.approx(compute_gini(values), abs=1e-12)
    assert compute_hhi(scaled) == pytest.approx(compute_hhi(values), abs=1e-12)
    assert compute_theil_index(scaled) == pytest.approx(compute_theil_index(values), abs=1e-9)
    for threshold in (1 / 3, 1 / 2, 2 / 3):
        assert compute_nakamoto_coefficient(scaled, threshold) == compute_nakamoto_coefficient(
            values, threshold
        )


@given(float_amounts, st.floats(1e-6, 1e6))
def test_scale_invariance_floats(values: list[float], c: float) -> None:
    scaled = [v * c for v in values]
    assert compute_gini(scaled) == pytest.approx(compute_gini(values), abs=1e-9)
    assert compute_hhi(scaled) == pytest.approx(compute_hhi(values), abs=1e-9)
    assert compute_theil_index(scaled) == pytest.approx(compute_theil_index(values), abs=1e-9)


@given(nonzero_amounts)
def test_hhi_bounds(values: list[int]) -> None:
    n = len(values)
    assert 1.0 / n <= compute_hhi(values) <= 1.0


@given(float_amounts)
def test_hhi_floats_match_the_exact_sum_of_squared_shares(values: list[float]) -> None:
    # As for Gini: the float path clamps into [1/n, 1], so check the value itself.
    exact = [Fraction(v) for v in values]
    total = sum(exact)
    expected = sum(v * v for v in exact) / (total * total)
    assert compute_hhi(values) == pytest.approx(float(expected), abs=1e-12)


@given(nonzero_amounts)
def test_theil_matches_its_definition(values: list[int]) -> None:
    # The result is clamped into [0, ln n], so compare with the formula on the means.
    n = len(values)
    mean = Fraction(sum(values), n)
    expected = (
        math.fsum(float(Fraction(x) / mean) * math.log(Fraction(x) / mean) for x in values if x > 0)
        / n
    )
    assert compute_theil_index(values) == pytest.approx(expected, abs=1e-9)


@given(amounts)
def test_lorenz_curve_shape(values: list[int]) -> None:
    p, lorenz = compute_lorenz_curve(values)
    n = len(values)
    assert p.shape == lorenz.shape == (n + 1,)
    assert p[0] == lorenz[0] == 0.0
    assert p[-1] == lorenz[-1] == 1.0
    assert np.all(np.diff(p) > 0)
    assert np.all(np.diff(lorenz) >= 0)
    assert np.all(lorenz <= p)


@given(float_amounts)
def test_lorenz_curve_shape_floats(values: list[float]) -> None:
    p, lorenz = compute_lorenz_curve(values)
    assert lorenz[0] == 0.0 and lorenz[-1] == 1.0
    assert np.all(np.diff(lorenz) >= 0)
    assert np.all(lorenz <= p)


@given(nonzero_amounts, st.floats(0.0, 0.99))
def test_nakamoto_is_minimal(values: list[int], threshold: float) -> None:
    k = compute_nakamoto_coefficient(values, threshold)
    bound = Fraction(threshold).limit_denominator(10**9) * sum(values)
    ordered = sorted(values, reverse=True)
    assert 1 <= k <= len(values)
    assert sum(ordered[:k]) > bound
    assert sum(ordered[: k - 1]) <= bound


@given(nonzero_amounts, st.integers(0, 50))
def test_top_k_share_bounds(values: list[int], k: int) -> None:
    share = compute_top_k_share(values, k)
    assert 0.0 <= share <= 1.0
    assert share >= min(k, len(values)) / len(values) - 1e-12
    assert compute_top_k_share(values, k + 1) >= share


@given(amounts)
def test_huge_ints_accepted(values: list[int]) -> None:
    huge = [v * 10**12 for v in values]  # up to 10**42
    for fn in INEQUALITY:
        fn(huge)


@given(st.lists(st.integers(-(10**30), 10**30), min_size=1, max_size=20))
def test_negative_input_refused(values: list[int]) -> None:
    if min(values) >= 0:
        compute_gini(values)
        return
    for fn in INEQUALITY:
        with pytest.raises(ValueError) as info:
            fn(values)
        assert str(info.value) == "values: must be >= 0"


@given(
    st.integers(1, 10**30),
    st.integers(0, 10**30),
    st.integers(1, 1000),
    st.floats(1.0, 1e5),
)
def test_apy_at_least_apr_for_gains_over_a_year_or_less(
    start: int, end: int, rounds: int, rounds_per_year: float
) -> None:
    if rounds > rounds_per_year or end < start:
        return
    apr = compute_apr(start, end, rounds, rounds_per_year).item()
    apy = compute_apy(start, end, rounds, rounds_per_year).item()
    if math.isfinite(apy):
        assert apy >= apr * (1 - 1e-9)


@given(st.floats(-0.5, 10.0), st.floats(-0.5, 10.0))
def test_real_yield_roundtrip(nominal: float, dilution: float) -> None:
    real = compute_real_yield(nominal, dilution).item()
    assert (1 + real) * (1 + dilution) == pytest.approx(1 + nominal, rel=1e-9, abs=1e-12)


@given(st.lists(st.integers(0, 10**30), max_size=10), st.lists(st.integers(0, 10**30), max_size=10))
def test_funding_shares_sum_to_one(issuance: list[int], fees: list[int]) -> None:
    fee_share, issuance_share = compute_funding_shares(issuance, fees)
    if sum(issuance) + sum(fees) == 0:
        assert (fee_share, issuance_share) == (0.0, 0.0)
    else:
        assert fee_share + issuance_share == pytest.approx(1.0)
        assert 0.0 <= fee_share <= 1.0 and 0.0 <= issuance_share <= 1.0


def test_yields_return_arrays_for_scalars() -> None:
    for result in (
        compute_apr(1, 2, 1, 1),
        compute_apy(1, 2, 1, 1),
        compute_real_yield(0.1, 0.0),
    ):
        assert isinstance(result, np.ndarray) and result.dtype == np.float64


def test_correlation_hand_values_and_undefined_cases() -> None:
    assert compute_correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert compute_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # x = (0, 1, 2, 3), y = (0, 1, 0, 1): cov = 0.25, std x = sqrt(1.25), std y = 0.5.
    assert compute_correlation([0, 1, 2, 3], [0, 1, 0, 1]) == pytest.approx(
        0.25 / (1.25**0.5 * 0.5)
    )
    assert math.isnan(compute_correlation([1, 1, 1], [1, 2, 3]))
    assert math.isnan(compute_correlation([1], [2]))
