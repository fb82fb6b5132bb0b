"""The coordinator: owns the protocol ledger and applies batches to it.

A plain class (the Ray actor is a thin wrapper, see ``cluster.runtime.actors``).
Its constructor is also its recovery: when the run directory already holds a
ledger, it rebuilds the state from the newest snapshot plus the log before it
answers anything. Every method commits its transactions (one group commit)
before it returns, so a reply means durable, and every method is idempotent
per task id, so a call retried after a restart applies nothing twice.

Beside it, each with one job: the round clock (``clock``), the status table
(``status``) and the experiments' injected faults (``faults``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.config.schema import CLIENT, RunConfig
from cluster.engine.clock import RoundClock
from cluster.engine.faults import RewardMisses
from cluster.engine.market import MarketEngine, Pricing
from cluster.engine.messages import (
    Assignment,
    Cleared,
    Fault,
    FaultKind,
    Receipt,
    TaskState,
    TaskStatus,
)
from cluster.engine.network import SNAPSHOT_RATIO, Placement, create_network
from cluster.engine.signing import SignedTx, apply_signed
from cluster.engine.status import RoundTally, network_status
from cluster.engine.telemetry import COORDINATOR_METRICS, Exporter, Telemetry
from protocol import Protocol, ProtocolError
from protocol.ledger import LOG_NAME, Ledger
from protocol.state import Outcome
from protocol.units import TOKEN, Address, Amount, Round

log = logging.getLogger("stakeray.coordinator")


@dataclass(frozen=True, slots=True)
class Report:
    """An operator host's outcomes of one batch, held until the batch's turn."""

    session: str
    settled: list[int]
    faults: list[Fault]
    audited: list[int]

    def first_task(self) -> int:
        return min([*self.settled, *(f.task_id for f in self.faults)], default=-1)


CONFIG_FILE = "config.json"
"""The network's config, written beside the ledger so the directory describes itself."""


class Coordinator:
    """Owns :class:`Protocol` and its durable log under ``directory/ledger``."""

    def __init__(self, config: RunConfig, directory: str, *, fsync: bool = True) -> None:
        self.config = config
        self.directory = Path(directory)
        ledger_dir = self.directory / "ledger"
        self.recovered = (ledger_dir / LOG_NAME).exists()
        if self.recovered:
            self.ledger = Ledger.open(ledger_dir, snapshot_ratio=SNAPSHOT_RATIO, fsync=fsync)
            log.warning("coordinator: recovered round %d from %s", self.p.round, ledger_dir)
        else:
            self.ledger = create_network(config, ledger_dir, fsync=fsync)
            (self.directory / CONFIG_FILE).write_text(config.model_dump_json(indent=2))
        self.ledger.commit_rounds = False  # every method below commits before it returns
        workload = config.workload
        self.default_deadline = workload.deadline_rounds if workload is not None else None
        self.misses = RewardMisses(config)
        self.clock = RoundClock(config.network.market.clock)
        self.tally = RoundTally()
        network_config = config.network
        self.market = network_config.market
        self.engine = MarketEngine(
            self.p,
            {c.name: Pricing(c.cost_ppm, c.margin_ppm) for c in network_config.coprocessors},
            seed=config.seed,
            resources={o.name: o.resources for o in network_config.operators},
            operators={o.name for o in network_config.operators},
        )
        self.host_of = Placement.of(config).coprocessor_host
        self.down_until: dict[int, float] = {}
        self.strikes: dict[int, int] = {}
        # Reports held for their batch's turn, and tasks to re-offer, per client session.
        self.window = self.market.max_inflight
        self.batches = 0
        self.applied = 0
        self.held: dict[int, list[Report]] = {}
        self.reoffered: dict[str, list[int]] = {}
        # Each assigned task's batch: its report's turn. A task whose outcome is held for
        # that turn is not late (the coordinator holds it), so it does not expire yet.
        self.turn: dict[int, int] = {}
        network = self.directory.name or "stakeray"
        self.telemetry = Telemetry(
            COORDINATOR_METRICS, self.make_exporter(network, COORDINATOR_METRICS)
        )
        if self.p.round == 0:
            self.advance_round()
        self.publish()

    @property
    def p(self) -> Protocol:
        return self.ledger.protocol

    def make_exporter(self, network: str, names: tuple[str, ...]) -> Exporter | None:
        """Return where metrics go besides memory: nowhere here; Ray's actor overrides it."""
        return None

    # --- reads ------------------------------------------------------------------

    def ping(self) -> Round:
        return self.p.round

    def describe(self) -> dict[str, Any]:
        """Return what a client needs: the config (JSON), the run directory, the chain id."""
        return {
            "config": self.config.model_dump_json(),
            "directory": str(self.directory),
            "chain_id": self.chain_id(),
        }

    def chain_id(self) -> str:
        """Return the network's chain id (its genesis hash), which signed transactions carry."""
        return self.ledger.chain_id

    def task_state(self, task_id: int, refusal: ProtocolError | None = None) -> TaskState:
        state = self.p.state
        task = state.tasks.get(task_id)
        if task is not None:
            return TaskState(
                task_id,
                TaskStatus.ASSIGNED if task.assigned else TaskStatus.OPEN,
                task.operator,
                task.coprocessor,
                task.price,
                task.attempts,
                refusal,
            )
        done = state.finished.get(task_id)  # recent outcomes; older ones are in the log
        if done is not None:
            return TaskState(task_id, done[0], done[1], refusal=refusal)
        return TaskState(task_id, TaskStatus.UNKNOWN, refusal=refusal)

    def nonce(self, address: Address) -> int:
        return int(self.p.nonce(address))

    # --- the task pipeline --------------------------------------------------------

    def escrow(
        self,
        key: str,
        fees: Sequence[Amount],
        deadline_rounds: int | None = None,
        difficulties: Sequence[float] = (),
    ) -> Cleared:
        """Escrow a batch under fresh ids and clear it: one escrow and one assignment
        transaction, one commit. Return the assignments of its tasks and of the client's
        re-offered tasks.

        Batches clear in the order they come, and before batch ``k`` clears,
        the reports of batches up to ``k - max_inflight`` are applied, in batch
        order, and no others: the gateway sends batch ``k`` only once those are
        done, so the state each batch clears on depends on the workload alone,
        not on timing (reproducible runs). An empty batch applies every report
        held (a client's flush). ``key`` names the batch (``SESSION-N``): a
        call retried after a restart finds its key in the ledger and gets the
        same ids, escrowed and cleared once. ``difficulties``: each task's
        difficulty for the self-execution split (default 0: operators run them).
        """
        state = self.p.state
        session = key.rpartition("-")[0]
        self.batches += 1
        batch = self.batches
        self.apply_reports(batch - self.window if fees else None)
        first = state.escrow_keys.get(key)
        new: list[tuple[int, float]] = []
        retried: list[int] = []
        if first is None:
            deadline = deadline_rounds if deadline_rounds is not None else self.default_deadline
            first = self.engine.escrow(CLIENT, fees, key, deadline)
            levels = list(difficulties) or [0.0] * len(fees)
            new = list(zip(range(first, first + len(fees)), levels, strict=True))
        else:  # a retry: the batch's tasks keep what they got
            retried = list(range(first, first + len(fees)))
        reoffered = self.reoffered.pop(session, [])
        assignments = self.engine.clear(new, reoffered, self.unavailable())
        self.turn.update((a.task_id, batch) for a in assignments)
        self.tally.count_selected(self.engine, new, assignments)  # the allocation audit
        assignments.extend(a for a in map(self.assignment_of, retried) if a is not None)
        self.maybe_advance()
        self.ledger.commit()  # one group commit for the reports, the batch and a round close
        return Cleared(first, batch, assignments, self.p.round)

    def assignment_of(self, task_id: int) -> Assignment | None:
        """Return an open task's assignment (None: unassigned or finished)."""
        task = self.p.state.tasks.get(task_id)
        if task is None or not task.assigned or task.operator is None:
            return None
        return Assignment(task_id, task.operator, task.coprocessor, task.price, task.attempts)

    def report(
        self,
        key: str,
        batch: int,
        settled: Sequence[int],
        faults: Sequence[Fault] = (),
        audited: Sequence[int] = (),
    ) -> int:
        """Take an operator host's outcomes of a batch; applied in batch order (see
        :meth:`escrow`): at once if that batch's turn has passed, else held until it
        comes. Return the batch."""
        self.held.setdefault(batch, []).append(
            Report(key.rpartition("-")[0], list(settled), list(faults), list(audited))
        )
        if batch <= self.applied:
            self.apply_reports(self.applied)
            self.ledger.commit()
        return batch

    def apply_reports(self, up_to: int | None) -> None:
        """Apply the held reports of batches up to ``up_to`` (None: all), in batch order;
        the caller commits."""
        due = sorted(b for b in self.held if up_to is None or b <= up_to)
        if up_to is not None:
            self.applied = max(self.applied, up_to)
        for batch in due:
            # A batch's hosts report in any order; their tasks are disjoint: apply by task id.
            for report in sorted(self.held.pop(batch), key=Report.first_task):
                self.apply_report(report)
            self.maybe_advance()  # the clock sees each batch, as if it had come alone
        if due:
            self.publish()

    def apply_report(self, report: Report) -> None:
        """Apply one report: its faults, settlements and audit faults in one transaction.

        A safety fault slashes (``fail_coprocessor``); a liveness fault
        (``miss_coprocessor``) only ends the attempt, unpaid, and its host sits
        out a cooldown. A fault or settlement already applied (a retried call)
        is skipped. Faulted tasks still open go to the client's next batch.
        """
        tasks = self.p.state.tasks
        safety: list[int] = []
        liveness: list[int] = []
        for fault in report.faults:
            task = tasks.get(fault.task_id)
            if task is None or not task.assigned:
                continue
            if task.coprocessor != fault.coprocessor or task.attempts != fault.attempt:
                continue  # already applied before a restart
            if fault.kind == FaultKind.SAFETY:
                safety.append(fault.task_id)
            else:
                liveness.append(fault.task_id)
                self.cool_down(fault.coprocessor)
        faulted = {*safety, *liveness}
        for t in (*report.settled, *(f.task_id for f in report.faults)):
            self.turn.pop(t, None)
        ready = [t for t in dict.fromkeys(report.settled) if t in tasks and tasks[t].assigned]
        ready = [t for t in ready if t not in faulted]
        audited = [t for t in report.audited if t in ready and tasks[t].coprocessor is None]
        for t in ready:
            task = tasks[t]
            assert task.operator is not None
            self.tally.add_fee(task.operator, task.price)
        count = self.engine.settle(ready, safety, liveness, audited)
        self.clock.count(count)
        self.telemetry.count("stakeray_tasks_settled", count)
        self.telemetry.count("stakeray_slashes", len(safety))
        self.telemetry.count("stakeray_liveness_faults", len(liveness))
        self.count_outcomes(faulted)
        again = [t for t in sorted(faulted) if t in tasks and not tasks[t].assigned]
        if again:
            self.reoffered.setdefault(report.session, []).extend(again)

    def is_held(self, task_id: int) -> bool:
        """Whether ``task_id``'s outcome may be in a report held for a later turn."""
        return self.turn.get(task_id, 0) > self.applied

    def cool_down(self, coprocessor: Address) -> None:
        """Keep a host that lost a job out of auctions for a while (doubling while it keeps
        failing): a liveness fault says nothing about its results, only its reach."""
        host = self.host_of.get(coprocessor)
        if host is None:
            return
        now = time.monotonic()
        if self.down_until.get(host, 0.0) > now:
            return  # one strike per outage, however many jobs it held
        strikes = self.strikes.get(host, 0) + 1
        self.strikes[host] = strikes
        self.down_until[host] = now + self.market.host_cooldown_s * 2 ** (strikes - 1)
        log.warning("coordinator: coprocessor host %d cools down (strike %d)", host, strikes)

    def unavailable(self) -> set[Address]:
        """Return the coprocessors whose host is cooling down."""
        now = time.monotonic()
        down = {h for h, until in self.down_until.items() if until > now}
        return {c for c, h in self.host_of.items() if h in down} if down else set()

    # --- rounds -------------------------------------------------------------------

    def maybe_advance(self) -> Round:
        """Start the next round when the clock says so (the caller commits)."""
        if self.clock.is_due():
            self.close_round()
        return self.p.round

    def advance_round(self) -> Round:
        """Initialize the next round, call reward for active operators, expire late tasks."""
        n = self.close_round()
        self.ledger.commit()
        return n

    def close_round(self) -> Round:
        """:meth:`advance_round` without the commit (the caller's group commit has it)."""
        n, rewards, expired = self.engine.close_round(self.misses.is_missed, self.is_held)
        for t in expired:
            self.turn.pop(t, None)
        self.tally.next_round()
        self.tally.rewards.update(rewards)
        self.telemetry.count(
            "stakeray_liveness_faults",
            sum(1 for t in expired if self.p.state.finished.get(t, (None,))[0] == Outcome.FAILED),
        )
        self.count_outcomes(expired)
        self.clock.restart()
        self.publish()
        return n

    def drain(self, max_rounds: int = 64) -> Round:
        """Apply every held report, then advance rounds until every task has an outcome
        (deadlines expire the stragglers)."""
        self.apply_reports(None)
        self.applied = self.batches  # every report is in: nothing is held any more
        for _ in range(max_rounds):
            if not self.p.state.tasks:
                break
            self.close_round()
        self.ledger.commit()
        return self.p.round

    # --- metrics ------------------------------------------------------------------

    def count_outcomes(self, task_ids: Collection[int]) -> None:
        """Count the refunds and failures among ``task_ids`` that now have an outcome."""
        finished = self.p.state.finished
        for outcome in (Outcome.REFUNDED, Outcome.FAILED):
            n = sum(1 for t in task_ids if t in finished and finished[t][0] == outcome)
            self.telemetry.count(f"stakeray_tasks_{outcome}", n)

    def publish(self) -> None:
        """Set the gauges: round, total active stake (tokens), open tasks."""
        self.telemetry.set("stakeray_round", self.p.round)
        self.telemetry.set("stakeray_total_stake_tokens", self.p.total_active_stake / TOKEN)
        self.telemetry.set("stakeray_open_tasks", len(self.p.state.tasks))

    # --- outside transactions, status, the end ------------------------------------------

    def submit_signed(self, signed: SignedTx) -> Receipt:
        """Apply a signed transaction; return its result or the refusal."""
        try:
            result = apply_signed(self.p, signed, self.ledger.chain_id)
        except ProtocolError as exc:
            return Receipt(refusal=exc)
        self.ledger.commit()
        return Receipt("" if result is None else str(result))

    def status(self) -> dict[str, Any]:
        """Return the operator and coprocessor tables, the network totals and the metrics."""
        return {
            **network_status(self.p, self.tally),
            "chain_id": self.ledger.chain_id,
            "recovered": self.recovered,
            "metrics": self.telemetry.snapshot(),
        }

    def finish(self) -> dict[str, Any]:
        """Snapshot, check every invariant, and return the summary's ledger fields."""
        self.ledger.snapshot()
        try:
            self.p.check_invariants()
            conservation_ok = True
        except AssertionError as exc:
            log.error("coordinator: invariant failed: %s", exc)
            conservation_ok = False
        t = self.p.state.totals
        stake_dust, fee_dust = self.p.unclaimable()
        return {
            "rounds": self.p.round,
            "minted": t.minted,
            "burned": t.burned,
            "total_supply": self.p.total_supply,
            "treasury": self.p.treasury,
            "inflation_ppb": self.p.inflation,
            "conservation_ok": conservation_ok,
            "unclaimable_dust": {"stake": stake_dust, "fees": fee_dust},
            "state_hash": self.p.state_hash(),
        }

    def close(self) -> None:
        self.ledger.close()
