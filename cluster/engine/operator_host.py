"""An operator host: runs its operators' tasks, auctions the heavy ones, verifies, settles.

One :meth:`OperatorHost.process` call handles a batch end to end with a few
batched messages per attempt: one ``assign`` to the coordinator, one
``execute`` per coprocessor host (results come back by object reference), one
``report`` with the verified settlements and the faults. A fault re-offers
the task without that coprocessor until ``max_attempts``. A result the
verifier rejects is a safety fault (slashed); a host that died or did not
answer in ``execute_timeout_s`` is a liveness fault for each of its jobs
(unpaid, never slashed as fraud), and the host sits out a cooldown (doubling
while it keeps failing).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import Any

from cluster.config.schema import RunConfig
from cluster.engine.execution import Execution, RealExecution
from cluster.engine.messages import (
    Escrowed,
    Fault,
    FaultKind,
    Job,
    MarketView,
    Order,
    TaskOrder,
    TaskRecord,
    TaskState,
    TaskStatus,
)
from cluster.engine.network import Placement
from cluster.engine.telemetry import OPERATOR_HOST_METRICS, Exporter, Telemetry
from cluster.engine.transport import HostLost, Transport
from protocol.auction import run_dutch_auction
from protocol.errors import OperatorNotActive
from protocol.market import (
    AskFactors,
    compute_ask_factors,
    compute_ask_from,
    compute_required_collateral,
    is_coprocessor_eligible,
)
from protocol.reputation import compute_reputation
from protocol.state import Coprocessor, Outcome
from protocol.units import Address, Amount, ppm_of

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
        self.coordinator = coordinator
        self.hosts = list(coprocessor_hosts)
        self.host_of = Placement.of(config).coprocessor_host
        self.pricing: dict[Address, tuple[int, Amount]] = {
            c.name: (c.cost_ppm, c.margin) for c in config.network.coprocessors
        }
        self.transport = transport
        coprocessors = config.network.coprocessors
        self.execution = execution if execution is not None else RealExecution(coprocessors)
        self.down_until: dict[int, float] = {}
        self.strikes: dict[int, int] = {}
        self.view: MarketView | None = None
        self.factor_cache: dict[tuple[int, int, float], AskFactors] = {}
        self.telemetry = Telemetry(
            OPERATOR_HOST_METRICS, self.make_exporter(network, OPERATOR_HOST_METRICS)
        )

    def make_exporter(self, network: str, names: tuple[str, ...]) -> Exporter | None:
        """Return where metrics go besides memory: nowhere here; Ray's actor overrides it."""
        return None

    # --- the auction ---------------------------------------------------------------

    def available_hosts(self) -> set[int]:
        now = time.monotonic()
        return {i for i in range(len(self.hosts)) if self.down_until.get(i, 0.0) <= now}

    def auction(
        self,
        order: TaskOrder,
        book: dict[Address, Coprocessor],
        factors: dict[Address, AskFactors],
        excluded: set[Address],
    ) -> tuple[Address, Amount] | None:
        """Clear one task's Dutch auction on ``book`` (updated in place); None: no taker.

        ``factors`` caches each coprocessor's ask factors at its current load;
        a winner's entry is dropped, since its load changed.
        """
        up = self.available_hosts()
        names = [n for n in sorted(book) if n not in excluded and self.host_of.get(n) in up]
        if not names:
            return None
        fee, params = order.fee, self.params
        required = compute_required_collateral(fee, params)
        eligible, asks, reputation, load = [], [], [], []
        for name in names:
            c = book[name]
            ok = is_coprocessor_eligible(c, params, required)
            ask = 0
            if ok:
                if name not in factors:
                    factors[name] = self.ask_factors(c)
                cost_ppm, margin = self.pricing.get(name, (0, 0))
                ask = compute_ask_from(factors[name], fee, ppm_of(fee, cost_ppm), margin, params)
            asks.append(ask)
            eligible.append(ok)
            reputation.append(compute_reputation(c.reputation_f))
            load.append(c.load / c.capacity)
        result = run_dutch_auction(
            fee,
            asks,
            step_ppm=params.auction_step,
            reserve_ppm=params.reserve_ratio,
            reputation=reputation,
            load=load,
            eligible=eligible,
        )
        if result.winner is None:
            return None
        winner = book[names[result.winner]]
        winner.load += 1
        winner.free -= required
        factors.pop(winner.address, None)
        return winner.address, result.price

    def ask_factors(self, c: Coprocessor) -> AskFactors:
        """Return ``c``'s ask factors, memoised on what they depend on (load, reputation)."""
        key = (c.load, c.capacity, c.reputation_f)
        found = self.factor_cache.get(key)
        if found is None:
            if len(self.factor_cache) > 100_000:
                self.factor_cache.clear()
            found = self.factor_cache[key] = compute_ask_factors(c, self.params)
        return found

    def is_self_executed(self, order: TaskOrder) -> bool:
        limit = self.market.self_execute_max_size.get(order.spec.kind)
        return limit is not None and order.spec.size <= limit

    # --- one batch --------------------------------------------------------------------

    def process(
        self, orders: Sequence[TaskOrder], escrowed: Escrowed
    ) -> tuple[list[TaskRecord], MarketView]:
        """Run a batch to an outcome per task; return ``tasks.csv`` rows and the newest view.

        ``escrowed`` is the coordinator's answer to the batch's escrow (the call
        waits for it): the tasks' ids and the view it carried.
        """
        call, get = self.transport.call, self.transport.get
        self.view = escrowed.view
        by_id = {escrowed.first_id + o.slot: o for o in orders}
        excluded: dict[int, set[Address]] = {t: set() for t in by_id}
        attempts: dict[int, int] = dict.fromkeys(by_id, 0)
        placed: dict[int, tuple[Address | None, Amount]] = {}
        records: dict[int, TaskRecord] = {}
        pending = list(by_id)
        for _ in range(3 * self.params.max_attempts + 3):
            if not pending:
                break
            # The auction changes loads and free collateral (ints): its own shallow copies.
            book = {name: copy.copy(c) for name, c in self.view.coprocessors.items()}
            factors: dict[Address, AskFactors] = {}
            out: list[Order] = []
            for t in pending:
                order = by_id[t]
                won = None
                if not self.is_self_executed(order):
                    won = self.auction(order, book, factors, excluded[t])
                out.append((t, order.operator, *won) if won else (t, order.operator, None, None))
            states, self.view = get(call(self.coordinator, "assign", out))
            local: list[int] = []
            jobs: dict[int, list[Job]] = {}
            retry: list[int] = []
            for t in pending:
                state = states[t]
                if state.status == TaskStatus.ASSIGNED:
                    attempts[t] = state.attempts
                    placed[t] = (state.coprocessor, state.price)
                    if state.coprocessor is None:
                        local.append(t)
                    else:
                        job = Job(t, state.coprocessor, by_id[t].spec, state.attempts)
                        jobs.setdefault(self.host_of[state.coprocessor], []).append(job)
                elif state.is_finished or state.status == TaskStatus.UNKNOWN:
                    records[t] = self.record(by_id[t], state, placed, attempts)
                elif isinstance(state.refusal, OperatorNotActive):
                    log.warning("operator host %d: %s", self.index, state.refusal)
                    records[t] = self.record(by_id[t], state, placed, attempts)
                else:
                    retry.append(t)
            futures = {h: call(self.hosts[h], "execute", batch) for h, batch in jobs.items()}
            settled: list[int] = []
            for t in local:
                self.execution.run_own(by_id[t].spec)  # the operator's own run, trusted
                settled.append(t)
            faults = self.collect(futures, jobs, settled)
            states, self.view = get(call(self.coordinator, "report", settled, faults))
            for t in [*settled, *(f.task_id for f in faults)]:
                state = states[t]
                if state.status == TaskStatus.OPEN:
                    attempts[t] = state.attempts
                    excluded[t].update(f.coprocessor for f in faults if f.task_id == t)
                    retry.append(t)
                else:
                    records[t] = self.record(by_id[t], state, placed, attempts)
            pending = retry
        for t in pending:  # still open after every try: the coordinator's deadline decides
            records[t] = self.record(by_id[t], TaskState(t, TaskStatus.OPEN), placed, attempts)
        rows = [records[t] for t in by_id]
        self.observe(rows)
        return rows, self.view

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
        prepared = {j.task_id: self.execution.prepare(j) for batch in jobs.values() for j in batch}
        ready, _ = self.transport.wait(
            list(futures.values()), len(futures), self.market.execute_timeout_s
        )
        done = {id(f) for f in ready}
        for h, future in futures.items():
            try:
                if id(future) not in done:
                    raise HostLost(f"no answer in {self.market.execute_timeout_s} s")
                results = self.transport.get(future, 0)
                self.strikes.pop(h, None)
            except HostLost as exc:
                strikes = self.strikes.get(h, 0) + 1
                self.strikes[h] = strikes
                pause = self.market.host_cooldown_s * 2 ** (strikes - 1)
                self.down_until[h] = time.monotonic() + pause
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

    def record(
        self,
        order: TaskOrder,
        state: TaskState,
        placed: dict[int, tuple[Address | None, Amount]],
        attempts: dict[int, int],
    ) -> TaskRecord:
        coprocessor, price = placed.get(state.task_id, (None, 0))
        settled = state.is_paid
        tries = attempts.get(state.task_id, 0) + (1 if settled else 0)
        return TaskRecord(
            task_id=state.task_id,
            kind=order.spec.kind,
            size=order.spec.size,
            operator=order.operator,
            coprocessor=(coprocessor or "") if settled else "",
            fee=order.fee,
            price=price if settled else 0,
            attempts=max(tries, state.attempts),
            outcome=state.status,
            latency_s=round(time.time() - order.submitted_at, 4),
        )
