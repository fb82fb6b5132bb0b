"""The coordinator: owns the protocol ledger, applies batches, drives the round clock.

A plain class (the Ray actor is a thin wrapper, see ``cluster.runtime.actors``). Its
constructor is also its recovery: when the run directory already holds a
ledger, it rebuilds the state from the newest snapshot plus the log before it
answers anything. Every method commits its transactions (one group commit)
before it returns, so a reply means durable, and every method is idempotent
per task id, so a call retried after a restart applies nothing twice.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.config.schema import CLIENT, RunConfig
from cluster.engine.network import create_network
from cluster.engine.signing import SignedTx, apply_signed
from cluster.engine.telemetry import COORDINATOR_METRICS, Telemetry
from cluster.runtime.nodes import current_node_id
from protocol import ProtocolError
from protocol.ledger import LOG_NAME, Ledger
from protocol.state import Coprocessor
from protocol.units import TOKEN, Address, Amount, Round

log = logging.getLogger("stakeray.coordinator")

Fault = tuple[int, Address, int]
"""``(task_id, coprocessor, attempt)``: the coprocessor failed the task's attempt."""

CONFIG_FILE = "config.json"
"""The network's config, written beside the ledger so the directory describes itself."""

Order = tuple[int, Address, Address | None, Amount | None]
"""``(task_id, operator, coprocessor or None, price or None)``: an assignment to record."""


@dataclass(frozen=True, slots=True)
class MarketView:
    """What operator hosts and the gateway need: the round, active stakes, coprocessors."""

    round: Round
    active: dict[Address, Amount]
    coprocessors: dict[Address, Coprocessor]


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task as the ledger holds it: ``status`` is open, assigned, or its final outcome."""

    task_id: int
    status: str
    operator: Address | None = None
    coprocessor: Address | None = None
    price: Amount = 0
    attempts: int = 0
    reason: str = ""


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
        self.default_deadline = workload.deadline_rounds if workload is not None else 3
        self.deadlines: dict[int, int] = {}
        self.misses = {op.name: op.miss_rate for op in config.network.operators}
        self.clock = config.network.market.clock
        self.settled_since = 0
        self.round_started = time.monotonic()
        self.round_rewards: dict[Address, Amount] = {}
        self.round_fees: dict[Address, Amount] = {}
        self.last_rewards: dict[Address, Amount] = {}
        self.last_fees: dict[Address, Amount] = {}
        self.telemetry = Telemetry(self.directory.name or "stakeray", COORDINATOR_METRICS)
        if self.p.round == 0:
            self.advance_round()
        self.publish()

    @property
    def p(self) -> Any:
        return self.ledger.protocol

    # --- reads ------------------------------------------------------------------

    def ping(self) -> Round:
        return self.p.round

    def describe(self) -> dict[str, Any]:
        """Return what a client needs: the config (JSON), the run directory and its node."""
        return {
            "config": self.config.model_dump_json(),
            "directory": str(self.directory),
            "node_id": current_node_id(),
        }

    def view(self) -> MarketView:
        """Return the round, the active set's stakes and a copy of every coprocessor."""
        state = self.p.state
        return MarketView(self.p.round, dict(state.active), copy.deepcopy(state.coprocessors))

    def task_state(self, task_id: int, reason: str = "") -> TaskState:
        state = self.p.state
        task = state.tasks.get(task_id)
        if task is not None:
            return TaskState(
                task_id,
                "assigned" if task.assigned else "open",
                task.operator,
                task.coprocessor,
                task.price,
                task.attempts,
                reason,
            )
        done = state.finished.get(task_id)
        if done is not None:
            return TaskState(task_id, done[0], done[1], reason=reason)
        return TaskState(task_id, "unknown", reason=reason)

    def task_states(self, task_ids: Sequence[int]) -> dict[int, TaskState]:
        return {t: self.task_state(t) for t in task_ids}

    def nonce(self, address: Address) -> int:
        return int(self.p.nonce(address))

    def open_tasks(self) -> int:
        return len(self.p.state.tasks)

    def next_task_id(self) -> int:
        """Return the first task id no task has used (so each submission gets fresh ids)."""
        state = self.p.state
        return max([*state.tasks, *state.finished], default=-1) + 1

    # --- the task pipeline --------------------------------------------------------

    def escrow(
        self, rows: Sequence[tuple[int, Amount]], deadline_rounds: int | None = None
    ) -> MarketView:
        """Escrow the client's fees for new tasks (ids seen before are skipped)."""
        state = self.p.state
        fresh = [(t, fee) for t, fee in rows if t not in state.tasks and t not in state.finished]
        if fresh:
            self.p.escrow_tasks(CLIENT, fresh)
            self.ledger.commit()
        deadline = deadline_rounds if deadline_rounds is not None else self.default_deadline
        for t, _ in fresh:
            self.deadlines[t] = deadline
        self.maybe_advance()
        return self.view()

    def assign(self, orders: Sequence[Order]) -> tuple[dict[int, TaskState], MarketView]:
        """Record assignments; a task already assigned keeps (and reports) its assignment."""
        out: dict[int, TaskState] = {}
        for task_id, operator, coprocessor, price in orders:
            task = self.p.state.tasks.get(task_id)
            if task is None or task.assigned:
                out[task_id] = self.task_state(task_id)
                continue
            try:
                self.p.assign_task(task_id, operator, coprocessor, price)
            except ProtocolError as exc:
                out[task_id] = self.task_state(task_id, f"{type(exc).__name__}: {exc}")
                continue
            out[task_id] = self.task_state(task_id)
        self.ledger.commit()
        return out, self.view()

    def report(
        self, settled: Sequence[int], faults: Sequence[Fault]
    ) -> tuple[dict[int, TaskState], MarketView]:
        """Apply coprocessor faults, then settle verified tasks; return their states."""
        state = self.p.state
        for task_id, coprocessor, attempt in faults:
            task = state.tasks.get(task_id)
            if task is None or not task.assigned:
                continue
            if task.coprocessor != coprocessor or task.attempts != attempt:
                continue  # already applied before a restart
            if self.p.fail_coprocessor(task_id) > 0:
                self.telemetry.count("stakeray_slashes")
        ready = [t for t in settled if t in state.tasks and state.tasks[t].assigned]
        for t in ready:
            task = state.tasks[t]
            assert task.operator is not None
            self.round_fees[task.operator] = self.round_fees.get(task.operator, 0) + task.price
        count = self.p.settle_tasks(ready) if ready else 0
        self.ledger.commit()
        self.settled_since += count
        self.telemetry.count("stakeray_tasks_settled", count)
        self.count_outcomes({f[0] for f in faults})
        states = {t: self.task_state(t) for t in [*settled, *(f[0] for f in faults)]}
        self.maybe_advance()
        self.publish()
        return states, self.view()

    # --- the round clock ----------------------------------------------------------

    def maybe_advance(self) -> Round:
        """Start the next round when the clock says so (settled tasks or seconds)."""
        if (
            self.clock.every_tasks is not None and self.settled_since >= self.clock.every_tasks
        ) or (
            self.clock.every_s is not None
            and time.monotonic() - self.round_started >= self.clock.every_s
        ):
            self.advance_round()
        return self.p.round

    def tick(self) -> Round:
        return self.maybe_advance()

    def is_missed(self, operator: Address, n: Round) -> bool:
        """Whether ``operator`` misses its reward call in round ``n`` (seeded, replayable)."""
        rate = self.misses.get(operator, 0.0)
        return rate > 0 and random.Random(f"{self.config.seed}:{n}:{operator}").random() < rate

    def advance_round(self) -> Round:
        """Initialize the next round, call reward for active operators, expire late tasks."""
        n = self.p.initialize_round()
        self.last_rewards, self.round_rewards = self.round_rewards, {}
        self.last_fees, self.round_fees = self.round_fees, {}
        for operator in sorted(self.p.active_set):
            if self.is_missed(operator, n):
                continue
            self.round_rewards[operator] = self.p.reward(operator)
        expired: list[int] = []
        for task in list(self.p.state.tasks.values()):
            if n <= task.created_round + self.deadlines.get(task.id, self.default_deadline):
                continue
            try:
                if task.assigned:
                    if self.p.fail_operator(task.id) > 0:
                        self.telemetry.count("stakeray_slashes")
                else:
                    self.p.refund_task(task.id)
            except ProtocolError as exc:
                log.warning("coordinator: cannot expire task %d: %s", task.id, exc)
            self.deadlines.pop(task.id, None)
            expired.append(task.id)
        self.ledger.commit()
        self.count_outcomes(expired)
        self.settled_since = 0
        self.round_started = time.monotonic()
        self.publish()
        return n

    # --- metrics ------------------------------------------------------------------

    def count_outcomes(self, task_ids: Collection[int]) -> None:
        """Count the refunds and failures among ``task_ids`` that now have an outcome."""
        finished = self.p.state.finished
        for outcome in ("refunded", "failed"):
            n = sum(1 for t in task_ids if t in finished and finished[t][0] == outcome)
            self.telemetry.count(f"stakeray_tasks_{outcome}", n)

    def publish(self) -> None:
        """Set the gauges: round, total active stake (tokens), open tasks."""
        self.telemetry.set("stakeray_round", self.p.round)
        self.telemetry.set("stakeray_total_stake_tokens", self.p.total_active_stake / TOKEN)
        self.telemetry.set("stakeray_open_tasks", len(self.p.state.tasks))

    def drain(self, max_rounds: int = 64) -> Round:
        """Advance rounds until every task has an outcome (deadlines expire the stragglers)."""
        for _ in range(max_rounds):
            if not self.p.state.tasks:
                break
            self.advance_round()
        return self.p.round

    # --- outside transactions and reports -------------------------------------------

    def submit_signed(self, signed: SignedTx) -> tuple[bool, str]:
        """Apply a signed transaction; return ``(accepted, result or one-line refusal)``."""
        try:
            result = apply_signed(self.p, signed)
        except ProtocolError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        self.ledger.commit()
        return True, "" if result is None else str(result)

    def status(self) -> dict[str, Any]:
        """Return the operator and coprocessor tables and the network totals."""
        p, state = self.p, self.p.state
        delegators: dict[Address, int] = {}
        for address, d in state.delegators.items():
            if d.delegate is not None and d.delegate != address and d.bonded > 0:
                delegators[d.delegate] = delegators.get(d.delegate, 0) + 1
        operators = []
        for name in sorted(a for a, pool in state.pools.items() if pool.registered):
            cut, share = p.commission(name)
            operators.append(
                {
                    "operator": name,
                    "stake": p.operator_stake(name),
                    "delegators": delegators.get(name, 0),
                    "reward_cut": cut,
                    "fee_share": share,
                    "active": p.is_active(name),
                    "reputation": round(p.reputation(name), 4),
                    "rewards_last_round": self.last_rewards.get(name, 0),
                    "fees_last_round": self.last_fees.get(name, 0),
                    "rewards_this_round": self.round_rewards.get(name, 0),
                    "fees_this_round": self.round_fees.get(name, 0),
                }
            )
        coprocessors = [
            {
                "coprocessor": c.address,
                "collateral": c.free + c.locked,
                "locked": c.locked,
                "reputation": round(p.reputation(c.address), 4),
                "load": c.load,
                "capacity": c.capacity,
                "wins": c.wins,
                "slashes": c.slashes,
                "balance": p.balance(c.address),
            }
            for c in sorted(state.coprocessors.values(), key=lambda c: c.address)
        ]
        t = state.totals
        return {
            "round": p.round,
            "recovered": self.recovered,
            "open_tasks": len(state.tasks),
            "finished_tasks": len(state.finished),
            "total_supply": p.total_supply,
            "total_active_stake": p.total_active_stake,
            "minted": t.minted,
            "burned": t.burned,
            "inflation_ppb": p.inflation,
            "metrics": self.telemetry.snapshot(),
            "operators": operators,
            "coprocessors": coprocessors,
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
