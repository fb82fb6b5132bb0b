"""Sort n float64 values, checked by order plus an exact multiset fingerprint."""

from __future__ import annotations

from typing import Any

import numpy as np

from workers import rng as rngs
from workers.backend import get_xp, to_numpy
from workers.kinds._arrays import as_exact
from workers.spec import TaskSpec


def make_inputs(spec: TaskSpec) -> np.ndarray:
    return rngs.seeded(spec.seed, rngs.INPUTS).standard_normal(spec.size)


def execute(spec: TaskSpec, inputs: np.ndarray) -> np.ndarray:
    xp = get_xp()
    return to_numpy(xp.sort(xp.asarray(inputs)))


def fingerprint(values: np.ndarray, keys: np.ndarray) -> int:
    """Order-independent sum (mod 2**64) of a keyed bijective 64-bit mix of each value's bits.

    Every step (xor with a key, xor-shift, multiply by an odd key) is a bijection of 64-bit
    words, so changing one value always changes the sum; the fresh random keys make
    engineered multi-value collisions a matter of luck.
    """
    h = values.view(np.uint64) ^ keys[0]
    h ^= h >> np.uint64(31)
    h *= keys[1]
    h ^= h >> np.uint64(29)
    h *= keys[2]
    h ^= h >> np.uint64(32)
    return int(h.sum(dtype=np.uint64))


def verify(spec: TaskSpec, result: Any, inputs: np.ndarray) -> bool:
    """Non-decreasing order and the same multiset of bit patterns as the input, in O(n).

    Sorting moves values without changing them, so the multiset comparison is exact.
    NaN fails the order check (every comparison with NaN is False).
    """
    out = as_exact(result, (spec.size,), np.float64)
    if out is None:
        return False
    if not bool(np.all(out[1:] >= out[:-1])):
        return False
    keys = rngs.fresh().integers(0, 2**64, size=3, dtype=np.uint64, endpoint=False)
    keys[1:] |= np.uint64(1)  # multipliers must be odd to stay bijective
    return fingerprint(np.ascontiguousarray(out), keys) == fingerprint(inputs, keys)


def corrupt(spec: TaskSpec, result: np.ndarray, g: np.random.Generator) -> np.ndarray:
    # Nudging one value by one ulp keeps the array sorted almost always: only the
    # multiset fingerprint can catch it, which is the harder case.
    out = np.array(result, copy=True)
    i = int(g.integers(out.size))
    out[i] = np.nextafter(out[i], np.inf if g.random() < 0.5 else -np.inf)
    return out
