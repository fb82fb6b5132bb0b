"""One account's earnings round by round, rebuilt from the durable ledger log (SPEC 4).

``stakeray earnings ADDRESS --dir RUN_DIR`` explains where an account's stake,
fees and liquid balance came from: per round, its position and operator, the
operator's reward and ``reward_cut``, its reward from issuance and from fees,
slashes, settlements (claims), bonds, unbonds and withdrawals, with running
totals. Every amount is an integer number of base units.

How it is computed. The log is replayed once from genesis (as ``rounds.csv``
is, :mod:`cluster.analysis.history`). After every frame the account's
``(pending stake, pending fees)`` is read with the protocol's own lazy
:func:`protocol.earnings.get_pending` (O(1): the LIP-36 cumulative factors of
its pool and carry, nothing is looped over delegators) and its liquid balance
with a dictionary look-up; the change is attributed to the frame that caused
it. So the per-round shares are the protocol's arithmetic exactly, no
formula is restated here, the work per frame for this account is O(1) and no
round re-walks history: one query costs one replay plus O(rounds) rows.
Reading after every frame (not only after the account's own transactions and
its operator's) is what keeps it exact: another delegator's claim can hand
this account the rounding remainder of a carry escrow, and a pool emptied by
others makes its lone operator the owner of the pool's residual.

Attribution of a frame's change ``(d_stake, d_fees, d_balance)``:

- the account's own ``bond``/``unbond``/``rebond``/``withdraw_stake``/
  ``withdraw_fees``: the amounts the transaction moves go to ``bonded``,
  ``unbonded``, ``rebonded``, ``withdrawn_stake``, ``withdrawn_fees``; a
  carried reward paid to the liquid balance by the settlement (nothing left
  bonded, SPEC 4) goes to ``paid_out``; the settled bond and fee balance's
  growth beyond those amounts goes to ``claimed_rewards``/``claimed_fees``
  (``claim_earnings`` moves no value, it only settles);
- a frame that can slash (``slash_operator``, ``fail_operator``,
  ``audit_fault``, ``expire_task``, ``settle_batch``) and the round change
  that applies a delegator-wide slash of a pool the account holds stake in
  (its operator's, its carry's, its own commission account's): a fall in
  stake is ``slashed``;
- anything else: stake to ``reward`` (issuance: checkpoints, carries, rounding
  remainders), fees to ``fees``, balance to ``other_liquid`` (the genesis
  balance, transfers, fees paid, finder fees, governance transfers,
  collateral, ...).

A round change belongs to the round it ends (the slash decided in it, the
carry of it becoming final). Rows run from the first round whose end finds the
account in the ledger to the last round; the last row ends at the log's end.
The identities, exact to the base unit (:func:`reconcile` checks them)::

    pending_stake = sum(bonded + rebonded - unbonded + reward - slashed - paid_out)
    pending_fees  = sum(fees - withdrawn_fees)
    locked        = sum(unbonded - rebonded - withdrawn_stake)
    balance       = sum(other_liquid - bonded + withdrawn_stake + withdrawn_fees + paid_out)

and each row's end columns are the previous row's plus its own flows.
"""

from __future__ import annotations

import csv
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from protocol import Protocol
from protocol import transactions as tx
from protocol.earnings import get_active_stake, get_pending
from protocol.errors import StakerayError
from protocol.ledger import read_log
from protocol.units import Address, Amount


class EarningsError(StakerayError):
    """The account asked about has no earnings to explain (one line naming it)."""


SLASHING = (tx.SlashOperator, tx.FailOperator, tx.AuditFault, tx.ExpireTask, tx.SettleBatch)
"""Frames that may slash an operator's own bond (or decide a pool's slash)."""

OWN = (tx.Bond, tx.Unbond, tx.Rebond, tx.WithdrawStake, tx.WithdrawFees, tx.ClaimEarnings)
"""The account's own staking transactions (field ``delegator``)."""


@dataclass(frozen=True, slots=True)
class EarningsRow:
    """One account in one round: its position, what it earned and what moved (base units)."""

    round: int
    operator: str  # whose pool its stake was active in this round ("" if none)
    reward_cut: int  # that operator's reward_cut (PPM) this round; -1 if no operator
    operator_reward: int  # what that operator's checkpoint minted this round (as rounds.csv)
    stake: int  # pending stake at the round's start: bond plus unclaimed rewards
    active: int  # the part of it counted in the operator's frozen stake this round
    reward: int  # reward from issuance (commission included for an operator)
    fees: int  # reward from fees
    slashed: int
    bonded: int  # liquid balance bonded
    unbonded: int  # stake moved into unbonding locks
    rebonded: int  # locks returned to the bond
    withdrawn_stake: int  # locks paid out
    withdrawn_fees: int
    paid_out: int  # a carried reward paid to the liquid balance (nothing left bonded)
    claimed_rewards: int  # unclaimed rewards settled into the bond by its transactions
    claimed_fees: int  # unclaimed fees settled into its fee balance
    other_liquid: int  # other changes of the liquid balance (genesis, transfers, ...)
    pending_stake: int  # at the round's end
    pending_fees: int
    locked: int
    balance: int
    total_rewards: int  # cumulative
    total_fees: int
    total_slashed: int


EARNINGS_COLUMNS = [f.name for f in fields(EarningsRow)]


class _Round:
    """The flows of one round, accumulated frame by frame."""

    def __init__(self, n: int, stake: Amount, active: Amount, operator: Address | None) -> None:
        self.round, self.stake, self.active, self.operator = n, stake, active, operator
        self.reward_cut: int | None = None
        self.reward = self.fees = self.slashed = 0
        self.bonded = self.unbonded = self.rebonded = 0
        self.withdrawn_stake = self.withdrawn_fees = self.paid_out = 0
        self.claimed_rewards = self.claimed_fees = self.other_liquid = 0


class _Tracker:
    """Follows one account through a replay; O(1) per frame."""

    def __init__(self, protocol: Protocol, address: Address) -> None:
        self.protocol, self.address = protocol, address
        state = protocol.state
        self.stake, self.fees = get_pending(state, address)
        self.balance = state.balances.get(address, 0)
        self.locked = 0
        self.minted: dict[Address, Amount] = {}  # this round's checkpoints
        self.cuts: dict[Address, int] = {}  # the reward_cut each checkpoint used
        self.current = _Round(state.round, self.stake, 0, None)
        self.current.other_liquid = self.balance  # the genesis balance
        self.balance_seen = self.balance
        self.rows: list[EarningsRow] = []
        self.totals = [0, 0, 0]  # rewards, fees, slashed
        self.slash_ends = False
        self.settled: tuple[Amount, Amount] = (0, 0)
        self.lock_amount = 0

    # --- around each frame ------------------------------------------------------------

    def before(self, t: tx.Tx) -> None:
        state, address = self.protocol.state, self.address
        if isinstance(t, tx.InitializeRound):
            self.slash_ends = bool(self.pools_held() & set(state.slashed_pools))
            self.close_operator()
        elif isinstance(t, OWN) and t.delegator == address:
            d = state.delegators.get(address)
            self.settled = (d.bonded, d.fees) if d is not None else (0, 0)
            if isinstance(t, tx.Rebond) and d is not None:
                self.lock_amount = d.locks[t.lock_id].amount

    def after(self, t: tx.Tx, result: object) -> None:
        state, address, row = self.protocol.state, self.address, self.current
        if isinstance(t, tx.Reward) and isinstance(result, int):
            self.minted[t.operator] = self.minted.get(t.operator, 0) + result
            self.cuts[t.operator] = state.pools[t.operator].reward_cut
        stake, fees = get_pending(state, address)
        balance = state.balances.get(address, 0)
        d_stake, d_fees, d_balance = stake - self.stake, fees - self.fees, balance - self.balance
        self.stake, self.fees, self.balance = stake, fees, balance
        if isinstance(t, OWN) and t.delegator == address:
            d_stake, d_fees, d_balance = self.own(t, result, d_stake, d_fees, d_balance)
            slashing = False
        else:
            slashing = isinstance(t, SLASHING) or (
                isinstance(t, tx.InitializeRound) and self.slash_ends
            )
        if slashing and d_stake < 0:
            row.slashed -= d_stake
        else:
            row.reward += d_stake
        row.fees += d_fees
        row.other_liquid += d_balance
        if isinstance(t, tx.InitializeRound):
            self.close()
            self.minted.clear()
            self.cuts.clear()
            active, operator = get_active_stake(state, address)
            self.current = _Round(state.round, stake, active, operator)

    def own(
        self, t: tx.Tx, result: object, d_stake: Amount, d_fees: Amount, d_balance: Amount
    ) -> tuple[Amount, Amount, Amount]:
        """Take the account's own transaction's amounts out of the changes; return the rest."""
        row = self.current
        principal = fee_principal = 0
        if isinstance(t, tx.Bond):
            row.bonded += t.amount
            principal, d_stake, d_balance = t.amount, d_stake - t.amount, d_balance + t.amount
        elif isinstance(t, tx.Unbond):
            row.unbonded += t.amount
            self.locked += t.amount
            principal, d_stake = -t.amount, d_stake + t.amount
        elif isinstance(t, tx.Rebond):
            row.rebonded += self.lock_amount
            self.locked -= self.lock_amount
            principal, d_stake = self.lock_amount, d_stake - self.lock_amount
        elif isinstance(t, tx.WithdrawStake) and isinstance(result, int):
            row.withdrawn_stake += result
            self.locked -= result
            d_balance -= result
        elif isinstance(t, tx.WithdrawFees):
            row.withdrawn_fees += t.amount
            fee_principal, d_fees, d_balance = -t.amount, d_fees + t.amount, d_balance - t.amount
        if not isinstance(t, tx.WithdrawStake):  # every other one settles first (SPEC 5)
            if d_balance > 0:  # a carried reward, nothing left bonded: paid out liquid
                row.paid_out += d_balance
                d_stake, d_balance = d_stake + d_balance, 0
            d = self.protocol.state.delegators[self.address]
            row.claimed_rewards += d.bonded - self.settled[0] - principal
            row.claimed_fees += d.fees - self.settled[1] - fee_principal
        return d_stake, d_fees, d_balance

    # --- rows -------------------------------------------------------------------------

    def pools_held(self) -> set[Address]:
        """The pools whose slash can reach the account: its operator's, carry's and own."""
        state, address = self.protocol.state, self.address
        held = {address} if address in state.pools else set()
        d = state.delegators.get(address)
        if d is not None:
            if d.delegate is not None:
                held.add(d.delegate)
            if d.carry is not None:
                held.add(d.carry.operator)
        return held

    def close_operator(self) -> None:
        """Fix the round's operator and its cut from the state before the round ends."""
        row, state = self.current, self.protocol.state
        if row.operator is None:
            d = state.delegators.get(self.address)
            if d is not None and d.delegate is not None and (d.bonded > 0 or d.carry is not None):
                row.operator = d.delegate
        if row.operator is not None:
            cut = self.cuts.get(row.operator)
            pool = state.pools.get(row.operator)
            row.reward_cut = cut if cut is not None else pool.reward_cut if pool else None

    def close(self) -> None:
        """End the current round's row with the account's values now."""
        row, state = self.current, self.protocol.state
        exists = self.address in state.balances or self.address in state.delegators
        if not self.rows and not exists:
            return  # the account does not exist yet: no row
        self.totals[0] += row.reward
        self.totals[1] += row.fees
        self.totals[2] += row.slashed
        operator = row.operator or ""
        self.rows.append(
            EarningsRow(
                round=row.round,
                operator=operator,
                reward_cut=row.reward_cut if row.reward_cut is not None else -1,
                operator_reward=self.minted.get(operator, 0),
                stake=row.stake,
                active=row.active,
                reward=row.reward,
                fees=row.fees,
                slashed=row.slashed,
                bonded=row.bonded,
                unbonded=row.unbonded,
                rebonded=row.rebonded,
                withdrawn_stake=row.withdrawn_stake,
                withdrawn_fees=row.withdrawn_fees,
                paid_out=row.paid_out,
                claimed_rewards=row.claimed_rewards,
                claimed_fees=row.claimed_fees,
                other_liquid=row.other_liquid,
                pending_stake=self.stake,
                pending_fees=self.fees,
                locked=self.locked,
                balance=self.balance,
                total_rewards=self.totals[0],
                total_fees=self.totals[1],
                total_slashed=self.totals[2],
            )
        )


def replay_earnings(ledger_dir: str | Path, address: Address) -> tuple[Protocol, list[EarningsRow]]:
    """Replay ``ledger_dir`` once; return the protocol and ``address``'s rows, one a round.

    Raise :class:`EarningsError` for an account the ledger never held or that
    never bonded.
    """
    with read_log(ledger_dir) as (protocol, frames):
        tracker = _Tracker(protocol, address)
        for frame in frames:
            inner = tx.parse_tx(frame.tx) if isinstance(frame, tx.Signed) else frame
            tracker.before(inner)
            result = protocol.apply(frame)
            tracker.after(inner, result)
        tracker.close_operator()
        tracker.close()
    state = protocol.state
    if address not in state.delegators:
        if address in state.balances:
            raise EarningsError(f"address {address!r}: has never bonded in {ledger_dir}")
        raise EarningsError(f"address {address!r}: no such account in {ledger_dir}")
    return protocol, tracker.rows


def delegator_earnings(ledger_dir: str | Path, address: Address) -> list[EarningsRow]:
    """Return ``address``'s earnings rows, one per round (see the module docstring)."""
    return replay_earnings(ledger_dir, address)[1]


def reconcile(protocol: Protocol, address: Address, rows: list[EarningsRow]) -> list[str]:
    """Return how the rows fail the identities against the protocol's state; [] if they hold.

    The sums of the flows must equal the pending stake and fees, the unbonding
    locks and the liquid balance to the base unit, and each row must continue
    the previous one.
    """
    problems = []
    before = (0, 0, 0, 0)
    for row in rows:
        flows = (
            row.bonded + row.rebonded - row.unbonded + row.reward - row.slashed - row.paid_out,
            row.fees - row.withdrawn_fees,
            row.unbonded - row.rebonded - row.withdrawn_stake,
            row.other_liquid - row.bonded + row.withdrawn_stake + row.withdrawn_fees + row.paid_out,
        )
        expected = tuple(b + f for b, f in zip(before, flows, strict=True))
        after = (row.pending_stake, row.pending_fees, row.locked, row.balance)
        if expected != after:
            problems.append(f"round {row.round}: start + flows {expected} != end {after}")
        if row.stake != before[0]:
            problems.append(f"round {row.round}: starts at stake {row.stake}, not {before[0]}")
        before = after
    state = (
        protocol.pending_stake(address),
        protocol.pending_fees(address),
        sum(amount for amount, _ in protocol.locks(address).values()),
        protocol.balance(address),
    )
    if before != state:
        problems.append(
            f"the rows end at (stake, fees, locked, balance) {before}, the ledger at {state}"
        )
    return problems


def write_earnings_csv(rows: list[EarningsRow], path: str | Path) -> None:
    """Write the rows as CSV (base units) to ``path``."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EARNINGS_COLUMNS)
        writer.writerows(astuple(row) for row in rows)
