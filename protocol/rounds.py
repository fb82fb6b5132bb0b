"""Round initialization as a flat list of named steps (SPEC section 2), and invariants."""

from __future__ import annotations

from .commission import apply_commission_changes
from .earnings import get_factor_refs, get_oldest_factor_ref
from .errors import StakerayError
from .governance import execute_proposals
from .issuance import get_total_supply, update_minter
from .market import forget_old_outcomes, pay_uptime_incentive, update_reputations
from .params import Params
from .slashing import apply_pool_slashes
from .staking import select_active_set
from .state import State
from .units import Address, Amount


class InvariantViolation(StakerayError, AssertionError):
    """An invariant of SPEC section 11 does not hold: a bug, never a user error."""


def initialize_round(state: State, params: Params) -> Params:
    """Go to the next round and initialize it; return the parameters in force."""
    apply_pool_slashes(state, params)  # 0. end of the previous round
    state.round += 1
    select_active_set(state, params)  # 1. active set and frozen stakes
    update_minter(state, params)  # 2. issuance
    pay_uptime_incentive(state, params)  # 2b. coprocessors' share of it (SPEC 9)
    apply_commission_changes(state)  # 3. commission changes of the previous round
    # 4. locks with withdraw_round <= round are withdrawable: a predicate, no work.
    params = execute_proposals(state, params)  # 5. governance
    update_reputations(state, params)  # 6. GAS step with the last round's outcomes
    forget_old_outcomes(state)  # 7. older outcomes live in the log only
    # 8. factor entries nobody can read were dropped as they were released
    #    (earnings.release_factor_entry, SPEC 4): no work here.
    check_conservation(state)
    return params


def get_accounted_supply(state: State) -> Amount:
    """Return the sum of every bucket tokens can sit in (SPEC 11)."""
    t = state.totals
    return (
        t.liquid
        + t.bonded
        + t.locked
        + t.fees
        + t.escrow
        + t.treasury
        + t.collateral
        + t.task_escrow
    )


def check_conservation(state: State) -> None:
    """Check supply == buckets using the running totals (O(1))."""
    supply, accounted = get_total_supply(state), get_accounted_supply(state)
    if supply != accounted:
        raise InvariantViolation(f"conservation: supply {supply} != accounted {accounted}")


def compute_bucket_totals(state: State) -> dict[str, Amount]:
    """Recompute from scratch the buckets that the state holds item by item."""
    return {
        "liquid": sum(state.balances.values()),
        "bonded": sum(p.delegated for p in state.pools.values()),
        "locked": sum(lock.amount for d in state.delegators.values() for lock in d.locks.values()),
        "escrow": sum(c.amount for p in state.pools.values() for c in p.carries.values()),
        "collateral": sum(
            c.free + c.locked + sum(lock.amount for lock in c.locks.values())
            for c in state.coprocessors.values()
        ),
        "task_escrow": sum(t.fee for t in state.tasks.values()),
    }


def check_invariants(state: State) -> None:
    """Check every invariant in full (O(state)); used by tests and ``verify``."""
    check_conservation(state)
    t = state.totals
    recomputed = compute_bucket_totals(state)
    for name, value in recomputed.items():
        if getattr(t, name) != value:
            raise InvariantViolation(f"totals.{name}: tracked {getattr(t, name)} != {value}")
    for name in (
        "liquid",
        "bonded",
        "locked",
        "fees",
        "escrow",
        "treasury",
        "collateral",
        "task_escrow",
    ):
        if getattr(t, name) < 0:
            raise InvariantViolation(f"totals.{name}: negative")
    positions: dict[Address, int] = {}
    for d in state.delegators.values():
        if (
            d.delegate is not None
            and d.bonded > 0
            and d.epoch >= state.pools[d.delegate].live_epoch
        ):
            positions[d.delegate] = positions.get(d.delegate, 0) + 1
    for address, pool in state.pools.items():
        if pool.delegated < 0:
            raise InvariantViolation(f"pool {address!r}: negative stake")
        held = positions.get(address, 0)
        if pool.positions != held:
            raise InvariantViolation(f"pool {address!r}: {pool.positions} positions, {held} held")
    for address, balance in state.balances.items():
        if balance < 0:
            raise InvariantViolation(f"balance {address!r}: negative")
    check_factor_entries(state)


def check_factor_entries(state: State) -> None:
    """Check each pool keeps the factor entries lookups read, and only those (SPEC 4).

    Read: the latest entry, every position's and carry's start (counted in
    ``factor_refs``, ascending) and every epoch end a position crosses. Kept
    besides: epoch ends at or after the oldest reference (a cheap bound).
    """
    refs: dict[Address, dict[int, int]] = {address: {} for address in state.pools}
    read: dict[Address, set[int]] = {address: set() for address in state.pools}
    for address, d in state.delegators.items():
        for operator, r in get_factor_refs(d):
            refs[operator][r] = refs[operator].get(r, 0) + 1
            read[operator].add(r)
        if d.delegate is not None and d.bonded > 0:
            pool = state.pools[d.delegate]
            for epoch in range(d.epoch, pool.epoch):
                if epoch not in pool.epoch_ends:
                    raise InvariantViolation(f"{address!r}: epoch {epoch} end of pool dropped")
                read[d.delegate].add(pool.epoch_ends[epoch])
    for address, pool in state.pools.items():
        if pool.factor_refs != refs[address] or list(pool.factor_refs) != sorted(refs[address]):
            raise InvariantViolation(
                f"pool {address!r}: factor_refs {pool.factor_refs} != {refs[address]}"
            )
        if pool.last_factor_round is not None:
            read[address].add(pool.last_factor_round)
        missing = read[address] - pool.factors.keys()
        if missing:
            raise InvariantViolation(f"pool {address!r}: read factor entries {missing} dropped")
        oldest = get_oldest_factor_ref(pool)
        ends = {r for r in pool.epoch_ends.values() if oldest is not None and r >= oldest}
        extra = pool.factors.keys() - read[address] - ends
        if extra:
            raise InvariantViolation(f"pool {address!r}: factor entries {extra} kept, never read")
