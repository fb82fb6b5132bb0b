"""Thin Ray wrappers around the plain actor classes, with resources set where they are made.

Each wrapper adds only what needs Ray: its node and GPUs, and Ray's metric
exporter. :func:`deploy` starts the coordinator (named, detached,
``max_restarts=-1``, calls retried across restarts), the coprocessor hosts
(GPUs with ``num_gpus``, placed by an optional custom resource, restarted but
never retried: a lost job is re-auctioned instead) and the operator hosts.
:func:`deploy_local` builds the same plain objects in this process, without
Ray; :func:`find_deployment` finds a detached deployment by its names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from cluster.config.schema import RunConfig
from cluster.engine.coordinator import Coordinator
from cluster.engine.coprocessor_host import CoprocessorHost
from cluster.engine.execution import Execution, RealExecution
from cluster.engine.network import Placement
from cluster.engine.operator_host import OperatorHost
from cluster.engine.telemetry import Exporter
from cluster.engine.transport import LocalTransport
from cluster.runtime.metrics import RayExporter
from cluster.runtime.nodes import current_node_id, pinned_here
from cluster.runtime.transport import RayTransport

NAMESPACE = "stakeray"
"""Every stakeray actor lives in this Ray namespace, so later commands find them by name."""


@dataclass(frozen=True)
class ActorNames:
    """The Ray names of one network's actors (``prefix`` keeps concurrent runs apart)."""

    prefix: str = ""

    @property
    def coordinator(self) -> str:
        return f"{self.prefix}stakeray-coordinator"

    def operator_host(self, i: int) -> str:
        return f"{self.prefix}stakeray-operator-host-{i}"

    def coprocessor_host(self, i: int) -> str:
        return f"{self.prefix}stakeray-coprocessor-host-{i}"


COORDINATOR_NAME = ActorNames().coordinator


class CoordinatorActor(Coordinator):
    """The coordinator in Ray: reports its node, exports metrics to Ray."""

    def make_exporter(self, network: str, names: tuple[str, ...]) -> Exporter | None:
        return RayExporter(network, names)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "node_id": current_node_id()}


class OperatorHostActor(OperatorHost):
    """An operator host in Ray: exports metrics to Ray."""

    def make_exporter(self, network: str, names: tuple[str, ...]) -> Exporter | None:
        return RayExporter(network, names)


class CoprocessorHostActor(CoprocessorHost):
    """A coprocessor host in Ray: reports its node and the GPUs Ray gave it."""

    def info(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        gpus = [str(g) for g in context.get_accelerator_ids().get("GPU", [])]
        return {**super().info(), "node_id": context.get_node_id(), "gpu_ids": gpus}


@dataclass
class Deployment:
    """Handles to every actor, and which operator host serves each operator."""

    coordinator: Any
    operator_hosts: list[Any]
    coprocessor_hosts: list[Any]
    host_of: dict[str, int]

    def handles(self) -> list[Any]:
        return [*self.operator_hosts, *self.coprocessor_hosts, self.coordinator]


def coprocessor_options(config: RunConfig) -> dict[str, Any]:
    """Return the Ray options of a coprocessor host: GPUs and the placement resource."""
    hosts = config.network.hosts
    # Ray sets OMP_NUM_THREADS to num_cpus, so the reservation is also the BLAS thread count.
    options: dict[str, Any] = {
        "num_cpus": hosts.cpus_per_coprocessor_host,
        "max_restarts": -1,
        "max_task_retries": 0,
    }
    if hosts.gpus_per_coprocessor_host > 0:
        options["num_gpus"] = hosts.gpus_per_coprocessor_host
    if hosts.coprocessor_resource:
        options["resources"] = {hosts.coprocessor_resource: 0.001}
    return options


def coordinator_options(config: RunConfig, name: str, detached: bool) -> dict[str, Any]:
    """Return the coordinator's Ray options; it runs where the run directory is.

    That is the node offering ``hosts.coordinator_resource`` when one is set,
    else the node of the process that deploys (``stakeray run`` / ``up``).
    """
    options: dict[str, Any] = {
        "name": name,
        "num_cpus": 0,
        "max_restarts": -1,
        "max_task_retries": -1,
    }
    if detached:
        options["lifetime"] = "detached"
    if config.network.hosts.coordinator_resource:
        options["resources"] = {config.network.hosts.coordinator_resource: 0.001}
    else:
        options.update(pinned_here())
    return options


def deploy(
    config: RunConfig, directory: Path, *, detached: bool = True, prefix: str = ""
) -> Deployment:
    """Start the actors on the connected Ray cluster; wait until each answers once."""
    names = ActorNames(prefix)
    placement = Placement.of(config)
    coordinator = (
        ray.remote(CoordinatorActor)
        .options(**coordinator_options(config, names.coordinator, detached))
        .remote(config, str(directory))
    )
    lifetime = {"lifetime": "detached"} if detached else {}
    copro = {c.name: c for c in config.network.coprocessors}
    copro_cls = ray.remote(CoprocessorHostActor)
    copro_options = {**coprocessor_options(config), **lifetime}
    coprocessor_hosts = [
        copro_cls.options(name=names.coprocessor_host(i), **copro_options).remote(
            i, [copro[n] for n in group], config.seed
        )
        for i, group in enumerate(placement.coprocessor_groups)
    ]
    op_cls = ray.remote(OperatorHostActor)
    # Threads let one host run several batches at once: while one waits for its
    # coprocessors, another verifies and settles, so the coprocessors never idle.
    op_options = {
        "num_cpus": 0,
        "max_restarts": -1,
        "max_task_retries": -1,
        "max_concurrency": max(2, config.network.market.max_inflight),
        **lifetime,
    }
    operator_hosts = [
        op_cls.options(name=names.operator_host(i), **op_options).remote(
            i, group, config, coordinator, coprocessor_hosts, RayTransport(), directory.name
        )
        for i, group in enumerate(placement.operator_groups)
    ]
    ray.get(
        [coordinator.ping.remote()]
        + [h.info.remote() for h in coprocessor_hosts]
        + [h.__ray_ready__.remote() for h in operator_hosts]
    )
    return Deployment(coordinator, operator_hosts, coprocessor_hosts, placement.operator_host)


def deploy_local(
    config: RunConfig,
    directory: Path,
    *,
    fsync: bool = True,
    execution: Execution | None = None,
) -> Deployment:
    """Build the same pipeline as plain objects in this process (no Ray).

    ``execution`` is the one step that may differ (default: real kernels;
    :class:`~cluster.engine.execution.DrawnExecution` draws outcomes instead).
    """
    placement = Placement.of(config)
    coordinator = Coordinator(config, str(directory), fsync=fsync)
    coprocessors = config.network.coprocessors
    if execution is None:
        execution = RealExecution([*coprocessors, *config.network.operators], config.seed)
    copro = {c.name: c for c in coprocessors}
    coprocessor_hosts = [
        CoprocessorHost(i, [copro[n] for n in group], config.seed, execution)
        for i, group in enumerate(placement.coprocessor_groups)
    ]
    transport = LocalTransport()
    operator_hosts = [
        OperatorHost(
            i, group, config, coordinator, coprocessor_hosts, transport, directory.name, execution
        )
        for i, group in enumerate(placement.operator_groups)
    ]
    return Deployment(coordinator, operator_hosts, coprocessor_hosts, placement.operator_host)


def find_deployment(config: RunConfig, prefix: str = "") -> Deployment:
    """Return handles to a detached deployment made by :func:`deploy` (``stakeray up``)."""
    names = ActorNames(prefix)
    placement = Placement.of(config)
    coordinator = ray.get_actor(names.coordinator)
    coprocessor_hosts = [
        ray.get_actor(names.coprocessor_host(i)) for i in range(len(placement.coprocessor_groups))
    ]
    operator_hosts = [
        ray.get_actor(names.operator_host(i)) for i in range(len(placement.operator_groups))
    ]
    return Deployment(coordinator, operator_hosts, coprocessor_hosts, placement.operator_host)
