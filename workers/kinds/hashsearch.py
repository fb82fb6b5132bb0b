"""Find a nonce in [0, size) whose SHA-256 with a seed-derived prefix is below a target."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers import rng as rngs
from workers.spec import TaskSpec

# Expected solutions in the range: no solution has probability about exp(-EXPECTED_HITS),
# and the first hit lies around size / EXPECTED_HITS, so execution scans many nonces.
EXPECTED_HITS = 16
NONCE_BYTES = 8


@dataclass(frozen=True, slots=True)
class Puzzle:
    prefix: bytes
    target: int


@dataclass(frozen=True, slots=True)
class Result:
    nonce: int
    digest: bytes


def make_inputs(spec: TaskSpec) -> Puzzle:
    prefix = rngs.seeded(spec.seed, rngs.INPUTS).bytes(32)
    target = min(2**256, (2**256 * EXPECTED_HITS) // spec.size)
    return Puzzle(prefix=prefix, target=target)


def digest(puzzle: Puzzle, nonce: int) -> bytes:
    return hashlib.sha256(puzzle.prefix + nonce.to_bytes(NONCE_BYTES, "big")).digest()


def execute(spec: TaskSpec, inputs: Puzzle) -> Result:
    """The first nonce below target (any one is valid; the first keeps results deterministic)."""
    base = hashlib.sha256(inputs.prefix)
    for nonce in range(spec.size):
        h = base.copy()
        h.update(nonce.to_bytes(NONCE_BYTES, "big"))
        d = h.digest()
        if int.from_bytes(d, "big") < inputs.target:
            return Result(nonce=nonce, digest=d)
    raise RuntimeError(f"hashsearch: no nonce below target for seed {spec.seed} (p ~ e^-16)")


def verify(spec: TaskSpec, result: Any, inputs: Puzzle) -> bool:
    """One hash: the nonce is in range, the digest is its hash, and it is below target."""
    if not isinstance(result, Result):
        return False
    nonce, d = result.nonce, result.digest
    if not isinstance(nonce, int) or isinstance(nonce, bool) or not 0 <= nonce < spec.size:
        return False
    if not isinstance(d, bytes) or d != digest(inputs, nonce):
        return False
    return int.from_bytes(d, "big") < inputs.target


def corrupt(spec: TaskSpec, result: Result, g: np.random.Generator) -> Result:
    # Claim a neighbouring nonce with the old digest; with one nonce only, garble the digest.
    if spec.size > 1:
        return Result(nonce=(result.nonce + 1) % spec.size, digest=result.digest)
    i = int(g.integers(len(result.digest)))
    flipped = bytes([result.digest[i] ^ 0xFF])
    return Result(nonce=result.nonce, digest=result.digest[:i] + flipped + result.digest[i + 1 :])
