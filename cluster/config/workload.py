"""Workloads: which tasks arrive when, with what fee (validated YAML, seeded generation).

A workload is a task mix (kind, size, weight), a fee distribution, a Poisson
arrival rate with optional bursts, a deadline, and either a duration or a
task count. :func:`generate_tasks` turns it into a concrete, replayable list
of tasks: the same workload and seed always give the same tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

import workers
from protocol.units import Amount, tokens

PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class TaskMix(BaseModel):
    """One line of the mix: tasks of ``kind`` and ``size``, drawn with relative ``weight``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    size: Annotated[int, Field(gt=0)]
    weight: PositiveFloat = 1.0

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in workers.KINDS:
            raise ValueError(f"unknown task kind {kind!r}; choose from {', '.join(workers.KINDS)}")
        return kind


class FeeDistribution(BaseModel):
    """Task fees in tokens: fixed, uniform on [low, high], or lognormal around ``mean``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    shape: Literal["fixed", "uniform", "lognormal"] = "fixed"
    mean: PositiveFloat = 1.0
    low: PositiveFloat | None = None
    high: PositiveFloat | None = None
    sigma: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.5

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        uniform = self.shape == "uniform"
        if uniform and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError("uniform fees need low <= high")
        return self


class Burst(BaseModel):
    """A stretch of time when tasks arrive ``multiplier`` times faster."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    duration_s: PositiveFloat
    multiplier: PositiveFloat


class WorkloadSpec(BaseModel):
    """Everything that decides the tasks of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mix: Annotated[list[TaskMix], Field(min_length=1)]
    fees: FeeDistribution = FeeDistribution()
    rate_per_s: PositiveFloat = 50.0
    bursts: list[Burst] = Field(default_factory=list)
    deadline_rounds: Annotated[int, Field(ge=1)] = 3
    duration_s: PositiveFloat | None = None
    count: Annotated[int, Field(gt=0)] | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if (self.duration_s is None) == (self.count is None):
            raise ValueError("give exactly one of duration_s and count")
        return self

    def with_count(self, count: int) -> WorkloadSpec:
        """Return this workload limited to ``count`` tasks instead of a duration or count."""
        return self.model_copy(update={"count": count, "duration_s": None})


@dataclass(frozen=True, slots=True)
class GeneratedTask:
    """A concrete task: its id, arrival time from the start, spec and fee in base units."""

    task_id: int
    arrival_s: float
    spec: workers.TaskSpec
    fee: Amount


def rate_at(spec: WorkloadSpec, t: float) -> float:
    """Return the arrival rate at time ``t`` (bursts multiply the base rate)."""
    rate = spec.rate_per_s
    for burst in spec.bursts:
        if burst.start_s <= t < burst.start_s + burst.duration_s:
            rate *= burst.multiplier
    return rate


def draw_fees(spec: FeeDistribution, n: int, rng: np.random.Generator) -> list[Amount]:
    """Return ``n`` fees in base units (at least 1), drawn as floats then rounded down."""
    if spec.shape == "fixed":
        values = np.full(n, spec.mean)
    elif spec.shape == "uniform":
        values = rng.uniform(spec.low, spec.high, n)
    else:
        values = rng.lognormal(np.log(spec.mean) - spec.sigma**2 / 2, spec.sigma, n)
    # Money is integer: a float fee becomes base units through a decimal string.
    return [max(1, tokens(f"{v:.18f}")) for v in values]


def generate_tasks(spec: WorkloadSpec) -> list[GeneratedTask]:
    """Return the workload's tasks in arrival order (a Poisson process with bursts, by thinning)."""
    rng = np.random.default_rng(spec.seed)
    peak = spec.rate_per_s * max([1.0, *(b.multiplier for b in spec.bursts)])
    times: list[float] = []
    t = 0.0
    while True:
        t += float(rng.exponential(1.0 / peak))
        if spec.duration_s is not None and t >= spec.duration_s:
            break
        if rng.random() * peak < rate_at(spec, t):
            times.append(t)
            if spec.count is not None and len(times) >= spec.count:
                break
    weights = np.array([m.weight for m in spec.mix])
    picks = rng.choice(len(spec.mix), size=len(times), p=weights / weights.sum())
    seeds = rng.integers(0, 2**31 - 1, size=len(times))
    fees = draw_fees(spec.fees, len(times), rng)
    return [
        GeneratedTask(
            task_id=i,
            arrival_s=times[i],
            spec=workers.TaskSpec(spec.mix[m].kind, spec.mix[m].size, int(seeds[i])),
            fee=fees[i],
        )
        for i, m in enumerate(picks.tolist())
    ]
