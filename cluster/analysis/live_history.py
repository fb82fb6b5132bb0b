"""A ledger's history kept up to date frame by frame: the explorer's model of the network.

:class:`LiveHistory` holds a :class:`~protocol.Protocol` replayed from the
genesis frame and applies each new transaction as it is read
(:mod:`cluster.analysis.log_tail`), keeping what the log alone cannot be
asked for afterwards:

- the per-round rows of :mod:`cluster.analysis.history` (the same attribution
  as ``rounds.csv``, allocation audit included: ``RoundReplay`` does it for both);
- one :class:`NetworkRound` per round: supply, bonding rate, inflation, active
  stake, issuance, fees, finished and open tasks, proposals, the stakers'
  earnings, and tasks/s where the explorer saw the round live;
- every staker's earnings (delegators and operators alike): pending stake and
  fees less what the staker put in (bond, rebond) or took out (unbond,
  withdraw fees), so a round's reward is the rise of that figure; the
  inequality of stake and of rewards across stakers per round
  (:class:`RoundDistribution`, :mod:`protocol.metrics`, exact on integers);
- commission in force per operator from round to round, and the rounds in
  which an active operator made no reward call.

The ledger has no clock, so tasks/s is measured here: the time between two
reads of the log is shared among the rounds whose tasks those reads brought,
in proportion to their tasks. Rounds read before the explorer caught up with
the log (its start) have no rate.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from cluster.analysis.history import (
    AuctionAudit,
    MarketSetup,
    RoundReplay,
    RoundRow,
    read_market_setup,
)
from cluster.analysis.log_tail import LogTail
from protocol import Protocol, earnings, metrics
from protocol import transactions as tx
from protocol.issuance import compute_bonding_rate
from protocol.ledger import LedgerError
from protocol.state import Outcome, ProposalStatus
from protocol.units import Address, Amount, Ppm, Round

FLOWS = (tx.Bond, tx.Unbond, tx.Rebond, tx.WithdrawFees)
"""Transactions that move a staker's own tokens in or out of its position (not earnings)."""
KEEP_ROUNDS = 256
"""Rounds of each staker's stake and earnings kept for its page."""
RATE_WINDOW_S = 10.0
"""The network's current tasks/s is measured over this many seconds of reads."""


@dataclass(frozen=True, slots=True)
class NetworkRound:
    """The network at the end of one round."""

    round: int
    total_supply: Amount
    active_stake: Amount  # frozen at the round's start
    bonding_rate_ppb: int
    inflation_ppb: int
    minted: Amount  # issued this round
    burned: Amount  # burned this round
    fees: Amount  # task fees paid out this round (operators and coprocessors)
    tasks: int  # tasks that got an outcome this round
    settled: int
    open_tasks: int
    open_proposals: int
    stakers: int
    staked: Amount  # pending stake of every staker at the round's end
    staker_rewards: int  # the stakers' earnings this round (issuance and fee shares)
    auction_fees: Amount
    auction_prices: Amount
    tasks_per_s: float | None  # None: not seen live

    @property
    def margin(self) -> Fraction | None:
        """The round's mean clearing margin, price / fee of its auctioned tasks."""
        return Fraction(self.auction_prices, self.auction_fees) if self.auction_fees else None

    @property
    def reward_per_staked_token(self) -> Fraction | None:
        """The stakers' earnings this round per token of active stake."""
        return Fraction(self.staker_rewards, self.active_stake) if self.active_stake else None


@dataclass(frozen=True, slots=True)
class Concentration:
    """Inequality of one distribution (stake or rewards) across its holders."""

    holders: int
    total: int
    gini: float
    hhi: float
    nakamoto_third: int
    nakamoto_half: int

    @classmethod
    def of(cls, values: Iterable[int]) -> Concentration:
        amounts = [v for v in values if v > 0]
        return cls(
            holders=len(amounts),
            total=sum(amounts),
            gini=metrics.compute_gini(amounts),
            hhi=metrics.compute_hhi(amounts),
            nakamoto_third=metrics.compute_nakamoto_coefficient(amounts, 1 / 3),
            nakamoto_half=metrics.compute_nakamoto_coefficient(amounts, 1 / 2),
        )


@dataclass(frozen=True, slots=True)
class RoundDistribution:
    """How stake and rewards were spread in one round, across stakers and operators."""

    round: int
    stake: Concentration  # every staker's pending stake at the round's end
    rewards: Concentration  # every staker's earnings in the round (a loss counts as 0)
    operator_stake: Concentration  # each registered operator's pool


@dataclass(frozen=True, slots=True)
class CommissionChange:
    """A commission in force from ``round`` on, requested in ``requested``."""

    round: Round
    reward_cut: Ppm
    fee_share: Ppm
    requested: Round


@dataclass(frozen=True, slots=True)
class Staker:
    """A staker now: pending stake and fees, and its earnings so far."""

    address: Address
    operator: Address | None
    bonded: Amount
    stake: Amount
    fees: Amount
    earned: int


class LiveHistory:
    """A protocol replayed from genesis, with its history, advanced one transaction at a time."""

    def __init__(self, genesis: tx.Genesis, setup: MarketSetup | None = None) -> None:
        self.protocol = Protocol.from_genesis(genesis)
        self.frames = 1
        self.setup = setup or MarketSetup()
        pricing = self.setup.pricing
        self.audit = None if pricing is None else AuctionAudit(self.protocol, pricing)
        self.current = self._new_round()
        self.rows: dict[Round, list[RoundRow]] = {}
        self.network: list[NetworkRound] = []
        self._index: dict[Round, int] = {}  # round -> its entry in ``network``
        self.distribution: list[RoundDistribution] = []
        self.commission: dict[Address, list[CommissionChange]] = {}
        self.missed: dict[Address, list[Round]] = {}
        self.rewarded: set[Address] = set()
        self.active_at_start: set[Address] = set()
        self.net_in: Counter[Address] = Counter()
        self.earned: dict[Address, int] = {}  # at the last round's end
        self.last_rewards: dict[Address, int] = {}  # each staker's earnings in the last round
        self.series: dict[Address, deque[tuple[Round, Amount, int]]] = {}
        self.durations: Counter[Round] = Counter()
        self.live_from: Round | None = None  # rounds after this one were seen live
        self._start = self._counters()
        self._read: Counter[Round] = Counter()  # tasks finished per round since the last read
        self._last_read: float | None = None
        self._samples: deque[tuple[float, int]] = deque()

    # --- applying the log --------------------------------------------------------------------

    def apply(self, frame: tx.Tx) -> None:
        """Apply one logged transaction and account for it."""
        p = self.protocol
        inner = tx.parse_tx(frame.tx) if isinstance(frame, tx.Signed) else frame
        finished = self._finished()
        if isinstance(inner, tx.InitializeRound):
            if p.round >= 1:
                self._close_round()
            pending = {a: c.round for a, c in p.state.pending_commissions.items()}
            p.apply(frame)
            self._open_round(pending)
        else:
            flow = inner.delegator if isinstance(inner, FLOWS) else None
            before = sum(earnings.get_pending(p.state, flow)) if flow is not None else 0
            self.current.before(p, inner)
            result = p.apply(frame)
            self.current.after(p, inner, result)
            if flow is not None:
                self.net_in[flow] += sum(earnings.get_pending(p.state, flow)) - before
            if isinstance(inner, tx.Reward):
                self.rewarded.add(inner.operator)
            elif isinstance(inner, tx.RegisterOperator) and inner.operator not in self.commission:
                cut, share = p.commission(inner.operator)
                self.commission[inner.operator] = [CommissionChange(p.round, cut, share, p.round)]
        self.frames += 1
        done = self._finished() - finished
        if done:
            self._read[p.round] += done

    def end_read(self, now: float, *, caught_up: bool) -> None:
        """Close one read of the log at time ``now`` (seconds): time the rounds it brought."""
        p = self.protocol
        if self.live_from is None:
            if caught_up:
                self.live_from = p.round
                self._samples.append((now, self._finished()))
                self._last_read = now
            self._read.clear()
            return
        if self._last_read is not None and now > self._last_read:
            elapsed = now - self._last_read
            total = sum(self._read.values())
            if total:
                for r, n in self._read.items():
                    self.durations[r] += elapsed * n / total
            else:
                self.durations[p.round] += elapsed
        for r in self._read:
            self._retime(r)
        self._last_read = now
        self._read.clear()
        self._samples.append((now, self._finished()))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()

    # --- rounds ------------------------------------------------------------------------------

    def _new_round(self) -> RoundReplay:
        return RoundReplay(self.protocol, self.setup, self.audit)

    def _counters(self) -> tuple[int, int, int, int]:
        t = self.protocol.state.totals
        counts = self.protocol.state.outcome_counts
        return t.minted, t.burned, self._finished(), counts.get(Outcome.SETTLED, 0)

    def _finished(self) -> int:
        return sum(self.protocol.state.outcome_counts.values())

    def _open_round(self, pending: dict[Address, Round]) -> None:
        p = self.protocol
        self.current = self._new_round()
        self.rewarded = set()
        self.active_at_start = set(p.state.active)
        for name, changes in self.commission.items():
            if not p.is_registered(name):
                continue
            cut, share = p.commission(name)
            if (cut, share) != (changes[-1].reward_cut, changes[-1].fee_share):
                changes.append(CommissionChange(p.round, cut, share, pending.get(name, p.round)))

    def _close_round(self) -> None:
        """Record the round ending now (called before the next round's first frame)."""
        p = self.protocol
        r = p.round
        rows = self.current.rows(p)
        self.rows[r] = rows
        for name in sorted(self.active_at_start - self.rewarded):
            self.missed.setdefault(name, []).append(r)
        stakers = self.stakers()
        rewards = {s.address: s.earned - self.earned.get(s.address, 0) for s in stakers}
        minted, burned, finished, settled = self._counters()
        start = self._start
        operators = [row for row in rows if row.role == "operator"]
        supply = p.total_supply
        self._index[r] = len(self.network)
        self.network.append(
            NetworkRound(
                round=r,
                total_supply=supply,
                active_stake=p.total_active_stake,
                bonding_rate_ppb=compute_bonding_rate(p.total_active_stake, supply),
                inflation_ppb=p.inflation,
                minted=minted - start[0],
                burned=burned - start[1],
                fees=sum(row.fees for row in rows),
                tasks=finished - start[2],
                settled=settled - start[3],
                open_tasks=len(p.state.tasks),
                open_proposals=self.open_proposals(),
                stakers=sum(1 for s in stakers if s.stake > 0),
                staked=sum(s.stake for s in stakers),
                staker_rewards=sum(rewards.values()),
                auction_fees=sum(row.auction_fees for row in operators),
                auction_prices=sum(row.auction_prices for row in operators),
                tasks_per_s=None,
            )
        )
        self._retime(r)
        self.distribution.append(
            RoundDistribution(
                round=r,
                stake=Concentration.of(s.stake for s in stakers),
                rewards=Concentration.of(max(v, 0) for v in rewards.values()),
                operator_stake=Concentration.of(row.stake for row in operators),
            )
        )
        for s in stakers:
            path = self.series.get(s.address)
            if path is None:
                path = self.series[s.address] = deque(maxlen=KEEP_ROUNDS)
            path.append((r, s.stake, s.earned))
        self.earned = {s.address: s.earned for s in stakers}
        self.last_rewards = rewards
        self._start = self._counters()

    def _retime(self, r: Round) -> None:
        """Set the tasks/s of round ``r`` if it is over and was seen live."""
        i = self._index.get(r)
        if i is None or self.live_from is None or r <= self.live_from or self.durations[r] <= 0:
            return
        entry = self.network[i]
        self.network[i] = replace(entry, tasks_per_s=entry.tasks / self.durations[r])

    # --- reads for the pages -----------------------------------------------------------------

    def stakers(self) -> list[Staker]:
        """Every account that has bonded, with its pending stake and fees and its earnings."""
        state = self.protocol.state
        out = []
        for address in sorted(state.delegators):
            d = state.delegators[address]
            stake, fees = earnings.get_pending(state, address)
            earned = stake + fees - self.net_in[address]
            out.append(Staker(address, d.delegate, d.bonded, stake, fees, earned))
        return out

    def open_proposals(self) -> int:
        proposals = self.protocol.state.proposals.values()
        return sum(1 for q in proposals if q.status == ProposalStatus.OPEN)

    def current_rows(self) -> list[RoundRow]:
        """The rows of the round in progress, so far (none before round 1)."""
        return self.current.rows(self.protocol) if self.protocol.round >= 1 else []

    def all_rows(self) -> list[RoundRow]:
        """Every completed round's rows, then the round in progress, ascending by round."""
        out = [row for r in sorted(self.rows) for row in self.rows[r]]
        return out + self.current_rows()

    def tasks_per_s(self) -> float | None:
        """Tasks that got an outcome per second over the last reads; None before any."""
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

    def round_tasks_so_far(self) -> int:
        return self._finished() - self._start[2]


def replay_history(ledger_dir: str | Path) -> LiveHistory:
    """Read a whole log into a history at once (a finished run: the report's distribution)."""
    tail = LogTail(ledger_dir)
    history: LiveHistory | None = None
    while True:
        _, frames = tail.read()
        if history is None and frames:
            genesis = frames[0]
            assert isinstance(genesis, tx.Genesis)  # LogTail checks frame 0
            history = LiveHistory(genesis, read_market_setup(ledger_dir))
            frames = frames[1:]
        if history is not None:
            for frame in frames:
                history.apply(frame)
        if not tail.more:
            break
    if history is None:
        raise LedgerError(f"ledger: {ledger_dir} holds no genesis frame")
    history.end_read(0.0, caught_up=True)
    return history
