"""Task and fault descriptions: a few bytes that fully determine a task."""

from __future__ import annotations

from dataclasses import dataclass

KINDS: tuple[str, ...] = ("matmul", "fft", "sort", "montecarlo", "hashsearch")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task: its kind, its size (elements, samples or nonces) and the input seed."""

    kind: str
    size: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not _is_int(self.size) or self.size <= 0:
            raise ValueError(f"size: must be a positive int, got {self.size!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative int, got {self.seed!r}")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Injected misbehaviour: wrong with probability ``rate``, ``late_s`` late when wrong."""

    rate: float = 0.0
    late_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate: must be in [0, 1], got {self.rate!r}")
        if not self.late_s >= 0.0:
            raise ValueError(f"late_s: must be >= 0, got {self.late_s!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative int, got {self.seed!r}")
