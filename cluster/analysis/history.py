"""Per-round history of a run, rebuilt from its durable ledger log (the one source of truth).

Replays genesis and every frame of ``events.log``; each transaction is
attributed from the state *before* it applies (and from ``reward``'s return
value), and one row per registered operator and coprocessor is emitted at
the end of every round ``r >= 1``. ``auction_fees`` and ``auction_prices`` sum
the fee and the clearing price of the auctioned tasks (those a coprocessor
ran) settled that round, so ``auction_prices / auction_fees`` is the round's
mean clearing margin. ``replay_delegators`` follows each delegator's stake.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path

from protocol import Protocol
from protocol import transactions as tx
from protocol.ledger import read_log
from protocol.state import Outcome, State
from protocol.units import Address

ROUND_COLUMNS = [
    "round",
    "participant",
    "role",
    "active",
    "stake",
    "rewards",
    "fees",
    "reputation",
    "load",
    "tasks",
    "slashes",
    "auction_fees",
    "auction_prices",
    "liveness_faults",
]


@dataclass(frozen=True, slots=True)
class RoundRow:
    """One participant at the end of one round."""

    round: int
    participant: str
    role: str  # "operator" | "coprocessor"
    active: int
    stake: int
    rewards: int
    fees: int
    reputation: float
    load: float
    tasks: int
    slashes: int  # safety faults: a wrong result, slashed
    auction_fees: int = 0
    auction_prices: int = 0
    liveness_faults: int = 0  # no result in time: unpaid, never slashed as fraud


@dataclass(frozen=True, slots=True)
class DelegatorStake:
    """One delegator's pending stake when first seen at a round start, and at the end."""

    delegator: str
    operator: str
    start_round: int
    start: int
    end: int
    rounds: int  # rounds of rewards between ``start`` and ``end``


TASK_FAULTS = (tx.FailCoprocessor, tx.FailOperator, tx.MissCoprocessor, tx.ExpireTask)
"""Faults that end a task's attempt: safety (``fail_*``) and liveness (the others)."""


class _Round:
    """What happened in one round, accumulated transaction by transaction."""

    def __init__(self, protocol: Protocol) -> None:
        self.rewards: Counter[Address] = Counter()
        self.fees: Counter[Address] = Counter()
        self.tasks: Counter[Address] = Counter()
        self.slashes: Counter[Address] = Counter()
        self.liveness: Counter[Address] = Counter()
        self.auction_fees: Counter[Address] = Counter()
        self.auction_prices: Counter[Address] = Counter()
        self.peak = {a: c.load for a, c in protocol.state.coprocessors.items()}

    def before(self, protocol: Protocol, t: tx.Tx) -> None:
        """Attribute ``t`` from the state before it applies."""
        state = protocol.state
        if isinstance(t, tx.SettleTasks):
            self.settle(state, t.task_ids)
        elif isinstance(t, tx.SettleBatch):
            for task_id in t.safety:
                self.fault(state, task_id, safety=True, by_coprocessor=True)
            for task_id in t.liveness:
                self.fault(state, task_id, safety=False, by_coprocessor=True)
            self.settle(state, t.settled)
            for task_id in t.audited:  # settled by its operator alone, then caught by an audit
                task = state.tasks.get(task_id)
                if task is not None and task.operator is not None:
                    self.slashes[task.operator] += 1
        elif isinstance(t, TASK_FAULTS):
            by_coprocessor = isinstance(t, tx.FailCoprocessor | tx.MissCoprocessor)
            safety = isinstance(t, tx.FailCoprocessor | tx.FailOperator)
            self.fault(state, t.task_id, safety=safety, by_coprocessor=by_coprocessor)
        elif isinstance(t, tx.AuditFault | tx.SlashOperator):
            self.slashes[t.operator] += 1

    def settle(self, state: State, task_ids: list[int]) -> None:
        """Credit the fees of the open tasks among ``task_ids`` (each once)."""
        seen: set[int] = set()
        for task_id in task_ids:
            task = state.tasks.get(task_id)
            if task is None or task_id in seen:
                continue
            seen.add(task_id)
            if task.operator is not None:
                self.fees[task.operator] += task.price
                self.tasks[task.operator] += 1
            if task.coprocessor is not None:
                self.fees[task.coprocessor] += task.fee - task.price
                self.tasks[task.coprocessor] += 1
                for who in (task.operator, task.coprocessor):
                    if who is not None:
                        self.auction_fees[who] += task.fee
                        self.auction_prices[who] += task.price

    def fault(self, state: State, task_id: int, *, safety: bool, by_coprocessor: bool) -> None:
        """Count a fault against the task's coprocessor (or operator): slashed or liveness."""
        task = state.tasks.get(task_id)
        who = None if task is None else task.coprocessor if by_coprocessor else task.operator
        if who is not None:
            (self.slashes if safety else self.liveness)[who] += 1

    def after(self, protocol: Protocol, t: tx.Tx, result: object) -> None:
        """Attribute ``t`` from its result and the state after it."""
        coprocessors = protocol.state.coprocessors
        if isinstance(t, tx.Reward) and isinstance(result, int):
            self.rewards[t.operator] += result
        elif isinstance(t, tx.AssignTask) and t.coprocessor is not None:
            load = coprocessors[t.coprocessor].load
            self.peak[t.coprocessor] = max(self.peak.get(t.coprocessor, 0), load)
        elif isinstance(t, tx.AssignTasks):  # loads only rise within a batch: its end is its peak
            for name in {o[2] for o in t.orders if o[2] is not None}:
                self.peak[name] = max(self.peak.get(name, 0), coprocessors[name].load)

    def rows(self, protocol: Protocol) -> list[RoundRow]:
        """Return this round's rows, sorted by (role, participant)."""
        state, r = protocol.state, protocol.round
        rows = [
            RoundRow(
                round=r,
                participant=a,
                role="coprocessor",
                active=1,
                stake=c.free + c.locked,
                rewards=0,
                fees=self.fees[a],
                reputation=round(protocol.reputation(a), 6),
                load=max(self.peak.get(a, 0), c.load) / c.capacity,
                tasks=self.tasks[a],
                slashes=self.slashes[a],
                auction_fees=self.auction_fees[a],
                auction_prices=self.auction_prices[a],
                liveness_faults=self.liveness[a],
            )
            for a, c in sorted(state.coprocessors.items())
        ]
        rows += [
            RoundRow(
                round=r,
                participant=a,
                role="operator",
                active=int(protocol.is_active(a)),
                stake=protocol.operator_stake(a),
                rewards=self.rewards[a],
                fees=self.fees[a],
                reputation=round(protocol.reputation(a), 6),
                load=0.0,
                tasks=self.tasks[a],
                slashes=self.slashes[a],
                auction_fees=self.auction_fees[a],
                auction_prices=self.auction_prices[a],
                liveness_faults=self.liveness[a],
            )
            for a in sorted(state.pools)
            if protocol.is_registered(a)
        ]
        return rows


def replay_rounds(ledger_dir: str | Path) -> tuple[Protocol, list[RoundRow]]:
    """Replay the whole log of ``ledger_dir``; return the protocol and every round's rows."""
    rows: list[RoundRow] = []
    with read_log(ledger_dir) as (protocol, frames):
        current = _Round(protocol)
        for frame in frames:
            inner = tx.parse_tx(frame.tx) if isinstance(frame, tx.Signed) else frame
            if isinstance(inner, tx.InitializeRound):
                if protocol.round >= 1:
                    rows += current.rows(protocol)
                protocol.apply(frame)
                current = _Round(protocol)
                continue
            current.before(protocol, inner)
            result = protocol.apply(frame)
            current.after(protocol, inner, result)
    if protocol.round >= 1:
        rows += current.rows(protocol)
    return protocol, rows


def write_rounds_csv(ledger_dir: str | Path, path: str | Path) -> Protocol:
    """Write the per-round CSV of ``ledger_dir`` to ``path``; return the replayed protocol."""
    protocol, rows = replay_rounds(ledger_dir)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(ROUND_COLUMNS)
        writer.writerows(astuple(row) for row in rows)
    return protocol


def replay_delegators(ledger_dir: str | Path) -> tuple[Protocol, list[DelegatorStake]]:
    """Replay ``ledger_dir``; return the protocol and each delegator's stake path.

    A delegator's start is its pending stake right after the first round start
    at which it is bonded (before that round's rewards); its end is its pending
    stake after the last round. Operators' self-bonds and delegators that
    unbonded or moved to another operator are left out: their stake changed
    for reasons other than rewards.
    """
    first: dict[Address, tuple[Address, int, int]] = {}
    with read_log(ledger_dir) as (protocol, frames):
        for frame in frames:
            protocol.apply(frame)
            inner = tx.parse_tx(frame.tx) if isinstance(frame, tx.Signed) else frame
            if isinstance(inner, tx.InitializeRound):
                for address, d in protocol.state.delegators.items():
                    if d.delegate is not None and address not in first:
                        stake = protocol.pending_stake(address)
                        first[address] = (d.delegate, protocol.round, stake)
    final = protocol.round
    stakes = []
    for address, (operator, start_round, start) in sorted(first.items()):
        d = protocol.state.delegators[address]
        if address in protocol.state.pools or d.locks or d.delegate != operator:
            continue
        end = protocol.pending_stake(address)
        stakes.append(
            DelegatorStake(address, operator, start_round, start, end, final - start_round + 1)
        )
    return protocol, stakes


@dataclass
class LedgerTask:
    """A task as the log tells it: fee, assignment, attempts ended by faults, final outcome."""

    task_id: int
    fee: int = 0
    operator: str = ""
    coprocessor: str = ""
    price: int = 0
    faults: int = 0


Outcomes = dict[int, tuple[Outcome, Address | None]]
"""Task id -> its outcome and the operator it was charged to."""


def replay_tasks(
    ledger_dir: str | Path, details_of: Callable[[int], bool] = lambda task_id: False
) -> tuple[Outcomes, dict[int, LedgerTask]]:
    """Replay the log; return every task's outcome, and the details of those ``details_of``
    picks.

    Live state keeps only recent outcomes (``protocol.market.forget_old_outcomes``),
    so the outcomes of a whole run come from here. The details rebuild a task
    no client recorded (its client died before writing its rows): the ledger
    is the record. The replay (not a read of the frames alone) tells a refused
    assignment in a batch from one that stood.
    """
    found: dict[int, LedgerTask] = {}
    outcomes: Outcomes = {}
    with read_log(ledger_dir) as (protocol, frames):
        state = protocol.state
        for frame in frames:
            t = tx.parse_tx(frame.tx) if isinstance(frame, tx.Signed) else frame
            if isinstance(t, tx.EscrowTasks):
                found.update((i, LedgerTask(i, fee)) for i, fee in t.tasks if details_of(i))
            elif isinstance(t, TASK_FAULTS) and t.task_id in found:
                found[t.task_id].faults += 1
            elif isinstance(t, tx.SettleBatch):
                for task_id in [*t.safety, *t.liveness]:
                    if task_id in found:
                        found[task_id].faults += 1
            before = len(state.finished)
            protocol.apply(frame)
            if isinstance(t, tx.InitializeRound):
                continue  # it forgets old outcomes and finishes no task
            # Outcomes are only ever appended outside a round change: the new ones are last.
            new = len(state.finished) - before
            outcomes.update(itertools.islice(reversed(state.finished.items()), new))
            if isinstance(t, tx.AuditFault):
                outcomes[t.task_id] = state.finished[t.task_id]
            elif isinstance(t, tx.SettleBatch):  # audited here: settled, then changed in place
                outcomes.update((task_id, state.finished[task_id]) for task_id in t.audited)
            elif isinstance(t, tx.AssignTask | tx.AssignTasks):
                batch = t.orders if isinstance(t, tx.AssignTasks) else [(t.task_id,)]
                for task_id, *_ in batch:
                    task, row = state.tasks.get(task_id), found.get(task_id)
                    if task is not None and row is not None and task.assigned:
                        row.operator, row.coprocessor = task.operator or "", task.coprocessor or ""
                        row.price = task.price
    return outcomes, found
