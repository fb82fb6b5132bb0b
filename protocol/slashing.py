"""Operator slashing with finder fee and burn (SPEC section 7).

Livepeer slashes only the operator's own bond, at once. With
``slash_delegators`` the whole pool loses the fraction; that slash takes
effect at the end of the round through the pool's cumulative factor (so it
stays O(1) and every position in the pool at that moment shares it exactly).
"""

from __future__ import annotations

from .earnings import (
    compute_settlement,
    ensure_factor_entry,
    settle,
    sweep_dust,
    tracking_position,
)
from .errors import InvalidFraction, UnknownOperator
from .params import Params
from .state import INITIAL_FACTOR, State
from .units import PPM, Address, Amount, Ppm, ppm_of


def check_slash(state: State, operator: Address, fraction_ppm: Ppm) -> None:
    """Refuse an unknown operator or a fraction outside (0, PPM]."""
    pool = state.pools.get(operator)
    if pool is None or not pool.registered:
        raise UnknownOperator(f"operator {operator!r}: not a registered operator")
    if (
        not isinstance(fraction_ppm, int)
        or isinstance(fraction_ppm, bool)
        or not (0 < fraction_ppm <= PPM)
    ):
        raise InvalidFraction(f"fraction_ppm: must be in (0, {PPM}], got {fraction_ppm!r}")


def pay_finder_and_burn(
    state: State, params: Params, penalty: Amount, finder: Address | None
) -> Amount:
    """Pay the finder its fee out of ``penalty`` and burn the rest; return the finder's amount."""
    finder_amount = ppm_of(penalty, params.finder_fee) if finder is not None else 0
    if finder is not None:
        state.balances[finder] = state.balances.get(finder, 0) + finder_amount
        state.totals.liquid += finder_amount
    state.totals.burned += penalty - finder_amount
    return finder_amount


def compute_own_slash(state: State, operator: Address, fraction_ppm: Ppm) -> Amount:
    """Return the penalty on the operator's own stake."""
    if operator not in state.delegators:
        return 0
    return ppm_of(compute_settlement(state, operator).stake, fraction_ppm)


def slash_operator(
    state: State, params: Params, operator: Address, fraction_ppm: Ppm, finder: Address | None
) -> Amount:
    """Slash the operator; return the amount taken now (0 when deferred to the round's end)."""
    check_slash(state, operator, fraction_ppm)
    pool = state.pools[operator]
    if params.slash_delegators:
        remaining = PPM - pool.pending_slash_ppm if pool.slash_round == state.round else PPM
        pool.pending_slash_ppm = PPM - remaining * (PPM - fraction_ppm) // PPM
        pool.slash_round = state.round
        if finder is not None:
            pool.pending_slash_finder = finder
        if operator not in state.slashed_pools:
            state.slashed_pools.append(operator)
        return 0
    penalty = compute_own_slash(state, operator, fraction_ppm)
    if penalty == 0:
        return 0
    with tracking_position(state, operator):
        settle(state, operator)
        state.delegators[operator].bonded -= penalty
        pool.delegated -= penalty
    sweep_dust(state, pool)  # a deep slash can leave dust that outweighs a lone operator
    state.totals.bonded -= penalty
    pay_finder_and_burn(state, params, penalty, finder)
    return penalty


def apply_pool_slashes(state: State, params: Params) -> None:
    """Apply delegator-wide slashes decided in the round that is ending."""
    for operator in state.slashed_pools:
        pool = state.pools[operator]
        keep = PPM - pool.pending_slash_ppm
        entry = ensure_factor_entry(pool, state.round)
        entry.crf_end = entry.crf_end * keep // PPM
        if entry.crf_end < INITIAL_FACTOR:
            # Rebase: a new epoch starts at the unit factor, so rewards keep all their
            # digits; positions carry over at their value (none survive a full slash).
            pool.epoch_ends[pool.epoch] = state.round
            pool.epoch += 1
            if entry.crf_end == 0:
                pool.live_epoch = pool.epoch
                pool.positions = 0
        pool.cumulative_rewards = pool.cumulative_rewards * keep // PPM
        penalty = ppm_of(pool.delegated, PPM - keep)
        pool.delegated -= penalty
        state.totals.bonded -= penalty
        escrow = pool.carries.get(state.round)
        if escrow is not None:
            # Round rewards carried for stake that changed this round share the slash.
            escrow.keep_ppm = escrow.keep_ppm * keep // PPM
            taken = ppm_of(escrow.amount, PPM - keep)
            escrow.amount -= taken
            state.totals.escrow -= taken
            penalty += taken
        pay_finder_and_burn(state, params, penalty, pool.pending_slash_finder)
        sweep_dust(state, pool)
        pool.pending_slash_ppm = 0
        pool.pending_slash_finder = None
    state.slashed_pools.clear()
