"""Per-round history of a run, rebuilt from its durable ledger log (the one source of truth).

Replays genesis and every frame of ``events.log``; each transaction is
attributed from the state *before* it applies (and from ``reward``'s return
value), and one row per registered operator and coprocessor is emitted at
the end of every round ``r >= 1``. ``auction_fees`` and ``auction_prices`` sum
the fee and the clearing price of the auctioned tasks (those a coprocessor
ran) settled that round, so ``auction_prices / auction_fees`` is the round's
mean clearing margin. ``replay_delegators`` follows each delegator's stake.

Each round also carries its allocation audit (:mod:`cluster.engine.fairness`):
``selected`` and ``expected_selected`` per operator (first assignments of
``assign_tasks`` frames against ``n * p_i``; re-offered tasks keep their
operator and are left out), the round's ``selection_p`` and largest
standardized deviation, and the re-clearing of its auctioned assignments
(``auction_checked``, ``auction_mismatches``; empty when the run directory has
no ``config.json`` to price the book). Round-level values repeat on every row
of their round.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path

from cluster.engine.coordinator import CONFIG_FILE
from cluster.engine.fairness import (
    ALPHA,
    RoundFairness,
    SelectionTally,
    selection_probabilities,
    summarize,
)
from cluster.engine.market import MarketEngine, Pricing
from protocol import Protocol
from protocol import transactions as tx
from protocol.ledger import read_log
from protocol.market import Assignment as Order
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
    "selected",
    "expected_selected",
    "selection_tasks",
    "selection_p",
    "selection_max_dev",
    "selection_max_dev_operator",
    "auction_checked",
    "auction_mismatches",
]
"""Appended columns keep their order; readers take columns by name."""

log = logging.getLogger("stakeray.history")


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
    selected: int = 0  # operators: first assignments this round (coprocessors: 0)
    expected_selected: float = 0.0  # operators: their expected count, sum of n * p_i
    # The round's audit (the same on every row of the round); None is an empty cell.
    selection_tasks: int = 0
    selection_p: float | None = None  # None: not tested (too few tasks)
    selection_max_dev: float | None = None
    selection_max_dev_operator: str = ""
    auction_checked: int | None = None  # None: no config.json to price the book
    auction_mismatches: int | None = None

    def fairness(self) -> RoundFairness:
        """This row's round-level audit."""
        return RoundFairness(
            self.round,
            self.selection_tasks,
            p_value=self.selection_p,
            max_dev=self.selection_max_dev,
            max_dev_operator=self.selection_max_dev_operator,
            auction_checked=self.auction_checked,
            auction_mismatches=self.auction_mismatches,
        )


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


@dataclass(frozen=True, slots=True)
class MarketSetup:
    """What the audit needs from the run's ``config.json``: the operators the coordinator
    selects among (None: every active one) and each coprocessor's pricing (None: the
    auction check is skipped)."""

    operators: frozenset[str] | None = None
    pricing: dict[str, Pricing] | None = None


def read_market_setup(ledger_dir: str | Path) -> MarketSetup:
    """Read ``config.json`` beside ``ledger_dir`` (the run directory's); an absent or
    unreadable one gives the empty setup."""
    path = Path(ledger_dir).parent / CONFIG_FILE
    try:
        network = json.loads(path.read_text())["network"]
        operators = frozenset(str(o["name"]) for o in network["operators"])
        pricing = {
            str(c["name"]): Pricing(int(c["cost_ppm"]), int(c["margin_ppm"]))
            for c in network["coprocessors"]
        }
    except (OSError, ValueError, KeyError, TypeError):
        return MarketSetup()
    return MarketSetup(operators, pricing)


class AuctionAudit:
    """Re-clears each batch's auctioned assignments as the coordinator's engine would.

    Clearing is deterministic given the book (:meth:`MarketEngine.book` on the
    state before the ``assign_tasks`` frame) and the order of the auctioned
    tasks: new ones by task id, then the re-offered ones in the order their
    faults were applied (the coordinator queues them so). Only assignments with
    a winner are re-cleared: the log does not tell a task the operator ran
    because its resources cover it from one auctioned without a taker, and an
    auction without a winner leaves the book unchanged, so skipping those
    changes no other result. A coprocessor whose host is cooling down (after a
    liveness fault; wall-clock time the log does not hold) is out of the book:
    those with a liveness fault so far that won nothing in the batch are left
    out, which cannot change the winners of an honest clearing (only non-winners
    are removed). O(batch + coprocessors) per batch.
    """

    def __init__(self, protocol: Protocol, pricing: Mapping[Address, Pricing]) -> None:
        self.engine = MarketEngine(protocol, pricing, seed=0)
        self.fault_order: dict[int, int] = {}  # task id -> when its last fault was queued
        self.faults = 0
        self.missed: set[Address] = set()

    def fault(self, state: State, safety: list[int], liveness: list[int]) -> None:
        """Note one frame's faults (before it applies) in the order the coordinator queues
        their tasks for re-offer: by task id within the frame."""
        for task_id in sorted({*safety, *liveness}):
            self.fault_order[task_id] = self.faults
            self.faults += 1
        for task_id in liveness:
            task = state.tasks.get(task_id)
            if task is not None and task.coprocessor is not None:
                self.missed.add(task.coprocessor)

    def check(self, protocol: Protocol, orders: list[Order]) -> tuple[int, int]:
        """Return (auctioned assignments re-cleared, mismatches) of one batch."""
        tasks = protocol.state.tasks
        new: list[Order] = []
        again: list[Order] = []
        for order in orders:
            task = tasks.get(order[0])
            if order[2] is None or task is None or task.assigned:
                continue
            (new if task.operator is None else again).append(order)
        if not (new or again):
            return 0, 0
        order_of = self.fault_order.get
        heavy = sorted(new) + sorted(again, key=lambda o: order_of(o[0], -1))
        for o in again:
            self.fault_order.pop(o[0], None)  # queued again only by a later fault
        unavailable = self.missed - {o[2] for o in heavy}
        won = self.engine.auction([o[0] for o in heavy], unavailable)
        mismatches = sum(
            1
            for (_, _, coprocessor, price), w in zip(heavy, won, strict=True)
            if w != (coprocessor, price)
        )
        return len(heavy), mismatches


class RoundReplay:
    """What happened in one round, accumulated transaction by transaction."""

    def __init__(
        self,
        protocol: Protocol,
        setup: MarketSetup | None = None,
        audit: AuctionAudit | None = None,
    ) -> None:
        self.operators = None if setup is None else setup.operators
        self.audit = audit
        self.selection = SelectionTally()
        self.probabilities: dict[Address, float] = {}
        self.new: list[tuple[int, Address]] = []
        self.auction_checked = self.auction_mismatches = 0
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
        if isinstance(t, tx.AssignTasks):
            self.before_assign(protocol, t.orders)
        elif isinstance(t, tx.SettleTasks):
            self.settle(state, t.task_ids)
        elif isinstance(t, tx.SettleBatch):
            if self.audit is not None:
                self.audit.fault(state, t.safety, t.liveness)
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
            if self.audit is not None and by_coprocessor:
                missed = [t.task_id] if isinstance(t, tx.MissCoprocessor) else []
                self.audit.fault(state, [t.task_id], missed)
        elif isinstance(t, tx.AuditFault | tx.SlashOperator):
            self.slashes[t.operator] += 1

    def before_assign(self, protocol: Protocol, orders: list[Order]) -> None:
        """Note a batch's new tasks (no operator yet) and their selection probabilities;
        re-clear its auctioned assignments."""
        state, params = protocol.state, protocol.params
        tasks = state.tasks
        self.new = [
            (o[0], o[1])
            for o in orders
            if (task := tasks.get(o[0])) is not None and task.operator is None
        ]
        if self.new:
            self.probabilities = selection_probabilities(
                state.active, params.w_stake, params.w_random, self.operators
            )
        if self.audit is not None:
            checked, mismatches = self.audit.check(protocol, orders)
            self.auction_checked += checked
            self.auction_mismatches += mismatches

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
            refused = result if isinstance(result, dict) else {}
            chosen = (operator for task_id, operator in self.new if task_id not in refused)
            self.selection.add(self.probabilities, chosen)  # first assignments that stood
            self.new = []

    def fairness(self, r: int) -> RoundFairness:
        """This round's allocation audit."""
        if self.audit is None:
            return self.selection.assess(r)
        return self.selection.assess(r, self.auction_checked, self.auction_mismatches)

    def rows(self, protocol: Protocol) -> list[RoundRow]:
        """Return this round's rows, sorted by (role, participant)."""
        state, r = protocol.state, protocol.round
        audit = self.fairness(r)
        p = audit.p_value
        dev = audit.max_dev
        common = {
            "selection_tasks": audit.tasks,
            "selection_p": None if p is None else float(f"{p:.6g}"),
            "selection_max_dev": None if dev is None else round(dev, 4),
            "selection_max_dev_operator": audit.max_dev_operator,
            "auction_checked": audit.auction_checked,
            "auction_mismatches": audit.auction_mismatches,
        }
        observed, expected = self.selection.observed, self.selection.expected
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
                **common,
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
                selected=observed[a],
                expected_selected=round(expected.get(a, 0.0), 4),
                **common,
            )
            for a in sorted(state.pools)
            if protocol.is_registered(a)
        ]
        return rows


def replay_rounds(
    ledger_dir: str | Path, setup: MarketSetup | None = None
) -> tuple[Protocol, list[RoundRow]]:
    """Replay the whole log of ``ledger_dir``; return the protocol and every round's rows.

    ``setup``: the market's operators and pricing for the allocation audit
    (default: read from ``config.json`` beside the ledger).
    """
    run = replay_run(ledger_dir, setup=setup)
    return run.protocol, run.rows


@dataclass
class RunHistory:
    """What one replay of a run's log gives: the final protocol, every round's rows, every
    task's outcome and the details of the tasks asked for (see :func:`replay_tasks`)."""

    protocol: Protocol
    rows: list[RoundRow]
    outcomes: Outcomes
    found: dict[int, LedgerTask]


def replay_run(
    ledger_dir: str | Path,
    details_of: Callable[[int], bool] | None = None,
    setup: MarketSetup | None = None,
    *,
    rounds: bool = True,
) -> RunHistory:
    """Replay the log once for both the round rows (``rounds``) and the task outcomes."""
    rows: list[RoundRow] = []
    if rounds and setup is None:
        setup = read_market_setup(ledger_dir)
    tasks = _Tasks(details_of)
    with read_log(ledger_dir) as (protocol, frames):
        current: RoundReplay | None = None
        audit = None
        if rounds:
            assert setup is not None
            audit = None if setup.pricing is None else AuctionAudit(protocol, setup.pricing)
            current = RoundReplay(protocol, setup, audit)
        for frame in frames:
            inner = tx.parse_tx(frame.tx) if isinstance(frame, tx.Signed) else frame
            tasks.before(protocol, inner)
            if isinstance(inner, tx.InitializeRound):
                if current is not None:
                    if protocol.round >= 1:
                        rows += current.rows(protocol)
                    protocol.apply(frame)
                    current = RoundReplay(protocol, setup, audit)  # type: ignore[arg-type]
                else:
                    protocol.apply(frame)
                continue  # it forgets old outcomes and finishes no task
            if current is not None:
                current.before(protocol, inner)
            result = protocol.apply(frame)
            if current is not None:
                current.after(protocol, inner, result)
            tasks.after(protocol, inner)
    if current is not None and protocol.round >= 1:
        rows += current.rows(protocol)
    return RunHistory(protocol, rows, tasks.outcomes, tasks.found)


def write_rounds_csv(ledger_dir: str | Path, path: str | Path) -> Protocol:
    """Write the per-round CSV of ``ledger_dir`` to ``path``; return the replayed protocol."""
    protocol, rows = replay_rounds(ledger_dir)
    write_round_rows(rows, path)
    return protocol


def write_round_rows(rows: list[RoundRow], path: str | Path) -> None:
    """Write ``rounds.csv`` from replayed rows; warn when allocation drifts from stake."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(ROUND_COLUMNS)
        writer.writerows(astuple(row) for row in rows)  # None: an empty cell
    summary = summarize(round_fairness(rows))
    if summary.drifting:
        log.warning(
            "fairness: allocation drifts from stake in rounds %s (p < %g); auction"
            " mismatches %d (see %s)",
            summary.rounds_drifting,
            ALPHA,
            summary.auction_mismatches,
            path,
        )


def round_fairness(rows: list[RoundRow]) -> list[RoundFairness]:
    """Return each round's audit from its rows (the first row of each round)."""
    seen: dict[int, RoundFairness] = {}
    for row in rows:
        if row.round not in seen:
            seen[row.round] = row.fairness()
    return list(seen.values())


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
    run = replay_run(ledger_dir, details_of, rounds=False)
    return run.outcomes, run.found


class _Tasks:
    """Collects every task's outcome, and the details of the tasks ``details_of`` picks."""

    def __init__(self, details_of: Callable[[int], bool] | None) -> None:
        self.details_of = details_of or (lambda task_id: False)
        self.found: dict[int, LedgerTask] = {}
        self.outcomes: Outcomes = {}
        self.count = 0

    def before(self, protocol: Protocol, t: tx.Tx) -> None:
        found = self.found
        if isinstance(t, tx.EscrowTasks):
            pick = self.details_of
            found.update((i, LedgerTask(i, fee)) for i, fee in t.tasks if pick(i))
        elif isinstance(t, TASK_FAULTS) and t.task_id in found:
            found[t.task_id].faults += 1
        elif isinstance(t, tx.SettleBatch):
            for task_id in [*t.safety, *t.liveness]:
                if task_id in found:
                    found[task_id].faults += 1
        self.count = len(protocol.state.finished)

    def after(self, protocol: Protocol, t: tx.Tx) -> None:
        """After any frame but a round change (it forgets old outcomes, finishes none)."""
        state = protocol.state
        # Outcomes are only ever appended outside a round change: the new ones are last.
        new = len(state.finished) - self.count
        self.outcomes.update(itertools.islice(reversed(state.finished.items()), new))
        if isinstance(t, tx.AuditFault):
            self.outcomes[t.task_id] = state.finished[t.task_id]
        elif isinstance(t, tx.SettleBatch):  # audited here: settled, then changed in place
            self.outcomes.update((task_id, state.finished[task_id]) for task_id in t.audited)
        elif isinstance(t, tx.AssignTask | tx.AssignTasks) and self.found:
            batch = t.orders if isinstance(t, tx.AssignTasks) else [(t.task_id,)]
            for task_id, *_ in batch:
                task, row = state.tasks.get(task_id), self.found.get(task_id)
                if task is not None and row is not None and task.assigned:
                    row.operator, row.coprocessor = task.operator or "", task.coprocessor or ""
                    row.price = task.price
