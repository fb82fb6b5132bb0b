"""Pick the array namespace once: CuPy on a usable GPU, NumPy otherwise."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

import numpy as np

log = logging.getLogger("workers")

_xp: ModuleType | None = None


def _probe_cupy() -> tuple[ModuleType | None, str]:
    """Return (cupy, reason) if a GPU is usable, else (None, reason)."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        return None, f"cupy not importable ({exc})"
    except Exception as exc:  # a broken install can raise anything at import time
        return None, f"cupy import failed ({type(exc).__name__}: {exc})"
    try:
        available = bool(cupy.cuda.is_available()) or cupy.cuda.runtime.getDeviceCount() > 0
    except Exception as exc:  # driver/runtime errors must not take the worker down
        return None, f"cupy present but CUDA probe failed ({type(exc).__name__}: {exc})"
    if not available:
        return None, "cupy present but no CUDA device"
    return cupy, "cupy imported and a CUDA device is available"


def get_xp(refresh: bool = False) -> ModuleType:
    """Return ``cupy`` if it imports and sees a GPU, else ``numpy``; logs the choice once."""
    global _xp
    if _xp is None or refresh:
        cupy, reason = _probe_cupy()
        _xp = cupy if cupy is not None else np
        log.info("workers backend: %s (%s)", _xp.__name__, reason)
    return _xp


def to_numpy(array: Any) -> np.ndarray:
    """Return ``array`` as a host NumPy array (copies device arrays back)."""
    if type(array).__module__.split(".")[0] == "cupy":
        return array.get()
    return np.asarray(array)
