"""Shape and dtype gatekeeping shared by the array kinds."""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.backend import to_numpy


def as_exact(result: Any, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray | None:
    """``result`` as a NumPy array if it has exactly ``shape`` and ``dtype``, else None."""
    if not hasattr(result, "shape") or not hasattr(result, "dtype"):
        return None
    if tuple(result.shape) != shape or result.dtype != np.dtype(dtype):
        return None
    return to_numpy(result)


def perturb_one(result: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``result`` with one element moved by 1 % of the array's RMS (at least 1e-3)."""
    out = np.array(result, copy=True)
    flat = out.reshape(-1)
    rms = float(np.sqrt(np.mean(np.abs(flat) ** 2))) if flat.size else 0.0
    i = int(rng.integers(flat.size))
    flat[i] += max(0.01 * rms, 1e-3) * (1 if rng.random() < 0.5 else -1)
    return out
