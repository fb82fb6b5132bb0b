"""The gateway: feeds a workload to the operator hosts with a bounded number of batches in flight.

It runs in the submitting process. Each batch is one ``escrow`` call to the
coordinator and one ``process`` call per operator host that got tasks; the
escrow's future is passed to ``process``, so a host starts only once the
fees are in escrow, and the gateway never waits on a call in a loop: it
waits for whichever batch finishes first. Operators are picked with the
round's stake weights (SPEC 6), from the newest view any reply carried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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
    ) -> None:
        self.transport = transport
        self.coordinator = coordinator
        self.hosts = list(operator_hosts)
        self.host_of = host_of
        self.config = config
        self.params = config.network.protocol_params()
        self.market = config.network.market

    def pick(self, view: MarketView, task_ids: Sequence[int]) -> list[str | None]:
        names = sorted(n for n in view.active if n in self.host_of)
        return select_operators(
            names,
            [view.active[n] for n in names],
            task_ids,
            self.config.seed,
            w_stake=self.params.w_stake,
            w_random=self.params.w_random,
        )

    def run(
        self,
        tasks: Sequence[GeneratedTask],
        *,
        first_id: int = 0,
        deadline_rounds: int | None = None,
        paced: bool = True,
        progress: Progress | None = None,
    ) -> list[TaskRecord]:
        """Submit ``tasks`` (ids offset by ``first_id``) at their arrival times; return records."""
        call, get = self.transport.call, self.transport.get
        view: MarketView = get(call(self.coordinator, "view"))
        inflight: dict[Any, list[int]] = {}
        records: dict[int, TaskRecord] = {}
        lost: list[int] = []
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
                view = self.submit(batch, first_id, deadline_rounds, view, inflight)
                continue
            timeout = None
            if i < len(tasks) and len(inflight) < self.market.max_inflight:
                timeout = max(0.0, min(1.0, tasks[i].arrival_s - now))
            if not inflight:
                time.sleep(timeout or 0.0)
                continue
            ready, _ = self.transport.wait(list(inflight), 1, timeout)
            for future in ready:
                ids = inflight.pop(future)
                try:
                    rows, newer = get(future)
                except HostLost:
                    lost.extend(ids)  # the coordinator's final states fill these in
                    continue
                except ProtocolError as exc:
                    raise GatewayError(f"batch refused: {type(exc).__name__}: {exc}") from None
                if newer is not None and newer.round >= view.round:
                    view = newer
                for row in rows:
                    records[row.task_id] = row
                if progress is not None:
                    progress.update(rows, view.round)
        by_id = {first_id + g.task_id: g for g in tasks}
        return [records[t] for t in sorted(records)] + [
            lost_record(t, by_id[t]) for t in sorted(lost)
        ]

    def submit(
        self,
        batch: Sequence[GeneratedTask],
        first_id: int,
        deadline_rounds: int | None,
        view: MarketView,
        inflight: dict[Any, list[int]],
    ) -> MarketView:
        """Escrow one batch and hand it to the operator hosts (no waiting)."""
        call = self.transport.call
        ids = [first_id + t.task_id for t in batch]
        picks = self.pick(view, ids)
        if any(p is None for p in picks):
            raise GatewayError(f"round {view.round}: no active operator is hosted here")
        rows = [(t, g.fee) for t, g in zip(ids, batch, strict=True)]
        escrow = call(self.coordinator, "escrow", rows, deadline_rounds)
        now = time.time()
        per_host: dict[int, list[TaskOrder]] = {}
        for t, g, operator in zip(ids, batch, picks, strict=True):
            assert operator is not None
            order = TaskOrder(t, operator, g.spec, g.fee, now)
            per_host.setdefault(self.host_of[operator], []).append(order)
        for h, orders in per_host.items():
            inflight[call(self.hosts[h], "process", orders, escrow)] = [o.task_id for o in orders]
        return view


def lost_record(task_id: int, task: GeneratedTask) -> TaskRecord:
    """A placeholder row for a task whose operator host was lost; filled in from the ledger."""
    spec = task.spec
    return TaskRecord(task_id, spec.kind, spec.size, "", "", task.fee, 0, 0, TaskStatus.OPEN, 0.0)
