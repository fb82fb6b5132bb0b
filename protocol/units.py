"""Units, domain types and fixed-point helpers (SPEC section 0).

Money is an ``int`` of base units (1 token = 10**18). Fractions of money use
three scales and the Livepeer truncation order: the fraction is truncated to
its scale first, then applied.
"""

from __future__ import annotations

import re
from typing import NewType, TypeGuard

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


_DECIMAL = re.compile(r"([0-9]*)(?:\.([0-9]*))?", re.ASCII)
MAX_TOKEN_DIGITS = 60
"""The most digits a decimal token string may have in its whole part (far above any supply)."""


def is_int(value: object) -> TypeGuard[int]:
    """Return whether ``value`` is an ``int`` and not a ``bool`` (``True`` is not lock 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def tokens(n: int | str) -> Amount:
    """Return ``n`` whole tokens in base units (accepts decimal strings like "1.5").

    A string is ASCII digits with at most one ``.`` and at most 18 decimals: no
    sign, exponent, space, underscore or other character, and at least one
    digit. Anything else raises :class:`ValueError` naming the value (so
    ``"-0.5"`` is refused, not read as 0.5).
    """
    if is_int(n):
        return n * TOKEN
    shown = repr(n) if len(repr(n)) <= 40 else repr(n)[:36] + "...'"
    if not isinstance(n, str):
        raise ValueError(f"tokens: not a number of tokens: {shown}")
    match = _DECIMAL.fullmatch(n)
    if match is None or not (match[1] or match[2]):
        raise ValueError(
            f"tokens: not a decimal number of tokens: {shown} (digits with an optional '.')"
        )
    whole, frac = match[1], match[2] or ""
    if len(frac) > 18:
        raise ValueError(f"tokens: more than 18 decimals in {shown}")
    if len(whole) > MAX_TOKEN_DIGITS:
        raise ValueError(f"tokens: more than {MAX_TOKEN_DIGITS} digits in {shown}")
    return int(whole or "0") * TOKEN + int((frac + "0" * 18)[:18])
