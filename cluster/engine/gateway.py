"""The gateway: feeds a workload to the network with a bounded number of batches in flight.

It runs in the submitting process. Each batch is one ``escrow`` call to the
coordinator, which gives the batch fresh task ids (so any number of clients
can submit at once, and none chooses an id) and clears it (operators, the
auction), then one ``process`` call per operator host that got tasks. The
gateway never waits on a call in a loop: it waits for whichever batch
finishes first.

Reproducible runs: batches are cut from the workload alone (``batch_size``
tasks, or those arriving within ``batch_window_s`` of the first), and batch
``k`` is sent only once every batch up to ``k - max_inflight`` is done, which
is what the coordinator's ordering needs (:meth:`Coordinator.escrow`). Tasks
a coprocessor failed come back in the client's next batches; once the
workload is in, empty batches flush them until none is left.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cluster.config.schema import RunConfig
from cluster.config.workload import GeneratedTask
from cluster.engine.market import OWN
from cluster.engine.messages import Cleared, TaskRecord, TaskStatus, Work
from cluster.engine.progress import Progress
from cluster.engine.transport import HostLost, Transport
from protocol import ProtocolError
from protocol.errors import StakerayError


class GatewayError(StakerayError):
    """The workload cannot be placed (no active operator, escrow refused, ...)."""


class Gateway:
    """Submits tasks in batches and collects one :class:`TaskRecord` per task."""

    def __init__(
        self,
        transport: Transport,
        coordinator: Any,
        operator_hosts: Sequence[Any],
        host_of: dict[str, int],
        config: RunConfig,
        session: str | None = None,
    ) -> None:
        self.transport = transport
        self.coordinator = coordinator
        self.hosts = list(operator_hosts)
        self.host_of = host_of
        self.config = config
        self.params = config.network.protocol_params()
        self.market = config.network.market
        # Batch keys name a batch on the network, so that a retried escrow is escrowed once:
        # unique per client (random by default; a network with one client may fix it).
        self.session = session if session is not None else uuid.uuid4().hex
        self.batches = 0

    def difficulty(self, task: GeneratedTask) -> float:
        """A task's difficulty for the self-execution split: its size over the largest its
        kind an operator runs itself (operators' ``resources``, default 1); unlisted
        kinds are always auctioned."""
        limit = self.market.self_execute_max_size.get(task.spec.kind)
        if limit is None:
            return OWN
        return task.spec.size / limit if limit > 0 else (0.0 if task.spec.size == 0 else OWN)

    def cut(self, tasks: Sequence[GeneratedTask], i: int, paced: bool) -> int:
        """Return the end of the batch starting at ``i``: ``batch_size`` tasks, or (paced)
        those arriving within ``batch_window_s`` of the first: the workload decides, not
        timing."""
        limit = tasks[i].arrival_s + self.market.batch_window_s if paced else float("inf")
        end = i + 1
        while end < len(tasks) and end - i < self.market.batch_size:
            if tasks[end].arrival_s > limit:
                break
            end += 1
        return end

    def run(
        self,
        tasks: Sequence[GeneratedTask],
        *,
        deadline_rounds: int | None = None,
        paced: bool = True,
        progress: Progress | None = None,
    ) -> list[TaskRecord]:
        """Submit ``tasks`` at their arrival times; return one record per task, by task id.

        The coordinator gives each batch its task ids when it escrows it.
        """
        get = self.transport.get
        flight = Flight()
        started = time.monotonic()
        i = 0
        while i < len(tasks) or flight.futures:
            now = time.monotonic() - started
            end = self.cut(tasks, i, paced) if i < len(tasks) else i
            arrived = i < len(tasks) and (not paced or tasks[end - 1].arrival_s <= now)
            if arrived and flight.may_send(self.market.max_inflight):
                self.submit(tasks[i:end], deadline_rounds, flight, progress)
                i = end
                continue
            timeout = None
            if i < len(tasks) and flight.may_send(self.market.max_inflight):
                timeout = max(0.0, min(1.0, tasks[end - 1].arrival_s - now))
            if not flight.futures:
                time.sleep(timeout or 0.0)
                continue
            self.collect(flight, timeout, progress)
        while True:  # re-offered tasks: flush until the coordinator has none for us
            cleared = get(self.escrow([], [], deadline_rounds))
            if not cleared.assignments:
                break
            self.dispatch(cleared, flight)
            while flight.futures:
                self.collect(flight, None, progress)
        for t, g in flight.rows.items():  # a lost host's tasks: the ledger decides at the end
            if t not in flight.records:
                flight.records[t] = lost_record(t, g)
        return [flight.records[t] for t in sorted(flight.records)]

    def escrow(
        self, batch: Sequence[GeneratedTask], difficulties: Sequence[float], deadline: int | None
    ) -> Any:
        """Send one batch's escrow (a future of its :class:`Cleared`)."""
        self.batches += 1
        key = f"{self.session}-{self.batches}"
        fees = [g.fee for g in batch]
        return self.transport.call(self.coordinator, "escrow", key, fees, deadline, difficulties)

    def submit(
        self,
        batch: Sequence[GeneratedTask],
        deadline_rounds: int | None,
        flight: Flight,
        progress: Progress | None,
    ) -> None:
        """Escrow and clear one batch, then hand its work to the operator hosts."""
        future = self.escrow(batch, [self.difficulty(g) for g in batch], deadline_rounds)
        try:
            cleared: Cleared = self.transport.get(future)
        except ProtocolError as exc:
            raise GatewayError(f"batch refused: {type(exc).__name__}: {exc}") from None
        ids = range(cleared.first_id, cleared.first_id + len(batch))
        flight.rows.update(zip(ids, batch, strict=True))
        self.dispatch(cleared, flight)
        if progress is not None:
            progress.update([], cleared.round)

    def dispatch(self, cleared: Cleared, flight: Flight) -> None:
        """Send each operator host its share of a cleared batch (no waiting)."""
        key = f"{self.session}-{self.batches}"
        now = time.time()
        per_host: dict[int, list[Work]] = {}
        for a in cleared.assignments:
            g = flight.rows[a.task_id]
            work = Work(a, g.spec, g.fee, now)
            per_host.setdefault(self.host_of[a.operator], []).append(work)
        flight.open[cleared.batch] = len(per_host)
        flight.round = max(flight.round, cleared.round)
        flight.sent = max(flight.sent, cleared.batch)
        for h, work in per_host.items():
            future = self.transport.call(self.hosts[h], "process", key, cleared.batch, work)
            flight.futures[future] = Placed(cleared.batch, work)
        if not per_host:
            del flight.open[cleared.batch]

    def collect(self, flight: Flight, timeout: float | None, progress: Progress | None) -> None:
        """Wait for whichever host's share finishes first; take its rows."""
        ready, _ = self.transport.wait(list(flight.futures), 1, timeout)
        for future in ready:
            placed = flight.futures.pop(future)
            flight.open[placed.batch] -= 1
            if not flight.open[placed.batch]:
                del flight.open[placed.batch]
            try:
                rows = self.transport.get(future)
            except HostLost:
                flight.lost.append(placed)  # the coordinator's final states fill these in
                continue
            except ProtocolError as exc:
                raise GatewayError(f"batch refused: {type(exc).__name__}: {exc}") from None
            for row in rows:
                flight.records[row.task_id] = row
            if progress is not None:  # a faulted task is counted when it finishes
                progress.update([r for r in rows if r.outcome != TaskStatus.OPEN], flight.round)


@dataclass(slots=True)
class Flight:
    """The gateway's batches in flight: host calls, batches not yet done, rows by task id."""

    futures: dict[Any, Placed] = field(default_factory=dict)
    open: dict[int, int] = field(default_factory=dict)  # batch -> host calls still out
    rows: dict[int, GeneratedTask] = field(default_factory=dict)
    records: dict[int, TaskRecord] = field(default_factory=dict)
    lost: list[Placed] = field(default_factory=list)
    round: int = 0
    sent: int = 0

    def may_send(self, window: int) -> bool:
        """Whether the next batch may go: every batch ``window`` or more before it is done
        (with one client, the coordinator numbers its batches one after the other)."""
        return not self.open or min(self.open) > self.sent + 1 - window


@dataclass(frozen=True, slots=True)
class Placed:
    """A batch's share on one operator host: the batch and its work."""

    batch: int
    work: list[Work]


def lost_record(task_id: int, task: GeneratedTask) -> TaskRecord:
    """A placeholder row for a task whose operator host was lost; filled in from the ledger."""
    spec = task.spec
    return TaskRecord(task_id, spec.kind, spec.size, "", "", task.fee, 0, 0, TaskStatus.OPEN, 0.0)
