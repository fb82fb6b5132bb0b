"""Bonding, unbonding locks, registration and the active set (SPEC sections 2 and 5).

Each mutator checks everything first, using pure helpers, and only then
changes state, so a refusal leaves the state exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from .earnings import (
    compute_settlement,
    ensure_factor_entry,
    get_pending_stake,
    settle,
    tracking_position,
)
from .errors import (
    AlreadyRegistered,
    InsufficientBalance,
    InsufficientBond,
    InsufficientFees,
    InvalidAmount,
    InvalidFraction,
    LockNotWithdrawable,
    NotBonded,
    NotSelfBonded,
    OperatorCannotDelegate,
    ProtocolError,
    UnknownAccount,
    UnknownLock,
    UnknownOperator,
)
from .params import Params
from .state import Delegator, Lock, Pool, State
from .units import PPM, Address, Amount, Ppm, is_int

# --- predicates and getters --------------------------------------------------


def is_registered(state: State, address: Address) -> bool:
    """Return whether ``address`` is a registered operator."""
    pool = state.pools.get(address)
    return pool is not None and pool.registered


def is_active(state: State, address: Address) -> bool:
    """Return whether ``address`` is in this round's active set."""
    return address in state.active


def get_own_bond(state: State, operator: Address) -> Amount:
    """Return the operator's own stake (self-bond plus unclaimed commission)."""
    d = state.delegators.get(operator)
    if d is None or d.delegate != operator:
        return 0
    return get_pending_stake(state, operator)


MAX_ID = 2**63 - 1
"""The largest lock, task or proposal id: ids count up from 0, so a larger one names nothing."""


def check_int(
    value: object,
    field: str,
    error: type[ProtocolError] = InvalidAmount,
    *,
    low: int | None = None,
    high: int | None = None,
    rule: str | None = None,
) -> None:
    """Refuse anything but an ``int`` in ``[low, high]``, raising ``error`` naming ``field``.

    The one integer check of the protocol's mutators (amounts, fractions, lock,
    task and proposal ids, capacities): a ``bool`` is not an integer here, so
    ``True`` is never lock 1, and neither is ``1.0`` or ``"1"``.
    """
    if (
        not is_int(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        if rule is None:
            bounds = [f">= {low}"] if low is not None else []
            bounds += [f"<= {high}"] if high is not None else []
            rule = "an integer" + (" " + " and ".join(bounds) if bounds else "")
        raise error(f"{field}: must be {rule}, got {shown(value)}")


def shown(value: object, limit: int = 60) -> str:
    """Return ``repr(value)`` for a one-line message, cut at ``limit`` characters."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
        return f"an integer of {value.bit_length()} bits" if is_int(value) else "?"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_amount(amount: object, field: str = "amount") -> None:
    """Refuse anything but a positive integer amount."""
    check_int(amount, field, InvalidAmount, low=1, rule="a positive integer of base units")


def check_ppm(value: object, field: str) -> None:
    """Refuse a PPM fraction outside [0, PPM]."""
    check_int(value, field, InvalidFraction, low=0, high=PPM, rule=f"an integer in [0, {PPM}]")


def check_account(state: State, address: Address) -> None:
    """Refuse an address that holds no account."""
    if address not in state.balances and address not in state.delegators:
        raise UnknownAccount(f"account {address!r}: unknown")


def get_delegator_or_raise(state: State, address: Address) -> Delegator:
    """Return the delegator record or refuse."""
    d = state.delegators.get(address)
    if d is None:
        raise UnknownAccount(f"account {address!r}: has never bonded")
    return d


def get_lock_or_raise(state: State, address: Address, lock_id: int) -> Lock:
    """Return an unbonding lock or refuse."""
    return find_lock(get_delegator_or_raise(state, address).locks, address, lock_id)


def find_lock(locks: dict[int, Lock], address: Address, lock_id: int) -> Lock:
    """Return ``locks[lock_id]`` or refuse naming the lock."""
    check_int(lock_id, "lock_id", UnknownLock, low=0, high=MAX_ID)
    lock = locks.get(lock_id)
    if lock is None:
        raise UnknownLock(f"lock_id {lock_id!r}: no such unbonding lock for {address!r}")
    return lock


def check_withdrawable(state: State, lock: Lock, lock_id: int) -> None:
    """Refuse a lock whose withdraw round has not come (SPEC 5)."""
    if lock.withdraw_round > state.round:
        raise LockNotWithdrawable(
            f"lock_id {lock_id}: withdrawable from round {lock.withdraw_round}, now {state.round}"
        )


def check_fee_batch(
    state: State, payments: Sequence[tuple[Address, Address, Amount]]
) -> tuple[dict[Address, Amount], dict[Address, Amount]]:
    """Refuse a fee batch with any bad row; return the totals per payer and per operator."""
    owed: dict[Address, Amount] = {}
    earned: dict[Address, Amount] = {}
    # A hot path (settlement batches): one pass of plain dict work; a bad row is
    # located and named only once something failed.
    try:
        for payer, operator, amount in payments:
            if type(amount) is not int or amount <= 0:
                raise TypeError
            owed[payer] = owed.get(payer, 0) + amount
            earned[operator] = earned.get(operator, 0) + amount
    except (TypeError, ValueError):
        for i, row in enumerate(payments):
            if not isinstance(row, tuple | list) or len(row) != 3:
                raise InvalidAmount(f"payments[{i}]: must be (payer, operator, amount)") from None
            check_amount(row[2], f"payments[{i}].amount")
        raise
    pools, balances = state.pools, state.balances
    for operator in earned:
        pool = pools.get(operator)
        if pool is None or not pool.registered:
            raise UnknownOperator(f"payments: operator {operator!r} is not registered")
    for payer, amount in owed.items():
        balance = balances.get(payer)
        if balance is None or balance < amount:
            check_account(state, payer)
            raise InsufficientBalance(f"payments: {payer!r} owes {amount}, balance {balance or 0}")
    return owed, earned


# --- mutators ----------------------------------------------------------------


def bond(state: State, delegator: Address, operator: Address, amount: Amount) -> None:
    """Bond liquid balance to ``operator``; a different operator takes the whole bond (SPEC 5)."""
    check_amount(amount)
    check_account(state, delegator)
    if state.balances.get(delegator, 0) < amount:
        raise InsufficientBalance(
            f"amount: {amount} exceeds the liquid balance {state.balances.get(delegator, 0)}"
        )
    if operator != delegator and not is_registered(state, operator):
        raise UnknownOperator(f"operator {operator!r}: not a registered operator")
    if is_registered(state, delegator) and operator != delegator:
        raise OperatorCannotDelegate(
            f"operator {delegator!r}: a registered operator cannot bond to {operator!r}"
        )
    n = state.round
    d = state.delegators.setdefault(delegator, Delegator())
    target = state.pools.setdefault(operator, Pool(address=operator))
    with tracking_position(state, delegator):
        settle(state, delegator)
        if d.delegate is not None and d.delegate != operator and d.bonded > 0:
            state.pools[d.delegate].delegated -= d.bonded
            target.delegated += d.bonded
        d.delegate = operator
        ensure_factor_entry(target, n)
        d.last_claim_round = n
        d.epoch = target.epoch
        d.bonded += amount
        target.delegated += amount
    state.balances[delegator] -= amount
    state.totals.liquid -= amount
    state.totals.bonded += amount


def register_operator(
    state: State, params: Params, operator: Address, reward_cut: Ppm, fee_share: Ppm
) -> None:
    """Register ``operator`` with a commission in [0, PPM] (Livepeer ``transcoder``)."""
    check_ppm(reward_cut, "reward_cut")
    check_ppm(fee_share, "fee_share")
    check_account(state, operator)
    if is_registered(state, operator):
        raise AlreadyRegistered(f"operator {operator!r}: already registered")
    d = state.delegators.get(operator)
    if d is not None and d.delegate not in (None, operator) and d.bonded > 0:
        raise NotSelfBonded(f"operator {operator!r}: bonded to {d.delegate!r}, not to itself")
    if d is None:
        d = state.delegators[operator] = Delegator()
    pool = state.pools.setdefault(operator, Pool(address=operator))
    ensure_factor_entry(pool, state.round)
    if d.delegate is None or d.bonded == 0:
        d.delegate = operator
        d.last_claim_round = state.round
        d.epoch = pool.epoch
    if not pool.ever_registered:
        # A re-registering operator keeps its reputation; a new one starts at the GAS prior.
        pool.reputation_f = params.gas.initial_f
        pool.ever_registered = True
    pool.registered = True
    pool.registered_seq = state.next_registration_seq
    state.next_registration_seq += 1
    pool.reward_cut = reward_cut
    pool.fee_share = fee_share


def unbond(state: State, params: Params, delegator: Address, amount: Amount) -> int:
    """Move ``amount`` of bond into a lock withdrawable after the unbonding period (SPEC 5)."""
    check_amount(amount)
    d = get_delegator_or_raise(state, delegator)
    if d.delegate is None:
        raise NotBonded(f"account {delegator!r}: not bonded")
    available = compute_settlement(state, delegator).stake
    if amount > available:
        raise InsufficientBond(f"amount: {amount} exceeds the bonded stake {available}")
    pool = state.pools[d.delegate]
    with tracking_position(state, delegator):
        settle(state, delegator)
        d.bonded -= amount
        pool.delegated -= amount
    lock_id = d.next_lock_id
    d.next_lock_id += 1
    d.locks[lock_id] = Lock(amount=amount, withdraw_round=state.round + params.unbonding_period)
    state.totals.bonded -= amount
    state.totals.locked += amount
    if d.bonded == 0 and pool.address == delegator and pool.registered:
        # Unbonding the whole self-bond resigns: out of the active set from next round.
        pool.registered = False
    return lock_id


def rebond(state: State, delegator: Address, lock_id: int) -> None:
    """Return an unbonding lock to the current operator (SPEC 5)."""
    lock = get_lock_or_raise(state, delegator, lock_id)
    d = state.delegators[delegator]
    if d.delegate is None:
        raise NotBonded(f"account {delegator!r}: has no operator to rebond to")
    if d.delegate != delegator and not is_registered(state, d.delegate):
        raise UnknownOperator(f"operator {d.delegate!r}: no longer registered; bond elsewhere")
    with tracking_position(state, delegator):
        settle(state, delegator)
        d.bonded += lock.amount
        state.pools[d.delegate].delegated += lock.amount
    del d.locks[lock_id]
    state.totals.locked -= lock.amount
    state.totals.bonded += lock.amount


def withdraw_stake(state: State, delegator: Address, lock_id: int) -> Amount:
    """Pay out a lock whose withdraw round has come (SPEC 5)."""
    lock = get_lock_or_raise(state, delegator, lock_id)
    check_withdrawable(state, lock, lock_id)
    del state.delegators[delegator].locks[lock_id]
    state.balances[delegator] = state.balances.get(delegator, 0) + lock.amount
    state.totals.locked -= lock.amount
    state.totals.liquid += lock.amount
    return lock.amount


def withdraw_fees(state: State, delegator: Address, amount: Amount) -> None:
    """Pay ``amount`` of earned fees to the liquid balance (SPEC 5)."""
    check_amount(amount)
    get_delegator_or_raise(state, delegator)
    available = compute_settlement(state, delegator).fees
    if amount > available:
        raise InsufficientFees(f"amount: {amount} exceeds the claimable fees {available}")
    with tracking_position(state, delegator):
        settle(state, delegator)
    state.delegators[delegator].fees -= amount
    state.balances[delegator] = state.balances.get(delegator, 0) + amount
    state.totals.fees -= amount
    state.totals.liquid += amount


def claim_earnings(state: State, delegator: Address) -> None:
    """Fold unclaimed rewards into the bond and fees into claimable fees (O(1))."""
    get_delegator_or_raise(state, delegator)
    with tracking_position(state, delegator):
        settle(state, delegator)


# --- the active set ----------------------------------------------------------


def compute_active_set(state: State, params: Params) -> dict[Address, Amount]:
    """Return the top ``max_active_operators`` by stake; ties keep incumbents (SPEC 2)."""
    candidates = [
        pool
        for pool in state.pools.values()
        if pool.registered
        and pool.delegated > 0
        and get_own_bond(state, pool.address) >= max(params.min_operator_bond, 1)
    ]
    candidates.sort(key=lambda p: (-p.delegated, p.address not in state.active, p.registered_seq))
    chosen = candidates[: params.max_active_operators]
    return {pool.address: pool.delegated for pool in chosen}


def select_active_set(state: State, params: Params) -> None:
    """Fix this round's active set and freeze its stakes."""
    state.active = compute_active_set(state, params)
    state.total_active_stake = sum(state.active.values())
