"""Monte Carlo estimate of pi from `size` points in fixed, independently seeded chunks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workers import rng as rngs
from workers.spec import TaskSpec

CHUNK = 2**16
SAMPLED_CHUNKS = 8


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the task needs: chunk c draws from PCG64(SeedSequence([seed, c]))."""

    seed: int
    size: int
    chunk: int = CHUNK

    @property
    def n_chunks(self) -> int:
        return -(-self.size // self.chunk)

    def chunk_len(self, c: int) -> int:
        return min(self.chunk, self.size - c * self.chunk)


@dataclass(frozen=True, slots=True)
class Result:
    """Points inside the quarter circle per chunk, and their total."""

    partials: np.ndarray
    total: int

    def estimate(self, size: int) -> float:
        return 4.0 * self.total / size


def make_inputs(spec: TaskSpec) -> Plan:
    return Plan(seed=spec.seed, size=spec.size)


def count_chunk(plan: Plan, c: int) -> int:
    # NumPy on purpose: CuPy's generators differ, and the verifier must reproduce chunks exactly.
    g = rngs.seeded(plan.seed, c)
    pts = g.random((plan.chunk_len(c), 2))
    return int(np.count_nonzero(np.einsum("ij,ij->i", pts, pts) < 1.0))


def execute(spec: TaskSpec, inputs: Plan) -> Result:
    partials = np.array([count_chunk(inputs, c) for c in range(inputs.n_chunks)], dtype=np.int64)
    return Result(partials=partials, total=int(partials.sum()))


def verify(spec: TaskSpec, result: Any, inputs: Plan) -> bool:
    """Total equals the sum of partials, and SAMPLED_CHUNKS random chunks recount exactly.

    A single wrong partial or total breaks the sum; a consistent forgery of j chunks
    survives only if none of them is sampled.
    """
    if not isinstance(result, Result) or isinstance(result.total, bool):
        return False
    partials = result.partials
    if not isinstance(partials, np.ndarray) or partials.dtype != np.int64:
        return False
    if partials.shape != (inputs.n_chunks,) or not isinstance(result.total, int | np.integer):
        return False
    if int(partials.sum()) != int(result.total):
        return False
    sampled = rngs.fresh().choice(
        inputs.n_chunks, size=min(SAMPLED_CHUNKS, inputs.n_chunks), replace=False
    )
    return all(int(partials[c]) == count_chunk(inputs, int(c)) for c in sampled)


def corrupt(spec: TaskSpec, result: Result, g: np.random.Generator) -> Result:
    partials = result.partials.copy()
    c = int(g.integers(partials.size))
    partials[c] += 1 if partials[c] == 0 else -1
    return Result(partials=partials, total=result.total)
