"""Task and fault descriptions: a few bytes that fully determine a task."""

from __future__ import annotations

from dataclasses import dataclass

KINDS: tuple[str, ...] = ("matmul", "fft", "sort", "montecarlo", "hashsearch")

MAX_SIZE: dict[str, int] = {
    "matmul": 16_384,  # n x n float64: three 2 GiB matrices
    "fft": 2**26,  # complex128 signal and spectrum: 1 GiB each
    "sort": 2**28,  # float64 input and output: 2 GiB each
    "montecarlo": 2**34,  # 262,144 chunks of 65,536 points (memory: one chunk)
    "hashsearch": 2**32,  # nonces; the first hit lies near size / 16
}
"""The largest ``size`` of each kind: the one bound on a task's memory and time.

Every size a workload names is checked against it when the workload is
loaded, and :class:`TaskSpec` refuses anything larger.
"""


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
        if self.size > MAX_SIZE[self.kind]:
            raise ValueError(
                f"size: {self.size:,} is above the largest {self.kind} task, "
                f"{MAX_SIZE[self.kind]:,}"
            )
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
