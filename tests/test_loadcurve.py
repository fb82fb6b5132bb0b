"""The load curve (SPEC 9): continuity, shape, premium, amplification and uptime shares."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.loadcurve import LoadCurve, compute_uptime_shares

DEFAULT = LoadCurve()


@st.composite
def curves(draw: st.DrawFn) -> LoadCurve:
    b = draw(st.floats(0.05, 2.0))
    f = b + draw(st.floats(0.05, 2.0))
    a = draw(st.floats(0.1, 10.0))
    c = draw(st.floats(-2.0, 0.95)) * a
    e = draw(st.floats(-5.0, 5.0))
    assume(a - c + (f - b) * e > 1e-3)
    g = -draw(st.floats(0.1, 50.0))
    h = f - draw(st.floats(0.0, 2.0))
    return LoadCurve(A=a, B=b, C=c, E=e, F=f, G=g, H=h)


def test_defaults_and_derived_constants() -> None:
    assert math.isclose(DEFAULT.D, 0.8)
    assert math.isclose(DEFAULT.I, 0.7)
    assert DEFAULT.value_at_F == pytest.approx(0.675)
    assert DEFAULT.curve(0.0) == pytest.approx(1 / math.e - 0.2)
    zero = DEFAULT.H + math.sqrt(-DEFAULT.I / DEFAULT.G)
    assert zero == pytest.approx(1.0146, abs=1e-4)
    assert DEFAULT.curve(zero) == pytest.approx(0.0, abs=1e-12)
    assert DEFAULT.compute_slash_amplification(zero) == pytest.approx(2.0)
    assert DEFAULT.compute_slash_amplification(1.0) == pytest.approx(1.889, abs=1e-3)
    assert DEFAULT.compute_slash_amplification(1.2) == pytest.approx(3.963, abs=1e-3)


@given(curve=curves())
def test_continuous_at_b_and_f(curve: LoadCurve) -> None:
    b, f = curve.B, curve.F
    eps = 1e-9
    below_b = curve.A * math.exp(-(((b - eps - b) / b) ** 2)) - curve.C
    assert curve.curve(b - eps) == pytest.approx(below_b)
    assert curve.curve(b - eps) == pytest.approx(curve.curve(b), abs=1e-6)
    # The overload branch as the paper writes it, with the derived I.
    paper = max(curve.G * (f + eps - curve.H) ** 2 + curve.I, 0.0)
    assert curve.curve(f + eps) == pytest.approx(paper, abs=1e-9)
    assert curve.curve(f + eps) == pytest.approx(curve.curve(f), abs=1e-6)
    assert curve.curve(b) == pytest.approx(curve.D)
    assert curve.curve(f) == pytest.approx(curve.value_at_F)


@given(curve=curves(), xs=st.lists(st.floats(0, 10), min_size=1, max_size=20))
def test_vectorised_equals_scalar(curve: LoadCurve, xs: list[float]) -> None:
    arr = np.array(xs)
    for name in ("curve", "compute_load_premium", "compute_slash_amplification"):
        fn = getattr(curve, name)
        vec = fn(arr)
        assert isinstance(vec, np.ndarray)
        assert vec.tolist() == [fn(x) for x in xs]
        assert all(isinstance(fn(x), float) for x in xs)


def test_shape_of_default_curve() -> None:
    c = DEFAULT
    rising = c.curve(np.linspace(0.0, c.B, 50, endpoint=False))
    assert np.all(np.diff(rising) > 0)
    assert c.curve(c.B) == pytest.approx(c.D)
    # Linear on [B, F]: constant slope E.
    xs = np.linspace(c.B, c.F, 11)
    assert np.diff(c.curve(xs)) / np.diff(xs) == pytest.approx(np.full(10, c.E))
    # Beyond F: a declining quadratic, clipped at 0.
    over = np.linspace(c.F + 1e-6, 3.0, 200)
    vals = c.curve(over)
    assert np.all(np.diff(vals) <= 0)
    quad = np.maximum(c.G * (over - c.H) ** 2 + c.I, 0.0)
    assert vals == pytest.approx(quad, abs=1e-12)
    assert np.all(vals >= 0) and vals[-1] == 0.0
    # The peak is B (E < 0): the sweet spot.
    grid = np.linspace(0, 3, 3001)
    assert c.curve(grid).max() <= c.D + 1e-12


@given(curve=curves(), xs=st.lists(st.floats(0, 10), min_size=2, max_size=30))
def test_premium_monotone_and_bounded(curve: LoadCurve, xs: list[float]) -> None:
    xs = sorted(xs)
    prem = curve.compute_load_premium(np.array(xs))
    assert np.all(np.diff(prem) >= 0)
    assert np.all((prem >= 0) & (prem <= 1))
    x_peak = curve.B if curve.E <= 0 else curve.F
    assert curve.compute_load_premium(x_peak) == 0.0


def test_default_premium_values() -> None:
    c = DEFAULT
    assert c.compute_load_premium(0.0) == 0.0
    assert c.compute_load_premium(c.B) == 0.0
    assert c.compute_load_premium(c.F) == pytest.approx(0.125 / 0.8)
    assert c.compute_load_premium(2.0) == 1.0


@given(curve=curves(), x=st.floats(0, 10))
def test_amplification_is_one_up_to_f_and_grows_above(curve: LoadCurve, x: float) -> None:
    amp = curve.compute_slash_amplification(x)
    if x <= curve.F:
        assert amp == 1.0
    elif x >= curve.F + 1e-6:
        assert amp > 1.0
        assert curve.compute_slash_amplification(x + 0.5) > amp
    assert curve.compute_slash_amplification(curve.F) == 1.0


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"B": 0.0}, "B"),
        ({"F": 0.3}, "F"),
        ({"C": 1.0}, "C"),
        ({"G": 0.5}, "G"),
        ({"H": 0.9}, "H"),
        ({"E": -2.0}, "E"),
        ({"A": -1.0, "C": -2.0}, "A"),
        ({"A": math.inf}, "A"),
    ],
)
def test_bad_curves_rejected(changes: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        LoadCurve(**changes)


def test_negative_load_rejected() -> None:
    with pytest.raises(ValueError, match="load"):
        DEFAULT.curve(-0.1)
    with pytest.raises(ValueError, match="load"):
        DEFAULT.compute_load_premium(np.array([0.2, math.nan]))


def test_uptime_weights() -> None:
    collateral = [10**24, 3 * 10**24, 10**24, 0]
    reputation = [0.9, 0.5, 0.9, 1.0]
    load = [DEFAULT.B, DEFAULT.B, 2.0, DEFAULT.B]
    w = DEFAULT.compute_uptime_weights(collateral, reputation, load)
    assert w.dtype == np.float64
    assert w.sum() == pytest.approx(1.0)
    # 0.9 * 1 : 0.5 * 3 at the same load; overloaded (curve 0) and collateral-less get 0.
    assert w[0] / w[1] == pytest.approx(0.9 / 1.5)
    assert w[2] == 0.0 and w[3] == 0.0
    # A negative curve value (idle with large C) counts as 0, and all zeros stay zeros.
    low = LoadCurve(C=0.5)
    assert low.curve(0.0) < 0
    zero = low.compute_uptime_weights([1, 1], [1.0, 1.0], [0.0, 5.0])
    assert zero.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="collateral"):
        DEFAULT.compute_uptime_weights([1, 2], [1.0], [0.1, 0.1])
    with pytest.raises(ValueError, match="collateral"):
        DEFAULT.compute_uptime_weights([-1], [1.0], [0.1])


@given(
    total=st.integers(0, 10**27),
    weights=st.lists(st.one_of(st.just(0.0), st.floats(1e-12, 1e6)), min_size=1, max_size=30),
)
def test_uptime_shares_sum_exactly_and_follow_weights(total: int, weights: list[float]) -> None:
    shares = compute_uptime_shares(total, weights)
    assert len(shares) == len(weights)
    if sum(weights) == 0:
        assert shares == [0] * len(weights)
        return
    assert sum(shares) == total
    # Reference: exact quotas as fractions; the leftover units go to the
    # largest remainders, ties to the lower index.
    exact = [Fraction(w) for w in weights]
    quotas = [total * w / sum(exact) for w in exact]
    floors = [math.floor(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    assert shares == floors


def test_uptime_shares_largest_remainder_and_ties() -> None:
    # Quotas 3.5, 3.5, 3.0 -> one leftover unit to the lower index.
    assert compute_uptime_shares(10, [0.35, 0.35, 0.3]) == [4, 3, 3]
    # Quotas 1.2, 2.6, 6.2 -> the leftover goes to the largest remainder.
    assert compute_uptime_shares(10, [0.12, 0.26, 0.62]) == [1, 3, 6]
    assert compute_uptime_shares(3, [1.0, 1.0, 1.0, 1.0]) == [1, 1, 1, 0]
    assert compute_uptime_shares(7, [0.0, 0.0]) == [0, 0]
    assert compute_uptime_shares(7, np.array([0.0, 2.0])) == [0, 7]
    assert compute_uptime_shares(0, [1.0, 2.0]) == [0, 0]
    big = 10**24 + 1
    assert sum(compute_uptime_shares(big, [1 / 3, 1 / 3, 1 / 3])) == big


@pytest.mark.parametrize(
    "total, weights", [(-1, [1.0]), (1.5, [1.0]), (5, [-1.0]), (5, [math.nan])]
)
def test_uptime_shares_rejects_bad_input(total: object, weights: list[float]) -> None:
    with pytest.raises(ValueError):
        compute_uptime_shares(total, weights)  # type: ignore[arg-type]
