"""The market engine: one batch's path through the protocol, as plain code.

The live cluster (its coordinator) and ``stakeray simulate`` run the same
engine; only execution differs (:mod:`cluster.engine.execution`). A batch:

1. **escrow**: the client's fees go into escrow under fresh task ids
   (``escrow_tasks``, one transaction);
2. **clear**: each new task gets an operator by stake-weighted selection
   (SPEC 6, :func:`protocol.selection.select_operators`); a task whose
   difficulty is within its operator's resources is run by the operator
   itself, the others are auctioned: one Dutch auction per task, all cleared
   together by :func:`protocol.auction.clear_batch` over the coprocessor
   book, each coprocessor quoting one ask rate for the batch at its load
   (:func:`protocol.market.compute_ask_ppm`); no taker above the reserve: the
   operator runs it. Re-offered tasks (a coprocessor failed them) keep their
   operator and are auctioned without the coprocessors that failed them. All
   assignments are one ``assign_tasks`` transaction;
3. **execute and verify** (elsewhere: operator and coprocessor hosts, or the
   simulator with drawn outcomes): a coprocessor's result is verified; an
   operator's own run is audited when :func:`protocol.market.is_audit_sample`
   picks it;
4. **settle**: safety faults, liveness faults, verified tasks and audit faults
   in one ``settle_batch`` transaction;
5. **round close**: ``initialize_round`` and the reward calls, by the clock.

Every rule is the protocol's; this module only orders the steps and builds
the book.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cluster.engine.messages import Assignment
from protocol import Protocol, ProtocolError
from protocol.auction import NO_EXCLUSIONS, CoprocessorBook, clear_batch
from protocol.market import (
    compute_ask_factors_many,
    compute_ask_ppm,
    compute_required_collateral,
    get_due_tasks,
)
from protocol.reputation import compute_reputation
from protocol.selection import select_operators
from protocol.units import Address, Amount, Ppm, Round

log = logging.getLogger("stakeray.market")

OWN = math.inf
"""A difficulty no operator's resources cover: the task is always auctioned."""


@dataclass(frozen=True, slots=True)
class Pricing:
    """A coprocessor's private valuation: its cost and margin as shares of the fee (PPM)."""

    cost_ppm: Ppm
    margin_ppm: Ppm = 0


class MarketEngine:
    """Clears batches on a :class:`Protocol` (see the module docstring for the path)."""

    def __init__(
        self,
        p: Protocol,
        pricing: Mapping[Address, Pricing],
        *,
        seed: int,
        resources: Mapping[Address, float] | None = None,
        operators: Collection[Address] | None = None,
    ) -> None:
        """``resources``: the largest difficulty each operator runs itself (default 1.0);
        ``operators``: those that may be selected (default: every active one), e.g. the
        operators some host runs."""
        self.p = p
        self.pricing = dict(pricing)
        self.seed = seed
        self.resources = dict(resources or {})
        self.operators = None if operators is None else set(operators)

    def escrow(
        self,
        client: Address,
        fees: Sequence[Amount],
        key: str | None = None,
        deadline_rounds: int | None = None,
    ) -> int:
        """Escrow a batch's fees under fresh ids (one transaction); return the first id."""
        first = self.p.state.next_task_id
        rows = [(first + i, fee) for i, fee in enumerate(fees)]
        self.p.escrow_tasks(client, rows, key, deadline_rounds)
        return first

    def clear(
        self,
        new: Sequence[tuple[int, float]],
        reoffered: Sequence[int] = (),
        unavailable: Collection[Address] = (),
    ) -> list[Assignment]:
        """Assign open tasks in one transaction; return the assignments, in task id order.

        ``new``: ``(task_id, difficulty)`` of escrowed tasks without an operator;
        ``reoffered``: open tasks a coprocessor failed; ``unavailable``:
        coprocessors that may not bid now (their host is cooling down). A task
        no operator can take (nobody active) stays open; its deadline refunds it.
        """
        tasks = self.p.state.tasks
        reoffered = [t for t in reoffered if t in tasks and not tasks[t].assigned]
        operator_of = self.select([t for t, _ in new])
        chosen: dict[int, Address] = {t: tasks[t].operator for t in reoffered}  # type: ignore[misc]
        own: list[int] = []
        heavy: list[int] = []
        for (task_id, difficulty), operator in zip(new, operator_of, strict=True):
            if operator is None:
                continue
            chosen[task_id] = operator
            if difficulty <= self.resources.get(operator, 1.0):
                own.append(task_id)
            else:
                heavy.append(task_id)
        heavy.extend(reoffered)
        orders: dict[int, tuple[int, Address, Address | None, Amount | None]] = {}
        for task_id in own:
            orders[task_id] = (task_id, chosen[task_id], None, None)
        for task_id, won in zip(heavy, self.auction(heavy, unavailable), strict=True):
            operator = chosen[task_id]
            if won is None:  # no taker above the reserve: the operator runs it
                orders[task_id] = (task_id, operator, None, None)
            else:
                orders[task_id] = (task_id, operator, *won)
        batch = [orders[t] for t in sorted(orders)]
        refused = self.p.assign_tasks(batch) if batch else {}
        return [
            Assignment(t, operator, coprocessor, tasks[t].price, tasks[t].attempts)
            for t, operator, coprocessor, _ in batch
            if t not in refused
        ]

    def auction(
        self, task_ids: Sequence[int], unavailable: Collection[Address] = ()
    ) -> list[tuple[Address, Amount] | None]:
        """Clear the Dutch auctions of open tasks in order on the book as it is now (SPEC 6):
        each task's winner and clock price, or None (no taker above the reserve).

        The book is a copy: nothing in the state changes. A task is not offered
        to the coprocessors that failed it before.
        """
        tasks, params = self.p.state.tasks, self.p.params
        names, book = self.book(unavailable)
        index = {name: i for i, name in enumerate(names)}
        fees = [tasks[t].fee for t in task_ids]
        excluded = [
            frozenset(index[c] for c in skip if c in index)
            if (skip := tasks[t].excluded)
            else NO_EXCLUSIONS
            for t in task_ids
        ]
        results = clear_batch(
            fees,
            book,
            step_ppm=params.auction_step,
            reserve_ppm=params.reserve_ratio,
            required=[compute_required_collateral(f, params) for f in fees],
            excluded=excluded,
        )
        return [None if r.winner is None else (names[r.winner], r.price) for r in results]

    def select(self, task_ids: Sequence[int]) -> list[Address | None]:
        """Pick an operator per task with the round's frozen stakes (SPEC 6)."""
        if not task_ids:
            return []
        active = self.p.state.active
        names = sorted(n for n in active if self.operators is None or n in self.operators)
        params = self.p.params
        return select_operators(
            names,
            [active[n] for n in names],
            task_ids,
            self.seed,
            w_stake=params.w_stake,
            w_random=params.w_random,
        )

    def book(self, unavailable: Collection[Address] = ()) -> tuple[list[Address], CoprocessorBook]:
        """Return the coprocessors that may bid and their book: one ask rate each, at the
        load they have now."""
        params = self.p.params
        live = self.p.state.coprocessors
        names = sorted(n for n in live if n in self.pricing and n not in unavailable)
        cops = [live[n] for n in names]
        reputation = [compute_reputation(c.reputation_f) for c in cops]
        factors = compute_ask_factors_many([c.load / c.capacity for c in cops], reputation, params)
        rates = [
            compute_ask_ppm(f, self.pricing[n].cost_ppm, self.pricing[n].margin_ppm, params)
            for n, f in zip(names, factors, strict=True)
        ]
        book = CoprocessorBook(
            ask_ppm=np.array(rates, dtype=object),
            capacity=np.array([c.capacity for c in cops], dtype=np.int64),
            load=np.array([c.load for c in cops], dtype=np.int64),
            collateral=np.array([c.free for c in cops], dtype=object),
            reputation=np.array(reputation, dtype=np.float64),
            min_reputation=params.min_reputation,
        )
        return names, book

    def close_round(
        self,
        missed: Callable[[Address, Round], bool] | None = None,
        held: Callable[[int], bool] | None = None,
    ) -> tuple[Round, dict[Address, Amount], list[int]]:
        """Start the next round: ``initialize_round``, a reward call per active operator
        (unless ``missed`` says it misses this one), then late tasks expire (O(expired)).

        An assigned task past its deadline is its operator's liveness fault
        (``expire_task``); an unassigned one is refunded. A task ``held`` says is
        waiting for its report's turn (the caller holds the outcome) stays until a
        later round. Return the round, the rewards and the expired task ids.
        """
        p = self.p
        n = p.initialize_round()
        rewards: dict[Address, Amount] = {}
        for operator in sorted(p.active_set):
            if missed is None or not missed(operator, n):
                rewards[operator] = p.reward(operator)
        expired = get_due_tasks(p.state, n)
        if held is not None:
            expired = [t for t in expired if not held(t)]
        for task_id in expired:
            try:
                if p.state.tasks[task_id].assigned:
                    p.expire_task(task_id)
                else:
                    p.refund_task(task_id)
            except ProtocolError as exc:
                log.warning("market: cannot expire task %d: %s", task_id, exc)
        return n, rewards, expired

    def settle(
        self,
        settled: Sequence[int],
        safety: Sequence[int] = (),
        liveness: Sequence[int] = (),
        audited: Sequence[int] = (),
    ) -> int:
        """Apply a batch's outcomes in one transaction; return how many settled."""
        if not (settled or safety or liveness):
            return 0
        return self.p.settle_batch(list(settled), list(safety), list(liveness), list(audited))
