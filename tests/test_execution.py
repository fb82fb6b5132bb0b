"""The one pluggable step: real kernels or drawn outcomes, the rest of the engine the same."""

from __future__ import annotations

from pathlib import Path

from cluster_fixtures import check_run, make_config

from cluster.config.workload import generate_tasks
from cluster.engine.execution import DrawnExecution, RealExecution
from cluster.engine.gateway import Gateway
from cluster.engine.messages import Job
from cluster.engine.transport import LocalTransport
from cluster.runtime.actors import deploy_local
from cluster.runtime.rundir import finish_directory
from workers import TaskSpec

COPROCESSORS = [
    {"name": "cop-a", "collateral": 2000, "capacity": 8, "cost_ppm": 250000},
    {"name": "cop-bad", "collateral": 2000, "capacity": 8, "cost_ppm": 100000, "fault_rate": 0.4},
]


def drawn_run(out: Path) -> dict:
    config = make_config(coprocessors=COPROCESSORS, workload={"count": 80})
    assert config.workload is not None
    execution = DrawnExecution(config.network.coprocessors, config.seed)
    deployment = deploy_local(config, out, fsync=False, execution=execution)
    transport = LocalTransport()
    gateway = Gateway(
        transport, deployment.coordinator, deployment.operator_hosts, deployment.host_of, config,
        session="drawn",
    )
    records = gateway.run(generate_tasks(config.workload), paced=False)
    summary, _ = check_run(out, finish_directory(out, deployment, transport, records, 1.0))
    return summary


def test_a_drawn_run_settles_slashes_the_unreliable_and_replays_alike(tmp_path: Path) -> None:
    one, two = drawn_run(tmp_path / "one"), drawn_run(tmp_path / "two")
    assert one["state_hash"] == two["state_hash"]  # drawn outcomes are keyed, not random
    assert one["tasks_settled"] > 0 and one["coprocessor_slashes"] > 0


def test_drawn_outcomes_follow_the_fault_rate_and_real_ones_are_verified() -> None:
    config = make_config(coprocessors=COPROCESSORS)
    drawn = DrawnExecution(config.network.coprocessors, 3)
    spec = TaskSpec("sort", 1000, seed=1)
    bad = [drawn.run(Job(t, "cop-bad", spec, 0)) for t in range(4000)]
    assert 0.35 < bad.count(False) / len(bad) < 0.45
    assert all(drawn.run(Job(t, "cop-a", spec, 0)) for t in range(100))
    assert drawn.run(Job(7, "cop-bad", spec, 1)) == drawn.run(Job(7, "cop-bad", spec, 1))
    real = RealExecution(config.network.coprocessors, 3)
    job = Job(1, "cop-a", spec, 0)
    assert real.check(job, real.run(job), real.prepare(job))
