"""Dense matrix product C = A @ B of two n x n float64 matrices, checked by Freivalds."""

from __future__ import annotations

from typing import Any

import numpy as np

from workers import rng as rngs
from workers.backend import get_xp, to_numpy
from workers.kinds._arrays import as_exact, perturb_one
from workers.spec import TaskSpec

Inputs = tuple[np.ndarray, np.ndarray]

# Freivalds vectors have integer entries uniform in [-Q/2, Q/2); with TRIALS of them a
# wrong product passes with probability <= Q**-TRIALS = 2**-24 (see verify). A larger Q
# widens the tolerance (it scales with ||r||) but needs fewer vectors; each vector costs
# three matrix-vector products, which BLAS does much faster one at a time than as a
# thin matrix product, so few vectors keep verification memory-bound and cheap.
Q = 256
TRIALS = 3
# Safety factor on the gamma_n = n*eps/2 rounding bound of each of the ~4 products involved.
SAFETY = 8.0


def make_inputs(spec: TaskSpec) -> Inputs:
    # Small integer entries in [-128, 128), drawn as int8: the cheapest draw NumPy has, which
    # matters because executor and verifier both draw the inputs and at n = 1024 normal
    # draws cost as much as the product itself. Products of such matrices are exact in
    # float64 (|entries of C| <= n * 2**14, far below 2**53).
    g = rngs.seeded(spec.seed, rngs.INPUTS)
    n = spec.size
    a = g.integers(-128, 128, (n, n), dtype=np.int8).astype(np.float64)
    b = g.integers(-128, 128, (n, n), dtype=np.int8).astype(np.float64)
    return a, b


def execute(spec: TaskSpec, inputs: Inputs) -> np.ndarray:
    xp = get_xp()
    a, b = inputs
    return to_numpy(xp.asarray(a) @ xp.asarray(b))


def _frobenius(m: np.ndarray) -> float:
    flat = m.reshape(-1)
    return float(np.sqrt(np.dot(flat, flat)))  # BLAS dot: much faster than linalg.norm's nrm2


def verify(spec: TaskSpec, result: Any, inputs: Inputs) -> bool:
    """Freivalds' check with TRIALS integer vectors r, entries uniform over Q values.

    Residual e = C r - A (B r). Rounding (|dC| <= gamma_n |A||B| for any product algorithm,
    plus the three mat-vecs done here) is bounded (Cauchy-Schwarz, ||A_i|| <= ||A||_F) by
    t = SAFETY * n * eps * ||A||_F * ||B||_F * ||r||, so a correct C passes |e_i| <= t.
    For a wrong C with D = C - AB and some |D_ij| > 4 t: fix all of r but r_j; the Q
    possible values of (D r)_i are |D_ij| apart, so at most one lies in [-2 t, 2 t], the
    only values that can pass. One vector passes with probability <= 1/Q, all TRIALS with
    <= Q**-TRIALS = 2**-24 < 2**-20. At n = 768 the threshold 4 t is ~2e-4 of an element's
    scale, so a 1e-3 relative perturbation is outside it; NaN/inf make e non-finite.
    """
    a, b = inputs
    n = spec.size
    c = as_exact(result, (n, n), np.float64)
    if c is None:
        return False
    g = rngs.fresh()
    eps = np.finfo(np.float64).eps
    scale = SAFETY * n * eps * _frobenius(a) * _frobenius(b)
    for _ in range(TRIALS):
        r = g.integers(-Q // 2, Q // 2, size=n).astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are rejected below
            residual = c @ r - a @ (b @ r)
        # `<=` is False for NaN, so non-finite results fail here too.
        if not np.all(np.abs(residual) <= scale * float(np.sqrt(np.dot(r, r)))):
            return False
    return True


def corrupt(spec: TaskSpec, result: np.ndarray, g: np.random.Generator) -> np.ndarray:
    return perturb_one(result, g)
