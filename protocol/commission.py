"""Commission changes with Bittensor bounds and cooldown (SPEC section 4)."""

from __future__ import annotations

from .errors import (
    CommissionCooldown,
    CommissionTooHigh,
    CommissionTooLow,
    CommissionUnchanged,
    NotOwner,
    UnknownOperator,
)
from .params import Params
from .staking import check_ppm
from .staking import register_operator as register
from .state import PendingCommission, State
from .units import PPM, Address, Ppm


def get_commission(state: State, operator: Address) -> tuple[Ppm, Ppm]:
    """Return the latest requested (reward_cut, fee_share), pending change included."""
    pending = state.pending_commissions.get(operator)
    if pending is not None:
        return pending.reward_cut, pending.fee_share
    pool = state.pools[operator]
    return pool.reward_cut, pool.fee_share


def is_increase(old: tuple[Ppm, Ppm], new: tuple[Ppm, Ppm]) -> bool:
    """Return whether either take (reward cut, or fee take ``PPM - fee_share``) rises."""
    return new[0] > old[0] or PPM - new[1] > PPM - old[1]


def check_commission_change(
    state: State,
    params: Params,
    operator: Address,
    reward_cut: Ppm,
    fee_share: Ppm,
    sender: Address | None,
) -> None:
    """Refuse a change that breaks a rule, naming it (SPEC 4)."""
    pool = state.pools.get(operator)
    if pool is None or not pool.registered:
        raise UnknownOperator(f"operator {operator!r}: not a registered operator")
    if sender is not None and sender != operator:
        raise NotOwner(f"sender {sender!r}: does not own operator {operator!r}")
    check_takes(params, reward_cut, fee_share)
    old = get_commission(state, operator)
    if (reward_cut, fee_share) == old:
        raise CommissionUnchanged(f"commission: already reward_cut={old[0]} fee_share={old[1]}")
    check_cooldown(state, params, operator, old, (reward_cut, fee_share))


def check_takes(params: Params, reward_cut: Ppm, fee_share: Ppm) -> None:
    """Refuse a reward cut or fee take (``PPM - fee_share``) outside [min_take, max_take]."""
    check_ppm(reward_cut, "reward_cut")
    check_ppm(fee_share, "fee_share")
    for name, take in (("reward_cut", reward_cut), ("fee take", PPM - fee_share)):
        if take > params.max_take:
            raise CommissionTooHigh(f"{name}: {take} above max_take {params.max_take}")
        if take < params.min_take:
            raise CommissionTooLow(f"{name}: {take} below min_take {params.min_take}")


def check_cooldown(
    state: State, params: Params, operator: Address, old: tuple[Ppm, Ppm], new: tuple[Ppm, Ppm]
) -> None:
    """Refuse raising a take within ``take_cooldown_rounds`` of the last change (0: no
    cooldown, as Bittensor's rate limit of 0)."""
    last = state.pools[operator].last_commission_change
    cooldown = params.take_cooldown_rounds
    within = last is not None and cooldown > 0 and state.round - last <= cooldown
    if within and is_increase(old, new):
        raise CommissionCooldown(
            f"commission: increase allowed after round {last + cooldown}, now {state.round}"
        )


def register_operator(
    state: State, params: Params, operator: Address, reward_cut: Ppm, fee_share: Ppm
) -> None:
    """Register ``operator`` with a commission inside the take bounds (SPEC 4, 5).

    An operator that resigned and registers again keeps the commission it had
    in force; a different one is a commission change like any other: refused
    as a raise inside the cooldown, else effective next round.
    """
    check_takes(params, reward_cut, fee_share)
    pool = state.pools.get(operator)
    if pool is None or not pool.ever_registered or pool.registered:
        register(state, params, operator, reward_cut, fee_share)
        return
    old, new = get_commission(state, operator), (reward_cut, fee_share)
    if new != old:
        check_cooldown(state, params, operator, old, new)
    register(state, params, operator, pool.reward_cut, pool.fee_share)
    if new != old:
        state.pending_commissions[operator] = PendingCommission(reward_cut, fee_share, state.round)
        pool.last_commission_change = state.round


def request_commission_change(
    state: State,
    params: Params,
    operator: Address,
    reward_cut: Ppm,
    fee_share: Ppm,
    sender: Address | None = None,
) -> None:
    """Record a change effective next round; any change restarts the cooldown."""
    check_commission_change(state, params, operator, reward_cut, fee_share, sender)
    state.pending_commissions[operator] = PendingCommission(reward_cut, fee_share, state.round)
    state.pools[operator].last_commission_change = state.round


def apply_commission_changes(state: State) -> None:
    """Apply the changes requested before this round (SPEC 2 step 3)."""
    for operator in sorted(state.pending_commissions):
        change = state.pending_commissions[operator]
        if change.round < state.round:
            pool = state.pools[operator]
            pool.reward_cut, pool.fee_share = change.reward_cut, change.fee_share
            del state.pending_commissions[operator]
