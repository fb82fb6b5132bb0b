"""Complex FFT of a length-n complex128 signal, checked by global identities and sampled bins."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workers import rng as rngs
from workers.backend import get_xp, to_numpy
from workers.kinds._arrays import as_exact, perturb_one
from workers.spec import TaskSpec

SAMPLED_BINS = 8
# Relative tolerances cover an n*eps worst-case rounding of O(n) sums, with a floor well
# above the ~log(n)*eps error of any FFT.
RTOL_FLOOR = 1e-9
SAFETY = 8.0


def make_inputs(spec: TaskSpec) -> np.ndarray:
    g = rngs.seeded(spec.seed, rngs.INPUTS)
    n = spec.size
    return g.standard_normal(n) + 1j * g.standard_normal(n)


def execute(spec: TaskSpec, inputs: np.ndarray) -> np.ndarray:
    xp = get_xp()
    return to_numpy(xp.fft.fft(xp.asarray(inputs)))


def _divisor_near_sqrt(n: int) -> int:
    for d in range(math.isqrt(n), 0, -1):
        if n % d == 0:
            return d
    return 1


def _twiddle(num: np.ndarray, den: int) -> np.ndarray:
    # Reduce the phase exactly in integers first: float phases lose accuracy for large j*k.
    return np.exp(-2j * np.pi * (num % den) / den)


def _real(z: np.ndarray) -> np.ndarray:
    """Float64 view of a complex128 array (real, imag interleaved)."""
    return np.ascontiguousarray(z, dtype=np.complex128).view(np.float64)


def _energy(z: np.ndarray) -> float:
    # A real dot over the interleaved view is several times faster than a complex vdot.
    r = _real(z)
    return float(np.dot(r, r))


def _complex_vecmat(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """v @ m via one real GEMM on interleaved views (NumPy's complex mat-vec is slow)."""
    rows, cols = m.shape
    w = (np.stack([v.real, v.imag]) @ _real(m).reshape(rows, 2 * cols)).reshape(2, cols, 2)
    return (w[0, :, 0] - w[1, :, 1]) + 1j * (w[0, :, 1] + w[1, :, 0])


def sampled_bins(x: np.ndarray, g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact DFT values at m random bins k = s + t*Q for one random s, in O(n + m*sqrt(n)).

    With n = Q*L and j = q*L + r: X_k = sum_r w^(r*k) * u_r where u_r = sum_q x[q, r] w_Q^(q*s),
    so one mat-vec over the signal serves every sampled bin sharing the offset s.
    """
    n = x.size
    big_l = _divisor_near_sqrt(n)
    q = n // big_l
    s = int(g.integers(q))
    t = g.integers(big_l, size=m)
    u = _complex_vecmat(_twiddle(np.arange(q) * s, q), x.reshape(q, big_l))
    bins = s + t * q
    phases = np.outer(bins, np.arange(big_l))
    return bins, _twiddle(phases, n) @ u


def verify(spec: TaskSpec, result: Any, inputs: np.ndarray) -> bool:
    """Linear identities over all bins, Parseval, and SAMPLED_BINS direct DFT bins.

    sum_k X_k = n x_0 and (n even) sum_k (-1)^k X_k = n x_{n/2} involve every bin with
    weight 1, so any single bin moved by more than tol = rtol * ||X|| fails one of them, as
    does any NaN/inf. Parseval (sum |X|^2 = n sum |x|^2) bounds the total energy, and the
    sampled bins (random, fresh per call) catch corruptions that cancel in the sums.
    ||X|| = sqrt(n) ||x|| comes from the inputs, so tolerances do not trust the result.
    """
    x = inputs
    n = spec.size
    big_x = as_exact(result, (n,), np.complex128)
    if big_x is None:
        return False
    rtol = RTOL_FLOOR + SAFETY * n * np.finfo(np.float64).eps
    energy = n * _energy(x)
    tol = rtol * math.sqrt(energy)
    checks = [abs(big_x.sum() - n * x[0]) <= tol]
    if n % 2 == 0:
        alternating = big_x[0::2].sum() - big_x[1::2].sum()
        checks.append(abs(alternating - n * x[n // 2]) <= tol)
    checks.append(abs(_energy(big_x) - energy) <= rtol * energy)
    if not all(checks):
        return False
    bins, expected = sampled_bins(x, rngs.fresh(), SAMPLED_BINS)
    return bool(np.all(np.abs(big_x[bins] - expected) <= tol))


def corrupt(spec: TaskSpec, result: np.ndarray, g: np.random.Generator) -> np.ndarray:
    return perturb_one(result, g)
