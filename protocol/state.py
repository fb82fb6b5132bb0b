"""Protocol state: plain dataclasses, nothing but data (SPEC sections 2-5, 10).

Every field is part of the canonical state hash. Nothing here loops over
delegators at round time: per-round work touches operators only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .units import PRECISE, Address, Amount, Factor, Ppm, Round


class Outcome(StrEnum):
    """How a task finished (SPEC 6-7); kept in ``State.finished`` with the operator."""

    SETTLED = "settled"
    REFUNDED = "refunded"
    FAILED = "failed"
    AUDITED = "audited"


class ProposalStatus(StrEnum):
    """Where a governance proposal stands (SPEC 10)."""

    OPEN = "open"
    DEFEATED = "defeated"
    FAILED = "failed"
    EXECUTED = "executed"


@dataclass(slots=True)
class FactorEntry:
    """Cumulative factors of one operator pool in one round (SPEC 4, LIP-36).

    ``crf_base``/``cff_base`` are the pool's factors at the end of the
    previous round with an entry; ``crf`` is this round's reward factor;
    ``crf_end`` is ``crf`` after a delegator-wide slash decided this round.
    """

    crf_base: Factor
    cff_base: Factor
    crf: Factor
    cff: Factor
    crf_end: Factor


@dataclass(slots=True)
class Carry:
    """Round-``round`` earnings of stake ``x`` that was active with ``operator``.

    Created when a position changes inside a round in which it was active, so
    the round's share is paid whatever the order of transactions (SPEC 4).
    Fees credited up to factor ``cff_mark`` were already paid.
    """

    operator: Address
    round: Round
    x: Amount
    crf_base: Factor
    cff_mark: Factor
    reward_pending: bool


@dataclass(slots=True)
class Lock:
    """An unbonding lock (SPEC 5)."""

    amount: Amount
    withdraw_round: Round


@dataclass(slots=True)
class Delegator:
    """A bonded account: its position is ``bonded`` valued from round ``last_claim_round``."""

    delegate: Address | None = None
    bonded: Amount = 0
    last_claim_round: Round = 0
    fees: Amount = 0
    carry: Carry | None = None
    epoch: int = 0
    locks: dict[int, Lock] = field(default_factory=dict)
    next_lock_id: int = 0


@dataclass(slots=True)
class CarryPool:
    """Reward escrowed for the carries of one pool and round; the last claimant takes the rest."""

    amount: Amount = 0
    count: int = 0
    departed: Amount = 0
    keep_ppm: int = 1_000_000


@dataclass(slots=True)
class Pool:
    """Everything bonded to one address: an operator when ``registered``."""

    address: Address
    registered: bool = False
    ever_registered: bool = False
    registered_seq: int = 0
    reward_cut: Ppm = 0
    fee_share: Ppm = 0
    last_commission_change: Round | None = None
    delegated: Amount = 0
    positions: int = 0
    carried_round: Round = -1
    carried: Amount = 0
    cumulative_rewards: Amount = 0
    cumulative_fees: Amount = 0
    active_cumulative_rewards: Amount = 0
    acr_round: Round = -1
    last_reward_round: Round = -1
    last_factor_round: Round | None = None
    # Only the entries a lookup can still read (SPEC 4): the latest, those positions
    # and carries start from (counted in ``factor_refs``, rounds ascending) and the
    # epoch ends a position still crosses. The rest is dropped as it is released.
    factors: dict[Round, FactorEntry] = field(default_factory=dict)
    factor_refs: dict[Round, int] = field(default_factory=dict)
    carries: dict[Round, CarryPool] = field(default_factory=dict)
    epoch: int = 0
    epoch_ends: dict[int, Round] = field(default_factory=dict)
    live_epoch: int = 0
    reputation_f: float = 0.0
    observed: int = 0
    succeeded: int = 0
    pending_slash_ppm: Ppm = 0
    pending_slash_finder: Address | None = None
    slash_round: Round = -1


@dataclass(slots=True)
class PendingCommission:
    """A commission change requested in ``round``, effective the round after (SPEC 4)."""

    reward_cut: Ppm
    fee_share: Ppm
    round: Round


@dataclass(slots=True)
class Vote:
    """One account's vote with the weight it had when it voted (SPEC 10)."""

    choice: str
    weight: Amount
    delegate: Address | None


@dataclass(slots=True)
class Proposal:
    """A stake-weighted proposal to change parameters or spend the treasury (SPEC 10)."""

    id: int
    proposer: Address
    changes: dict[str, int]
    transfers: dict[Address, Amount]
    created_round: Round
    end_round: Round
    total_active_stake: Amount
    votes: dict[Address, Vote] = field(default_factory=dict)
    status: ProposalStatus = ProposalStatus.OPEN


@dataclass(slots=True)
class Coprocessor:
    """A registered coprocessor: capacity, collateral and reputation (SPEC 6-9)."""

    address: Address
    capacity: int
    free: Amount = 0
    locked: Amount = 0
    locks: dict[int, Lock] = field(default_factory=dict)
    next_lock_id: int = 0
    load: int = 0
    reputation_f: float = 0.0
    observed: int = 0
    succeeded: int = 0
    wins: int = 0
    slashes: int = 0
    misses: int = 0


@dataclass(slots=True)
class Task:
    """A task whose fee is in escrow, from escrow until settlement, refund or failure."""

    id: int
    client: Address
    fee: Amount
    created_round: Round
    operator: Address | None = None
    coprocessor: Address | None = None
    price: Amount = 0
    collateral: Amount = 0
    attempts: int = 0
    assigned: bool = False
    excluded: list[Address] = field(default_factory=list)
    due_round: Round = 0  # the round from which it is expired (its deadline has passed)


@dataclass(slots=True)
class Minter:
    """Issuance state (SPEC 3)."""

    inflation: int = 0
    mintable: Amount = 0
    minted_in_round: Amount = 0
    uptime: Amount = 0


@dataclass(slots=True)
class Totals:
    """Running totals of every bucket, so conservation is checked in O(1) each round."""

    genesis_supply: Amount = 0
    minted: Amount = 0
    burned: Amount = 0
    liquid: Amount = 0
    bonded: Amount = 0
    locked: Amount = 0
    fees: Amount = 0
    escrow: Amount = 0
    treasury: Amount = 0
    collateral: Amount = 0
    task_escrow: Amount = 0


@dataclass(slots=True)
class State:
    """The whole protocol state; its canonical encoding is the state hash."""

    round: Round = 0
    balances: dict[Address, Amount] = field(default_factory=dict)
    delegators: dict[Address, Delegator] = field(default_factory=dict)
    pools: dict[Address, Pool] = field(default_factory=dict)
    next_registration_seq: int = 0
    active: dict[Address, Amount] = field(default_factory=dict)
    total_active_stake: Amount = 0
    minter: Minter = field(default_factory=Minter)
    pending_commissions: dict[Address, PendingCommission] = field(default_factory=dict)
    slashed_pools: list[Address] = field(default_factory=list)
    proposals: dict[int, Proposal] = field(default_factory=dict)
    next_proposal_id: int = 0
    coprocessors: dict[Address, Coprocessor] = field(default_factory=dict)
    tasks: dict[int, Task] = field(default_factory=dict)
    # Outcomes of the tasks finished in the last few rounds (audits, retried reports); older
    # ones are in the log only, so live state does not grow with history (market.py).
    finished: dict[int, tuple[Outcome, Address | None]] = field(default_factory=dict)
    finished_in: dict[Round, list[int]] = field(default_factory=dict)  # round -> ids
    outcome_counts: dict[Outcome, int] = field(default_factory=dict)  # every task, ever
    next_task_id: int = 0
    expiries: dict[Round, set[int]] = field(default_factory=dict)  # due round -> open ids
    escrow_keys: dict[str, int] = field(default_factory=dict)
    escrow_key_order: list[str] = field(default_factory=list)
    nonces: dict[Address, int] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)


INITIAL_FACTOR: Factor = PRECISE
