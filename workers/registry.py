"""The single map from kind name to its four functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from workers.kinds import fft, hashsearch, matmul, montecarlo, sort
from workers.spec import KINDS, TaskSpec


class Kind(NamedTuple):
    make_inputs: Callable[[TaskSpec], Any]
    execute: Callable[[TaskSpec, Any], Any]
    verify: Callable[[TaskSpec, Any, Any], bool]
    # Deterministic wrong result for fault injection, given a seeded generator.
    corrupt: Callable[[TaskSpec, Any, np.random.Generator], Any]


REGISTRY: dict[str, Kind] = {
    m.__name__.rsplit(".", 1)[1]: Kind(m.make_inputs, m.execute, m.verify, m.corrupt)
    for m in (matmul, fft, sort, montecarlo, hashsearch)
}

if tuple(REGISTRY) != KINDS:  # pragma: no cover - guards edits to one list but not the other
    raise ImportError(f"workers registry {tuple(REGISTRY)} does not match KINDS {KINDS}")
