"""Workloads: which tasks arrive when, with what fee (validated YAML, seeded generation).

A workload is a task mix (kind, size, weight), a fee distribution, a Poisson
arrival rate with optional bursts, a deadline, and either a duration or a
task count. :func:`generate_tasks` turns it into a concrete, replayable list
of tasks: the same workload and seed always give the same tasks.

Every size and count is bounded so that generating a valid workload always
ends in bounded time and memory: at most ``MAX_TASKS`` tasks, task sizes up
to :data:`workers.MAX_SIZE`, arrivals spanning at most ``MAX_SPAN_S`` (one
day; for a ``count``, ``count / rate_per_s``), and at most
``MAX_ARRIVAL_DRAWS`` draws of the arrival process (peak rate times span).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

import workers
from protocol.errors import StakerayError
from protocol.units import Amount, tokens


class ConfigError(StakerayError, ValueError):
    """A configuration file is missing, unreadable or invalid (one line, naming the field).

    Defined here, the lowest module of ``cluster.config``, so that a workload
    can raise it; ``cluster.config.schema`` exports it.
    """


def first_error(exc: ValidationError, source: str) -> ConfigError:
    """Return the first validation error as one line: ``source: field.path: message``."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    message = str(err["msg"]).removeprefix("Value error, ")
    return ConfigError(f"{source}: {where}: {' '.join(message.split())}")


MAX_TASKS = 10_000_000
"""The most tasks one workload (or ``--count``) may generate."""
MAX_SPAN_S = 86_400.0
"""The longest arrival span: ``duration_s``, or ``count / rate_per_s`` (one day)."""
MAX_ARRIVAL_DRAWS = 100_000_000
"""The most draws of the arrival process: peak rate (bursts included) times the span."""
MAX_RATE_PER_S = 1_000_000.0
MAX_FEE_TOKENS = 1e12
MAX_MIX = 1_000
MAX_BURSTS = 100
MAX_DEADLINE_ROUNDS = 1_000_000
MAX_SEED = 2**63 - 1


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
"""An ``int`` field that refuses YAML's true/false (pydantic would read them as 1/0)."""
Float = Annotated[float, BeforeValidator(_not_bool)]
"""A ``float`` field that refuses true/false."""

PositiveFloat = Annotated[Float, Field(gt=0.0, allow_inf_nan=False)]
Seconds = Annotated[Float, Field(gt=0.0, le=MAX_SPAN_S, allow_inf_nan=False)]
FeeTokens = Annotated[Float, Field(gt=0.0, le=MAX_FEE_TOKENS, allow_inf_nan=False)]


class TaskMix(BaseModel):
    """One line of the mix: tasks of ``kind`` and ``size``, drawn with relative ``weight``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    size: Annotated[Int, Field(gt=0, description="elements, samples or nonces: workers.MAX_SIZE")]
    weight: Annotated[Float, Field(gt=0.0, le=1e6, allow_inf_nan=False)] = 1.0

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in workers.KINDS:
            raise ValueError(f"unknown task kind {kind!r}; choose from {', '.join(workers.KINDS)}")
        return kind

    @model_validator(mode="after")
    def _size_limit(self) -> Self:
        limit = workers.MAX_SIZE[self.kind]
        if self.size > limit:
            raise ValueError(f"size {self.size:,} is above the largest {self.kind} task, {limit:,}")
        return self


class FeeDistribution(BaseModel):
    """Task fees in tokens: fixed, uniform on [low, high], or lognormal around ``mean``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    shape: Literal["fixed", "uniform", "lognormal"] = "fixed"
    mean: FeeTokens = 1.0
    low: FeeTokens | None = None
    high: FeeTokens | None = None
    sigma: Annotated[Float, Field(ge=0.0, le=5.0, allow_inf_nan=False)] = 0.5

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        uniform = self.shape == "uniform"
        if uniform and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError("uniform fees need low <= high")
        return self


class Burst(BaseModel):
    """A stretch of time when tasks arrive ``multiplier`` times faster."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start_s: Annotated[Float, Field(ge=0.0, le=MAX_SPAN_S, allow_inf_nan=False)]
    duration_s: Seconds
    multiplier: Annotated[Float, Field(gt=0.0, le=1_000.0, allow_inf_nan=False)]


class WorkloadSpec(BaseModel):
    """Everything that decides the tasks of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mix: Annotated[list[TaskMix], Field(min_length=1, max_length=MAX_MIX)]
    fees: FeeDistribution = FeeDistribution()
    rate_per_s: Annotated[
        Float, Field(gt=0.0, le=MAX_RATE_PER_S, allow_inf_nan=False, description="<= 10**6")
    ] = 50.0
    bursts: list[Burst] = Field(default_factory=list, max_length=MAX_BURSTS)
    deadline_rounds: Annotated[Int, Field(ge=1, le=MAX_DEADLINE_ROUNDS)] = 3
    duration_s: Annotated[Seconds, Field(description="seconds of arrivals, <= 86,400")] | None = (
        None
    )
    count: Annotated[Int, Field(gt=0, le=MAX_TASKS, description="tasks, 1 to 10**7")] | None = None
    seed: Annotated[Int, Field(ge=0, le=MAX_SEED)] = 0

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if (self.duration_s is None) == (self.count is None):
            raise ValueError("give exactly one of duration_s and count")
        if self.count is not None:
            span = self.count / self.rate_per_s
            if span > MAX_SPAN_S:
                raise ValueError(
                    f"count / rate_per_s = {span:,.0f} s of arrivals, above the limit of"
                    f" {MAX_SPAN_S:.0f} s (one day); raise rate_per_s or lower count"
                )
        else:
            assert self.duration_s is not None
            span = self.duration_s
            expected = expected_arrivals(self, span)
            if expected > MAX_TASKS:
                raise ValueError(
                    f"rate_per_s x duration_s (bursts included) = {expected:,.0f} expected"
                    f" tasks, above the limit of {MAX_TASKS:,}"
                )
        draws = peak_rate(self) * span
        if draws > MAX_ARRIVAL_DRAWS:
            raise ValueError(
                f"peak rate x span = {draws:,.0f} arrival draws, above the limit of"
                f" {MAX_ARRIVAL_DRAWS:,}; lower rate_per_s, the burst multipliers or the span"
            )
        return self

    def with_count(self, count: int) -> WorkloadSpec:
        """Return this workload limited to ``count`` tasks instead of a duration or count.

        The result is validated like a loaded workload (``ConfigError`` naming ``count``).
        """
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"count: must be an integer, got {count!r}")
        data = {**self.model_dump(), "count": count, "duration_s": None}
        try:
            return WorkloadSpec.model_validate(data)
        except ValidationError as exc:
            raise first_error(exc, f"--count {count}") from None


def peak_rate(spec: WorkloadSpec) -> float:
    """Return the highest arrival rate: the base rate times the largest burst multiplier."""
    return spec.rate_per_s * max([1.0, *(b.multiplier for b in spec.bursts)])


def expected_arrivals(spec: WorkloadSpec, span: float) -> float:
    """Return the expected number of arrivals in ``[0, span)``: the integral of :func:`rate_at`."""
    edges = {0.0, span}
    for b in spec.bursts:
        edges.update(t for t in (b.start_s, b.start_s + b.duration_s) if 0.0 < t < span)
    points = sorted(edges)
    return sum(rate_at(spec, (a + b) / 2) * (b - a) for a, b in pairwise(points))


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
    peak = peak_rate(spec)
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
