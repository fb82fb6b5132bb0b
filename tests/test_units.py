"""Fixed-point helpers against the values Livepeer's own MathUtils tests assert."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.units import (
    PPB,
    PPM,
    PRECISE,
    TOKEN,
    perc_of,
    perc_points,
    points_of,
    ppb_of,
    ppm_of,
    precise_of,
    tokens,
)


def test_mathutils_vectors() -> None:
    assert perc_of(100, 3, 4, PPM) == 75
    assert perc_of(100, 7, 9, PPM) == 77
    assert ppm_of(100, 3) == 0
    assert ppm_of(100, 100_000) == 10
    assert perc_points(3, 4, PPM) == 750_000
    assert perc_points(100, 300, PPM) == 333_333


def test_precise_mathutils_vectors() -> None:
    assert perc_points(3, 4, PRECISE) == 750_000_000_000_000_000_000_000_000
    assert perc_points(100, 300, PRECISE) == 333_333_333_333_333_333_333_333_333
    assert points_of(10**27, 1, PRECISE) == 1
    assert points_of(100, PRECISE // 10, PRECISE) == 10


def test_truncation_order_is_fraction_first() -> None:
    # SPEC 0: the minted reward is mintable * (stake * PPB // total) // PPB.
    mintable, stake, total = 10**21 + 7, 1, 3
    assert ppb_of(mintable, stake, total) == mintable * (stake * PPB // total) // PPB
    assert ppb_of(mintable, stake, total) != mintable * stake // total
    assert precise_of(10**18, 2, 3) == 10**18 * (2 * PRECISE // 3) // PRECISE


@given(
    a=st.integers(min_value=0, max_value=10**30),
    n=st.integers(min_value=0, max_value=10**30),
    d=st.integers(min_value=1, max_value=10**30),
)
def test_perc_of_never_exceeds_the_exact_value(a: int, n: int, d: int) -> None:
    for scale in (PPM, PPB, PRECISE):
        assert perc_of(a, n, d, scale) * d <= a * n


def test_tokens() -> None:
    assert tokens(3) == 3 * TOKEN
    assert tokens("1.5") == 15 * 10**17
    assert tokens("0.000000000000000001") == 1
    with pytest.raises(ValueError):
        tokens("0.0000000000000000001")
