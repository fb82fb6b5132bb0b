"""The public protocol API: one object that owns the state and applies transactions.

Every mutator either raises a :class:`ProtocolError` subclass having changed
nothing, or applies the change and hands the accepted transaction to
``sink`` (the durable ledger attaches itself there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import codec, earnings, governance, market, staking
from . import transactions as tx
from .commission import get_commission, request_commission_change
from .errors import (
    AlreadyCheckpointed,
    DuplicateTransaction,
    InsufficientBalance,
    InvalidAmount,
    NonceError,
    OperatorNotActive,
    UnknownOperator,
)
from .issuance import get_total_supply
from .params import Params
from .reputation import compute_reputation
from .rounds import check_invariants
from .rounds import initialize_round as _initialize_round
from .slashing import slash_operator as _slash_operator
from .state import State
from .units import Address, Amount, Ppm, Round

Sink = Callable[[tx.Tx], None]


class Protocol:
    """Staking, delegation, issuance, fees, commission, slashing and governance."""

    def __init__(
        self, params: Params | None = None, balances: Mapping[Address, Amount] | None = None
    ) -> None:
        self.params = params if params is not None else Params()
        self.state = State()
        self.sink: Sink | None = None
        genesis = dict(balances or {})
        for address, amount in genesis.items():
            if not isinstance(address, str) or not address:
                raise InvalidAmount(
                    f"balances: address must be a non-empty string, got {address!r}"
                )
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                raise InvalidAmount(f"balances.{address}: must be an integer >= 0, got {amount!r}")
        self.state.balances = genesis
        supply = sum(genesis.values())
        self.state.totals.genesis_supply = supply
        self.state.totals.liquid = supply
        self.state.minter.inflation = self.params.inflation

    # --- construction and replay ------------------------------------------

    def genesis(self) -> tx.Genesis:
        """Return the genesis transaction this protocol was built from (round 0 only)."""
        return tx.Genesis(params=self.params.model_dump(), balances=dict(self.state.balances))

    @classmethod
    def from_genesis(cls, genesis: tx.Genesis) -> Protocol:
        """Build the protocol a genesis transaction describes."""
        return cls(Params.build(**genesis.params), genesis.balances)

    def apply(self, transaction: tx.Tx) -> Any:
        """Apply a transaction (replay, ledger, signed submission)."""
        return transaction.apply(self)

    def _record(self, transaction: tx.Tx) -> None:
        if self.sink is not None:
            self.sink(transaction)

    def nonce(self, address: Address) -> int:
        """Return the nonce the next signed transaction of ``address`` must carry."""
        return self.state.nonces.get(address, 0)

    def apply_signed(self, sender: Address, nonce: int, transaction: tx.Tx) -> Any:
        """Apply an outside transaction that carries ``sender``'s next nonce, then consume it.

        The signature is the cluster's to check; here a used nonce is refused
        (a replay) and so is a gap, and a refused transaction consumes nothing.
        One ``Signed`` frame logs the transaction and its nonce together.
        """
        expected = self.nonce(sender)
        if nonce < expected:
            raise DuplicateTransaction(
                f"sender {sender}: nonce {nonce} already used, expected nonce {expected}"
            )
        if nonce > expected:
            raise NonceError(f"sender {sender}: nonce {nonce} is ahead, expected nonce {expected}")
        sink, self.sink = self.sink, None
        try:
            result = transaction.apply(self)
        finally:
            self.sink = sink
        self.state.nonces[sender] = expected + 1
        self._record(tx.Signed(sender=sender, nonce=nonce, tx=transaction.to_plain()))
        return result

    # --- reads --------------------------------------------------------------

    @property
    def round(self) -> Round:
        return self.state.round

    @property
    def total_supply(self) -> Amount:
        return get_total_supply(self.state)

    @property
    def inflation(self) -> int:
        return self.state.minter.inflation

    @property
    def mintable(self) -> Amount:
        return self.state.minter.mintable

    @property
    def minted_this_round(self) -> Amount:
        return self.state.minter.minted_in_round

    @property
    def treasury(self) -> Amount:
        return self.state.totals.treasury

    @property
    def total_active_stake(self) -> Amount:
        return self.state.total_active_stake

    @property
    def active_set(self) -> dict[Address, Amount]:
        """Return this round's active operators and their frozen stakes."""
        return dict(self.state.active)

    def balance(self, address: Address) -> Amount:
        return self.state.balances.get(address, 0)

    def is_active(self, operator: Address) -> bool:
        return staking.is_active(self.state, operator)

    def is_registered(self, operator: Address) -> bool:
        return staking.is_registered(self.state, operator)

    def pending_stake(self, address: Address) -> Amount:
        return earnings.get_pending_stake(self.state, address)

    def pending_fees(self, address: Address) -> Amount:
        return earnings.get_pending_fees(self.state, address)

    def operator_stake(self, operator: Address) -> Amount:
        """Return everything bonded to ``operator`` (its stake for the next round)."""
        pool = self.state.pools.get(operator)
        return pool.delegated if pool is not None else 0

    def commission(self, operator: Address) -> tuple[Ppm, Ppm]:
        """Return the (reward_cut, fee_share) in force this round."""
        pool = self.state.pools.get(operator)
        if pool is None or not pool.registered:
            raise UnknownOperator(f"operator {operator!r}: not a registered operator")
        return pool.reward_cut, pool.fee_share

    def delegate_of(self, address: Address) -> Address | None:
        d = self.state.delegators.get(address)
        return d.delegate if d is not None else None

    def locks(self, address: Address) -> dict[int, tuple[Amount, Round]]:
        """Return ``{lock_id: (amount, withdraw_round)}``."""
        d = self.state.delegators.get(address)
        if d is None:
            return {}
        return {i: (lock.amount, lock.withdraw_round) for i, lock in d.locks.items()}

    def state_hash(self) -> str:
        """Return the canonical hash of the whole state, parameters included."""
        return codec.state_hash((self.params.model_dump(), self.state))

    def unclaimable(self) -> tuple[Amount, Amount]:
        """Return (stake, fees) held by pools that no account can claim: rounding dust only.

        Negative would mean claims exceed what pools hold (a bug); a whole
        reward share here would be an orphaned share (SPEC 4). O(accounts).
        """
        pending = [earnings.get_pending(self.state, a) for a in self.state.delegators]
        stake = sum(s for s, _ in pending)
        fees = sum(f for _, f in pending)
        t = self.state.totals
        return t.bonded + t.escrow - stake, t.fees - fees

    def check_invariants(self) -> None:
        """Check every SPEC 11 invariant in full (raises ``InvariantViolation``)."""
        check_invariants(self.state)

    # --- rounds -------------------------------------------------------------

    def initialize_round(self) -> Round:
        """Go to the next round and initialize it (SPEC 2); return its number."""
        self.params = _initialize_round(self.state, self.params)
        self._record(tx.InitializeRound())
        return self.state.round

    # --- transactions -------------------------------------------------------

    def transfer(self, sender: Address, to: Address, amount: Amount) -> None:
        """Move liquid tokens between accounts."""
        staking.check_amount(amount)
        staking.check_account(self.state, sender)
        if not isinstance(to, str) or not to:
            raise InvalidAmount(f"to: must be a non-empty address, got {to!r}")
        if self.state.balances.get(sender, 0) < amount:
            raise InsufficientBalance(f"amount: {amount} exceeds the liquid balance of {sender!r}")
        self.state.balances[sender] -= amount
        self.state.balances[to] = self.state.balances.get(to, 0) + amount
        self._record(tx.Transfer(sender=sender, to=to, amount=amount))

    def bond(self, delegator: Address, operator: Address, amount: Amount) -> None:
        """Bond liquid balance; a self-bond when ``delegator == operator`` (SPEC 5)."""
        staking.bond(self.state, delegator, operator, amount)
        self._record(tx.Bond(delegator=delegator, operator=operator, amount=amount))

    def register_operator(
        self, operator: Address, reward_cut: Ppm = 0, fee_share: Ppm = 1_000_000
    ) -> None:
        """Register an operator with its commission (PPM)."""
        staking.register_operator(self.state, self.params, operator, reward_cut, fee_share)
        self._record(
            tx.RegisterOperator(operator=operator, reward_cut=reward_cut, fee_share=fee_share)
        )

    def set_commission(
        self,
        operator: Address,
        reward_cut: Ppm | None = None,
        fee_share: Ppm | None = None,
        sender: Address | None = None,
    ) -> None:
        """Request a commission change, effective next round (SPEC 4)."""
        if operator in self.state.pools and self.state.pools[operator].registered:
            current = get_commission(self.state, operator)
            reward_cut = current[0] if reward_cut is None else reward_cut
            fee_share = current[1] if fee_share is None else fee_share
        request_commission_change(
            self.state,
            self.params,
            operator,
            reward_cut,
            fee_share,
            sender,  # type: ignore[arg-type]
        )
        self._record(
            tx.SetCommission(
                operator=operator, reward_cut=reward_cut, fee_share=fee_share, sender=sender
            )
        )

    def unbond(self, delegator: Address, amount: Amount) -> int:
        """Unbond ``amount`` into a new lock; return its id."""
        lock_id = staking.unbond(self.state, self.params, delegator, amount)
        self._record(tx.Unbond(delegator=delegator, amount=amount))
        return lock_id

    def rebond(self, delegator: Address, lock_id: int) -> None:
        staking.rebond(self.state, delegator, lock_id)
        self._record(tx.Rebond(delegator=delegator, lock_id=lock_id))

    def withdraw_stake(self, delegator: Address, lock_id: int) -> Amount:
        amount = staking.withdraw_stake(self.state, delegator, lock_id)
        self._record(tx.WithdrawStake(delegator=delegator, lock_id=lock_id))
        return amount

    def withdraw_fees(self, delegator: Address, amount: Amount) -> None:
        staking.withdraw_fees(self.state, delegator, amount)
        self._record(tx.WithdrawFees(delegator=delegator, amount=amount))

    def claim_earnings(self, delegator: Address) -> None:
        staking.claim_earnings(self.state, delegator)
        self._record(tx.ClaimEarnings(delegator=delegator))

    def reward(self, operator: Address) -> Amount:
        """Checkpoint the round for ``operator``; return the amount minted (treasury included)."""
        if operator not in self.state.active:
            raise OperatorNotActive(f"operator {operator!r}: not active in round {self.round}")
        if self.state.pools[operator].last_reward_round == self.round:
            raise AlreadyCheckpointed(f"operator {operator!r}: already rewarded round {self.round}")
        minted = earnings.process_reward(self.state, self.params, operator)
        self._record(tx.Reward(operator=operator))
        return minted

    def pay_fees(self, payer: Address, operator: Address, amount: Amount) -> None:
        """Pay ``amount`` of fees from ``payer`` into ``operator``'s pool."""
        staking.check_amount(amount)
        staking.check_account(self.state, payer)
        if not staking.is_registered(self.state, operator):
            raise UnknownOperator(f"operator {operator!r}: not a registered operator")
        if self.state.balances.get(payer, 0) < amount:
            raise InsufficientBalance(f"amount: {amount} exceeds the liquid balance of {payer!r}")
        self.state.balances[payer] -= amount
        self.state.totals.liquid -= amount
        self.state.totals.fees += amount
        earnings.process_fees(self.state, operator, amount)
        self._record(tx.PayFees(payer=payer, operator=operator, amount=amount))

    def pay_fees_batch(self, payments: Sequence[tuple[Address, Address, Amount]]) -> Amount:
        """Pay many ``(payer, operator, amount)`` fees at once; all or nothing.

        Each pool is credited once with its batch total, so a batch of
        settlements costs one factor update per operator. Return the total.
        """
        owed, earned = staking.check_fee_batch(self.state, payments)
        balances = self.state.balances
        for payer, amount in owed.items():
            balances[payer] -= amount
        total = sum(owed.values())
        self.state.totals.liquid -= total
        self.state.totals.fees += total
        earnings.credit_fees(self.state, earned)
        if self.sink is not None:
            self.sink(tx.PayFeesBatch.model_construct(payments=list(payments)))
        return total

    def slash_operator(
        self, operator: Address, fraction_ppm: Ppm, finder: Address | None = None
    ) -> Amount:
        """Slash ``fraction_ppm`` of the operator's stake (SPEC 7); return the amount taken now."""
        taken = _slash_operator(self.state, self.params, operator, fraction_ppm, finder)
        self._record(tx.SlashOperator(operator=operator, fraction_ppm=fraction_ppm, finder=finder))
        return taken

    def propose(
        self,
        proposer: Address,
        changes: Mapping[str, Any] | None = None,
        transfers: Mapping[Address, Amount] | None = None,
    ) -> int:
        """Open a governance proposal; return its id (SPEC 10)."""
        pid = governance.propose(
            self.state, self.params, proposer, dict(changes or {}), dict(transfers or {})
        )
        self._record(
            tx.Propose(
                proposer=proposer, changes=dict(changes or {}), transfers=dict(transfers or {})
            )
        )
        return pid

    def vote(self, voter: Address, proposal_id: int, choice: str) -> None:
        governance.vote(self.state, voter, proposal_id, choice)
        self._record(tx.CastVote(voter=voter, proposal_id=proposal_id, choice=choice))

    # --- the market (SPEC 6-9) ---------------------------------------------

    def register_coprocessor(self, coprocessor: Address, collateral: Amount, capacity: int) -> None:
        """Register a coprocessor with collateral and a capacity of concurrent tasks."""
        market.register_coprocessor(self.state, self.params, coprocessor, collateral, capacity)
        self._record(
            tx.RegisterCoprocessor(
                coprocessor=coprocessor, collateral=collateral, capacity=capacity
            )
        )

    def top_up_collateral(self, coprocessor: Address, amount: Amount) -> None:
        market.top_up_collateral(self.state, coprocessor, amount)
        self._record(tx.TopUpCollateral(coprocessor=coprocessor, amount=amount))

    def unbond_collateral(self, coprocessor: Address, amount: Amount) -> int:
        """Start withdrawing free collateral; return the lock id."""
        lock_id = market.unbond_collateral(self.state, self.params, coprocessor, amount)
        self._record(tx.UnbondCollateral(coprocessor=coprocessor, amount=amount))
        return lock_id

    def withdraw_collateral(self, coprocessor: Address, lock_id: int) -> Amount:
        amount = market.withdraw_collateral(self.state, coprocessor, lock_id)
        self._record(tx.WithdrawCollateral(coprocessor=coprocessor, lock_id=lock_id))
        return amount

    def escrow_tasks(self, client: Address, tasks: Sequence[tuple[int, Amount]]) -> Amount:
        """Escrow the fees of new ``(task_id, fee)`` tasks, all or nothing; return the total."""
        rows = list(tasks)
        total = market.escrow_tasks(self.state, client, rows)
        if self.sink is not None:
            self.sink(tx.EscrowTasks.model_construct(client=client, tasks=[tuple(r) for r in rows]))
        return total

    def assign_task(
        self,
        task_id: int,
        operator: Address,
        coprocessor: Address | None = None,
        price: Amount | None = None,
    ) -> None:
        """Record the operator (and the auction's winner and clock price) running a task."""
        market.assign_task(self.state, self.params, task_id, operator, coprocessor, price)
        self._record(
            tx.AssignTask(task_id=task_id, operator=operator, coprocessor=coprocessor, price=price)
        )

    def settle_tasks(self, task_ids: Sequence[int]) -> int:
        """Settle verified tasks exactly once (finished ids are skipped); return how many."""
        ids = list(task_ids)
        settled = market.settle_tasks(self.state, ids)
        if self.sink is not None:
            self.sink(tx.SettleTasks.model_construct(task_ids=ids))
        return settled

    def refund_task(self, task_id: int) -> None:
        """Refund an unassigned task's fee to its client (expiry)."""
        market.refund_task(self.state, task_id)
        self._record(tx.RefundTask(task_id=task_id))

    def fail_coprocessor(self, task_id: int) -> Amount:
        """Slash the coprocessor that failed a task; re-offer or refund it. Return the slash."""
        slash = market.fail_coprocessor(self.state, self.params, task_id)
        self._record(tx.FailCoprocessor(task_id=task_id))
        return slash

    def fail_operator(self, task_id: int, finder: Address | None = None) -> Amount:
        """Slash an operator that missed a task's deadline and refund the client."""
        taken = market.fail_operator(self.state, self.params, task_id, finder)
        self._record(tx.FailOperator(task_id=task_id, finder=finder))
        return taken

    def audit_fault(self, task_id: int, operator: Address, finder: Address | None = None) -> Amount:
        """Slash an operator whose settled result an audit found wrong."""
        taken = market.audit_fault(self.state, self.params, task_id, operator, finder)
        self._record(tx.AuditFault(task_id=task_id, operator=operator, finder=finder))
        return taken

    def reputation(self, address: Address) -> float:
        """Return the GAS reputation of a coprocessor or operator (SPEC 8)."""
        c = self.state.coprocessors.get(address)
        if c is not None:
            return compute_reputation(c.reputation_f)
        pool = self.state.pools.get(address)
        if pool is not None and pool.registered:
            return compute_reputation(pool.reputation_f)
        raise UnknownOperator(f"address {address!r}: neither a coprocessor nor an operator")

    def proposal_status(self, proposal_id: int) -> str:
        return self.state.proposals[proposal_id].status
