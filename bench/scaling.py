"""The scaling model: CPU per task per role, a projection to N nodes, a check on 1/2/4 nodes.

All on ``examples/paper-live.yaml`` (100 operators, 100 coprocessors, its
market and small-task mix, unpaced), side by side in one run:

1. **CPU per task per role, in one process** (``bench/control_plane.py``'s
   method: ``deploy_local``, ``LocalTransport``, ``time.thread_time``
   exclusive of nested calls), with real kernels and with drawn outcomes. The
   coordinator is split into escrow, clear (operator choice, auction), settle,
   rounds (round close, rewards, expiry, snapshots), commit (fsync) and other;
   the operator hosts into their own runs, verification (verifier inputs and
   check) and the rest (dispatch, report, rows). A short pass then pickles
   every message of 3 batches (protocol 5, as Ray does): bytes per batch.
2. **The same on Ray, by process.** A ``ray.cluster_utils.Cluster`` of ``k``
   simulated nodes (head + ``k - 1`` workers, each ``num_cpus=1`` and a custom
   resource ``scaling-node-j``) runs ``k`` operator hosts and ``k``
   coprocessor hosts, host ``j`` of each kind on node ``j`` (placed by that
   resource; the coordinator on node 0 by ``hosts.coordinator_resource``).
   The actors are ``runtime.actors``' classes with ``deploy``'s options; the
   bench deploys them itself only to place them per node and to hand them
   drawn outcomes. After a 2-batch warm-up and 2 s idle, the CPU time of
   every process this run started is read before and after the measured
   feed (``/proc``: coordinator, operator hosts, coprocessor hosts, this
   driver = the gateway, and Ray's raylets, GCS and workers), with the
   machine's busy time (``/proc/stat``), so other users' CPU on a shared
   machine is known: ``cores free`` = real cores less their use. Feeds: on 1
   node, ``--reps`` 1 + 1 feeds (the median calibrates the model), one with
   drawn outcomes, and a control with the largest run's hosts all on that
   node; on k > 1 nodes, a 1 + 1 baseline then the k + k run. Microbenchmarks
   calibrate the unit costs: a burst of trivial ``ping`` calls (one actor
   call's CPU, caller and callee sides) and 256 KiB / 2 MiB objects fetched
   from an actor on node 0 and on node 1 (a result object's CPU through the
   local store, and what fetching it from another node adds, per object and
   per byte).
3. **The model.** Per task: the coordinator is serial (cap ``1 / its CPU per
   task``, which grows by one call per operator host per batch: the
   reports); the gateway is serial per client; an operator host is one
   process (about a core); operator hosts, coprocessor hosts and Ray's
   per-node processes scale with nodes, and pay for the calls between them
   (``1 + 2 H_op + min(H_op H_cop, auctioned)`` per batch), the result
   objects and the results that cross nodes. Execution on a GPU takes
   ``--gpu-ms`` per small task (an assumption: the issue's ~1 ms). Printed:
   the check on this machine, predicted vs measured tasks/s for each run,
   each predicted from its cluster's 1 + 1 baseline (the ``k`` nodes share
   the real cores, so the prediction is ``min(coordinator, gateway, operator
   hosts, cores free / CPU per task at k)``: flat in ``k`` once the cores
   saturate), and the projection for N nodes x G GPUs with ``--cores`` each,
   from the 1-node calibration, with where the coordinator saturates.

Run from the repository root (numbers in docs/benchmarks.md, model in docs/cluster.md)::

    python bench/scaling.py                   # 20,000 tasks per run, nodes 1 2 4; ~2.5 min
    python bench/scaling.py --quick           # 4,000 tasks, nodes 1 2: smoke run, ~40 s
    python bench/scaling.py --gpus 1 8 --cores 16 --gpu-ms 1.0   # the projection's inputs
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from cluster.config.schema import RunConfig, load_config  # noqa: E402
from cluster.config.workload import generate_tasks  # noqa: E402
from cluster.engine.execution import DrawnExecution, Execution  # noqa: E402
from cluster.engine.gateway import Gateway  # noqa: E402
from cluster.engine.network import Placement  # noqa: E402
from cluster.engine.transport import LocalTransport  # noqa: E402
from cluster.runtime.actors import deploy_local  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from control_plane import Clock  # noqa: E402  (exclusive CPU per part: one timer for both)

CONFIG = ROOT / "examples" / "paper-live.yaml"
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
ROLES = ("coordinator", "operator hosts", "coprocessor hosts", "gateway", "Ray system")
NODE_RESOURCE = "scaling-node-{}"
INLINE_LIMIT = 100 * 1024  # Ray passes smaller objects inline, larger through the object store
SIZING_BATCHES = 3
IDLE_S = 2.0  # seconds of a deployed, idle network measured before each feed


def paper_live(count: int, hosts: int | None = None) -> RunConfig:
    """paper-live with ``count`` tasks (and ``hosts`` operator + coprocessor hosts,
    the coordinator on node 0)."""
    config = load_config(CONFIG)
    assert config.workload is not None
    update: dict[str, Any] = {"workload": config.workload.with_count(count)}
    if hosts is not None:
        net = config.network
        placed = net.hosts.model_copy(
            update={
                "operator_hosts": hosts,
                "coprocessor_hosts": hosts,
                "coordinator_resource": NODE_RESOURCE.format(0),
            }
        )
        update["network"] = net.model_copy(update={"hosts": placed})
    return config.model_copy(update=update)


def drawn(config: RunConfig) -> DrawnExecution:
    net = config.network
    return DrawnExecution([*net.coprocessors, *net.operators], config.seed)


def auctioned_per_batch(config: RunConfig) -> float:
    """Tasks per batch the mix sends to auction (over ``self_execute_max_size``)."""
    assert config.workload is not None
    limits = config.network.market.self_execute_max_size
    mix = config.workload.mix
    heavy = sum(m.weight for m in mix if m.kind not in limits or m.size > limits[m.kind])
    return config.network.market.batch_size * heavy / sum(m.weight for m in mix)


# --- 1. in one process: the engine's CPU per role -----------------------------------------


class TimedExecution:
    """An operator host's execution, its own runs and its verification timed apart."""

    def __init__(self, clock: Clock, inner: Execution) -> None:
        self.run = clock.wrap("operator hosts/own runs", inner.run)
        self.prepare = clock.wrap("operator hosts/verify", inner.prepare)
        self.check = clock.wrap("operator hosts/verify", inner.check)


COORDINATOR_STEPS = {
    "escrow": "escrow",
    "clear": "clear",
    "settle": "settle",
    "close_round": "rounds",
}
"""``MarketEngine`` method -> the coordinator's part it is timed under."""


def in_process(config: RunConfig, real: bool) -> tuple[dict[str, float], float]:
    """Feed the workload through the engine in this process; return exclusive CPU µs per
    task by part (``role/step``), and tasks/s."""
    assert config.workload is not None
    tasks = generate_tasks(config.workload)
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        deployment = deploy_local(config, Path(tmp), execution=None if real else drawn(config))
        clock = Clock()
        plain = deployment.coordinator
        for method, step in COORDINATOR_STEPS.items():
            timed = clock.wrap(f"coordinator/{step}", getattr(plain.engine, method))
            setattr(plain.engine, method, timed)
        plain.ledger.commit = clock.wrap("coordinator/commit", plain.ledger.commit)
        coordinator = clock.timed("coordinator/other", plain)
        cop = [clock.timed("coprocessor hosts/execution", h) for h in deployment.coprocessor_hosts]
        for host in deployment.operator_hosts:
            host.coordinator, host.hosts = coordinator, cop
            host.execution = TimedExecution(clock, host.execution)
        ops = [clock.timed("operator hosts/dispatch, report", h) for h in deployment.operator_hosts]
        gateway = Gateway(
            LocalTransport(), coordinator, ops, deployment.host_of, config, session="bench"
        )
        cpu, wall = time.thread_time(), time.perf_counter()
        gateway.run(tasks, paced=False)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        plain.close()
    spent = {part: s * 1e6 / len(tasks) for part, s in clock.spent.items()}
    spent["gateway/batching, rows"] = cpu * 1e6 / len(tasks) - sum(spent.values())
    return spent, len(tasks) / wall


class Sizing(LocalTransport):
    """A local transport that pickles every call's arguments and result, as Ray would."""

    def __init__(self) -> None:
        self.bytes: dict[str, int] = defaultdict(int)
        self.largest: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        done = super().call(handle, method, *args)
        plain = [self.get(a) if hasattr(a, "error") else a for a in args]
        for what, obj in ((f"{method} args", plain), (f"{method} result", done.value)):
            n = len(pickle.dumps(obj, protocol=5))
            self.bytes[what] += n
            self.largest[what] = max(self.largest[what], n)
        self.calls[method] += 1
        return done

    def per_batch(self, what: str) -> float:
        return self.bytes[what] / SIZING_BATCHES


def message_bytes(config: RunConfig) -> Sizing:
    """Run a few batches with real kernels, pickling every message; return the sizes."""
    assert config.workload is not None
    count = SIZING_BATCHES * config.network.market.batch_size
    config = config.model_copy(update={"workload": config.workload.with_count(count)})
    sizing = Sizing()
    with tempfile.TemporaryDirectory(prefix="scaling-bytes-") as tmp:
        d = deploy_local(config, Path(tmp))
        for host in d.operator_hosts:
            host.transport = sizing
        gateway = Gateway(sizing, d.coordinator, d.operator_hosts, d.host_of, config)
        gateway.run(generate_tasks(config.workload), paced=False)
        d.coordinator.close()
    return sizing


# --- 2. on Ray: k simulated nodes, CPU by process ---------------------------------------------


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children[ppid].append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


ACTOR_ROLES = (
    ("ray::CoordinatorActor", "coordinator"),
    ("ray::OperatorHostActor", "operator hosts"),
    ("ray::CoprocessorHostActor", "coprocessor hosts"),
    ("ray::Echo", "echo"),  # the call microbenchmark's actor
)


def role_of(pid: int) -> str:
    """The role of a process: this driver is the gateway; an actor by its Ray title."""
    if pid == os.getpid():
        return "gateway"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            title = fh.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "Ray system"
    return next((role for actor, role in ACTOR_ROLES if title.startswith(actor)), "Ray system")


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            line = next((x for x in fh if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    except OSError:
        return 0.0
    return int(line.split()[1]) / 1024


def memory_by_role() -> dict[str, float]:
    """Resident MB per process of each actor role (the mean over its processes)."""
    seen: dict[str, list[float]] = defaultdict(list)
    for pid in descendants(os.getpid()):
        role = role_of(pid)
        if role in ROLES[:3]:
            seen[role].append(rss_mb(pid))
    return {role: sum(v) / len(v) for role, v in seen.items()}


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICK  # less idle and iowait


@dataclass
class Sample:
    """CPU seconds per process (with its role) and of the whole machine, at one moment."""

    cpu: dict[int, tuple[str, float]]
    busy: float
    at: float

    @classmethod
    def take(cls) -> Sample:
        cpu = {}
        for pid in [os.getpid(), *descendants(os.getpid())]:
            seconds = cpu_seconds(pid)
            if seconds is not None:
                cpu[pid] = (role_of(pid), seconds)
        return cls(cpu, machine_busy(), time.perf_counter())

    def since(self, before: Sample) -> tuple[dict[str, float], float, float]:
        """CPU seconds by role, other users' CPU seconds, and wall seconds, since ``before``."""
        roles: dict[str, float] = defaultdict(float, dict.fromkeys(ROLES, 0.0))
        for pid, (role, seconds) in self.cpu.items():
            roles[role] += seconds - before.cpu.get(pid, (role, 0.0))[1]
        ours = sum(roles.values())
        return roles, max(0.0, self.busy - before.busy - ours), self.at - before.at


@contextmanager
def measured() -> Iterator[dict[str, Any]]:
    """Measure the block: ``roles`` (CPU s by role), ``others`` (CPU s), ``wall`` (s)."""
    result: dict[str, Any] = {}
    before = Sample.take()
    yield result
    result["roles"], result["others"], result["wall"] = Sample.take().since(before)


@dataclass
class RayRun:
    """One measured feed on ``nodes`` simulated nodes."""

    nodes: int
    real: bool
    tasks: int
    wall_s: float
    cpu_us: dict[str, float]  # per task, by role
    others_s: float  # other users' CPU seconds during the feed
    conservation_ok: bool
    rss_mb: dict[str, float]  # resident MB per actor process, by role
    idle_cores: dict[str, float]  # cores busy while no task runs, by role
    hosts: int  # operator hosts, and as many coprocessor hosts
    cluster: int  # nodes in the Ray cluster

    @property
    def placed(self) -> str:
        """Where the hosts ran: one per node, or all on node 0."""
        return "per node" if self.nodes == self.hosts else "node 0"

    @property
    def idle(self) -> float:
        return sum(self.idle_cores.values())

    @property
    def rate(self) -> float:
        return self.tasks / self.wall_s

    @property
    def total_us(self) -> float:
        return sum(self.cpu_us.values())

    @property
    def cores_free(self) -> float:
        return max(0.1, CORES - self.others_s / self.wall_s)

    @property
    def cores_used(self) -> float:
        return self.total_us * self.rate / 1e6


def median(runs: Sequence[RayRun]) -> RayRun:
    """The run of median tasks/s, with the median CPU per task of each role."""
    ordered = sorted(runs, key=lambda r: r.rate)
    mid = ordered[len(ordered) // 2]
    cpu = {role: statistics.median(r.cpu_us[role] for r in runs) for role in mid.cpu_us}
    return replace(mid, cpu_us=cpu)


@contextmanager
def simulated_nodes(k: int) -> Iterator[Any]:
    """A ``ray.cluster_utils.Cluster`` of ``k`` nodes on this machine, joined by this process."""
    import ray
    from ray.cluster_utils import Cluster

    from cluster.runtime.actors import NAMESPACE

    def node(j: int) -> dict[str, Any]:
        return {
            "num_cpus": 1,
            "resources": {NODE_RESOURCE.format(j): 1},
            "object_store_memory": 150 * 1024**2,
            "include_dashboard": False,
        }

    cluster = Cluster(initialize_head=True, head_node_args=node(0), shutdown_at_exit=False)
    try:
        for j in range(1, k):
            cluster.add_node(**node(j))
        cluster.wait_for_nodes()
        ray.init(
            address=cluster.address,
            namespace=NAMESPACE,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def on_node(j: int) -> dict[str, Any]:
    return {"resources": {NODE_RESOURCE.format(j): 0.001}}


def deploy_per_node(
    config: RunConfig, out: Path, execution: Execution | None, spread: bool = True
) -> Any:
    """``runtime.actors.deploy``'s actors and options, host ``j`` of each kind on node ``j``
    (``spread``), or every host on node 0."""
    import ray

    from cluster.runtime.actors import (
        ActorNames,
        CoordinatorActor,
        CoprocessorHostActor,
        Deployment,
        OperatorHostActor,
        coordinator_options,
        coprocessor_options,
    )
    from cluster.runtime.transport import RayTransport

    names = ActorNames(f"scaling-{time.monotonic_ns()}-")

    def where(j: int) -> dict[str, Any]:
        return on_node(j if spread else 0)

    placement = Placement.of(config)
    coordinator = (
        ray.remote(CoordinatorActor)
        .options(**coordinator_options(config, names.coordinator, detached=False))
        .remote(config, str(out))
    )
    copro = {c.name: c for c in config.network.coprocessors}
    cop_hosts = [
        ray.remote(CoprocessorHostActor)
        .options(name=names.coprocessor_host(j), **coprocessor_options(config), **where(j))
        .remote(j, [copro[n] for n in group], config.seed, execution)
        for j, group in enumerate(placement.coprocessor_groups)
    ]
    op_options = {  # as runtime.actors.deploy
        "num_cpus": 0,
        "max_restarts": -1,
        "max_task_retries": -1,
        "max_concurrency": max(2, config.network.market.max_inflight),
    }
    op_hosts = [
        ray.remote(OperatorHostActor)
        .options(name=names.operator_host(j), **op_options, **where(j))
        .remote(j, group, config, coordinator, cop_hosts, RayTransport(), out.name, execution)
        for j, group in enumerate(placement.operator_groups)
    ]
    nodes = [i["node_id"] for i in ray.get([h.info.remote() for h in cop_hosts])]
    if spread and len(set(nodes)) != len(nodes):
        raise RuntimeError(f"coprocessor hosts share a node: {nodes}")
    ray.get([coordinator.ping.remote(), *(h.__ray_ready__.remote() for h in op_hosts)])
    return Deployment(coordinator, op_hosts, cop_hosts, placement.operator_host)


def ray_feed(k: int, count: int, real: bool, spread: bool = True, cluster: int = 1) -> RayRun:
    """On the joined cluster: deploy k + k hosts (on k nodes, or all on node 0), warm up
    with 2 batches, then measure one unpaced feed of ``count`` tasks."""
    import ray

    from cluster.runtime.runner import feed
    from cluster.runtime.transport import RayTransport

    config = paper_live(count, hosts=k)
    assert config.workload is not None
    batch = config.network.market.batch_size
    warm = generate_tasks(config.workload.model_copy(update={"seed": 99, "count": 2 * batch}))
    tasks = generate_tasks(config.workload)
    with tempfile.TemporaryDirectory(prefix="scaling-ray-") as tmp:
        d = deploy_per_node(config, Path(tmp), None if real else drawn(config), spread)
        try:

            def run(work: list[Any], session: str) -> None:
                assert config.workload is not None
                deadline = config.workload.deadline_rounds
                feed(
                    d,
                    RayTransport(),
                    config,
                    work,
                    deadline_rounds=deadline,
                    paced=False,
                    progress=False,
                    session=session,
                )

            run(warm, "warm")
            with measured() as idle:
                time.sleep(IDLE_S)
            with measured() as m:
                run(tasks, "measure")
            memory = memory_by_role()
            ray.get(d.coordinator.drain.remote())
            ok = bool(ray.get(d.coordinator.finish.remote())["conservation_ok"])
            ray.get(d.coordinator.close.remote())
        finally:
            for handle in d.handles():
                ray.kill(handle, no_restart=True)
    per_task = {r: s * 1e6 / len(tasks) for r, s in m["roles"].items()}
    idle_cores = {r: s / idle["wall"] for r, s in idle["roles"].items()}
    nodes = k if spread else 1
    return RayRun(
        nodes,
        real,
        len(tasks),
        m["wall"],
        per_task,
        m["others"],
        ok,
        memory,
        idle_cores,
        k,
        cluster,
    )


class Echo:
    """A trivial actor: answers a ping, or hands out an array (a result object)."""

    def __init__(self) -> None:
        import numpy as np

        self.data = {size: np.ones(size, dtype=np.uint8) for size in OBJECT_SIZES}

    def ping(self) -> int:
        return 0

    def blob(self, size: int) -> Any:
        return self.data[size]


OBJECT_SIZES = (256 * 1024, 2 * 1024**2)


def call_cost(calls: int = 2000) -> tuple[float, float]:
    """CPU µs of one actor call with a tiny reply: (caller side with the raylets, callee)."""
    import ray

    echo = ray.remote(Echo).options(num_cpus=0, **on_node(0)).remote()
    ray.get(echo.ping.remote())
    with measured() as m:
        for _ in range(calls // 100):
            ray.get([echo.ping.remote() for _ in range(100)])
    ray.kill(echo)
    roles = m["roles"]
    return (roles["gateway"] + roles["Ray system"]) * 1e6 / calls, roles["echo"] * 1e6 / calls


def object_costs(calls: int = 100) -> tuple[float, float, float]:
    """CPU of result objects (over 100 KiB, so through the object store), all processes:
    µs per object from this node beyond a tiny call; then, fetched from another node, µs
    more per object and ns more per byte (two sizes; needs 2 nodes)."""
    import ray

    def per_call(j: int, size: int | None) -> float:
        echo = ray.remote(Echo).options(num_cpus=0, **on_node(j)).remote()
        call = echo.ping.remote if size is None else lambda: echo.blob.remote(size)
        ray.get(call())
        with measured() as m:
            for _ in range(calls // 10):
                ray.get([call() for _ in range(10)])
        ray.kill(echo)
        return sum(m["roles"].values()) * 1e6 / calls

    ping = per_call(0, None)
    small, large = OBJECT_SIZES
    local = {s: per_call(0, s) - ping for s in OBJECT_SIZES}
    extra = {s: per_call(1, s) - ping - local[s] for s in OBJECT_SIZES}
    per_byte = (extra[large] - extra[small]) / (large - small)  # µs per byte
    per_object = extra[small] - per_byte * small
    local_object = local[small] - (local[large] - local[small]) / (large - small) * small
    return max(0.0, local_object), max(0.0, per_object), max(0.0, per_byte * 1e3)


# --- 3. the model ---------------------------------------------------------------------------


@dataclass
class Model:
    """CPU µs per task by role (calls and result objects apart), the unit costs of calls
    and objects, the shape of a batch, and the cores an idle network keeps busy."""

    coordinator: float
    gateway: float
    operator: float
    coprocessor: float  # a coprocessor host besides a GPU kernel (drawn outcomes)
    real_coprocessor: float  # the same with the kernels on its CPU (here)
    system: float  # Ray's processes, besides calls and objects
    caller: float  # one actor call, the caller's side (its raylet included)
    callee: float  # the callee's side
    object_local: float  # µs per result object through the local object store
    object_cross: float  # µs more per result object fetched from another node
    byte_cross: float  # ns more per byte fetched from another node
    result_bytes: float  # per task, the execute results
    batch: int
    auctioned: float  # auctioned tasks per batch
    idle_fixed: float  # cores: the coordinator and the gateway, idle
    idle_node: float  # cores per node: its hosts and Ray's processes, idle

    def executes(self, h_op: int, h_cop: int) -> float:
        """``execute`` calls per batch: one per (operator host, coprocessor host) pair
        with jobs, at most one per auctioned task."""
        return min(h_op * h_cop, self.auctioned)

    def calls(self, h_op: int, h_cop: int) -> dict[str, float]:
        """CPU µs per task of the actor calls and result objects, by role. Per batch: one
        escrow; per operator host one ``process`` and one ``report``; the executes."""
        execute = self.executes(h_op, h_cop)
        objects = execute if self.result_bytes * self.batch / execute > INLINE_LIMIT else 0
        per_batch = {
            "gateway": (1 + h_op) * self.caller,
            "coordinator": (1 + h_op) * self.callee,
            "operator hosts": h_op * self.callee + (execute + h_op) * self.caller,
            "coprocessor hosts": execute * self.callee + objects * self.object_local,
        }
        return {role: us / self.batch for role, us in per_batch.items()}

    def crossing(self, nodes: int, h_op: int, h_cop: int) -> float:
        """CPU µs per task for results fetched from other nodes: each operator host fetches
        from every coprocessor host, so (n - 1) / n of the objects and bytes cross."""
        execute = self.executes(h_op, h_cop)
        share = (nodes - 1) / nodes
        inline = self.result_bytes * self.batch / execute <= INLINE_LIMIT
        objects = 0.0 if inline else execute * share * self.object_cross / self.batch
        return objects + self.result_bytes * share * self.byte_cross / 1e3

    @classmethod
    def fit(
        cls,
        real: RayRun,
        draws: RayRun,
        sizing: Sizing,
        calls: tuple[float, float],
        objects: tuple[float, float, float],
        batch: int,
        auctioned: float,
    ) -> Model:
        """Per-task costs from the 1-node runs (1 + 1 hosts), their own calls taken out."""
        m = cls(0, 0, 0, 0, 0, 0, *calls, *objects, 0, batch, auctioned, 0, 0)
        m.result_bytes = sizing.per_batch("execute result") / batch
        own = m.calls(1, 1)
        # The feed's CPU includes what the network burns idle; the model adds that apart.
        c = {r: us - real.idle_cores.get(r, 0.0) * 1e6 / real.rate for r, us in real.cpu_us.items()}
        m.coordinator = max(0.1, c["coordinator"] - own["coordinator"])
        m.gateway = max(0.1, c["gateway"] - own["gateway"])
        m.operator = max(0.1, c["operator hosts"] - own["operator hosts"])
        m.real_coprocessor = max(0.1, c["coprocessor hosts"] - own["coprocessor hosts"])
        m.coprocessor = max(0.0, draws.cpu_us["coprocessor hosts"] - own["coprocessor hosts"])
        m.system = c["Ray system"]
        m.idle_fixed = real.idle_cores["coordinator"] + real.idle_cores["gateway"]
        m.idle_node = real.idle - m.idle_fixed
        return m

    def roles(self, nodes: int, hosts: int) -> dict[str, float]:
        """CPU µs per task by role on this machine: ``hosts`` + ``hosts`` on ``nodes``."""
        calls = self.calls(hosts, hosts)
        return {
            "coordinator": self.coordinator + calls["coordinator"],
            "operator hosts": self.operator + calls["operator hosts"],
            "coprocessor hosts": self.real_coprocessor + calls["coprocessor hosts"],
            "gateway": self.gateway + calls["gateway"],
            "Ray system": self.system + self.crossing(nodes, hosts, hosts),
        }

    def here(self, nodes: int, hosts: int, cores_free: float) -> tuple[float, str, float]:
        """Predicted tasks/s on this machine, the bottleneck, and the CPU µs per task at
        that rate (the cores an idle network keeps busy included)."""
        roles = self.roles(nodes, hosts)
        total = sum(roles.values())
        idle = self.idle_fixed + hosts * self.idle_node
        caps = {
            "coordinator": 1e6 / roles["coordinator"],
            "gateway": 1e6 / roles["gateway"],
            "operator hosts": hosts * 1e6 / roles["operator hosts"],  # a core each at most
            "cores": max(0.0, cores_free - idle) * 1e6 / total,
        }
        name = min(caps, key=lambda n: caps[n])
        return caps[name], name, total + idle * 1e6 / caps[name]

    def project(
        self, nodes: int, gpus: int, cores: int, gpu_ms: float, per_op: int
    ) -> dict[str, float]:
        """Caps in tasks/s of N nodes, each with G GPUs (a coprocessor host each), ``cores``
        cores and an operator host per ``per_op`` GPUs; coordinator and gateways apart."""
        h_op, h_cop = nodes * max(1, gpus // per_op), nodes * gpus
        calls = self.calls(h_op, h_cop)
        op = self.operator + calls["operator hosts"]
        node_cpu = op + self.coprocessor + calls["coprocessor hosts"] + self.system
        node_cpu += self.crossing(nodes, h_op, h_cop)
        return {
            "coordinator": 1e6 / (self.coordinator + calls["coordinator"]),
            "GPUs": nodes * gpus * 1e3 / gpu_ms if gpus else math.inf,
            "node CPUs": nodes * (cores - self.idle_node) * 1e6 / node_cpu,
            "operator hosts": h_op * 1e6 / op,
        }


# --- printing -------------------------------------------------------------------------------


def row(cells: Sequence[Any], widths: Sequence[int]) -> str:
    return "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))


def print_in_process(
    real: dict[str, float], draws: dict[str, float], rates: Sequence[float]
) -> None:
    print("\n1. CPU µs per task in one process (exclusive of nested calls)")
    widths = (34, 10, 10)
    print(row(("part", "real", "drawn"), widths))
    for role in ROLES[:4]:
        mine = sorted(p for p in {*real, *draws} if p.startswith(role + "/"))
        for p in mine:
            print(row((p, f"{real.get(p, 0.0):,.1f}", f"{draws.get(p, 0.0):,.1f}"), widths))
        totals = [sum(side.get(p, 0.0) for p in mine) for side in (real, draws)]
        print(row((f"= {role}", *(f"{t:,.1f}" for t in totals)), widths))
    print(row(("all", f"{sum(real.values()):,.1f}", f"{sum(draws.values()):,.1f}"), widths))
    print(row(("tasks/s (one thread)", *(f"{r:,.0f}" for r in rates)), widths))


def print_bytes(sizing: Sizing, batch: int) -> None:
    print(f"\n   messages per batch of {batch:,} (real kernels, pickle protocol 5)")
    widths = (16, 7, 13, 11)
    print(row(("message", "calls", "bytes/batch", "largest"), widths))
    for what in sorted(sizing.bytes):
        calls = sizing.calls[what.split()[0]] / SIZING_BATCHES
        cells = (what, f"{calls:.1f}", f"{sizing.per_batch(what):,.0f}")
        print(row((*cells, f"{sizing.largest[what]:,}"), widths))
    total = sum(sizing.per_batch(w) for w in sizing.bytes)
    store = sum(sizing.per_batch(w) for w in sizing.bytes if sizing.largest[w] > INLINE_LIMIT)
    print(
        f"   all {total / 1e6:,.2f} MB per batch, of which {store / 1e6:,.2f} MB in objects over"
        " 100 KiB (Ray's object store; smaller ones travel inline)"
    )


def print_ray(runs: Sequence[RayRun], model: Model, objects_measured: bool) -> None:
    print("\n2. CPU µs per task on Ray, by process, in feed order (k + k hosts on k nodes)")
    widths = (5, 7, 5, 8, 8, 11, 8, 9, 7, 7, 7, 5, 5, 5)
    head = ("exec", "cluster", "hosts", "placed", "tasks/s", "coordinator", "op hosts")
    print(row((*head, "cop hosts", "gateway", "Ray sys", "all", "idle", "used", "free"), widths))
    for r in runs:
        c = r.cpu_us
        cells = ("real" if r.real else "drawn", r.cluster, f"{r.hosts}+{r.hosts}", r.placed)
        cells += (f"{r.rate:,.0f}",)
        cells += (*(f"{c[role]:,.1f}" for role in ROLES), f"{r.total_us:,.1f}")
        cells += (f"{r.idle:.2f}", f"{r.cores_used:.2f}", f"{r.cores_free:.2f}")
        print(row(cells, widths) + ("" if r.conservation_ok else "  conservation FAILED"))
    print(
        "   (idle / used / free: cores our processes keep busy with no task, cores they used"
        " in the feed, real cores less other users' use in the feed)"
    )
    objects = (
        f"a result object {model.object_local:,.0f} µs through this node's store; from another"
        f" node {model.object_cross:,.0f} µs more per object and {model.byte_cross:,.2f} ns"
        " more per byte"
        if objects_measured
        else "result objects not measured (one node)"
    )
    print(
        f"   one actor call: {model.caller:,.0f} µs CPU caller side (with the raylet),"
        f" {model.callee:,.0f} callee side; {objects}"
    )
    last = max(runs, key=lambda r: r.nodes)
    print(
        f"   resident memory per actor process ({last.hosts} + {last.hosts} hosts): "
        + ", ".join(f"{role} {mb:,.0f} MB" for role, mb in last.rss_mb.items())
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="tasks per run")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--quick", action="store_true", help="4,000 tasks, nodes 1 2")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8], help="GPUs per node")
    parser.add_argument("--cores", type=int, default=16, help="CPU cores per node (projection)")
    parser.add_argument("--gpu-ms", type=float, default=1.0, help="ms per small task on a GPU")
    parser.add_argument("--per-op", type=int, default=4, help="GPUs per operator host")
    parser.add_argument("--reps", type=int, default=3, help="1-node feeds, median taken")
    args = parser.parse_args()
    count, nodes = (4_000, [1, 2]) if args.quick else (args.count, sorted({1, *args.nodes}))
    reps = 1 if args.quick else args.reps
    control = not args.quick and nodes[-1] > 1
    started = time.perf_counter()
    print(
        f"paper-live, {count:,} tasks per run, nodes {nodes}; {CORES} cores, load average"
        f" {os.getloadavg()[0]:.2f} at the start"
    )

    config = paper_live(count)
    batch = config.network.market.batch_size
    real_parts, real_rate = in_process(config, real=True)
    drawn_parts, drawn_rate = in_process(config, real=False)
    print_in_process(real_parts, drawn_parts, (real_rate, drawn_rate))
    sizing = message_bytes(config)
    print_bytes(sizing, batch)

    runs: list[RayRun] = []  # every feed, in order
    checks: list[tuple[RayRun, RayRun]] = []  # (the baseline it is predicted from, the run)
    objects: tuple[float, float, float] | None = None
    for k in nodes:
        with simulated_nodes(k):
            if k == 1:  # the model's calibration: the median of --reps feeds, per role
                calibration = median([ray_feed(1, count, real=True) for _ in range(reps)])
                draws = ray_feed(1, count, real=False)
                calls = call_cost()
                runs += [calibration, draws]
                checks.append((calibration, calibration))
                if control:  # the largest run's hosts, all on this one node
                    packed = ray_feed(nodes[-1], count, real=True, spread=False)
                    runs.append(packed)
                    checks.append((calibration, packed))
            else:  # a 1 + 1 baseline in the same cluster, just before: the same load
                base = ray_feed(1, count, real=True, cluster=k)
                spread = ray_feed(k, count, real=True, cluster=k)
                runs += [base, spread]
                checks.append((base, spread))
                if objects is None:
                    objects = object_costs()
    auctioned = auctioned_per_batch(config)

    def fit(baseline: RayRun) -> Model:
        units = objects or (0.0, 0.0, 0.0)
        return Model.fit(baseline, draws, sizing, calls, units, batch, auctioned)

    model = fit(calibration)
    print_ray(runs, model, objects is not None)
    print(
        f"\n3. the model (CPU µs per task, calls and objects apart): coordinator"
        f" {model.coordinator:,.1f}, gateway {model.gateway:,.1f}, operator host"
        f" {model.operator:,.1f}, coprocessor host {model.real_coprocessor:,.1f} (kernels on"
        f" its CPU) or {model.coprocessor:,.1f} (besides a GPU kernel), Ray {model.system:,.1f};"
        f" idle {model.idle_fixed:.2f} + {model.idle_node:.2f} per node cores; results"
        f" {model.result_bytes:,.0f} bytes per task; {auctioned:,.0f} of {batch:,} tasks per"
        " batch auctioned"
    )
    print(
        "\n   the check on this machine: predicted vs measured tasks/s, real kernels; each run"
        " predicted from the 1 + 1 baseline of its cluster"
    )
    widths = (7, 5, 8, 8, 10, 10, 14, 10, 9, 10, 6)
    head = ("cluster", "hosts", "placed", "base µs", "cores free", "predicted", "bottleneck")
    print(row((*head, "model µs", "measured", "meas. µs", "ratio"), widths))
    for base, r in checks:
        predicted, name, total = fit(base).here(r.nodes, r.hosts, r.cores_free)
        cells = (r.cluster, f"{r.hosts}+{r.hosts}", r.placed, f"{base.total_us:,.1f}")
        cells += (f"{r.cores_free:.2f}", f"{predicted:,.0f}", name, f"{total:,.1f}")
        print(
            row(
                (*cells, f"{r.rate:,.0f}", f"{r.total_us:,.1f}", f"{r.rate / predicted:.2f}"),
                widths,
            )
        )
    print("\n   CPU µs per task by role, model / measured")
    widths = (7, 5, 8, *(17,) * len(ROLES))
    print(row(("cluster", "hosts", "placed", *ROLES), widths))
    for base, r in checks:
        mine = fit(base).roles(r.nodes, r.hosts)
        cells = (f"{mine[role]:,.1f} / {r.cpu_us[role]:,.1f}" for role in ROLES)
        print(row((r.cluster, f"{r.hosts}+{r.hosts}", r.placed, *cells), widths))

    print(
        f"\n   projection: N nodes x G GPUs, {args.cores} cores each, {args.gpu_ms:g} ms per task"
        f" on a GPU (assumed), an operator host per {args.per_op} GPUs, batches of {batch:,}"
    )
    widths = (5, 3, 9, 14, 12, 10, 10, 14, 7)
    names = ("coordinator", "GPUs", "node CPUs", "operator hosts")
    print(row(("N", "G", "tasks/s", "bottleneck", *names, "clients"), widths))
    for g in args.gpus:
        saturated = None
        for n in (1, 2, 4, 8, 16, 32, 64, 128):
            caps = model.project(n, g, args.cores, args.gpu_ms, args.per_op)
            name = min(caps, key=lambda c: caps[c])
            if name == "coordinator" and saturated is None:
                saturated = n
            cells = (n, g, f"{caps[name]:,.0f}", name, *(f"{caps[c]:,.0f}" for c in names))
            h_op = n * max(1, g // args.per_op)
            gateway = model.gateway + model.calls(h_op, n * g)["gateway"]
            print(row((*cells, math.ceil(caps[name] * gateway / 1e6)), widths))
        print(f"   G={g}: the coordinator is the bottleneck from N={saturated}")
    print(f"\nall in {time.perf_counter() - started:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
