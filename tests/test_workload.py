"""Workload validation and seeded generation: arrivals, bursts, mix and fees."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from cluster.config.workload import Burst, FeeDistribution, TaskMix, WorkloadSpec, generate_tasks
from protocol import TOKEN


def test_same_seed_same_tasks_and_count_is_exact() -> None:
    spec = WorkloadSpec(mix=[TaskMix(kind="sort", size=1000)], count=200, seed=4)
    a, b = generate_tasks(spec), generate_tasks(spec)
    assert a == b and len(a) == 200
    assert [t.task_id for t in a] == list(range(200))
    assert all(x.arrival_s < y.arrival_s for x, y in itertools.pairwise(a))
    assert generate_tasks(spec.model_copy(update={"seed": 5})) != a


def test_poisson_rate_and_bursts() -> None:
    base = WorkloadSpec(mix=[TaskMix(kind="fft", size=64)], rate_per_s=100.0, duration_s=50.0)
    n = len(generate_tasks(base))
    assert abs(n - 5000) < 5 * 5000**0.5  # Poisson: within 5 standard deviations
    burst = base.model_copy(update={"bursts": [Burst(start_s=10, duration_s=10, multiplier=4)]})
    tasks = generate_tasks(burst)
    inside = sum(10 <= t.arrival_s < 20 for t in tasks)
    outside = sum(t.arrival_s < 10 for t in tasks)
    assert inside > 3 * outside  # 4x the rate over the same length of time


def test_mix_weights_and_fees() -> None:
    spec = WorkloadSpec(
        mix=[TaskMix(kind="matmul", size=64, weight=3), TaskMix(kind="sort", size=10)],
        fees=FeeDistribution(shape="uniform", low=0.5, high=1.5),
        count=4000,
    )
    tasks = generate_tasks(spec)
    share = sum(t.spec.kind == "matmul" for t in tasks) / len(tasks)
    assert abs(share - 0.75) < 0.03
    assert all(TOKEN // 2 <= t.fee <= 3 * TOKEN // 2 for t in tasks)
    assert all(isinstance(t.fee, int) for t in tasks)
    fixed = generate_tasks(spec.model_copy(update={"fees": FeeDistribution(mean=2.0)}))
    assert {t.fee for t in fixed} == {2 * TOKEN}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mix": [{"kind": "nope", "size": 1}], "count": 1}, "unknown task kind"),
        ({"mix": [{"kind": "sort", "size": 0}], "count": 1}, "size"),
        ({"mix": [{"kind": "sort", "size": 1}]}, "exactly one of duration_s and count"),
        (
            {"mix": [{"kind": "sort", "size": 1}], "count": 1, "duration_s": 1.0},
            "exactly one of duration_s and count",
        ),
        ({"mix": [], "count": 1}, "mix"),
        (
            {"mix": [{"kind": "sort", "size": 1}], "count": 1, "fees": {"shape": "uniform"}},
            "low <= high",
        ),
    ],
)
def test_bad_workloads_name_the_problem(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        WorkloadSpec.model_validate(kwargs)
    assert needle in str(err.value)
