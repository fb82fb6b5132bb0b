"""The market's money: coprocessor collateral, task escrow, settlement, faults (SPEC 6-9).

Every task's fee sits in escrow from submission until it is settled exactly
once (the operator's pool gets the clock price as fees, the coprocessor
``fee - price``), refunded (expired, or out of attempts), or failed by the
operator. A coprocessor locks ``collateral_ratio`` of the fee while it holds
a task; a fault slashes part of it, amplified above the load curve's
threshold, ``redistribution`` of the slash to the operator and the rest
burned. Outcomes feed GAS reputation, updated once per round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import NamedTuple

import numpy as np

from .earnings import credit_fees
from .errors import (
    AlreadyRegistered,
    CoprocessorUnavailable,
    DuplicateTransaction,
    InsufficientBalance,
    InsufficientCollateral,
    InvalidAmount,
    OperatorNotActive,
    ProtocolError,
    TaskStateError,
    UnknownCoprocessor,
    UnknownOperator,
    UnknownTask,
)
from .loadcurve import compute_uptime_shares
from .params import Params
from .reputation import compute_gas_update, compute_reputation
from .slashing import slash_operator
from .staking import (
    MAX_ID,
    check_account,
    check_amount,
    check_int,
    check_withdrawable,
    find_lock,
    is_registered,
)
from .state import Coprocessor, Lock, Outcome, State, Task
from .units import PPM, Address, Amount, Ppm, Round, is_int, ppm_of

# --- pure helpers --------------------------------------------------------------


def compute_required_collateral(fee: Amount, params: Params) -> Amount:
    """Return the collateral a coprocessor locks while it holds a task of ``fee``."""
    return ppm_of(fee, params.collateral_ratio)


def compute_utilisation(c: Coprocessor) -> float:
    """Return the coprocessor's load as a fraction of its capacity."""
    return c.load / c.capacity


def compute_amplification_ppm(c: Coprocessor, params: Params) -> int:
    """Return the load curve's slash amplification at ``c``'s load as an integer PPM factor.

    The float amplification becomes an integer factor first, so the money
    arithmetic stays exact and the same on every machine.
    """
    amplification = params.load_curve.compute_slash_amplification(compute_utilisation(c))
    return int(amplification * PPM)


def compute_slash_of(locked: Amount, amplification_ppm: int, params: Params) -> Amount:
    """Return ``s * locked * amplification``, at most ``locked`` (SPEC 7)."""
    return min(locked, ppm_of(ppm_of(locked, params.slash_fraction), amplification_ppm))


def compute_coprocessor_slash(c: Coprocessor, locked: Amount, params: Params) -> Amount:
    """Return ``s * locked * amplification(load)``, at most the locked collateral (SPEC 7)."""
    return compute_slash_of(locked, compute_amplification_ppm(c, params), params)


class AskFactors(NamedTuple):
    """What a coprocessor's ask depends on besides the task: PPM factors at its load."""

    premium_ppm: int
    amplification_ppm: int
    failure_ppm: int


def compute_ask_factors_many(
    utilisation: Sequence[float], reputation: Sequence[float], params: Params
) -> list[AskFactors]:
    """Return :class:`AskFactors` for many coprocessors at once (the load curve vectorised).

    ``utilisation`` is each one's ``load / capacity`` and ``reputation`` its
    ``sigmoid(f)``; the floats become integer PPM factors as in
    :func:`compute_amplification_ppm`.
    """
    loads = np.asarray(utilisation, dtype=np.float64)
    premium = np.atleast_1d(params.load_curve.compute_load_premium(loads)) * PPM
    amplification = np.atleast_1d(params.load_curve.compute_slash_amplification(loads)) * PPM
    return [
        AskFactors(int(a), int(b), int((1.0 - r) * PPM))
        for a, b, r in zip(premium.tolist(), amplification.tolist(), reputation, strict=True)
    ]


def compute_ask_factors(c: Coprocessor, params: Params) -> AskFactors:
    """Return ``c``'s load premium, slash amplification and failure chance (1 - reputation)."""
    return compute_ask_factors_many(
        [compute_utilisation(c)], [compute_reputation(c.reputation_f)], params
    )[0]


def compute_ask_ppm(factors: AskFactors, cost_ppm: Ppm, margin_ppm: Ppm, params: Params) -> int:
    """Return a coprocessor's ask as a rate of the fee, in PPM (SPEC 6): the one ask rule.

    ``rate = cost * (1 + load_premium(load)) + risk + margin``, each a share of
    the fee: the cost, the slash a task would risk (``s * collateral_ratio *
    amplification(load)``, at most the collateral) weighted by the chance of
    failing (``1 - reputation``), and the margin. Each term is rounded up, so a
    coprocessor never asks for less than its valuation. A coprocessor quotes
    one rate per batch, at its load when the batch clears; because the ask of
    every task is then the same rate of its fee, one ordering of the book by
    rate serves every task of the batch (:func:`protocol.auction.clear_batch`).
    """
    exposure = min(
        params.collateral_ratio,
        ppm_of(ppm_of(params.collateral_ratio, params.slash_fraction), factors.amplification_ppm),
    )
    return (
        -(-cost_ppm * (PPM + factors.premium_ppm) // PPM)
        + -(-exposure * factors.failure_ppm // PPM)
        + margin_ppm
    )


def compute_ask_of(fee: Amount, ask_ppm: int) -> Amount:
    """Return the ask for a task of ``fee`` at rate ``ask_ppm``: ``ceil(fee * rate)``."""
    return -(-fee * ask_ppm // PPM)


def compute_ask(
    c: Coprocessor, fee: Amount, cost_ppm: Ppm, margin_ppm: Ppm, params: Params
) -> Amount:
    """Return a coprocessor's ask for a task of ``fee`` at its current load, in base units."""
    rate = compute_ask_ppm(compute_ask_factors(c, params), cost_ppm, margin_ppm, params)
    return compute_ask_of(fee, rate)


def is_coprocessor_eligible(c: Coprocessor, params: Params, required: Amount) -> bool:
    """Return whether ``c`` may take a task that locks ``required`` (SPEC 6)."""
    return (
        c.load < c.capacity
        and c.free >= required
        and compute_reputation(c.reputation_f) >= params.min_reputation
    )


def is_audit_sample(seed: int, task_id: int, audit_rate: int) -> bool:
    """Return whether a settled task is audited: a keyed hash, so every replica agrees."""
    digest = hashlib.blake2b(f"{seed}:{task_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % PPM < audit_rate


def get_coprocessor_or_raise(state: State, address: Address) -> Coprocessor:
    c = state.coprocessors.get(address)
    if c is None:
        raise UnknownCoprocessor(f"coprocessor {address!r}: not registered")
    return c


def get_task_or_raise(state: State, task_id: int) -> Task:
    """Return an open task, or refuse (a finished one as a duplicate)."""
    if task_id.__class__ is int:  # open tasks are keyed by exact ints (True is no task id)
        task = state.tasks.get(task_id)
        if task is not None:
            return task
    check_int(task_id, "task_id", UnknownTask, low=0, high=MAX_ID)
    task = state.tasks.get(task_id)
    if task is None:
        done = state.finished.get(task_id)
        if done is not None:
            raise DuplicateTransaction(f"task_id {task_id}: already {done[0]}")
        if is_finished(state, task_id):
            raise DuplicateTransaction(f"task_id {task_id}: already finished")
        raise UnknownTask(f"task_id {task_id!r}: no open task")
    return task


# --- collateral ---------------------------------------------------------------


def register_coprocessor(
    state: State, params: Params, address: Address, collateral: Amount, capacity: int
) -> None:
    """Register a coprocessor with its collateral and capacity (concurrent tasks)."""
    check_amount(collateral, "collateral")
    check_int(capacity, "capacity", InvalidAmount, low=1)
    check_account(state, address)
    if address in state.coprocessors:
        raise AlreadyRegistered(f"coprocessor {address!r}: already registered")
    if state.balances.get(address, 0) < collateral:
        raise InsufficientBalance(f"collateral: {collateral} exceeds the liquid balance")
    state.balances[address] -= collateral
    state.coprocessors[address] = Coprocessor(
        address=address, capacity=capacity, free=collateral, reputation_f=params.gas.initial_f
    )
    state.totals.liquid -= collateral
    state.totals.collateral += collateral


def top_up_collateral(state: State, address: Address, amount: Amount) -> None:
    """Move liquid balance into free collateral."""
    check_amount(amount)
    c = get_coprocessor_or_raise(state, address)
    if state.balances.get(address, 0) < amount:
        raise InsufficientBalance(f"amount: {amount} exceeds the liquid balance")
    state.balances[address] -= amount
    c.free += amount
    state.totals.liquid -= amount
    state.totals.collateral += amount


def unbond_collateral(state: State, params: Params, address: Address, amount: Amount) -> int:
    """Start withdrawing free collateral; it is paid after the unbonding period."""
    check_amount(amount)
    c = get_coprocessor_or_raise(state, address)
    if amount > c.free:
        raise InsufficientCollateral(f"amount: {amount} exceeds free collateral {c.free}")
    c.free -= amount
    lock_id = c.next_lock_id
    c.next_lock_id += 1
    c.locks[lock_id] = Lock(amount=amount, withdraw_round=state.round + params.unbonding_period)
    return lock_id


def withdraw_collateral(state: State, address: Address, lock_id: int) -> Amount:
    """Pay out unbonded collateral whose withdraw round has come."""
    c = get_coprocessor_or_raise(state, address)
    lock = find_lock(c.locks, address, lock_id)
    check_withdrawable(state, lock, lock_id)
    del c.locks[lock_id]
    state.balances[address] = state.balances.get(address, 0) + lock.amount
    state.totals.collateral -= lock.amount
    state.totals.liquid += lock.amount
    return lock.amount


# --- tasks --------------------------------------------------------------------


ESCROW_KEYS_KEPT = 4096
"""How many recent escrow keys the state remembers (a retried batch is recognised by its key)."""


def escrow_tasks(
    state: State,
    params: Params,
    client: Address,
    tasks: Sequence[tuple[int, Amount]],
    key: str | None = None,
    deadline_rounds: int | None = None,
) -> Amount:
    """Put the fees of new tasks in escrow, all or nothing; return the total.

    Task ids are fresh: each at least ``next_task_id`` and increasing, so no
    client can take an id another was given. ``key`` names the batch: the
    same key again (a retried call) is refused as a duplicate, and the state
    remembers the first id each of the last ``ESCROW_KEYS_KEPT`` keys got.
    The tasks expire ``deadline_rounds`` (default ``params.deadline_rounds``)
    rounds after this one (:func:`get_due_tasks`).
    """
    check_account(state, client)
    if deadline_rounds is None:
        deadline_rounds = params.deadline_rounds
    check_int(deadline_rounds, "deadline_rounds", InvalidAmount, low=1, high=1_000_000)
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 128):
        raise InvalidAmount(f"key: must be a string of 1 to 128 characters, got {key!r}")
    if key is not None and key in state.escrow_keys:
        raise DuplicateTransaction(
            f"key {key!r}: batch already escrowed from task id {state.escrow_keys[key]}"
        )
    total = 0
    last = state.next_task_id - 1
    for i, row in enumerate(tasks):
        if not isinstance(row, tuple | list) or len(row) != 2:
            raise InvalidAmount(f"tasks[{i}]: must be (task_id, fee)")
        task_id, fee = row
        # The checks run only when the cheap test fails (a batch is thousands of rows).
        if task_id.__class__ is not int or not 0 <= task_id <= MAX_ID:
            check_int(task_id, f"tasks[{i}].task_id", InvalidAmount, low=0, high=MAX_ID)
        if fee.__class__ is not int or fee < 1:
            check_amount(fee, f"tasks[{i}].fee")
        if task_id <= last:
            raise DuplicateTransaction(
                f"tasks[{i}].task_id {task_id}: taken; ids must be fresh and increasing"
                f" (next free {max(last + 1, state.next_task_id)})"
            )
        last = task_id
        total += fee
    if state.balances.get(client, 0) < total:
        raise InsufficientBalance(f"tasks: fees {total} exceed the liquid balance of {client!r}")
    state.balances[client] -= total
    due = state.round + deadline_rounds + 1
    for task_id, fee in tasks:
        state.tasks[task_id] = Task(
            id=task_id, client=client, fee=fee, created_round=state.round, due_round=due
        )
    if tasks:
        state.expiries.setdefault(due, set()).update(task_id for task_id, _ in tasks)
    if key is not None and tasks:
        state.escrow_keys[key] = tasks[0][0]
        state.escrow_key_order.append(key)
        if len(state.escrow_key_order) > ESCROW_KEYS_KEPT:
            del state.escrow_keys[state.escrow_key_order.pop(0)]
    state.next_task_id = last + 1
    state.totals.liquid -= total
    state.totals.task_escrow += total
    return total


def assign_task(
    state: State,
    params: Params,
    task_id: int,
    operator: Address,
    coprocessor: Address | None = None,
    price: Amount | None = None,
) -> None:
    """Record who runs an escrowed task: its operator, or the auction's winner at ``price``."""
    task = get_task_or_raise(state, task_id)
    if task.assigned:
        raise TaskStateError(f"task_id {task_id}: already assigned")
    if not is_registered(state, operator):
        raise UnknownOperator(f"operator {operator!r}: not a registered operator")
    if operator not in state.active:
        raise OperatorNotActive(f"operator {operator!r}: not active in round {state.round}")
    if task.operator is not None and task.operator != operator:
        raise TaskStateError(f"task_id {task_id}: belongs to operator {task.operator!r}")
    required = 0
    priced = coprocessor is not None or price is not None  # a logged price is an integer
    if priced and (price.__class__ is not int or not 0 <= price <= task.fee):  # type: ignore[operator]
        rule = f"an integer in [0, {task.fee}]"
        check_int(price, "price", InvalidAmount, low=0, high=task.fee, rule=rule)
    if coprocessor is not None:
        c = get_coprocessor_or_raise(state, coprocessor)
        required = compute_required_collateral(task.fee, params)
        if coprocessor in task.excluded or not is_coprocessor_eligible(c, params, required):
            if c.free < required:
                raise InsufficientCollateral(
                    f"coprocessor {coprocessor!r}: free collateral {c.free} < {required}"
                )
            raise CoprocessorUnavailable(f"coprocessor {coprocessor!r}: cannot take task {task_id}")
        c.free -= required
        c.locked += required
        c.load += 1
        c.wins += 1
    task.operator = operator
    task.coprocessor = coprocessor
    task.price = task.fee if coprocessor is None else price  # type: ignore[assignment]
    task.collateral = required
    task.assigned = True


Assignment = tuple[int, Address, Address | None, Amount | None]
"""``(task_id, operator, coprocessor or None, price or None)``: one :func:`assign_task`."""


def assign_tasks(
    state: State, params: Params, orders: Sequence[Assignment]
) -> dict[int, ProtocolError]:
    """Apply a batch of assignments in order; return the refused ones with their refusal.

    Each order is :func:`assign_task`, which refuses having changed nothing, so
    a refused order is skipped and the others stand: one transaction per
    batch, replayed alike (the same state refuses the same orders).
    """
    if not isinstance(orders, list | tuple):
        raise InvalidAmount("orders: must be a list of (task_id, operator, coprocessor, price)")
    refused: dict[int, ProtocolError] = {}
    for i, order in enumerate(orders):
        if not isinstance(order, tuple | list) or len(order) != 4:
            raise InvalidAmount(f"orders[{i}]: must be (task_id, operator, coprocessor, price)")
    for task_id, operator, coprocessor, price in orders:
        try:
            assign_task(state, params, task_id, operator, coprocessor, price)
        except ProtocolError as exc:
            refused[task_id] = exc
    return refused


def settle_batch(
    state: State,
    params: Params,
    settled: Sequence[int],
    safety: Sequence[int] = (),
    liveness: Sequence[int] = (),
    audited: Sequence[int] = (),
) -> int:
    """Settle a batch in one transaction: its safety faults (:func:`fail_coprocessor`),
    its liveness faults (:func:`miss_coprocessor`), its verified tasks
    (:func:`settle_tasks`), then the audit faults among them (:func:`audit_fault`:
    tasks an operator ran itself whose audit found a wrong result). Return how many
    settled.

    All or nothing: a fault on a task no coprocessor holds, a task that cannot
    settle, or an audit fault on a task not settled here by its operator alone,
    refuses the whole batch (the caller sends only what applies).
    """
    for name, ids in (
        ("settled", settled),
        ("safety", safety),
        ("liveness", liveness),
        ("audited", audited),
    ):
        if not isinstance(ids, list | tuple):
            raise InvalidAmount(f"{name}: must be a list of task ids")
    faulted: set[int] = set()
    for task_id in [*safety, *liveness]:
        get_coprocessor_task_or_raise(state, task_id)
        if task_id in faulted:
            raise DuplicateTransaction(f"task_id {task_id}: two faults in one batch")
        faulted.add(task_id)
    batch = get_settleable(state, settled, faulted)
    settling = {task.id for task in batch}
    operators: list[Address] = []
    for task_id in dict.fromkeys(audited):
        task = get_task_or_raise(state, task_id)
        if task_id not in settling or task.coprocessor is not None:
            raise TaskStateError(
                f"audited: task_id {task_id} is not settled here by its operator alone"
            )
        assert task.operator is not None
        operators.append(task.operator)
    for task_id in safety:
        fail_coprocessor(state, params, task_id)
    for task_id in liveness:
        miss_coprocessor(state, params, task_id)
    pay_settled(state, batch)
    for task_id, operator in zip(dict.fromkeys(audited), operators, strict=True):
        audit_fault(state, params, task_id, operator, None)
    return len(batch)


def get_settleable(
    state: State, task_ids: Sequence[int], faulted: Collection[int] = ()
) -> list[Task]:
    """Return the open tasks among ``task_ids`` to settle, each once; ids already finished
    are skipped. Refuse an unknown id, or a task not assigned or faulted in the batch."""
    tasks = state.tasks
    batch: list[Task] = []
    seen: set[int] = set()
    for task_id in task_ids:
        task = tasks.get(task_id) if task_id.__class__ is int else None
        if task is None:
            if is_int(task_id) and is_finished(state, task_id):
                continue
            task = get_task_or_raise(state, task_id)
        if not task.assigned or task_id in faulted:
            raise TaskStateError(f"task_id {task_id}: not assigned, cannot settle")
        if task_id not in seen:
            seen.add(task_id)
            batch.append(task)
    return batch


def settle_tasks(state: State, task_ids: Sequence[int]) -> int:
    """Settle verified tasks exactly once; ids already finished are skipped. Return how many.

    The operator's pool gets the clock price as fees (the whole fee when it
    ran the task itself), the coprocessor ``fee - price``, and its collateral
    is released.
    """
    batch = get_settleable(state, task_ids)
    pay_settled(state, batch)
    return len(batch)


def pay_settled(state: State, batch: Sequence[Task]) -> None:
    """Pay and finish validated tasks (:func:`get_settleable`): see :func:`settle_tasks`."""
    earned: dict[Address, Amount] = {}
    totals = state.totals
    balances, coprocessors, pools = state.balances, state.coprocessors, state.pools
    liquid = escrow = fees = 0
    for task in batch:
        operator = task.operator
        assert operator is not None
        earned[operator] = earned.get(operator, 0) + task.price
        if task.coprocessor is not None:
            c = coprocessors[task.coprocessor]
            c.locked -= task.collateral
            c.free += task.collateral
            c.load -= 1
            c.observed += 1
            c.succeeded += 1
            pay = task.fee - task.price
            balances[c.address] = balances.get(c.address, 0) + pay
            liquid += pay
        pool = pools[operator]
        pool.observed += 1
        pool.succeeded += 1
        escrow += task.fee
        fees += task.price
        finish_task(state, task, Outcome.SETTLED, operator)
    totals.liquid += liquid
    totals.task_escrow -= escrow
    totals.fees += fees
    credit_fees(state, earned)


def refund_task(state: State, task_id: int, outcome: Outcome = Outcome.REFUNDED) -> None:
    """Return an unassigned task's fee to its client (expiry, or out of attempts)."""
    task = get_task_or_raise(state, task_id)
    if task.assigned:
        raise TaskStateError(f"task_id {task_id}: assigned; settle or fail it first")
    state.balances[task.client] = state.balances.get(task.client, 0) + task.fee
    state.totals.task_escrow -= task.fee
    state.totals.liquid += task.fee
    finish_task(state, task, outcome, task.operator)


def finish_task(state: State, task: Task, outcome: Outcome, operator: Address | None) -> None:
    """Record ``task``'s outcome; it leaves the open tasks and its expiry."""
    state.finished[task.id] = (outcome, operator)
    state.finished_in.setdefault(state.round, []).append(task.id)
    state.outcome_counts[outcome] = state.outcome_counts.get(outcome, 0) + 1
    del state.tasks[task.id]
    due = state.expiries.get(task.due_round)
    if due is not None:
        due.discard(task.id)
        if not due:
            del state.expiries[task.due_round]


OUTCOME_ROUNDS_KEPT = 2
"""Rounds a finished task's outcome stays in the state (for audits and retried reports)."""


def is_finished(state: State, task_id: int) -> bool:
    """Whether ``task_id`` has an outcome: in the state's recent ones, or an id below
    ``next_task_id`` that is not open (an older outcome, in the log; or a skipped id)."""
    return task_id in state.finished or (
        task_id < state.next_task_id and task_id not in state.tasks
    )


def forget_old_outcomes(state: State) -> None:
    """Drop the outcomes of tasks finished ``OUTCOME_ROUNDS_KEPT`` rounds ago or earlier
    (SPEC 2 step 7): O(dropped), so live state depends on recent work, not on history."""
    for finished_round in [r for r in state.finished_in if r <= state.round - OUTCOME_ROUNDS_KEPT]:
        for task_id in state.finished_in.pop(finished_round):
            state.finished.pop(task_id, None)


def get_due_tasks(state: State, round_: Round) -> list[int]:
    """Return the open tasks whose deadline has passed by ``round_``, in id order.

    O(expired): the state indexes open tasks by the round they fall due.
    """
    return sorted(t for due, ids in state.expiries.items() if due <= round_ for t in ids)


def release_coprocessor(state: State, task: Task, slash: Amount) -> None:
    """Take ``slash`` from the task's locked collateral, free the rest, end the assignment."""
    if task.coprocessor is not None:
        c = state.coprocessors[task.coprocessor]
        c.locked -= task.collateral
        c.free += task.collateral - slash
        c.load -= 1
        state.totals.collateral -= slash
    task.coprocessor, task.price, task.collateral, task.assigned = None, 0, 0, False


def fail_coprocessor(state: State, params: Params, task_id: int) -> Amount:
    """A coprocessor returned a wrong result (a safety fault): slash it, re-offer the task.

    ``redistribution`` of the slash goes to the operator, the rest is burned;
    after ``max_attempts`` the client is refunded. Return the slash.
    """
    task, c = get_coprocessor_task_or_raise(state, task_id)
    slash = compute_coprocessor_slash(c, task.collateral, params)
    to_operator = ppm_of(slash, params.redistribution)
    operator = task.operator
    assert operator is not None
    c.slashes += 1
    state.balances[operator] = state.balances.get(operator, 0) + to_operator
    state.totals.liquid += to_operator
    state.totals.burned += slash - to_operator
    reoffer_task(state, params, task, c, slash)
    return slash


def miss_coprocessor(state: State, params: Params, task_id: int) -> Amount:
    """A coprocessor gave no result in time (a liveness fault: host lost, timeout).

    Not fraud: no payment, a failure for its reputation, the task re-offered
    without it, and ``liveness_penalty`` of the collateral the task locked
    (default 0), burned. Return the penalty.
    """
    task, c = get_coprocessor_task_or_raise(state, task_id)
    penalty = ppm_of(task.collateral, params.liveness_penalty)
    c.misses += 1
    state.totals.burned += penalty
    reoffer_task(state, params, task, c, penalty)
    return penalty


def get_coprocessor_task_or_raise(state: State, task_id: int) -> tuple[Task, Coprocessor]:
    """Return an assigned task and the coprocessor holding it."""
    task = get_task_or_raise(state, task_id)
    if not task.assigned or task.coprocessor is None:
        raise TaskStateError(f"task_id {task_id}: no coprocessor holds it")
    return task, state.coprocessors[task.coprocessor]


def reoffer_task(state: State, params: Params, task: Task, c: Coprocessor, taken: Amount) -> None:
    """End ``c``'s attempt (a failure for its reputation, ``taken`` from its collateral):
    re-offer the task without it, or refund the client after ``max_attempts``."""
    c.observed += 1
    task.excluded.append(c.address)
    release_coprocessor(state, task, taken)
    task.attempts += 1
    if task.attempts >= params.max_attempts:
        refund_task(state, task.id)


def fail_operator(
    state: State, params: Params, task_id: int, finder: Address | None = None
) -> Amount:
    """The operator missed the task's deadline: slash it and refund the client (SPEC 7)."""
    task = get_task_or_raise(state, task_id)
    return fail_operator_task(state, params, task, params.slash_fraction, finder)


def expire_task(state: State, params: Params, task_id: int) -> Amount:
    """An assigned task passed its deadline (a liveness fault of its operator): refund it.

    Not fraud (a crashed host looks the same): a failure for the operator's
    reputation and ``liveness_penalty`` of its own bond (default 0). Return
    the amount taken.
    """
    task = get_task_or_raise(state, task_id)
    if not task.assigned:
        raise TaskStateError(f"task_id {task_id}: no registered operator holds it")
    return fail_operator_task(state, params, task, params.liveness_penalty, None)


def fail_operator_task(
    state: State, params: Params, task: Task, fraction: Ppm, finder: Address | None
) -> Amount:
    """End ``task`` as its operator's failure: a reputation failure, the client refunded,
    ``fraction`` of the operator's stake slashed (SPEC 7). Return the amount taken."""
    operator = task.operator
    if operator is None or not is_registered(state, operator):
        raise TaskStateError(f"task_id {task.id}: no registered operator holds it")
    state.pools[operator].observed += 1
    release_coprocessor(state, task, 0)
    refund_task(state, task.id, outcome=Outcome.FAILED)
    if fraction == 0:
        return 0
    return slash_operator(state, params, operator, fraction, finder)


def audit_fault(
    state: State, params: Params, task_id: int, operator: Address, finder: Address | None
) -> Amount:
    """An audit found a wrong result the operator settled: slash it, finder paid (SPEC 7)."""
    done = state.finished.get(task_id) if is_int(task_id) else None
    if done is None or done[0] != Outcome.SETTLED:
        raise TaskStateError(f"task_id {task_id!r}: not a settled task")
    if not is_registered(state, operator):
        raise UnknownOperator(f"operator {operator!r}: not a registered operator")
    if done[1] != operator:
        raise TaskStateError(f"task_id {task_id}: settled by {done[1]!r}, not {operator!r}")
    state.finished[task_id] = (Outcome.AUDITED, operator)
    counts = state.outcome_counts
    counts[Outcome.SETTLED] -= 1
    counts[Outcome.AUDITED] = counts.get(Outcome.AUDITED, 0) + 1
    state.pools[operator].observed += 1
    if params.slash_fraction == 0:
        return 0
    return slash_operator(state, params, operator, params.slash_fraction, finder)


# --- per round ----------------------------------------------------------------


def update_reputations(state: State, params: Params) -> None:
    """Apply one GAS step per coprocessor and operator with the round's outcomes (SPEC 8)."""
    for address in sorted(state.coprocessors):
        c = state.coprocessors[address]
        c.reputation_f = compute_gas_update(c.reputation_f, c.observed, c.succeeded, params.gas)
        c.observed = c.succeeded = 0
    for address in sorted(state.pools):
        pool = state.pools[address]
        if pool.registered or pool.observed:
            pool.reputation_f = compute_gas_update(
                pool.reputation_f, pool.observed, pool.succeeded, params.gas
            )
            pool.observed = pool.succeeded = 0


def pay_uptime_incentive(state: State, params: Params) -> Amount:
    """Mint ``coprocessor_issuance_share`` of mintable to coprocessors (SPEC 9); return it.

    Shares follow ``collateral * reputation * curve(load)``; with no weight
    nothing is minted and operators keep the whole mintable.
    """
    state.minter.uptime = 0
    pot = ppm_of(state.minter.mintable, params.coprocessor_issuance_share)
    if pot == 0 or not state.coprocessors:
        return 0
    names = sorted(state.coprocessors)
    cops = [state.coprocessors[n] for n in names]
    weights = params.load_curve.compute_uptime_weights(
        np.array([c.free + c.locked for c in cops], dtype=object),
        np.array([compute_reputation(c.reputation_f) for c in cops]),
        np.array([compute_utilisation(c) for c in cops]),
    )
    shares = compute_uptime_shares(pot, weights)
    paid = sum(shares)
    for name, share in zip(names, shares, strict=True):
        if share:
            state.balances[name] = state.balances.get(name, 0) + share
    state.minter.uptime = paid
    state.minter.minted_in_round += paid
    state.totals.minted += paid
    state.totals.liquid += paid
    return paid
