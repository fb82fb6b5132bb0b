"""The load curve (SPEC section 9): uptime incentive, ask premium and slash amplification.

Over a coprocessor's utilisation ``x >= 0`` the paper's incentive is::

    f(x) = A * exp(-((x - B) / B)**2) - C      if x < B
         = D + (x - B) * E                     if B <= x <= F
         = max(G * (x - H)**2 + I, 0)          if x > F

``A, B, C, E, F, G, H`` are free; ``D = A - C`` and
``I = D + (F - B) * E - G * (F - H)**2`` are derived, so the curve is
continuous at ``B`` and ``F`` by construction. We read the curve as the
incentive (the reference notes' "most natural reading"): it rises towards
the sweet spot ``B``, runs linearly to the overload threshold ``F`` and
falls as a clipped downward parabola beyond it (``G < 0``, ``H <= F``).
Overload is punished separately by :meth:`LoadCurve.compute_slash_amplification`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Self, overload

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

FloatArray = npt.NDArray[np.float64]
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _as_load(x: Any) -> FloatArray:
    """Return ``x`` as a float array, refusing negative or NaN loads."""
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(arr >= 0.0):
        raise ValueError("load: must be >= 0 (and not NaN)")
    return arr


class LoadCurve(BaseModel):
    """The curve's free constants (SPEC 9); defaults follow the reference notes' shape.

    - ``B = 0.3``, ``F = 0.8`` (the notes' values): the sweet spot is 30 %
      utilisation and overload starts at 80 %.
    - ``A = 1.0``, ``C = 0.2``: ``D = 0.8`` is the peak at ``B``; an idle
      coprocessor gets ``A/e - C = 0.168``, so being up and lightly used
      pays more than being up and idle.
    - ``E = -0.25``: the linear segment declines gently to ``f(F) = 0.675``,
      so ``B`` stays the sweet spot (the notes' ``E = 0.5`` would put the
      peak at the overload threshold instead).
    - ``G = -10``, ``H = 0.75``: ``I = 0.7``; the overload branch leaves
      ``F`` with slope ``2*G*(F-H) = -1`` and reaches 0 at
      ``x = H + sqrt(-I/G) = 1.015``, i.e. at full utilisation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    A: Finite = 1.0
    B: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 0.3
    C: Finite = 0.2
    E: Finite = -0.25
    F: Finite = 0.8
    G: Annotated[float, Field(lt=0.0, allow_inf_nan=False)] = -10.0
    H: Finite = 0.75

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        # Each check keeps one promise of the docstrings: a rising start, a
        # positive peak, an ordered pair of thresholds, a declining overload
        # branch, and a positive f(F) to divide by in the amplification.
        if self.A <= 0.0:
            raise ValueError("A: must be > 0 (the curve rises towards B)")
        if self.F <= self.B:
            raise ValueError("F: must be > B")
        if self.D <= 0.0:
            raise ValueError("C: must be < A (the peak D = A - C must be > 0)")
        if self.H > self.F:
            raise ValueError("H: must be <= F (the overload branch must decline)")
        if self.value_at_F <= 0.0:
            raise ValueError("E: f(F) = D + (F - B) * E must be > 0")
        return self

    @property
    def D(self) -> float:
        """Return the derived ``D = A - C`` (continuity at ``B``)."""
        return self.A - self.C

    @property
    def value_at_F(self) -> float:
        """Return ``f(F) = D + (F - B) * E``."""
        return self.D + (self.F - self.B) * self.E

    @property
    def I(self) -> float:  # noqa: E743 - the paper's name
        """Return the derived ``I = f(F) - G * (F - H)**2`` (continuity at ``F``)."""
        return self.value_at_F - self.G * (self.F - self.H) ** 2

    def _overload_drop(self, x: FloatArray) -> FloatArray:
        """Return ``-G * ((x-H)**2 - (F-H)**2)``, the unclipped fall below ``f(F)`` past F."""
        # Factored as (x-F)*(x+F-2H): both factors are >= 0 beyond F, so the
        # drop is >= 0 and monotone in floating point too, not only on paper.
        return -self.G * (x - self.F) * (x + self.F - 2.0 * self.H)

    @overload
    def curve(self, x: float) -> float: ...
    @overload
    def curve(self, x: npt.ArrayLike) -> FloatArray: ...
    def curve(self, x: Any) -> Any:
        """Return the incentive ``f(x)`` (SPEC 9), scalar or elementwise."""
        arr = _as_load(x)
        with np.errstate(over="ignore", invalid="ignore"):
            rising = self.A * np.exp(-(((arr - self.B) / self.B) ** 2)) - self.C
            linear = self.D + (arr - self.B) * self.E
            # Equal to max(G*(x-H)**2 + I, 0), written so it never exceeds f(F).
            overload_ = np.maximum(self.value_at_F - self._overload_drop(arr), 0.0)
        out = np.where(arr < self.B, rising, np.where(arr <= self.F, linear, overload_))
        return float(out) if out.ndim == 0 else out

    @overload
    def compute_load_premium(self, x: float) -> float: ...
    @overload
    def compute_load_premium(self, x: npt.ArrayLike) -> FloatArray: ...
    def compute_load_premium(self, x: Any) -> Any:
        """Return the ask's load premium: the curve's relative shortfall below its peak, past it.

        ``premium(x) = 0`` up to the peak ``x_peak`` (``B`` when ``E <= 0``,
        else ``F``) and ``(f(x_peak) - f(x)) / f(x_peak)`` beyond, in
        ``[0, 1]``: a lightly loaded coprocessor asks its bare cost, one where
        the incentive is gone asks double. The curve does not increase past
        its peak, so the premium never decreases with load; it stops at 1
        because slash amplification keeps raising the ask's risk term.
        """
        arr = _as_load(x)
        x_peak = self.B if self.E <= 0.0 else self.F
        peak = self.D if self.E <= 0.0 else self.value_at_F
        shortfall = np.clip((peak - self.curve(arr)) / peak, 0.0, 1.0)
        out = np.where(arr > x_peak, shortfall, 0.0)
        return float(out) if out.ndim == 0 else out

    @overload
    def compute_slash_amplification(self, x: float) -> float: ...
    @overload
    def compute_slash_amplification(self, x: npt.ArrayLike) -> FloatArray: ...
    def compute_slash_amplification(self, x: Any) -> Any:
        """Return the slash multiplier (SPEC 7): 1 up to ``F``, ``1 + drop(x) / f(F)`` above.

        ``drop(x) = f(F) - (G*(x-H)**2 + I)`` is the overload branch's fall
        below ``f(F)`` before clipping, so the multiplier is 2 where the
        incentive reaches 0 (``x = 1.015`` with the defaults) and keeps
        growing quadratically beyond: 1.89 at full load, 3.96 at 120 %.
        """
        arr = _as_load(x)
        with np.errstate(over="ignore", invalid="ignore"):
            amp = 1.0 + self._overload_drop(arr) / self.value_at_F
        out = np.where(arr > self.F, amp, 1.0)
        return float(out) if out.ndim == 0 else out

    def compute_uptime_weights(
        self, collateral: npt.ArrayLike, reputation: npt.ArrayLike, load: npt.ArrayLike
    ) -> FloatArray:
        """Return weights ``∝ collateral * reputation * max(f(load), 0)`` summing to 1, or all 0.

        Collateral may hold Python ints beyond int64 (base units); it only
        sets proportions here, so floats suffice. All-zero products give an
        all-zero vector: the caller decides where that round's share goes.
        """
        c = np.asarray(collateral, dtype=object).astype(np.float64)
        r = np.asarray(reputation, dtype=np.float64)
        if not c.shape == r.shape == np.shape(load):
            raise ValueError("collateral: collateral, reputation and load must have equal lengths")
        if not (np.all(c >= 0.0) and np.all(r >= 0.0)):
            raise ValueError("collateral: collateral and reputation must be >= 0")
        raw = c * r * np.maximum(self.curve(np.asarray(load, dtype=np.float64)), 0.0)
        total = float(raw.sum())
        if total <= 0.0:
            return np.zeros_like(raw)
        return raw / total


def compute_uptime_shares(total: int, weights: Sequence[float] | npt.ArrayLike) -> list[int]:
    """Split ``total`` base units in proportion to ``weights``, summing exactly to ``total``.

    Largest remainder, computed exactly: every float is a dyadic rational,
    so the weights become integers over one power-of-two denominator and no
    rounding enters. Each gets ``floor(total * w_i / W)``; the leftover units
    go one each to the largest remainders, ties to the lower index. All-zero
    weights return all zeros (the caller decides where ``total`` goes).
    """
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise ValueError(f"total: must be an integer >= 0, got {total!r}")
    ws = [float(w) for w in np.asarray(weights, dtype=np.float64).ravel()]
    if not all(w >= 0.0 and w != float("inf") for w in ws):
        raise ValueError("weights: must be finite and >= 0")
    ratios = [w.as_integer_ratio() for w in ws]
    denom = max((d for _, d in ratios), default=1)
    units = [n * (denom // d) for n, d in ratios]
    whole = sum(units)
    if whole == 0:
        return [0] * len(ws)
    shares = [total * u // whole for u in units]
    left = total - sum(shares)
    order = sorted(range(len(ws)), key=lambda i: (-(total * units[i] % whole), i))
    for i in order[:left]:
        shares[i] += 1
    return shares
