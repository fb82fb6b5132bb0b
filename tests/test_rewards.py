"""Hand-checked reward, fee and checkpoint scenarios (SPEC sections 0, 3 and 4).

Every expected number is computed here, in the test, from the SPEC formulas
with Livepeer's truncation order. ``RefModel`` is a small independent model
of the rules (it reads only the scale constants and the ``Params`` values,
no protocol internals), used to check multi-round compounding account by
account.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from refusals import assert_refused

from protocol import PPB, PPM, PRECISE, TOKEN, Params, Protocol
from protocol.errors import AlreadyCheckpointed, OperatorNotActive

# --- helpers ---------------------------------------------------------------


def floor_share(r: int, num: int, den: int) -> int:
    """Return floor(r * num / den) (the exact share, rounded down once)."""
    return r * num // den


# --- an independent reference model of SPEC 3 and 4 -------------------------


@dataclass
class RefPosition:
    """A bond valued from the factors ``(crf_s, cff_s)`` it last settled at."""

    operator: str
    bonded: int
    crf_s: int = PRECISE
    cff_s: int = 0
    fees: int = 0


@dataclass
class RefOperator:
    reward_cut: int
    fee_share: int
    delegated: int = 0
    crf: int = PRECISE
    cff: int = 0
    crf_prev: int = PRECISE  # CRF at the end of the previous round (read in this one)
    cum_rewards: int = 0
    cum_fees: int = 0
    acr: int = 0  # cumulative rewards active in this round
    seen_round: int = -1


@dataclass
class RefModel:
    """Livepeer-order arithmetic for positions that settle only at the end of a round."""

    params: Params
    balances: dict[str, int]
    supply: int = 0
    inflation: int = 0
    mintable: int = 0
    minted_in_round: int = 0
    round: int = 0
    treasury: int = 0
    active: dict[str, int] = field(default_factory=dict)
    total_active: int = 0
    operators: dict[str, RefOperator] = field(default_factory=dict)
    positions: dict[str, RefPosition] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.supply = sum(self.balances.values())
        self.inflation = self.params.inflation

    # transactions in round 0 (before any factor moves)
    def bond(self, who: str, operator: str, amount: int) -> None:
        self.balances[who] -= amount
        self.positions[who] = RefPosition(operator, amount)
        self.operators[operator].delegated += amount

    def register(self, operator: str, reward_cut: int, fee_share: int) -> None:
        self.operators[operator] = RefOperator(reward_cut, fee_share)

    def _begin(self, op: RefOperator) -> None:
        """First event of an operator in a round: freeze CRF_prev and its active commission."""
        if op.seen_round < self.round:
            op.crf_prev = op.crf
            op.acr = op.cum_rewards
            op.seen_round = self.round

    def initialize_round(self) -> None:
        self.round += 1
        self.active = {a: o.delegated for a, o in self.operators.items() if o.delegated > 0}
        self.total_active = sum(self.active.values())
        rate = self.total_active * PPB // self.supply
        target = self.params.target_bonding_rate
        if rate < target:
            self.inflation += self.params.inflation_change
        elif rate > target:
            self.inflation = max(self.inflation - self.params.inflation_change, 0)
        self.mintable = self.supply * self.inflation // PPB
        self.minted_in_round = 0

    def reward(self, name: str) -> int:
        op = self.operators[name]
        self._begin(op)
        s = self.active[name]
        minted = self.mintable * (s * PPB // self.total_active) // PPB
        to_treasury = minted * self.params.treasury_cut // PPM
        r = minted - to_treasury
        commission = r * op.reward_cut // PPM
        dr = r - commission
        op.cum_rewards += dr * (op.acr * PRECISE // s) // PRECISE + commission
        op.crf = op.crf_prev + op.crf_prev * (dr * PRECISE // s) // PRECISE
        op.delegated += r
        self.supply += minted
        self.treasury += to_treasury
        self.minted_in_round += minted
        return minted

    def pay_fees(self, payer: str, name: str, amount: int) -> None:
        op = self.operators[name]
        self._begin(op)
        self.balances[payer] -= amount
        s = self.active[name]
        df = amount * op.fee_share // PPM
        op.cum_fees += df * (op.acr * PRECISE // s) // PRECISE + amount - df
        op.cff += op.crf_prev * (df * PRECISE // s) // PRECISE

    def pending_stake(self, who: str) -> int:
        pos = self.positions[who]
        op = self.operators[pos.operator]
        stake = pos.bonded * (op.crf * PRECISE // pos.crf_s) // PRECISE
        return stake + (op.cum_rewards if who == pos.operator else 0)

    def pending_fees(self, who: str) -> int:
        pos = self.positions[who]
        op = self.operators[pos.operator]
        fees = pos.fees + pos.bonded * ((op.cff - pos.cff_s) * PRECISE // pos.crf_s) // PRECISE
        return fees + (op.cum_fees if who == pos.operator else 0)

    def claim(self, who: str) -> None:
        """Settle at the end of a round (after its checkpoint and fees), as Livepeer does."""
        pos = self.positions[who]
        op = self.operators[pos.operator]
        self._begin(op)
        pos.bonded, pos.fees = self.pending_stake(who), self.pending_fees(who)
        pos.crf_s, pos.cff_s = op.crf, op.cff
        if who == pos.operator:
            op.cum_rewards = op.cum_fees = 0


# --- the Bittensor worked examples -----------------------------------------


def test_bittensor_worked_example_shares(bittensor_network: Protocol) -> None:
    """Own 800, delegators 100/70/30, cut 18 %: 0.836 / 0.082 / 0.0574 / 0.0246 of R."""
    p = bittensor_network
    assert p.round == 1
    assert p.active_set == {"op": 1000 * TOKEN}
    names = ("op", "a", "b", "c")
    before = {n: p.pending_stake(n) for n in names}
    supply = p.total_supply
    assert p.inflation == 218_500 + 500  # bonding rate 1000/4M tokens < 50 %
    assert p.mintable == supply * p.inflation // PPB
    r = p.reward("op")
    # the only active operator: its share is mintable * (S*PPB//S) // PPB = mintable
    assert r == p.mintable == 876 * TOKEN
    gains = {n: p.pending_stake(n) - before[n] for n in names}
    # R = 876 tokens divides evenly, so the shares are exact
    assert r * 8360 % 10_000 == 0
    assert gains["op"] * 10_000 == r * 8360
    assert gains["a"] * 10_000 == r * 820
    assert gains["b"] * 10_000 == r * 574
    assert gains["c"] * 10_000 == r * 246
    assert sum(gains.values()) == r
    assert p.total_supply == supply + r
    assert p.unclaimable() == (0, 0)
    p.check_invariants()


@pytest.mark.parametrize("supply_tokens", [4_000_000, 4_000_017])
def test_bittensor_shares_within_one_unit_of_floor(supply_tokens: int) -> None:
    """With an R that does not divide evenly each share is the floor formula, +-1 base unit."""
    extra = supply_tokens * TOKEN - 3 * 10**24 + 12_345
    p = Protocol(Params(), {"op": extra, "a": 10**24, "b": 10**24, "c": 10**24})
    p.bond("op", "op", 800 * TOKEN)
    p.register_operator("op", reward_cut=180_000, fee_share=1_000_000)
    for name, amount in (("a", 100), ("b", 70), ("c", 30)):
        p.bond(name, "op", amount * TOKEN)
    p.initialize_round()
    before = {n: p.pending_stake(n) for n in ("op", "a", "b", "c")}
    r = p.reward("op")
    gains = {n: p.pending_stake(n) - before[n] for n in before}
    for name, per_10k in (("op", 8360), ("a", 820), ("b", 574), ("c", 246)):
        assert abs(gains[name] - floor_share(r, per_10k, 10_000)) <= 1, name
    assert sum(gains.values()) <= r
    p.check_invariants()


def build_take_example() -> Protocol:
    """10 % take, 100 of 1,000 delegated, a reward of exactly 10 tokens.

    Supply 10,000 tokens, inflation 1,000,000 PPB (0.1 %) with no change:
    mintable = 10_000 tokens * 10**6 // 10**9 = 10 tokens, all of it for the
    only active operator.
    """
    params = Params(inflation=1_000_000, inflation_change=0)
    p = Protocol(params, {"op": 9_000 * TOKEN, "d": 1_000 * TOKEN})
    p.bond("op", "op", 900 * TOKEN)
    p.register_operator("op", reward_cut=100_000, fee_share=1_000_000)
    p.bond("d", "op", 100 * TOKEN)
    p.initialize_round()
    return p


def test_bittensor_take_example() -> None:
    """The delegator gets (1 - 0.1) * 10 * 100 / 1000 = 0.9 tokens of a 10-token reward."""
    p = build_take_example()
    assert p.mintable == 10 * TOKEN
    d0, op0 = p.pending_stake("d"), p.pending_stake("op")
    assert p.reward("op") == 10 * TOKEN
    assert p.pending_stake("d") - d0 == 9 * TOKEN // 10
    # the operator: 10 % take = 1 token, plus 0.9 * 9 tokens on its own 900 = 8.1 tokens
    assert p.pending_stake("op") - op0 == 1 * TOKEN + 81 * TOKEN // 10
    p.check_invariants()


# --- reward(), checkpoints and treasury -------------------------------------


def test_reward_returns_minted_including_treasury_share() -> None:
    params = Params(treasury_cut=100_000)
    p = Protocol(params, {"op": 10**24, "d": 10**24})
    p.bond("op", "op", 600 * TOKEN)
    p.register_operator("op", reward_cut=100_000, fee_share=1_000_000)
    p.bond("d", "op", 400 * TOKEN)
    p.initialize_round()
    supply, d0, op0 = p.total_supply, p.pending_stake("d"), p.pending_stake("op")
    minted = p.reward("op")
    assert minted == p.mintable == supply * (218_500 + 500) // PPB
    to_treasury = minted * 100_000 // PPM
    r = minted - to_treasury
    commission = r * 100_000 // PPM
    dr = r - commission
    crf = PRECISE + PRECISE * (dr * PRECISE // (1000 * TOKEN)) // PRECISE
    assert p.treasury == to_treasury
    assert p.total_supply == supply + minted
    assert p.minted_this_round == minted
    d_gain = 400 * TOKEN * (crf * PRECISE // PRECISE) // PRECISE - 400 * TOKEN
    op_gain = 600 * TOKEN * crf // PRECISE - 600 * TOKEN + commission
    assert p.pending_stake("d") - d0 == d_gain
    assert p.pending_stake("op") - op0 == op_gain
    assert r - d_gain - op_gain == p.unclaimable()[0]
    assert 0 <= p.unclaimable()[0] <= 2
    p.check_invariants()


def test_second_reward_in_a_round_is_refused(bittensor_network: Protocol) -> None:
    p = bittensor_network
    p.reward("op")
    assert_refused(p, AlreadyCheckpointed, p.reward, "op")
    p.initialize_round()
    assert p.reward("op") > 0  # a new round, a new checkpoint
    p.check_invariants()


def test_reward_by_inactive_operator_is_refused() -> None:
    p = Protocol(Params(max_active_operators=1), {"big": 10**24, "small": 10**24, "x": 10**24})
    p.bond("big", "big", 500 * TOKEN)
    p.register_operator("big", reward_cut=0)
    p.bond("small", "small", 100 * TOKEN)
    p.register_operator("small", reward_cut=0)
    # round 0: nobody is active yet
    assert_refused(p, OperatorNotActive, p.reward, "big")
    p.initialize_round()
    assert p.is_active("big") and not p.is_active("small")
    assert_refused(p, OperatorNotActive, p.reward, "small")  # registered, outside the set
    assert_refused(p, OperatorNotActive, p.reward, "x")  # never registered
    assert p.reward("big") == p.mintable
    p.check_invariants()


def test_missed_checkpoint() -> None:
    """An operator that skips reward in a round earns nothing for it; its factor carries over."""
    p = Protocol(Params(), {"o1": 10**24, "o2": 10**24, "d": 10**24})
    p.bond("o1", "o1", 300 * TOKEN)
    p.register_operator("o1", reward_cut=50_000)
    p.bond("o2", "o2", 200 * TOKEN)
    p.register_operator("o2", reward_cut=50_000)
    p.bond("d", "o2", 500 * TOKEN)
    p.initialize_round()
    p.reward("o1")
    p.reward("o2")
    p.initialize_round()  # round 2: o2 misses its checkpoint
    d_before, o2_before = p.pending_stake("d"), p.pending_stake("o2")
    pool_before = p.operator_stake("o2")
    supply = p.total_supply
    m1 = p.reward("o1")
    assert m1 == p.mintable * (p.active_set["o1"] * PPB // p.total_active_stake) // PPB
    assert p.minted_this_round == m1 < p.mintable  # o2's share is simply not minted
    p.initialize_round()  # round 3
    assert p.total_supply == supply + m1
    assert p.pending_stake("d") == d_before
    assert p.pending_stake("o2") == o2_before
    assert p.operator_stake("o2") == pool_before
    # the next checkpoint works and compounds from the carried-over factor
    s = p.active_set["o2"]
    assert s == pool_before
    m2 = p.reward("o2")
    assert m2 == p.mintable * (s * PPB // p.total_active_stake) // PPB
    r = m2
    dr = r - r * 50_000 // PPM
    gain = d_before * (PRECISE + PRECISE * (dr * PRECISE // s) // PRECISE) // PRECISE - d_before
    assert abs(p.pending_stake("d") - d_before - gain) <= 1
    p.check_invariants()


# --- fees ------------------------------------------------------------------


def test_fees_split_with_fee_share() -> None:
    """fee_share 60 %: delegators get 60 % pro rata through CFF; the operator keeps the rest."""
    p = Protocol(Params(max_take=PPM), {"op": 10**24, "a": 10**24, "b": 10**24, "payer": 10**24})
    p.bond("op", "op", 800 * TOKEN)
    p.register_operator("op", reward_cut=180_000, fee_share=600_000)
    p.bond("a", "op", 150 * TOKEN)
    p.bond("b", "op", 50 * TOKEN)
    p.initialize_round()
    fee = 1000 * TOKEN
    p.pay_fees("payer", "op", fee)
    assert p.pending_fees("a") == 90 * TOKEN  # 0.6 * 1000 * 150 / 1000
    assert p.pending_fees("b") == 30 * TOKEN
    assert p.pending_fees("op") == 400 * TOKEN + 480 * TOKEN  # 40 % kept + 0.6 * 800
    # an odd fee, before and after the checkpoint: CFF uses the previous round's CRF
    odd = 7 * TOKEN + 12_345
    p.reward("op")
    a_before, op_before = p.pending_fees("a"), p.pending_fees("op")
    p.pay_fees("payer", "op", odd)
    s = 1000 * TOKEN
    df = odd * 600_000 // PPM
    dcff = PRECISE * (df * PRECISE // s) // PRECISE
    assert p.pending_fees("a") - a_before == 150 * TOKEN * (dcff * PRECISE // PRECISE) // PRECISE
    # the operator's own bond earns fees through CFF too (acr is 0 in round 1)
    assert p.pending_fees("op") - op_before == odd - df + 800 * TOKEN * dcff // PRECISE
    assert 0 <= p.unclaimable()[1] <= 3
    p.withdraw_fees("a", p.pending_fees("a"))
    assert p.balance("a") == 10**24 - 150 * TOKEN + a_before + 150 * TOKEN * dcff // PRECISE
    p.check_invariants()


def test_fees_to_operator_without_active_stake_go_to_the_operator() -> None:
    """Documented decision: no active stake this round, so no one to share with."""
    p = Protocol(Params(), {"op": 10**24, "d": 10**24, "payer": 10**24})
    p.bond("op", "op", 100 * TOKEN)
    p.register_operator("op", reward_cut=0, fee_share=900_000)
    p.bond("d", "op", 100 * TOKEN)
    p.pay_fees("payer", "op", 10 * TOKEN)  # round 0: nothing active
    assert p.pending_fees("op") == 10 * TOKEN
    assert p.pending_fees("d") == 0
    p.check_invariants()


# --- multi-round compounding against the reference model -------------------

ACCOUNTS = ("op1", "op2", "a", "b", "c")

Event = tuple[str, ...]

# Per round: the events in order, then end-of-round claims.
SCHEDULE: list[tuple[list[Event], list[str]]] = [
    (
        [
            ("reward", "op1"),
            ("reward", "op2"),
            ("fees", "op1", "3000000000000000017"),
            ("fees", "op2", "1700000000000000000"),
        ],
        [],
    ),
    (
        [
            ("fees", "op1", "2500000000000000333"),
            ("reward", "op1"),
            ("fees", "op2", "900000000000000001"),
        ],
        [],
    ),  # op2 misses its checkpoint
    ([("reward", "op2"), ("reward", "op1"), ("fees", "op1", "1234567890123456789")], ["op1", "b"]),
    (
        [
            ("fees", "op2", "4000000000000000000"),
            ("reward", "op1"),
            ("reward", "op2"),
            ("fees", "op1", "999999999999999999"),
        ],
        ["c", "op2"],
    ),
    (
        [
            ("reward", "op1"),
            ("reward", "op2"),
            ("fees", "op1", "5000000000000000000"),
            ("fees", "op2", "333333333333333333"),
        ],
        ["a"],
    ),
    ([("reward", "op1"), ("fees", "op1", "10"), ("reward", "op2")], []),
]


@pytest.mark.parametrize(
    "params",
    [
        Params(max_take=PPM),
        Params(treasury_cut=100_000, max_take=PPM),
        Params.livepeer(target_bonding_rate=1_000),
    ],
    ids=["default", "treasury", "livepeer-deflating"],
)
def test_multi_round_compounding_matches_reference(params: Params) -> None:
    balances = {
        "op1": 10**24,
        "op2": 3 * 10**23,
        "a": 10**24,
        "b": 10**24,
        "c": 10**24,
        "payer": 10**24,
    }
    p = Protocol(params, balances)
    m = RefModel(params, dict(balances))
    setup = [
        ("op1", "op1", 600 * TOKEN + 7),
        ("op2", "op2", 400 * TOKEN),
        ("a", "op1", 250 * TOKEN),
        ("b", "op1", 150 * TOKEN + 99),
        ("c", "op2", 321 * TOKEN + TOKEN // 2),
    ]
    for who, op, amount in setup[:2]:
        p.bond(who, op, amount)
    p.register_operator("op1", reward_cut=150_000, fee_share=700_000)
    p.register_operator("op2", reward_cut=50_000, fee_share=950_000)
    m.register("op1", 150_000, 700_000)
    m.register("op2", 50_000, 950_000)
    for who, op, amount in setup:
        if who not in ("op1", "op2"):
            p.bond(who, op, amount)
        m.bond(who, op, amount)

    for events, claims in SCHEDULE:
        p.initialize_round()
        m.initialize_round()
        assert p.active_set == m.active
        assert p.inflation == m.inflation
        assert p.mintable == m.mintable
        for event in events:
            if event[0] == "reward":
                assert p.reward(event[1]) == m.reward(event[1])
            else:
                p.pay_fees("payer", event[1], int(event[2]))
                m.pay_fees("payer", event[1], int(event[2]))
        for who in claims:
            p.claim_earnings(who)
            m.claim(who)
        for who in ACCOUNTS:
            assert p.pending_stake(who) == m.pending_stake(who), (p.round, who)
            assert p.pending_fees(who) == m.pending_fees(who), (p.round, who)
            assert p.balance(who) == m.balances[who]
        assert p.total_supply == m.supply
        assert p.treasury == m.treasury
        assert p.minted_this_round == m.minted_in_round <= p.mintable
        stake_dust, fee_dust = p.unclaimable()
        assert 0 <= stake_dust <= len(ACCOUNTS) * p.round
        assert 0 <= fee_dust <= len(ACCOUNTS) * p.round
        p.check_invariants()
    # the scenario did compound: op1's pool grew by more than its first round's reward
    assert p.operator_stake("op1") > m.active["op1"] > 1000 * TOKEN
