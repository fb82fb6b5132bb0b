"""Factor entries nobody can read are dropped, and nothing else changes (SPEC 4, issue 13).

A pool keeps its latest cumulative-factor entry, the entries its positions and
carries start from and the epoch ends a position still crosses; everything
else is dropped when released (``protocol/earnings.py``). These tests run the
same histories on a protocol that prunes and on one whose pruning is switched
off (:func:`unpruned`), and require every amount to agree to the base unit and
the two states to differ by exactly the dropped entries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import PPM, TOKEN, Params, Protocol, ProtocolError, codec, earnings
from protocol.state import State
from protocol.units import precise_of

OPERATORS = ("o0", "o1", "o2")
DELEGATORS = ("d0", "d1", "d2", "d3", "d4", "d5")
PAYER = "payer"
FINDER = "finder"
ACCOUNTS = (*OPERATORS, *DELEGATORS, PAYER, FINDER)


@contextmanager
def unpruned() -> Iterator[None]:
    """Switch factor pruning off: nothing is dropped (the reference behaviour)."""
    saved = earnings.drop_factor_entry, earnings.prune_epoch_ends
    earnings.drop_factor_entry = lambda pool, r: None
    earnings.prune_epoch_ends = lambda pool: None
    try:
        yield
    finally:
        earnings.drop_factor_entry, earnings.prune_epoch_ends = saved


def observe(p: Protocol) -> list[Any]:
    """Return every amount an account or the protocol can read, to compare two runs."""
    seen: list[Any] = [
        (
            a,
            p.balance(a),
            p.pending_stake(a),
            p.pending_fees(a),
            p.locks(a),
            p.delegate_of(a),
        )
        for a in ACCOUNTS
    ]
    seen.append(dataclasses.astuple(p.state.totals))
    seen.append(dataclasses.astuple(p.state.minter))
    seen.append(sorted(p.active_set.items()))
    seen.append(p.unclaimable())
    seen.append({a: pool.delegated for a, pool in p.state.pools.items()})
    return seen


def factor_entries(p: Protocol) -> int:
    """Return the number of factor entries all pools hold."""
    return sum(len(pool.factors) for pool in p.state.pools.values())


def restricted_to(reference: State, pruned: State) -> State:
    """Return ``reference`` with each pool's factors and epoch ends cut to ``pruned``'s keys."""
    state = codec.decode(State, codec.encode(reference))
    for address, pool in state.pools.items():
        kept = pruned.pools[address]
        pool.factors = {r: e for r, e in pool.factors.items() if r in kept.factors}
        pool.epoch_ends = {k: r for k, r in pool.epoch_ends.items() if k in kept.epoch_ends}
    return state


def roundtrip(p: Protocol) -> None:
    """Replace ``p``'s state with its snapshot encoding decoded (as recovery does)."""
    p.state = codec.decode(State, codec.encode(p.state))


# --- a differential run --------------------------------------------------------

Action = tuple[Any, ...]

OPS = st.sampled_from(OPERATORS)
DELS = st.sampled_from(DELEGATORS)
STAKERS = st.sampled_from((*DELEGATORS, *OPERATORS))
EIGHTHS = st.integers(min_value=1, max_value=8)
ACTIONS: st.SearchStrategy[Action] = st.one_of(
    st.tuples(st.just("round")),
    st.tuples(st.just("round")),
    st.tuples(st.just("rounds"), st.integers(min_value=2, max_value=12)),
    st.tuples(st.just("reward"), OPS),
    st.tuples(st.just("reward"), OPS),
    st.tuples(st.just("fees"), OPS, st.integers(min_value=1, max_value=10**21)),
    st.tuples(st.just("bond"), DELS, OPS, EIGHTHS),  # to another operator: a move
    st.tuples(st.just("bond"), DELS, OPS, EIGHTHS),
    st.tuples(st.just("bond"), OPS, st.just("self"), EIGHTHS),
    st.tuples(st.just("unbond"), STAKERS, EIGHTHS),
    st.tuples(st.just("unbond"), DELS, st.just(8)),  # the whole bond: the position closes
    st.tuples(st.just("rebond"), STAKERS, st.integers(min_value=0, max_value=5)),
    st.tuples(st.just("withdraw_stake"), STAKERS, st.integers(min_value=0, max_value=5)),
    st.tuples(st.just("withdraw_fees"), STAKERS, EIGHTHS),
    st.tuples(st.just("claim"), STAKERS),
    st.tuples(st.just("claim"), STAKERS),
    st.tuples(st.just("register"), OPS),
    st.tuples(
        st.just("slash"),
        OPS,
        st.sampled_from([1_000, 100_000, 500_000, 900_000, PPM]),
        st.sampled_from([None, FINDER]),
    ),
)


def resolve(p: Protocol, action: Action) -> list[tuple[str, dict[str, Any]]]:
    """Turn a symbolic action into concrete calls, amounts read from ``p``."""
    kind, *a = action
    if kind == "round":
        return [("initialize_round", {})]
    if kind == "rounds":
        return [("initialize_round", {})] * a[0]
    if kind == "reward":
        return [("reward", {"operator": a[0]})]
    if kind == "fees":
        return [("pay_fees", {"payer": PAYER, "operator": a[0], "amount": a[1]})]
    if kind == "bond":
        who, to, eighths = a
        to = who if to == "self" else to
        amount = max(p.balance(who) * eighths // 8 // 4, 1)
        return [("bond", {"delegator": who, "operator": to, "amount": amount})]
    if kind == "unbond":
        who, eighths = a
        amount = max(p.pending_stake(who) * eighths // 8, 1)
        return [("unbond", {"delegator": who, "amount": amount})]
    if kind in ("rebond", "withdraw_stake"):
        who, index = a
        ids = sorted(p.locks(who))
        lock_id = ids[index % len(ids)] if ids else 0
        return [(kind, {"delegator": who, "lock_id": lock_id})]
    if kind == "withdraw_fees":
        who, eighths = a
        amount = max(p.pending_fees(who) * eighths // 8, 1)
        return [("withdraw_fees", {"delegator": who, "amount": amount})]
    if kind == "claim":
        return [("claim_earnings", {"delegator": a[0]})]
    if kind == "register":
        return [
            ("register_operator", {"operator": a[0], "reward_cut": 50_000, "fee_share": 900_000})
        ]
    if kind == "slash":
        return [("slash_operator", {"operator": a[0], "fraction_ppm": a[1], "finder": a[2]})]
    raise AssertionError(kind)


def call(p: Protocol, method: str, kwargs: dict[str, Any]) -> Any:
    """Apply one call; return its result or the name of the error that refused it."""
    try:
        return getattr(p, method)(**kwargs)
    except ProtocolError as exc:
        return type(exc).__name__


def setup(params: Params) -> Protocol:
    """Three registered operators with delegators, active from round 1."""
    balances = dict.fromkeys(ACCOUNTS, 10**6 * TOKEN)
    p = Protocol(params, balances)
    for i, op in enumerate(OPERATORS):
        p.bond(op, op, (1_000 + 100 * i) * TOKEN)
        p.register_operator(op, reward_cut=50_000 * i, fee_share=PPM - 50_000 * i)
    for i, d in enumerate(DELEGATORS):
        p.bond(d, OPERATORS[i % len(OPERATORS)], (100 + 10 * i) * TOKEN)
    p.initialize_round()
    return p


PARAMS = st.builds(
    Params,
    unbonding_period=st.integers(min_value=1, max_value=3),
    max_active_operators=st.sampled_from([2, 3]),
    slash_delegators=st.booleans(),
    treasury_cut=st.sampled_from([0, 100_000]),
    inflation=st.sampled_from([218_500, 5_000_000]),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(params=PARAMS, actions=st.lists(ACTIONS, min_size=20, max_size=120))
def test_pruning_changes_no_amount(params: Params, actions: list[Action]) -> None:
    """Random histories give the same amounts, to the base unit, with and without pruning."""
    p = setup(params)
    with unpruned():
        q = setup(params)
    trace: list[str] = []
    for action in [*actions, ("rounds", 3), *[("claim", a) for a in (*DELEGATORS, *OPERATORS)]]:
        for method, kwargs in resolve(p, action):
            trace.append(f"{method}({kwargs})")
            got = call(p, method, kwargs)
            with unpruned():
                want = call(q, method, kwargs)
            assert got == want, trace
            assert observe(p) == observe(q), trace
            p.check_invariants()  # includes: every entry read is kept, no other one
            if method == "initialize_round":
                roundtrip(p)  # a recovered snapshot prunes the same way
    # The states differ by exactly the dropped entries and epoch ends.
    assert codec.encode(restricted_to(q.state, p.state)) == codec.encode(p.state)
    assert factor_entries(p) <= factor_entries(q)


# --- bounded storage -------------------------------------------------------------


def play_round(p: Protocol, operators: list[str], fee: int) -> None:
    """Initialize the next round, checkpoint every operator and pay each some fees."""
    p.initialize_round()
    for op in operators:
        p.reward(op)
        p.pay_fees(PAYER, op, fee + p.round)


def build_network(delegators: int) -> tuple[Protocol, list[str], list[str]]:
    operators = [f"op{i}" for i in range(3)]
    names = [f"d{i:02d}" for i in range(delegators)]
    balances = dict.fromkeys([*operators, *names], 10**4 * TOKEN)
    balances[PAYER] = 10**9 * TOKEN
    p = Protocol(Params(inflation_change=0), balances)
    for op in operators:
        p.bond(op, op, 1_000 * TOKEN)
        p.register_operator(op, reward_cut=100_000, fee_share=900_000)
    for i, d in enumerate(names):
        p.bond(d, operators[i % 3], (100 + i) * TOKEN)
    return p, operators, names


def test_factor_entries_do_not_grow_with_rounds() -> None:
    """1,000 rounds of rewards, fees, claims and moves: the stored entries stay bounded."""
    p, operators, names = build_network(12)
    peak = 0
    while p.round < 1_000:
        play_round(p, operators, 10**15)
        n = p.round
        for i, d in enumerate(names):
            if n % (i + 2) == 0:
                p.claim_earnings(d)
        if n % 50 == 0:  # one delegator moves its bond to the next operator
            d = names[(n // 50) % len(names)]
            here = operators.index(p.delegate_of(d))
            p.bond(d, operators[(here + 1) % 3], TOKEN)
        if n % 97 == 0:  # one unbonds a part and rebonds it later
            p.unbond(names[0], TOKEN)
        if n % 97 == 5 and p.locks(names[0]):
            p.rebond(names[0], min(p.locks(names[0])))
        peak = max(peak, factor_entries(p))
        if n % 250 == 0:
            p.check_invariants()
    # Each pool: its latest entry plus one per position or carry that starts in another round.
    positions = len(names) + len(operators)
    # (Without pruning it would be one entry per pool per round: 3,000 here.)
    assert peak <= len(operators) + 2 * positions


def test_a_delegator_that_never_claims_gets_the_exact_amount() -> None:
    """Its start entry is kept for 600 rounds, and its claim equals the unpruned one."""
    runs = []
    for prune in (True, False):
        with nullcontext() if prune else unpruned():
            p, operators, names = build_network(6)
            lazy, busy = names[0], names[1:]
            play_round(p, operators, 10**16)
            p.claim_earnings(lazy)
            start = p.state.delegators[lazy].last_claim_round
            while p.round < 600:
                play_round(p, operators, 10**16)
                for d in busy:
                    p.claim_earnings(d)
            pool = p.state.pools[p.delegate_of(lazy)]
            assert start in pool.factors  # the lazy position's start entry is kept
            bonded = p.state.delegators[lazy].bonded
            expected_stake = precise_of(
                bonded, earnings.get_current_factors(pool)[0], pool.factors[start].crf
            )
            pending = p.pending_stake(lazy), p.pending_fees(lazy)
            assert pending[0] == expected_stake
            p.claim_earnings(lazy)
            after = p.state.delegators[lazy].bonded, p.state.delegators[lazy].fees
            if prune:
                # Only the latest entry and the start round of each position remain.
                assert len(pool.factors) <= 3
                assert start not in pool.factors  # released by the claim
                p.check_invariants()
            runs.append((pending, after, observe_named(p, names)))
    assert runs[0] == runs[1]
    assert runs[0][0][0] > 100 * TOKEN and runs[0][0][1] > 0


def observe_named(p: Protocol, names: list[str]) -> list[tuple[int, int, int]]:
    return [(p.balance(a), p.pending_stake(a), p.pending_fees(a)) for a in names]
