"""Thin Ray wrappers around the plain actor classes, with resources set where they are made.

:func:`deploy` starts the coordinator (named, detached, ``max_restarts=-1``,
calls retried across restarts), the coprocessor hosts (GPUs with
``num_gpus``, placed by an optional custom resource, restarted but never
retried: a lost job is re-auctioned instead) and the operator hosts.
:func:`deploy_local` builds the same objects in this process, without Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.config.schema import RunConfig
from cluster.engine.coordinator import Coordinator
from cluster.engine.coprocessor_host import CoprocessorHost
from cluster.engine.network import coprocessor_placement, operator_placement
from cluster.engine.operator_host import OperatorHost
from cluster.runtime.nodes import pinned_here

COORDINATOR_NAME = "stakeray-coordinator"
NAMESPACE = "stakeray"
"""Every stakeray actor lives in this Ray namespace, so later commands find them by name."""


@dataclass
class Deployment:
    """Handles to every actor, and which operator host serves each operator."""

    coordinator: Any
    operator_hosts: list[Any]
    coprocessor_hosts: list[Any]
    host_of: dict[str, int]
    namespace: str = ""

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
    import ray

    name = f"{prefix}{COORDINATOR_NAME}"
    coordinator = (
        ray.remote(Coordinator)
        .options(**coordinator_options(config, name, detached))
        .remote(config, str(directory))
    )
    lifetime = {"lifetime": "detached"} if detached else {}
    names = {c.name: c for c in config.network.coprocessors}
    copro_cls = ray.remote(CoprocessorHost)
    copro_options = {**coprocessor_options(config), **lifetime}
    coprocessor_hosts = [
        copro_cls.options(name=f"{prefix}stakeray-coprocessor-host-{i}", **copro_options).remote(
            i, [names[n] for n in group], config.seed
        )
        for i, group in enumerate(coprocessor_placement(config))
    ]
    op_cls = ray.remote(OperatorHost)
    # Threads let one host run several batches at once: while one waits for its
    # coprocessors, another verifies and settles, so the coprocessors never idle.
    op_options = {
        "num_cpus": 0,
        "max_restarts": -1,
        "max_task_retries": -1,
        "max_concurrency": max(2, config.network.market.max_inflight),
        **lifetime,
    }
    placement = operator_placement(config)
    operator_hosts = [
        op_cls.options(name=f"{prefix}stakeray-operator-host-{i}", **op_options).remote(
            i, group, config, coordinator, coprocessor_hosts, "ray", directory.name
        )
        for i, group in enumerate(placement)
    ]
    ray.get(
        [coordinator.ping.remote()]
        + [h.info.remote() for h in coprocessor_hosts]
        + [h.__ray_ready__.remote() for h in operator_hosts]
    )
    host_of = {op: i for i, group in enumerate(placement) for op in group}
    return Deployment(coordinator, operator_hosts, coprocessor_hosts, host_of)


def deploy_local(config: RunConfig, directory: Path, *, fsync: bool = True) -> Deployment:
    """Build the same pipeline as plain objects in this process (no Ray)."""
    coordinator = Coordinator(config, str(directory), fsync=fsync)
    names = {c.name: c for c in config.network.coprocessors}
    coprocessor_hosts = [
        CoprocessorHost(i, [names[n] for n in group], config.seed)
        for i, group in enumerate(coprocessor_placement(config))
    ]
    placement = operator_placement(config)
    operator_hosts = [
        OperatorHost(i, group, config, coordinator, coprocessor_hosts, "local", directory.name)
        for i, group in enumerate(placement)
    ]
    host_of = {op: i for i, group in enumerate(placement) for op in group}
    return Deployment(coordinator, operator_hosts, coprocessor_hosts, host_of)


def find_deployment(config: RunConfig, prefix: str = "") -> Deployment:
    """Return handles to a detached deployment made by :func:`deploy` (``stakeray up``)."""
    import ray

    coordinator = ray.get_actor(f"{prefix}{COORDINATOR_NAME}")
    coprocessor_hosts = [
        ray.get_actor(f"{prefix}stakeray-coprocessor-host-{i}")
        for i in range(len(coprocessor_placement(config)))
    ]
    placement = operator_placement(config)
    operator_hosts = [
        ray.get_actor(f"{prefix}stakeray-operator-host-{i}") for i in range(len(placement))
    ]
    host_of = {op: i for i, group in enumerate(placement) for op in group}
    return Deployment(coordinator, operator_hosts, coprocessor_hosts, host_of)
