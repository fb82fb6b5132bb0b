"""A whole run: start or join Ray, deploy, feed the workload, drain, write the run directory."""

from __future__ import annotations

import atexit
import logging
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.config.schema import RunConfig
from cluster.config.workload import generate_tasks
from cluster.engine.execution import Execution
from cluster.engine.gateway import Gateway
from cluster.engine.messages import TaskRecord
from cluster.engine.progress import Progress
from cluster.engine.transport import LocalTransport, Transport
from cluster.runtime.actors import NAMESPACE, Deployment, deploy, deploy_local
from cluster.runtime.chaos import ChaosMonkey, ChaosPlan
from cluster.runtime.errors import RunError
from cluster.runtime.head import ensure_token, offer_token
from cluster.runtime.nodes import on_node
from cluster.runtime.rundir import RunResult, finish_directory
from cluster.runtime.transport import RayTransport

log = logging.getLogger("stakeray.run")

DEFAULT_COPROCESSOR_RESOURCE = "stakeray-coprocessor"


# --- Ray ---------------------------------------------------------------------------


@dataclass
class RaySession:
    """The Ray cluster a run uses, and the local test cluster when it made one."""

    address: str | None
    cluster: Any = None
    worker_nodes: list[Any] = field(default_factory=list)
    node_args: dict[str, Any] = field(default_factory=dict)

    def shutdown_cluster(self) -> None:
        """Stop the local multi-node cluster, if this session made one (idempotent)."""
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            cluster.shutdown()

    def replace_worker_node(self) -> str:
        """Remove a worker node (with what runs on it) and add a fresh one."""
        if self.cluster is None or not self.worker_nodes:
            raise RunError("kill-node: needs the local multi-node cluster `run` makes itself")
        node = self.worker_nodes.pop(0)
        self.cluster.remove_node(node)
        self.worker_nodes.append(self.cluster.add_node(**self.node_args))
        return "removed a worker node and added a fresh one"


def quiet_ray_env() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def ray_init_options() -> dict[str, Any]:
    """``ray.init`` options every stakeray driver uses: quiet, and stakeray's namespace."""
    return {"logging_level": logging.WARNING, "log_to_driver": False, "namespace": NAMESPACE}


def embedded_head_options(num_cpus: int | None = None) -> dict[str, Any]:
    """``ray.init`` options of an embedded head (default: this machine's CPUs, at least 2)."""
    return {
        "num_cpus": num_cpus if num_cpus is not None else max(2, os.cpu_count() or 2),
        "include_dashboard": False,
        "object_store_memory": 512 * 1024**2,
    }


def secure_embedded_ray() -> None:
    """Require this user's token on an embedded cluster about to start.

    An embedded cluster lives and dies with this process. Ray listens on every
    interface, so it admits only clients holding this user's token (as `up`),
    unless the user turned authentication off (RAY_AUTH_MODE=disabled).
    """
    if os.environ.get("RAY_AUTH_MODE") != "disabled":
        ensure_token()
        offer_token()


@contextmanager
def ray_joined(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    system_config: dict[str, Any] | None = None,
) -> Iterator[str]:
    """Join ``address`` (or ``RAY_ADDRESS``), else start an embedded Ray with ``num_cpus``.

    ``system_config``: Ray's internal settings for an embedded cluster (ignored
    when joining one). Yield where: ``"connected"`` (the caller had already
    joined a cluster, which is then left as it is), the address joined, or
    ``"local"``. What this started or joined is shut down at the end.
    ``ray_session`` is the same for a run, with its resource checks and the
    optional multi-node cluster.
    """
    quiet_ray_env()
    import ray

    if ray.is_initialized():  # the caller (a test, a notebook) already joined a cluster
        yield "connected"
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, **ray_init_options())
        else:
            secure_embedded_ray()
            # "local": always a new cluster, never one named by ray_current_cluster.
            head = embedded_head_options(num_cpus)
            if system_config:
                head["_system_config"] = system_config
            ray.init(address="local", **head, **ray_init_options())
        yield address or "local"
    finally:
        ray.shutdown()


@contextmanager
def ray_session(
    config: RunConfig, address: str | None = None, *, worker_nodes: int = 0
) -> Iterator[RaySession]:
    """Join ``address`` (or ``RAY_ADDRESS``), else start a local Ray for this run.

    With ``worker_nodes`` a local multi-node cluster is made (``ray.cluster_utils``)
    whose worker nodes alone carry the coprocessor resource, so that losing a
    node loses coprocessor hosts.
    """
    quiet_ray_env()
    import ray

    if ray.is_initialized():  # the caller (a test, a notebook) already joined a cluster
        if worker_nodes:
            raise RunError("--chaos kill-node: only on the local cluster `run` makes itself")
        check_resources(config, ray.cluster_resources())
        yield RaySession(address="connected")
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    common = ray_init_options()
    session = RaySession(address)
    hosts = config.network.hosts
    try:
        if address:
            ray.init(address=address, **common)
        else:
            secure_embedded_ray()
            head = embedded_head_options()
            if hosts.gpus_per_coprocessor_host > 0:
                log.warning("no --address: Ray sees this machine's GPUs only")
            if worker_nodes:
                from ray.cluster_utils import Cluster

                resource = hosts.coprocessor_resource or DEFAULT_COPROCESSOR_RESOURCE
                # Nodes register no exit hooks of their own (those install signal
                # handlers, which fail when chaos adds a node from its thread); the
                # finally below and an atexit hook shut the cluster down instead.
                session.cluster = Cluster(
                    initialize_head=True, head_node_args=head, shutdown_at_exit=False
                )
                atexit.register(session.shutdown_cluster)
                session.node_args = {"num_cpus": 1, "resources": {resource: 1}}
                for _ in range(worker_nodes):
                    session.worker_nodes.append(session.cluster.add_node(**session.node_args))
                ray.init(address=session.cluster.address, **common)
            else:
                resources = {hosts.coprocessor_resource: 1} if hosts.coprocessor_resource else {}
                if hosts.coordinator_resource:
                    resources[hosts.coordinator_resource] = 1
                # "local": always a new cluster, never one named by ray_current_cluster
                # (a network `up` started and `down` stopped leaves that file behind).
                ray.init(address="local", resources=resources, **head, **common)
        check_resources(config, ray.cluster_resources())
        yield session
    finally:
        ray.shutdown()
        session.shutdown_cluster()


def check_resources(config: RunConfig, available: dict[str, float]) -> None:
    """Refuse a placement the cluster can never satisfy (instead of waiting forever)."""
    hosts = config.network.hosts
    need_gpus = hosts.gpus_per_coprocessor_host * hosts.coprocessor_hosts
    if need_gpus > available.get("GPU", 0.0):
        raise RunError(
            f"hosts.gpus_per_coprocessor_host: needs {need_gpus:g} GPUs,"
            f" the cluster has {available.get('GPU', 0.0):g}"
        )
    for name in (hosts.coprocessor_resource, hosts.coordinator_resource):
        if name and name not in available:
            raise RunError(f"hosts: resource {name!r} is on no node of the cluster")


# --- the run -------------------------------------------------------------------------


def run_cluster(
    config: RunConfig,
    out: Path,
    *,
    address: str | None = None,
    chaos: ChaosPlan | None = None,
    progress: bool = True,
    local: bool = False,
    paced: bool = True,
    report: bool = False,
    execution: Execution | None = None,
) -> RunResult:
    """Run ``config`` on Ray (or in this process with ``local``) and write ``out``.

    ``report`` also writes ``report.html`` and its figures; ``execution`` (in this
    process only) replaces the real kernels, e.g. with drawn outcomes (``simulate``).
    """
    if config.workload is None:
        raise RunError("workload: missing; put it in the config or pass --workload")
    chaos = chaos or ChaosPlan()
    if local and chaos:
        raise RunError("--chaos: needs Ray; drop --local")
    if execution is not None and not local:
        raise RunError("execution: another execution runs in this process only (local)")
    out.mkdir(parents=True, exist_ok=True)
    tasks = generate_tasks(config.workload)
    if local:
        deployment = deploy_local(config, out, execution=execution)
        transport = LocalTransport()
        return execute(config, out, deployment, transport, tasks, None, progress, paced, report)
    nodes = 1 if chaos.counts.get("kill-node") else 0
    if nodes and (address or os.environ.get("RAY_ADDRESS")):
        raise RunError("--chaos kill-node: only on the local cluster `run` makes (drop --address)")
    if nodes and not config.network.hosts.coprocessor_resource:
        hosts = config.network.hosts.model_copy(
            update={"coprocessor_resource": DEFAULT_COPROCESSOR_RESOURCE}
        )
        network = config.network.model_copy(update={"hosts": hosts})
        config = config.model_copy(update={"network": network})
    with ray_session(config, address, worker_nodes=nodes) as session:
        prefix = "" if session.address is None else f"run-{os.getpid()}-{int(time.time())}-"
        deployment = deploy(config, out, detached=True, prefix=prefix)
        monkey = None
        if chaos:
            horizon = max(5.0, tasks[-1].arrival_s if tasks and paced else 10.0)
            strike = make_striker(deployment, session, random.Random(config.seed))
            monkey = ChaosMonkey(chaos.schedule(horizon, config.seed), strike)
        try:
            return execute(
                config, out, deployment, RayTransport(), tasks, monkey, progress, paced, report
            )
        finally:
            import ray

            for handle in deployment.handles():
                ray.kill(handle, no_restart=True)


def make_striker(deployment: Deployment, session: RaySession, rng: random.Random) -> Any:
    import ray

    def strike(fault: str) -> str:
        if fault == "kill-coordinator":
            ray.kill(deployment.coordinator, no_restart=False)
            return "coordinator killed (it restarts and recovers from its log)"
        if fault == "kill-coprocessor":
            i = rng.randrange(len(deployment.coprocessor_hosts))
            ray.kill(deployment.coprocessor_hosts[i], no_restart=False)
            return f"coprocessor host {i} killed"
        return session.replace_worker_node()

    return strike


def execute(
    config: RunConfig,
    out: Path,
    deployment: Deployment,
    transport: Transport,
    tasks: list[Any],
    monkey: ChaosMonkey | None,
    progress: bool,
    paced: bool,
    report: bool = False,
) -> RunResult:
    """Feed the workload, drain, reconcile with the ledger, write the run directory.

    The files are written on the coordinator's node, beside the ledger.
    """
    assert config.workload is not None
    records, elapsed = feed(
        deployment,
        transport,
        config,
        tasks,
        deadline_rounds=config.workload.deadline_rounds,
        paced=paced,
        progress=progress,
        monkey=monkey,
        # The network is this run's alone: batch names from the seed keep it reproducible.
        session=f"run-{config.seed}",
    )
    chaos = [list(e) for e in monkey.done] if monkey is not None else []
    node = transport.get(transport.call(deployment.coordinator, "describe")).get("node_id")
    return on_node(
        node, finish_directory, out, deployment, transport, records, elapsed, chaos, report
    )


def feed(
    deployment: Deployment,
    transport: Transport,
    config: RunConfig,
    tasks: list[Any],
    *,
    deadline_rounds: int,
    paced: bool,
    progress: bool,
    monkey: ChaosMonkey | None = None,
    session: str | None = None,
) -> tuple[list[TaskRecord], float]:
    """Submit ``tasks`` under fresh ids through a gateway; return their rows and the seconds.

    ``monkey`` (chaos) strikes while the tasks are in flight and is stopped after;
    ``session`` names the gateway's batches (default: a random name, see ``Gateway``).
    """
    coordinator = deployment.coordinator
    gateway = Gateway(
        transport, coordinator, deployment.operator_hosts, deployment.host_of, config, session
    )
    bar = Progress(len(tasks), enabled=progress)
    started = time.monotonic()
    if monkey is not None:
        monkey.start()
    try:
        records = gateway.run(
            tasks, deadline_rounds=deadline_rounds, paced=paced, progress=bar
        )
    finally:
        if monkey is not None:
            monkey.stop()
        bar.close()
    return records, time.monotonic() - started
