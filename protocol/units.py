"""Units, domain types and fixed-point helpers (SPEC section 0).

Money is an ``int`` of base units (1 token = 10**18). Fractions of money use
three scales and the Livepeer truncation order: the fraction is truncated to
its scale first, then applied.
"""

from __future__ import annotations

from typing import NewType

Amount = int
Round = int
Address = str
Ppm = int
Ppb = int
Factor = int
LockId = NewType("LockId", int)

TOKEN: Amount = 10**18
PPM: int = 10**6
PPB: int = 10**9
PRECISE: int = 10**27


def perc_points(n: int, d: int, scale: int) -> int:
    """Return ``n / d`` on ``scale``, truncated (Livepeer ``percPoints``)."""
    return n * scale // d


def perc_of(a: int, n: int, d: int, scale: int) -> int:
    """Return ``a * n / d`` with the fraction truncated first (Livepeer ``percOf``)."""
    return a * perc_points(n, d, scale) // scale


def points_of(a: int, points: int, scale: int) -> int:
    """Return ``a * points / scale`` rounded down (Livepeer's two-argument ``percOf``)."""
    return a * points // scale


def ppm_of(a: Amount, ppm: Ppm) -> Amount:
    """Return ``a * ppm / PPM`` rounded down (``MathUtils.percOf(a, p)``)."""
    return points_of(a, ppm, PPM)


def precise_of(a: int, n: int, d: int) -> int:
    """Return ``a * n / d`` on the PRECISE scale (``PreciseMathUtils.percOf``)."""
    return a * (n * PRECISE // d) // PRECISE


def ppb_of(a: int, n: int, d: int) -> int:
    """Return ``a * n / d`` on the PPB scale (``MathUtilsV2.percOf``)."""
    return a * (n * PPB // d) // PPB


def tokens(n: int | str) -> Amount:
    """Return ``n`` whole tokens in base units (accepts decimal strings like "1.5")."""
    if isinstance(n, int):
        return n * TOKEN
    whole, _, frac = n.partition(".")
    if len(frac) > 18:
        raise ValueError(f"tokens: more than 18 decimals in {n!r}")
    return int(whole or "0") * TOKEN + int((frac + "0" * 18)[:18])
