"""An operator host: runs its operators' tasks, verifies coprocessors' results, reports.

The coordinator clears each batch (operator choice, the auction; see
:mod:`cluster.engine.market`); one :meth:`OperatorHost.process` call then
runs the host's share of it with a few batched messages: one ``execute`` per
coprocessor host (results come back by object reference) and one ``report``
to the coordinator with the verified settlements, the faults and the audit
faults. A result the verifier rejects is a safety fault (slashed); a host
that died or did not answer in ``execute_timeout_s`` is a liveness fault for
each of its jobs (unpaid, never slashed as fraud). Faulted tasks are
re-offered by the coordinator in the client's next batch. An operator's own
run is checked only when an audit samples it (:func:`is_audit_sample`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from cluster.config.schema import RunConfig
from cluster.engine.execution import Execution, RealExecution
from cluster.engine.messages import (
    Fault,
    FaultKind,
    Job,
    TaskRecord,
    TaskStatus,
    Work,
)
from cluster.engine.network import Placement
from cluster.engine.telemetry import OPERATOR_HOST_METRICS, Exporter, Telemetry
from cluster.engine.transport import HostLost, Transport
from protocol.market import is_audit_sample
from protocol.state import Outcome
from protocol.units import Address

log = logging.getLogger("stakeray.operator")


class OperatorHost:
    """Hosts operators; see the module docstring for one batch's path."""

    def __init__(
        self,
        index: int,
        operators: Sequence[Address],
        config: RunConfig,
        coordinator: Any,
        coprocessor_hosts: Sequence[Any],
        transport: Transport,
        network: str = "stakeray",
        execution: Execution | None = None,
    ) -> None:
        self.index = index
        self.operators = list(operators)
        self.params = config.network.protocol_params()
        self.market = config.network.market
        self.seed = config.seed
        self.coordinator = coordinator
        self.hosts = list(coprocessor_hosts)
        self.host_of = Placement.of(config).coprocessor_host
        self.transport = transport
        executors = [*config.network.coprocessors, *config.network.operators]
        self.execution = (
            execution if execution is not None else RealExecution(executors, config.seed)
        )
        self.telemetry = Telemetry(
            OPERATOR_HOST_METRICS, self.make_exporter(network, OPERATOR_HOST_METRICS)
        )

    def make_exporter(self, network: str, names: tuple[str, ...]) -> Exporter | None:
        """Return where metrics go besides memory: nowhere here; Ray's actor overrides it."""
        return None

    # --- one batch --------------------------------------------------------------------

    def process(self, key: str, batch: int, work: Sequence[Work]) -> list[TaskRecord]:
        """Run the host's share of a cleared batch, report it; return ``tasks.csv`` rows
        (a faulted task's row says open: the coordinator re-offers it)."""
        call, get = self.transport.call, self.transport.get
        own: list[Job] = []
        jobs: dict[int, list[Job]] = {}
        for w in work:
            a = w.assignment
            if a.coprocessor is None:
                own.append(Job(a.task_id, a.operator, w.spec, a.attempt))
            else:
                job = Job(a.task_id, a.coprocessor, w.spec, a.attempt)
                jobs.setdefault(self.host_of[a.coprocessor], []).append(job)
        futures = {h: call(self.hosts[h], "execute", part) for h, part in jobs.items()}
        settled: list[int] = []
        audited: list[int] = []
        for job in own:  # while the coprocessors compute
            result = self.execution.run(job)
            settled.append(job.task_id)
            sampled = is_audit_sample(self.seed, job.task_id, self.params.audit_rate)
            if sampled and not self.execution.check(job, result, self.execution.prepare(job)):
                audited.append(job.task_id)
        faults = self.collect(futures, jobs, settled)
        get(call(self.coordinator, "report", key, batch, settled, faults, audited))
        faulted = {f.task_id for f in faults}
        caught = set(audited)
        now = time.time()
        rows = []
        for w in work:
            t = w.assignment.task_id
            outcome = (
                TaskStatus.OPEN
                if t in faulted
                else Outcome.AUDITED
                if t in caught
                else Outcome.SETTLED
            )
            rows.append(self.record(w, outcome, now))
        self.observe(rows)
        return rows

    def observe(self, rows: Sequence[TaskRecord]) -> None:
        """Record settled tasks' latency and auctioned tasks' clearing margin (price / fee)."""
        settled = [r for r in rows if r.outcome == Outcome.SETTLED]
        latencies = [r.latency_s for r in settled]
        self.telemetry.observe("stakeray_settlement_latency_seconds", latencies)
        margins = [r.price / r.fee for r in settled if r.coprocessor and r.fee > 0]
        self.telemetry.observe("stakeray_auction_clearing_margin", margins)

    def collect(
        self, futures: dict[int, Any], jobs: dict[int, list[Job]], settled: list[int]
    ) -> list[Fault]:
        """Verify every host's results; a lost or silent host faults all of its jobs."""
        faults: list[Fault] = []
        if not futures:
            return faults
        # The verifier's inputs are drawn while the coprocessors compute, not after: on a
        # busy CPU this overlaps with their own (single-threaded) input draws.
        prepared = {j.task_id: self.execution.prepare(j) for part in jobs.values() for j in part}
        ready, _ = self.transport.wait(
            list(futures.values()), len(futures), self.market.execute_timeout_s
        )
        done = {id(f) for f in ready}
        for h, future in futures.items():
            try:
                if id(future) not in done:
                    raise HostLost(f"no answer in {self.market.execute_timeout_s} s")
                results = self.transport.get(future, 0)
            except HostLost as exc:
                log.warning("operator host %d: coprocessor host %d lost (%s)", self.index, h, exc)
                liveness = FaultKind.LIVENESS  # a lost host is no proof of a wrong result
                faults.extend(Fault(j.task_id, j.coprocessor, j.attempt, liveness) for j in jobs[h])
                continue
            for job, result in zip(jobs[h], results, strict=True):
                if self.execution.check(job, result, prepared.pop(job.task_id)):
                    settled.append(job.task_id)
                else:
                    faults.append(
                        Fault(job.task_id, job.coprocessor, job.attempt, FaultKind.SAFETY)
                    )
        return faults

    def record(self, w: Work, outcome: Outcome | TaskStatus, now: float) -> TaskRecord:
        a = w.assignment
        paid = outcome in (Outcome.SETTLED, Outcome.AUDITED)
        return TaskRecord(
            task_id=a.task_id,
            kind=w.spec.kind,
            size=w.spec.size,
            operator=a.operator,
            coprocessor=(a.coprocessor or "") if paid else "",
            fee=w.fee,
            price=a.price if paid else 0,
            attempts=a.attempt + (1 if paid else 0),
            outcome=outcome,
            latency_s=round(now - w.submitted_at, 4),
        )
