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

Cost does not grow with history. A pool keeps only the factor entries a
lookup can still read: its latest, those its positions and carries start
from (reference-counted in ``Pool.factor_refs``) and the epoch ends a position
still crosses. An entry is dropped as soon as its last reader lets it go, in
O(1), so claims read exactly the numbers they read before and the state holds
one entry per pool plus one per distinct round an open position started.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from .params import Params
from .state import INITIAL_FACTOR, Carry, CarryPool, Delegator, FactorEntry, Pool, State
from .units import PPM, PRECISE, Address, Amount, Factor, Round, ppb_of, ppm_of, precise_of

# --- factors ---------------------------------------------------------------


def get_current_factors(pool: Pool) -> tuple[Factor, Factor]:
    """Return the pool's latest (CRF, CFF); a rebased pool restarts at the unit factor."""
    if pool.last_factor_round is None:
        return INITIAL_FACTOR, 0
    entry = pool.factors[pool.last_factor_round]
    if pool.epoch and pool.last_factor_round == pool.epoch_ends[pool.epoch - 1]:
        return INITIAL_FACTOR, entry.cff
    return entry.crf_end, entry.cff


@dataclass(slots=True)
class PositionView:
    """A position as the current epoch sees it: ``amount`` valued from ``start_crf``.

    A position that started in an earlier epoch of its pool is carried over
    at its value at each epoch's end; ``fees_before`` is what it earned in
    those epochs.
    """

    amount: Amount
    start_crf: Factor
    start_cff: Factor
    fees_before: Amount
    crf_now: Factor
    cff_now: Factor
    crf_base: Factor

    @property
    def value(self) -> Amount:
        return precise_of(self.amount, self.crf_now, self.start_crf)

    @property
    def fees(self) -> Amount:
        return self.fees_before + precise_of(
            self.amount, self.cff_now - self.start_cff, self.start_crf
        )

    @property
    def active_value(self) -> Amount:
        """Value through the previous round: the position's part of this round's stake."""
        return precise_of(self.amount, self.crf_base, self.start_crf)


def get_position(pool: Pool, d: Delegator, n: Round) -> PositionView:
    """Return ``d``'s position in ``pool`` read in round ``n`` (O(epochs since it settled))."""
    amount = d.bonded
    start = pool.factors[d.last_claim_round]
    start_crf, start_cff, fees = start.crf, start.cff, 0
    for epoch in range(d.epoch, pool.epoch):
        end = pool.factors[pool.epoch_ends[epoch]]
        fees += precise_of(amount, end.cff - start_cff, start_crf)
        amount = precise_of(amount, end.crf_end, start_crf)
        start_crf, start_cff = INITIAL_FACTOR, end.cff
    crf_now, cff_now = get_current_factors(pool)
    crf_base, _ = get_base_factors(pool, n)
    return PositionView(amount, start_crf, start_cff, fees, crf_now, cff_now, crf_base)


def get_base_factors(pool: Pool, n: Round) -> tuple[Factor, Factor]:
    """Return the pool's (CRF, CFF) at the end of round ``n - 1``, read in round ``n``."""
    entry = pool.factors.get(n)
    if entry is not None:
        return entry.crf_base, entry.cff_base
    return get_current_factors(pool)


def ensure_factor_entry(pool: Pool, n: Round) -> FactorEntry:
    """Return the pool's entry for the current round ``n``, creating it from the latest one.

    The entry it supersedes as the latest is dropped unless a position, a carry
    or an epoch end still reads it (see :func:`is_factor_entry_needed`).
    """
    entry = pool.factors.get(n)
    if entry is None:
        crf, cff = get_current_factors(pool)
        entry = FactorEntry(crf_base=crf, cff_base=cff, crf=crf, cff=cff, crf_end=crf)
        previous = pool.last_factor_round
        pool.factors[n] = entry
        pool.last_factor_round = n
        if previous is not None:
            drop_factor_entry(pool, previous)
        if pool.epoch_ends:
            prune_epoch_ends(pool)
    return entry


# --- which factor entries are kept (SPEC 4) --------------------------------
#
# Lookups read a pool's entry of round ``r`` only when ``r`` is
#   1. the pool's latest round with an entry (``get_current_factors``; the current
#      round's entry, read by ``get_base_factors``, ``process_reward`` and
#      ``credit_fees``, is the latest once it exists);
#   2. the ``last_claim_round`` of a position in the pool (``get_position``,
#      ``is_lone_claimant``; only while the position holds a bond);
#   3. the ``round`` of a carry of the pool (``compute_carry_earnings``);
#   4. the end of an epoch a position started in or before (``get_position``):
#      such an end is at or after the position's ``last_claim_round``.
# Cases 2 and 3 are counted in ``Pool.factor_refs``. References are only ever
# made in the current round, so its keys are in ascending order and its first
# key is the oldest reference. An entry that no case covers can never be read
# again (rounds only move forward), so it is dropped as soon as it is released:
# the stored entries depend on the open positions and carries, not on history.


def get_factor_refs(d: Delegator | None) -> list[tuple[Address, Round]]:
    """Return the (pool, round) factor entries ``d``'s claims read: its position's and carry's."""
    refs: list[tuple[Address, Round]] = []
    if d is None:
        return refs
    if d.delegate is not None and d.bonded > 0:
        refs.append((d.delegate, d.last_claim_round))
    if d.carry is not None:
        refs.append((d.carry.operator, d.carry.round))
    return refs


def get_oldest_factor_ref(pool: Pool) -> Round | None:
    """Return the oldest round a position or carry of the pool reads, if any (O(1))."""
    return next(iter(pool.factor_refs), None)


def is_factor_entry_needed(pool: Pool, r: Round) -> bool:
    """Return whether a lookup can still read the pool's entry of round ``r``."""
    if r == pool.last_factor_round or r in pool.factor_refs:
        return True
    oldest = get_oldest_factor_ref(pool)
    return oldest is not None and oldest <= r and r in pool.epoch_ends.values()


def drop_factor_entry(pool: Pool, r: Round) -> None:
    """Drop the pool's entry of round ``r`` if no lookup can read it any more."""
    if r in pool.factors and not is_factor_entry_needed(pool, r):
        del pool.factors[r]


def prune_epoch_ends(pool: Pool) -> None:
    """Forget the epoch ends that precede every reference, and their entries.

    A position crosses only epoch ends at or after its ``last_claim_round``. The
    last end stays (``get_current_factors`` compares with it) but its entry goes.
    O(pruned): the ends are in ascending order and the walk stops at a kept one.
    """
    oldest = get_oldest_factor_ref(pool)
    last = pool.epoch - 1
    stale: list[int] = []
    for epoch, r in pool.epoch_ends.items():
        if oldest is not None and r >= oldest:
            break
        stale.append(epoch)
    for epoch in stale:
        r = pool.epoch_ends[epoch] if epoch == last else pool.epoch_ends.pop(epoch)
        drop_factor_entry(pool, r)


def acquire_factor_entry(pool: Pool, r: Round) -> None:
    """Count one more position or carry reading the pool's entry of round ``r`` (the current)."""
    pool.factor_refs[r] = pool.factor_refs.get(r, 0) + 1


def release_factor_entry(pool: Pool, r: Round) -> None:
    """Count one reader of the pool's round-``r`` entry less; drop what nobody reads now."""
    count = pool.factor_refs[r] - 1
    if count:
        pool.factor_refs[r] = count
        return
    del pool.factor_refs[r]
    drop_factor_entry(pool, r)
    if pool.epoch_ends:
        prune_epoch_ends(pool)  # the oldest reference may have moved past some ends


def update_factor_refs(
    state: State, before: list[tuple[Address, Round]], after: list[tuple[Address, Round]]
) -> None:
    """Move a delegator's factor references from ``before`` to ``after`` (new ones first)."""
    pools = state.pools
    for address, r in after:
        acquire_factor_entry(pools[address], r)
    for address, r in before:
        release_factor_entry(pools[address], r)


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


def position_of(d: Delegator | None) -> tuple[Address, int] | None:
    """Return the (pool, epoch) ``d`` holds a position in, if any."""
    if d is None or d.delegate is None or d.bonded == 0:
        return None
    return d.delegate, d.epoch


def get_residual(pool: Pool) -> Amount:
    """Return what the pool holds beyond its operator's unclaimed commission."""
    return pool.delegated - pool.cumulative_rewards


def is_lone_operator(state: State, pool: Pool) -> bool:
    """Return whether the pool's only position is its operator's own."""
    if pool.positions != 1:
        return False
    d = state.delegators.get(pool.address)
    return (
        d is not None and d.delegate == pool.address and d.bonded > 0 and d.epoch >= pool.live_epoch
    )


# Dust up to this fraction of a lone operator's position stays in its pool, as in
# Livepeer (it earns under a millionth of the pool's rewards); above it the operator
# owns the pool's residual, so a pool whittled down to a few base units orphans nothing.
RESIDUAL_THRESHOLD = 10**6


def is_residual_claimant(state: State, pool: Pool, value: Amount) -> bool:
    """Return whether the pool's lone operator, whose position is worth ``value``, owns its dust."""
    return (
        is_lone_operator(state, pool) and (get_residual(pool) - value) * RESIDUAL_THRESHOLD > value
    )


def is_lone_claimant(state: State, pool: Pool) -> bool:
    """Return whether the pool's lone operator owns its dust (then it also keeps all fees)."""
    if pool.positions != 1 or not is_lone_operator(state, pool):
        return False
    d = state.delegators[pool.address]
    if d.epoch == pool.epoch:
        # The common case, written out: the position's value in the current epoch.
        crf_now, _ = get_current_factors(pool)
        value = precise_of(d.bonded, crf_now, pool.factors[d.last_claim_round].crf)
    else:
        value = get_position(pool, d, state.round).value
    return is_residual_claimant(state, pool, value)


def get_lone_active_value(state: State, pool: Pool) -> Amount:
    """Return a residual-claimant operator's stake this round: the frozen stake but the rest."""
    n = state.round
    commission = pool.active_cumulative_rewards if pool.acr_round == n else pool.cumulative_rewards
    carried = pool.carried if pool.carried_round == n else 0
    return state.active[pool.address] - commission - carried


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
        pos = get_position(pool, d, n)
        fees += pos.fees
        claimant = pool.address == address and is_residual_claimant(state, pool, pos.value)
        if pool.address in state.active and pos.amount > 0:
            x = get_lone_active_value(state, pool) if claimant else pos.active_value
            pending = pool.last_reward_round < n
            bonded = x if pending else pos.value
            new_carry = Carry(pool.address, n, x, pos.crf_base, pos.cff_now, pending)
        else:
            bonded = pos.value
        if claimant and not (pool.address in state.active and pool.last_reward_round < n):
            bonded = get_residual(pool)
    elif (
        pool is not None
        and pool.address == address
        and d.bonded > 0
        and is_residual_claimant(state, pool, d.bonded)
    ):
        bonded = get_residual(pool)
    own = state.pools.get(address)
    cr = own.cumulative_rewards if own is not None else 0
    cf = own.cumulative_fees if own is not None else 0
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
        if pool.carried_round != n:
            pool.carried_round, pool.carried = n, 0
        pool.carried += plan.new_carry.x
        if plan.new_carry.reward_pending:
            escrow = pool.carries.setdefault(n, CarryPool())
            escrow.count += 1
            escrow.departed += plan.new_carry.x
        d.carry = plan.new_carry
    d.bonded = plan.bonded + plan.commission_rewards
    d.fees = plan.fees
    d.last_claim_round = n
    own = state.pools.get(address)
    if own is not None:
        # The operator's commission account is its own, wherever it is bonded now.
        touch_commission(own, n)
        if plan.commission_rewards and d.delegate not in (None, address):
            own.delegated -= plan.commission_rewards
            state.pools[d.delegate].delegated += plan.commission_rewards
        own.cumulative_rewards = 0
        own.cumulative_fees = 0
    if d.delegate is not None:
        pool = state.pools[d.delegate]
        ensure_factor_entry(pool, n)
        d.epoch = pool.epoch
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


@contextmanager
def tracking_position(state: State, address: Address) -> Iterator[None]:
    """Keep each pool's count of positions right across a change to ``address``'s bond.

    Every mutator that may change a bond runs its whole change inside this; it
    also moves the delegator's references to factor entries (SPEC 4), so an entry
    nobody reads any more is dropped.
    """
    d = state.delegators.get(address)
    before, refs_before = position_of(d), get_factor_refs(d)
    yield
    d = state.delegators.get(address)
    after, refs_after = position_of(d), get_factor_refs(d)
    if refs_before != refs_after:
        update_factor_refs(state, refs_before, refs_after)
    if before == after:
        return
    if after is not None:
        state.pools[after[0]].positions += 1
    if before is not None:
        pool = state.pools[before[0]]
        if before[1] >= pool.live_epoch:
            pool.positions -= 1
            sweep_dust(state, pool)


def sweep_dust(state: State, pool: Pool) -> None:
    """Send what an empty pool still holds (rounding dust) to the treasury, so it is claimable."""
    if pool.positions > 0:
        return
    dust = get_residual(pool)
    if dust > 0:
        pool.delegated -= dust
        state.totals.bonded -= dust
        state.totals.treasury += dust


# --- pending values --------------------------------------------------------


def get_pending(state: State, address: Address) -> tuple[Amount, Amount]:
    """Return (stake, fees): bond plus unclaimed rewards, and claimable fees.

    An operator's include its commission account; an operator alone in its
    pool is valued at the pool's residual (see :func:`compute_settlement`).
    """
    d = state.delegators.get(address)
    if d is None:
        return 0, 0
    stake, fees = 0, d.fees
    pool = state.pools.get(d.delegate) if d.delegate is not None else None
    if pool is not None and d.bonded > 0:
        position = get_position(pool, d, state.round)
        stake = position.value
        if pool.address == address and is_residual_claimant(state, pool, stake):
            stake = get_residual(pool)
        fees += position.fees
    own = state.pools.get(address)
    if own is not None:
        stake += own.cumulative_rewards
        fees += own.cumulative_fees
    if d.carry is not None:
        carry_pool = state.pools[d.carry.operator]
        reward, carry_fees = compute_carry_earnings(
            carry_pool, d.carry, is_carry_final(state, d.carry)
        )
        stake += reward
        fees += carry_fees
    return stake, fees


def get_pending_stake(state: State, address: Address) -> Amount:
    """Return bond plus unclaimed rewards (an operator's includes its commission)."""
    return get_pending(state, address)[0]


def get_pending_fees(state: State, address: Address) -> Amount:
    """Return fees claimable by ``address``."""
    return get_pending(state, address)[1]


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
    return get_position(state.pools[d.delegate], d, n).active_value, d.delegate


# --- checkpoint and fees ---------------------------------------------------


def compute_reward(state: State, operator: Address) -> Amount:
    """Return the operator's stake-weighted share of this round's mintable (SPEC 3)."""
    stake = state.active[operator]
    mintable = state.minter.mintable - state.minter.uptime  # coprocessors' share goes first
    return ppb_of(mintable, stake, state.total_active_stake)


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
    if pool.positions == 0:
        sweep_dust(state, pool)  # a pool whose stake all left this round: nobody to share with
    state.minter.minted_in_round += minted
    totals = state.totals
    totals.minted += minted
    totals.bonded += reward - escrowed
    totals.escrow += escrowed
    totals.treasury += to_treasury
    return minted


def process_fees(state: State, operator: Address, amount: Amount) -> None:
    """Credit ``amount`` of fees to the operator's pool (SPEC 4)."""
    credit_fees(state, {operator: amount})


def credit_fees(state: State, earned: Mapping[Address, Amount]) -> None:
    """Credit fees to operator pools (SPEC 4): ``fee_share`` to delegators through CFF.

    The operator keeps the rest plus its unclaimed commission's share. A pool
    with no active stake or no delegator to share with leaves it all to the
    operator. A hot path (one entry per operator per settlement batch), so
    ``ppm_of`` and ``precise_of`` are written out.
    """
    n = state.round
    pools, active = state.pools, state.active
    for operator in sorted(earned):
        amount = earned[operator]
        pool = pools[operator]
        if pool.acr_round < n:
            touch_commission(pool, n)
        stake = active.get(operator, 0)
        if stake == 0 or pool.positions == 0 or is_lone_claimant(state, pool):
            pool.cumulative_fees += amount
            continue
        entry = pool.factors.get(n) or ensure_factor_entry(pool, n)
        delegators_fees = amount * pool.fee_share // PPM
        acr = pool.active_cumulative_rewards
        own_share = delegators_fees * (acr * PRECISE // stake) // PRECISE if acr else 0
        pool.cumulative_fees += own_share + amount - delegators_fees
        entry.cff += entry.crf_base * (delegators_fees * PRECISE // stake) // PRECISE
