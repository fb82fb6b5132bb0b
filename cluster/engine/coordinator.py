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

import copy
import logging
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from cluster.config.schema import CLIENT, RunConfig
from cluster.engine.clock import RoundClock
from cluster.engine.faults import RewardMisses
from cluster.engine.messages import (
    Escrowed,
    Fault,
    FaultKind,
    MarketView,
    Order,
    Receipt,
    TaskState,
    TaskStatus,
)
from cluster.engine.network import create_network
from cluster.engine.signing import SignedTx, apply_signed
from cluster.engine.status import RoundTally, network_status
from cluster.engine.telemetry import COORDINATOR_METRICS, Exporter, Telemetry
from protocol import Protocol, ProtocolError
from protocol.ledger import LOG_NAME, Ledger
from protocol.market import get_due_tasks
from protocol.state import Coprocessor, Outcome
from protocol.units import TOKEN, Address, Amount, Round

log = logging.getLogger("stakeray.coordinator")

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
            self.ledger = Ledger.open(ledger_dir, fsync=fsync)
            log.warning("coordinator: recovered round %d from %s", self.p.round, ledger_dir)
        else:
            self.ledger = create_network(config, ledger_dir, fsync=fsync)
            (self.directory / CONFIG_FILE).write_text(config.model_dump_json(indent=2))
        workload = config.workload
        self.default_deadline = workload.deadline_rounds if workload is not None else None
        self.misses = RewardMisses(config)
        self.clock = RoundClock(config.network.market.clock)
        self.tally = RoundTally()
        self.snapshots: dict[Address, Coprocessor] = {}
        self.stale: set[Address] | None = None  # None: every coprocessor
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

    def view(self) -> MarketView:
        """Return the round, the active set's stakes and a snapshot of every coprocessor.

        Snapshots are shared by reference and never changed: a coprocessor a
        batch touched gets a fresh copy, the others keep theirs, so a view
        costs O(changed), not O(coprocessors) deep copies.
        """
        live = self.p.state.coprocessors
        stale = live if self.stale is None else self.stale
        for name in stale:
            if name in live:
                self.snapshots[name] = copy.copy(live[name])  # no field is shared but locks
        self.stale = set()
        return MarketView(self.p.round, dict(self.p.state.active), dict(self.snapshots))

    def touch(self, names: Iterable[Address] | None = None) -> None:
        """Mark coprocessors changed (``None``: all of them) for the next :meth:`view`."""
        if names is None or self.stale is None:
            self.stale = None
        else:
            self.stale.update(names)

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
        self, key: str, fees: Sequence[Amount], deadline_rounds: int | None = None
    ) -> Escrowed:
        """Escrow the client's fees for a batch of new tasks under fresh ids; return the first.

        ``key`` names the batch: a call retried after a restart finds its key in
        the ledger and gets the same ids, escrowed once. The deadline goes to
        the ledger with the tasks (default: the workload's, else the network's).
        """
        state = self.p.state
        first = state.escrow_keys.get(key)
        if first is None:
            first = state.next_task_id
            rows = [(first + i, fee) for i, fee in enumerate(fees)]
            deadline = deadline_rounds if deadline_rounds is not None else self.default_deadline
            self.p.escrow_tasks(CLIENT, rows, key, deadline)
            self.ledger.commit()
        self.maybe_advance()
        return Escrowed(first, self.view())

    def assign(self, orders: Sequence[Order]) -> tuple[dict[int, TaskState], MarketView]:
        """Record a batch's assignments in one transaction; a task already assigned keeps
        (and reports) its assignment, a refused one reports its refusal."""
        tasks = self.p.state.tasks
        fresh = [o for o in orders if o[0] in tasks and not tasks[o[0]].assigned]
        refused = self.p.assign_tasks(fresh) if fresh else {}
        self.touch(o[2] for o in fresh if o[2] is not None)
        if fresh:
            self.ledger.commit()
        out = {o[0]: self.task_state(o[0], refused.get(o[0])) for o in orders}
        return out, self.view()

    def report(
        self, settled: Sequence[int], faults: Sequence[Fault]
    ) -> tuple[dict[int, TaskState], MarketView]:
        """Apply a batch's faults and settle its verified tasks in one transaction; return
        their states.

        A safety fault slashes (``fail_coprocessor``); a liveness fault
        (``miss_coprocessor``) only ends the attempt, unpaid. A fault or a
        settlement applied before a restart is skipped, so a retried call
        applies nothing twice.
        """
        tasks = self.p.state.tasks
        safety: list[int] = []
        liveness: list[int] = []
        for fault in faults:
            task = tasks.get(fault.task_id)
            if task is None or not task.assigned:
                continue
            if task.coprocessor != fault.coprocessor or task.attempts != fault.attempt:
                continue  # already applied before a restart
            (safety if fault.kind == FaultKind.SAFETY else liveness).append(fault.task_id)
        faulted = {*safety, *liveness}
        ready = [t for t in dict.fromkeys(settled) if t in tasks and tasks[t].assigned]
        ready = [t for t in ready if t not in faulted]
        for t in ready:
            task = tasks[t]
            assert task.operator is not None
            self.tally.add_fee(task.operator, task.price)
        self.touch(tasks[t].coprocessor for t in [*ready, *faulted])
        count = 0
        if ready or faulted:
            count = self.p.settle_batch(ready, safety, liveness)
            self.ledger.commit()
        self.clock.count(count)
        self.telemetry.count("stakeray_tasks_settled", count)
        self.telemetry.count("stakeray_slashes", len(safety))
        self.telemetry.count("stakeray_liveness_faults", len(liveness))
        self.count_outcomes({f.task_id for f in faults})
        states = {t: self.task_state(t) for t in [*settled, *(f.task_id for f in faults)]}
        self.maybe_advance()
        self.publish()
        return states, self.view()

    # --- rounds -------------------------------------------------------------------

    def maybe_advance(self) -> Round:
        """Start the next round when the clock says so."""
        if self.clock.is_due():
            self.advance_round()
        return self.p.round

    def advance_round(self) -> Round:
        """Initialize the next round, call reward for active operators, expire late tasks."""
        self.touch()  # reputations change with the round
        n = self.p.initialize_round()
        self.tally.next_round()
        for operator in sorted(self.p.active_set):
            if self.misses.is_missed(operator, n):
                continue
            self.tally.rewards[operator] = self.p.reward(operator)
        expired = get_due_tasks(self.p.state, n)  # O(expired): the ledger indexes deadlines
        for task_id in expired:
            try:
                if self.p.state.tasks[task_id].assigned:  # its operator's liveness fault
                    self.p.expire_task(task_id)
                    self.telemetry.count("stakeray_liveness_faults")
                else:
                    self.p.refund_task(task_id)
            except ProtocolError as exc:
                log.warning("coordinator: cannot expire task %d: %s", task_id, exc)
        self.ledger.commit()
        self.count_outcomes(expired)
        self.clock.restart()
        self.publish()
        return n

    def drain(self, max_rounds: int = 64) -> Round:
        """Advance rounds until every task has an outcome (deadlines expire the stragglers)."""
        for _ in range(max_rounds):
            if not self.p.state.tasks:
                break
            self.advance_round()
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
        self.touch()  # a signed transaction may register or fund a coprocessor
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
