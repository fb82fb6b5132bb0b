"""Cumulative factors, lazy O(1) claims, rewards and fees (SPEC section 4, LIP-36).

A position is ``bonded`` valued from the factors of round ``last_claim_round``:
``stake = bonded * CRF[e] / CRF[s]`` and ``fees = bonded * (CFF[e] - CFF[s]) / CRF[s]``,
with Livepeer's truncation order (``precise_of``).

No orphaned tokens. Livepeer restarts a position at the current round's
factor whenever it changes, so a change made before the operator's
checkpoint forfeits that round's share. Here a change in round ``n`` of a
position that was active in ``n`` restarts it from its value through round
``n - 1`` and leaves a :class:`Carry` that pays round ``n``'s reward and fees
on that value later. The reward share of carried stake is escrowed at the
checkpoint (it has left the pool or restarted) and the last carry of a round
takes what rounding left, so every minted base unit is claimable.
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import Params
from .state import INITIAL_FACTOR, Carry, CarryPool, Delegator, FactorEntry, Pool, State
from .units import PPM, Address, Amount, Factor, Round, ppb_of, ppm_of, precise_of

# --- factors ---------------------------------------------------------------


def get_current_factors(pool: Pool) -> tuple[Factor, Factor]:
    """Return the pool's latest (CRF, CFF); a wiped pool restarts at the unit factor."""
    if pool.last_factor_round is None:
        return INITIAL_FACTOR, 0
    entry = pool.factors[pool.last_factor_round]
    return entry.crf_end or INITIAL_FACTOR, entry.cff


@dataclass(slots=True)
class PositionFactors:
    """The factors a position is valued with: from its start to now (or to its pool's wipe)."""

    start_crf: Factor
    start_cff: Factor
    crf_now: Factor
    cff_now: Factor
    crf_base: Factor


def get_position_factors(pool: Pool, d: Delegator, n: Round) -> PositionFactors:
    """Return the factors of ``d``'s position in ``pool`` read in round ``n``."""
    start = pool.factors[d.last_claim_round]
    if d.epoch != pool.epoch:
        # The pool was wiped by a full slash after this position started: it is worth 0.
        end = pool.factors[pool.epoch_ends[d.epoch]]
        return PositionFactors(start.crf, start.cff, 0, end.cff, 0)
    crf_now, cff_now = get_current_factors(pool)
    crf_base, _ = get_base_factors(pool, n)
    return PositionFactors(start.crf, start.cff, crf_now, cff_now, crf_base)


def get_base_factors(pool: Pool, n: Round) -> tuple[Factor, Factor]:
    """Return the pool's (CRF, CFF) at the end of round ``n - 1``, read in round ``n``."""
    entry = pool.factors.get(n)
    if entry is not None:
        return entry.crf_base, entry.cff_base
    return get_current_factors(pool)


def ensure_factor_entry(pool: Pool, n: Round) -> FactorEntry:
    """Return the pool's entry for the current round ``n``, creating it from the latest one."""
    entry = pool.factors.get(n)
    if entry is None:
        crf, cff = get_current_factors(pool)
        entry = FactorEntry(crf_base=crf, cff_base=cff, crf=crf, cff=cff, crf_end=crf)
        pool.factors[n] = entry
        pool.last_factor_round = n
    return entry


def touch_commission(pool: Pool, n: Round) -> None:
    """Freeze the operator's unclaimed commission that is active in round ``n``.

    Livepeer reads it at the checkpoint; reading it at the first event of the
    round gives the same number and keeps it when the operator claims first.
    """
    if pool.acr_round < n:
        pool.active_cumulative_rewards = pool.cumulative_rewards
        pool.acr_round = n


# --- carries ---------------------------------------------------------------


def is_carry_final(state: State, carry: Carry) -> bool:
    """Return whether no more carries can join the carry's escrow (its reward is known)."""
    return carry.round < state.round or state.pools[carry.operator].last_reward_round >= carry.round


def compute_carry_earnings(pool: Pool, carry: Carry, final: bool) -> tuple[Amount, Amount]:
    """Return (reward, fees) a carry pays; ``final`` when its escrow can take no new carry."""
    entry = pool.factors[carry.round]
    fees = precise_of(carry.x, entry.cff - carry.cff_mark, carry.crf_base)
    if not carry.reward_pending:
        return 0, fees
    escrow = pool.carries[carry.round]
    if final and escrow.count == 1:
        return escrow.amount, fees
    reward = precise_of(carry.x, entry.crf, carry.crf_base) - carry.x
    # A delegator-wide slash at the end of the carry's round takes its share of the escrow too.
    reward = reward * escrow.keep_ppm // PPM
    return min(reward, escrow.amount), fees


# --- settlement ------------------------------------------------------------


@dataclass(slots=True)
class Settlement:
    """What settling a delegator in round ``n`` does; computed first, applied after checks."""

    bonded: Amount
    fees: Amount
    folded: Carry | None
    folded_reward: Amount
    new_carry: Carry | None
    commission_rewards: Amount
    reward_to_bond: bool

    @property
    def stake(self) -> Amount:
        """Bonded stake after settlement (carried reward included when it joins the bond)."""
        carried = self.folded_reward if self.reward_to_bond else 0
        return self.bonded + self.commission_rewards + carried


def compute_settlement(state: State, address: Address) -> Settlement:
    """Return the settlement of ``address`` in the current round, changing nothing."""
    n = state.round
    d = state.delegators[address]
    folded, folded_reward, fees = None, 0, d.fees
    if d.carry is not None and d.carry.round < n:
        folded = d.carry
        folded_reward, carry_fees = compute_carry_earnings(
            state.pools[folded.operator], folded, final=True
        )
        fees += carry_fees
    elif d.carry is not None and d.carry.reward_pending and is_carry_final(state, d.carry):
        # This round's reward is known: it joins the bond now, so it is staked and
        # slashable like everyone else's; the carry stays for the round's later fees.
        folded = d.carry
        folded_reward = compute_carry_earnings(state.pools[folded.operator], folded, True)[0]
    pool = state.pools.get(d.delegate) if d.delegate is not None else None
    bonded, new_carry = d.bonded, None
    if pool is not None and d.bonded > 0 and d.last_claim_round < n:
        f = get_position_factors(pool, d, n)
        fees += precise_of(d.bonded, f.cff_now - f.start_cff, f.start_crf)
        if pool.address in state.active:
            x = precise_of(d.bonded, f.crf_base, f.start_crf)
            pending = pool.last_reward_round < n
            bonded = x if pending else precise_of(d.bonded, f.crf_now, f.start_crf)
            new_carry = Carry(pool.address, n, x, f.crf_base, f.cff_now, pending)
        else:
            bonded = precise_of(d.bonded, f.crf_now, f.start_crf)
    cr = cf = 0
    if pool is not None and pool.address == address:
        cr, cf = pool.cumulative_rewards, pool.cumulative_fees
    # A carried reward joins the bond; with nothing left bonded it is paid out liquid.
    to_bond = pool is not None and (bonded + cr > 0 or pool.address == address)
    return Settlement(bonded, fees + cf, folded, folded_reward, new_carry, cr, to_bond)


def apply_settlement(state: State, address: Address, plan: Settlement) -> None:
    """Apply a settlement computed by :func:`compute_settlement` in this round."""
    n = state.round
    d = state.delegators[address]
    totals = state.totals
    if plan.folded is not None:
        carry_pool = state.pools[plan.folded.operator]
        if plan.folded.reward_pending:
            escrow = carry_pool.carries[plan.folded.round]
            escrow.amount -= plan.folded_reward
            escrow.count -= 1
            if escrow.count == 0:
                del carry_pool.carries[plan.folded.round]
        totals.escrow -= plan.folded_reward
        if plan.folded.round < n:
            d.carry = None
        else:
            plan.folded.reward_pending = False
    if plan.new_carry is not None:
        pool = state.pools[plan.new_carry.operator]
        ensure_factor_entry(pool, n)
        if plan.new_carry.reward_pending:
            escrow = pool.carries.setdefault(n, CarryPool())
            escrow.count += 1
            escrow.departed += plan.new_carry.x
        d.carry = plan.new_carry
    d.bonded = plan.bonded + plan.commission_rewards
    d.fees = plan.fees
    d.last_claim_round = n
    if d.delegate is not None:
        pool = state.pools[d.delegate]
        ensure_factor_entry(pool, n)
        d.epoch = pool.epoch
        if pool.address == address:
            touch_commission(pool, n)
            pool.cumulative_rewards = 0
            pool.cumulative_fees = 0
    if plan.folded_reward:
        if plan.reward_to_bond:
            d.bonded += plan.folded_reward
            state.pools[d.delegate].delegated += plan.folded_reward
            totals.bonded += plan.folded_reward
        else:
            state.balances[address] = state.balances.get(address, 0) + plan.folded_reward
            totals.liquid += plan.folded_reward


def settle(state: State, address: Address) -> Settlement:
    """Settle ``address`` in the current round and return what was applied."""
    plan = compute_settlement(state, address)
    apply_settlement(state, address, plan)
    return plan


# --- pending values --------------------------------------------------------


def get_pending_stake(state: State, address: Address) -> Amount:
    """Return bond plus unclaimed rewards (an operator's includes its commission)."""
    d = state.delegators.get(address)
    if d is None:
        return 0
    stake = 0
    pool = state.pools.get(d.delegate) if d.delegate is not None else None
    if pool is not None and d.bonded > 0:
        f = get_position_factors(pool, d, state.round)
        stake = precise_of(d.bonded, f.crf_now, f.start_crf)
    if pool is not None and pool.address == address:
        stake += pool.cumulative_rewards
    if d.carry is not None:
        carry_pool = state.pools[d.carry.operator]
        stake += compute_carry_earnings(carry_pool, d.carry, is_carry_final(state, d.carry))[0]
    return stake


def get_pending_fees(state: State, address: Address) -> Amount:
    """Return fees claimable by ``address``."""
    d = state.delegators.get(address)
    if d is None:
        return 0
    fees = d.fees
    pool = state.pools.get(d.delegate) if d.delegate is not None else None
    if pool is not None and d.bonded > 0:
        f = get_position_factors(pool, d, state.round)
        fees += precise_of(d.bonded, f.cff_now - f.start_cff, f.start_crf)
    if pool is not None and pool.address == address:
        fees += pool.cumulative_fees
    if d.carry is not None:
        carry_pool = state.pools[d.carry.operator]
        fees += compute_carry_earnings(carry_pool, d.carry, is_carry_final(state, d.carry))[1]
    return fees


def get_active_stake(state: State, address: Address) -> tuple[Amount, Address | None]:
    """Return the stake ``address`` has in this round's frozen pool stake, and its operator."""
    d = state.delegators.get(address)
    if d is None:
        return 0, None
    n = state.round
    if d.carry is not None and d.carry.round == n:
        return d.carry.x, d.carry.operator
    if d.delegate is None or d.bonded == 0 or d.last_claim_round >= n:
        return 0, None
    f = get_position_factors(state.pools[d.delegate], d, n)
    return precise_of(d.bonded, f.crf_base, f.start_crf), d.delegate


def get_delegator(state: State, address: Address) -> Delegator | None:
    """Return the delegator record of ``address`` if any."""
    return state.delegators.get(address)


# --- checkpoint and fees ---------------------------------------------------


def compute_reward(state: State, operator: Address) -> Amount:
    """Return the operator's stake-weighted share of this round's mintable (SPEC 3)."""
    stake = state.active[operator]
    return ppb_of(state.minter.mintable, stake, state.total_active_stake)


def process_reward(state: State, params: Params, operator: Address) -> Amount:
    """Checkpoint: mint the operator's reward and split it (SPEC 4); return the amount minted."""
    n = state.round
    pool = state.pools[operator]
    stake = state.active[operator]
    touch_commission(pool, n)
    entry = ensure_factor_entry(pool, n)
    minted = compute_reward(state, operator)
    assert state.minter.minted_in_round + minted <= state.minter.mintable, "over-minted"
    to_treasury = ppm_of(minted, params.treasury_cut)
    reward = minted - to_treasury
    commission = ppm_of(reward, pool.reward_cut)
    delegators_reward = reward - commission
    own_share = precise_of(delegators_reward, pool.active_cumulative_rewards, stake)
    pool.cumulative_rewards += own_share + commission
    entry.crf = entry.crf_base + precise_of(entry.crf_base, delegators_reward, stake)
    entry.crf_end = entry.crf
    escrowed = 0
    escrow = pool.carries.get(n)
    if escrow is not None:
        escrowed = precise_of(escrow.departed, entry.crf, entry.crf_base) - escrow.departed
        escrow.amount = escrowed
    pool.delegated += reward - escrowed
    pool.last_reward_round = n
    state.minter.minted_in_round += minted
    totals = state.totals
    totals.minted += minted
    totals.bonded += reward - escrowed
    totals.escrow += escrowed
    totals.treasury += to_treasury
    return minted


def process_fees(state: State, operator: Address, amount: Amount) -> None:
    """Credit ``amount`` of fees to the operator's pool (SPEC 4): ``fee_share`` to delegators."""
    n = state.round
    pool = state.pools[operator]
    touch_commission(pool, n)
    stake = state.active.get(operator, 0)
    if stake == 0:
        # No active stake this round to share with: the operator keeps it all.
        pool.cumulative_fees += amount
        return
    entry = ensure_factor_entry(pool, n)
    delegators_fees = ppm_of(amount, pool.fee_share)
    own_share = precise_of(delegators_fees, pool.active_cumulative_rewards, stake)
    pool.cumulative_fees += own_share + amount - delegators_fees
    entry.cff += precise_of(entry.crf_base, delegators_fees, stake)
