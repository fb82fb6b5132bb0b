"""Random streams: seeded ones for inputs and faults, fresh ones for verifiers."""

from __future__ import annotations

import secrets

import numpy as np


def seeded(*words: int) -> np.random.Generator:
    """A deterministic generator keyed by ``words`` (e.g. spec seed, purpose tag)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(words))))


def fresh() -> np.random.Generator:
    """Verifier randomness from the OS, so a worker cannot predict which checks it faces."""
    return np.random.Generator(np.random.PCG64(secrets.randbits(128)))


# Purpose tags keep input, fault-choice and fault-draw streams independent.
INPUTS = 0x1A
FAULT_WHERE = 0xFA
FAULT_DRAW = 0xFD
