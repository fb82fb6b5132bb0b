"""A network that is up (``stakeray up``): bring it up, find it, feed it, take it down.

The Ray side of the network commands; the command line parses and prints.
A network is found by its Ray address (``--address``, ``RAY_ADDRESS``) or by
the record ``up`` left in its run directory (``--dir``).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from cluster.config.schema import RunConfig, WorkloadSpec
from cluster.config.workload import generate_tasks
from cluster.engine.messages import TaskRecord
from cluster.runtime.actors import COORDINATOR_NAME, NAMESPACE, Deployment, deploy, find_deployment
from cluster.runtime.head import HEAD_LOG, offer_token, start_head, stop_head
from cluster.runtime.nodes import on_node
from cluster.runtime.rundir import finish_network, read_state, record_submission, write_state
from cluster.runtime.runner import RunError, check_resources, feed, quiet_ray_env
from cluster.runtime.transport import RayTransport


@dataclass
class Network:
    """A network that is up: its config, actors, run directory and the directory's node."""

    address: str
    config: RunConfig
    deployment: Deployment
    directory: Path
    node_id: str | None
    local_state: dict[str, Any]

    def call(self, method: str, *args: Any) -> Any:
        """Call a coordinator method and wait for its answer."""
        return ray.get(getattr(self.deployment.coordinator, method).remote(*args))


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Hold what this process (C++ included) writes to stderr; yield a list that gets it."""
    held: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            held.append(sink.read().decode(errors="replace"))


@contextmanager
def joined(address: str) -> Iterator[None]:
    """Join the Ray cluster at ``address`` for one command (reuse a connection if present)."""
    if ray.is_initialized():
        yield
        return
    quiet_ray_env()
    failure = ""
    # Ray's C++ client prints its retries to stderr; they are shown only if the join works,
    # so that a refusal is the one line below.
    with captured_stderr() as held:
        try:
            ray.init(
                address=address,
                logging_level=logging.WARNING,
                log_to_driver=False,
                namespace=NAMESPACE,
            )
        except (ConnectionError, RuntimeError) as exc:
            failure = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    if failure:
        if "Unauthenticated" in held[0]:
            failure = "the cluster refused this client's token"
        raise RunError(
            f"--address {address}: cannot join the Ray cluster ({failure}); check the address"
            " and the token (RAY_AUTH_MODE=token with RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        )
    sys.stderr.write(held[0])
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def connected(address: str | None, directory: str | None) -> Iterator[Network]:
    """Find the network by ``--address`` (else ``--dir``'s record, else ``RAY_ADDRESS``)."""
    local_state = read_state(Path(directory)) if directory else {}
    address = address or local_state.get("address") or os.environ.get("RAY_ADDRESS")
    if local_state.get("head_pid") and address == local_state["address"]:
        # Ray offers this user's token only to a cluster it finds itself (address "auto"),
        # never to an explicit address; this one is the head `up` started here.
        offer_token()
    if not address:
        if directory:
            raise RunError(f"--dir {directory}: no network is up here (run `stakeray up`)")
        raise RunError("give --address ADDR or --dir DIR (or set RAY_ADDRESS) to find the network")
    with joined(address):
        try:
            coordinator = ray.get_actor(COORDINATOR_NAME)
        except ValueError:
            raise RunError(f"no stakeray network is up on {address} (run `stakeray up`)") from None
        info = ray.get(coordinator.describe.remote())
        config = RunConfig.model_validate_json(info["config"])
        yield Network(
            address,
            config,
            find_deployment(config),
            Path(info["directory"]),
            info["node_id"],
            local_state,
        )


def bring_up(
    config: RunConfig,
    out: Path,
    *,
    address: str | None,
    port: int,
    num_cpus: int | None,
) -> tuple[str, int, Path]:
    """Deploy a long-lived network on ``address`` (else on a head started here, tokens on).

    Return the cluster's address, the round and the run directory.
    """
    quiet_ray_env()
    address = address or os.environ.get("RAY_ADDRESS")
    head_pid = None
    if not address:
        head_pid = start_head(port, num_cpus or os.cpu_count() or 2, out / HEAD_LOG)
        address = "auto"
    try:
        with joined(address):
            try:
                ray.get_actor(COORDINATOR_NAME)
            except ValueError:
                pass
            else:
                raise RunError(
                    "a stakeray network is already up on this cluster; `stakeray down` it"
                )
            check_resources(config, ray.cluster_resources())
            deployment = deploy(config, out, detached=True)
            info = ray.get(deployment.coordinator.describe.remote())
            round_ = ray.get(deployment.coordinator.ping.remote())
            gcs = ray.get_runtime_context().gcs_address
            state = {"address": gcs, "head_pid": head_pid}
            on_node(info["node_id"], write_state, Path(info["directory"]), state)
    except BaseException:
        if head_pid is not None:  # a head started for a network that did not come up
            stop_head(head_pid)
        raise
    return gcs, round_, Path(info["directory"])


def submit(
    net: Network, workload: WorkloadSpec, *, paced: bool, progress: bool
) -> list[TaskRecord]:
    """Feed ``workload`` to the network; append its rows to the run directory's tasks.csv."""
    records, elapsed = feed(
        net.deployment,
        RayTransport(),
        net.config,
        generate_tasks(workload),
        deadline_rounds=workload.deadline_rounds,
        paced=paced,
        progress=progress,
    )
    on_node(net.node_id, record_submission, net.directory, records, elapsed)
    return records


def take_down(net: Network) -> dict[str, Any]:
    """Finish the run directory and stop the actors; return the summary.

    The head ``up`` started is stopped by :func:`stop_local_head` once disconnected.
    """
    summary = on_node(net.node_id, finish_network, net.directory, net.deployment)
    for handle in net.deployment.handles():
        ray.kill(handle, no_restart=True)
    return summary


def stop_local_head(net: Network) -> None:
    """Stop the Ray head ``up`` started on this machine for ``net``, if it did."""
    if net.local_state.get("head_pid"):
        stop_head(int(net.local_state["head_pid"]))
