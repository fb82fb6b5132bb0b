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
    check_ppm(reward_cut, "reward_cut")
    check_ppm(fee_share, "fee_share")
    for name, take in (("reward_cut", reward_cut), ("fee take", PPM - fee_share)):
        if take > params.max_take:
            raise CommissionTooHigh(f"{name}: {take} above max_take {params.max_take}")
        if take < params.min_take:
            raise CommissionTooLow(f"{name}: {take} below min_take {params.min_take}")
    old = get_commission(state, operator)
    if (reward_cut, fee_share) == old:
        raise CommissionUnchanged(f"commission: already reward_cut={old[0]} fee_share={old[1]}")
    last = pool.last_commission_change
    if (
        is_increase(old, (reward_cut, fee_share))
        and last is not None
        and state.round - last <= params.take_cooldown_rounds
    ):
        raise CommissionCooldown(
            f"commission: increase allowed after round {last + params.take_cooldown_rounds}, "
            f"now {state.round}"
        )


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
