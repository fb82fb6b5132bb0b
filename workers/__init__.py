"""Real compute tasks with cheap verifiers: matmul, fft, sort, montecarlo, hashsearch.

A :class:`TaskSpec` (kind, size, seed) fully determines a task's inputs, so a task travels
as a few bytes. Kernels run on CuPy when a GPU is usable, else NumPy (``workers.backend``);
verifiers run on NumPy and cost far less than execution.
"""

from __future__ import annotations

from workers import backend
from workers.spec import KINDS, MAX_SIZE, FaultConfig, TaskSpec
from workers.tasks import execute, make_inputs, verify

__all__ = [
    "KINDS",
    "MAX_SIZE",
    "FaultConfig",
    "TaskSpec",
    "backend",
    "execute",
    "make_inputs",
    "verify",
]
