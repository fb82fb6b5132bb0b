"""The gateway: feeds a workload to the operator hosts with a bounded number of batches in flight.

It runs in the submitting process. Each batch is one ``escrow`` call to the
coordinator, which gives the batch fresh task ids (so any number of clients
can submit at once, and none chooses an id), and one ``process`` call per
operator host that got tasks; the escrow's future is passed to ``process``,
so a host starts only once the fees are in escrow, and the gateway never
waits on a call in a loop: it waits for whichever batch finishes first.
Operators are picked with the round's stake weights (SPEC 6), from the
newest view any reply carried.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cluster.config.schema import RunConfig
from cluster.config.workload import GeneratedTask
from cluster.engine.messages import MarketView, TaskOrder, TaskRecord, TaskStatus
from cluster.engine.progress import Progress
from cluster.engine.transport import HostLost, Transport
from protocol import ProtocolError
from protocol.errors import StakerayError
from protocol.selection import select_operators


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

    def pick(self, view: MarketView, draws: Sequence[int]) -> list[str | None]:
        """Pick an operator per task with the round's stake weights; ``draws`` (the tasks'
        places in the workload) seed the draws, so a workload picks the same way each time."""
        names = sorted(n for n in view.active if n in self.host_of)
        return select_operators(
            names,
            [view.active[n] for n in names],
            draws,
            self.config.seed,
            w_stake=self.params.w_stake,
            w_random=self.params.w_random,
        )

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
        call, get = self.transport.call, self.transport.get
        view: MarketView = get(call(self.coordinator, "view"))
        inflight: dict[Any, Placed] = {}
        records: dict[int, TaskRecord] = {}
        lost: list[Placed] = []
        started = time.monotonic()
        i = 0
        while i < len(tasks) or inflight:
            now = time.monotonic() - started
            arrived = i < len(tasks) and (not paced or tasks[i].arrival_s <= now)
            if arrived and len(inflight) < self.market.max_inflight:
                batch = [tasks[i]]
                i += 1
                while (
                    i < len(tasks)
                    and len(batch) < self.market.batch_size
                    and (not paced or tasks[i].arrival_s <= now)
                ):
                    batch.append(tasks[i])
                    i += 1
                self.submit(batch, deadline_rounds, view, inflight)
                continue
            timeout = None
            if i < len(tasks) and len(inflight) < self.market.max_inflight:
                timeout = max(0.0, min(1.0, tasks[i].arrival_s - now))
            if not inflight:
                time.sleep(timeout or 0.0)
                continue
            ready, _ = self.transport.wait(list(inflight), 1, timeout)
            for future in ready:
                placed = inflight.pop(future)
                try:
                    rows, newer = get(future)
                except HostLost:
                    lost.append(placed)  # the coordinator's final states fill these in
                    continue
                except ProtocolError as exc:
                    raise GatewayError(f"batch refused: {type(exc).__name__}: {exc}") from None
                if newer.round >= view.round:
                    view = newer
                for row in rows:
                    records[row.task_id] = row
                if progress is not None:
                    progress.update(rows, view.round)
        for placed in lost:
            try:
                first = get(placed.escrow).first_id
            except ProtocolError as exc:
                raise GatewayError(f"batch refused: {type(exc).__name__}: {exc}") from None
            for order, task in zip(placed.orders, placed.tasks, strict=True):
                records[first + order.slot] = lost_record(first + order.slot, task)
        return [records[t] for t in sorted(records)]

    def submit(
        self,
        batch: Sequence[GeneratedTask],
        deadline_rounds: int | None,
        view: MarketView,
        inflight: dict[Any, Placed],
    ) -> None:
        """Escrow one batch and hand it to the operator hosts (no waiting).

        The escrow's answer goes to the hosts as it is (a future): each host
        starts once the fees are in escrow and learns the tasks' ids from it.
        """
        call = self.transport.call
        picks = self.pick(view, [g.task_id for g in batch])
        if any(p is None for p in picks):
            raise GatewayError(f"round {view.round}: no active operator is hosted here")
        self.batches += 1
        key = f"{self.session}-{self.batches}"
        escrow = call(self.coordinator, "escrow", key, [g.fee for g in batch], deadline_rounds)
        now = time.time()
        per_host: dict[int, tuple[list[TaskOrder], list[GeneratedTask]]] = {}
        for slot, (g, operator) in enumerate(zip(batch, picks, strict=True)):
            assert operator is not None
            orders, generated = per_host.setdefault(self.host_of[operator], ([], []))
            orders.append(TaskOrder(slot, operator, g.spec, g.fee, now))
            generated.append(g)
        for h, (orders, generated) in per_host.items():
            future = call(self.hosts[h], "process", orders, escrow)
            inflight[future] = Placed(escrow, orders, generated)


@dataclass(frozen=True, slots=True)
class Placed:
    """A batch's share on one operator host: its escrow (a future), orders and workload rows."""

    escrow: Any
    orders: list[TaskOrder]
    tasks: list[GeneratedTask]


def lost_record(task_id: int, task: GeneratedTask) -> TaskRecord:
    """A placeholder row for a task whose operator host was lost; filled in from the ledger."""
    spec = task.spec
    return TaskRecord(task_id, spec.kind, spec.size, "", "", task.fee, 0, 0, TaskStatus.OPEN, 0.0)
