"""Per-account earnings rebuilt from the ledger log (``stakeray earnings``, SPEC 4).

The property: random protocol histories (the world and actions of
``test_properties``) applied through a real :class:`~protocol.ledger.Ledger`;
then, for every account, the rows rebuilt from the log satisfy, to the base unit,

    pending_stake(a) = sum(bonded + rebonded - unbonded + reward - slashed - paid_out)
    pending_fees(a)  = sum(fees - withdrawn_fees)
    locks(a)         = sum(unbonded - rebonded - withdrawn_stake)
    balance(a)       = sum(other_liquid - bonded + withdrawn_stake + withdrawn_fees + paid_out)

(the genesis balance is round 0's ``other_liquid``); each row's end columns are
what the live protocol showed right after that round ended; the flow columns
are exactly the amounts of the transactions the test submitted; operator
rewards are what ``reward`` returned; nothing is slashed in a round without a
slash, and nothing but rounding dust is earned from issuance in a round
without a checkpoint.
"""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import LOCAL, NETWORK
from test_properties import (
    ACTIONS,
    BALANCES,
    DELEGATORS,
    FINDER,
    OPERATORS,
    OPS,
    PAYER,
    VALID_AMOUNT_SPECS,
    Action,
    Runner,
    _action,
    holder,
    params_strategy,
    setup_strategy,
)

from cluster.analysis.earnings import (
    EARNINGS_COLUMNS,
    EarningsError,
    EarningsRow,
    delegator_earnings,
    reconcile,
    replay_earnings,
)
from cluster.analysis.history import replay_rounds
from cluster.cli import main
from protocol import Params, Protocol, ProtocolError
from protocol.ledger import Ledger

FLOWS = ("bonded", "unbonded", "rebonded", "withdrawn_stake", "withdrawn_fees")
SUMMED = (*FLOWS, "reward", "fees", "slashed", "paid_out", "other_liquid")
AMOUNT_FLOWS = {"bond": "bonded", "unbond": "unbonded", "withdraw_fees": "withdrawn_fees"}
DUST = 10**4
"""Base units a round without a checkpoint may still move from issuance: the rounding
remainders of carries and a lone operator's pool residual (a few units per event)."""


def values(p: Protocol, address: str) -> tuple[int, int, int, int]:
    """(pending stake, pending fees, locked, liquid balance) of ``address`` now."""
    locked = sum(amount for amount, _ in p.locks(address).values())
    return p.pending_stake(address), p.pending_fees(address), locked, p.balance(address)


@dataclass
class Recorder(Runner):
    """Applies the symbolic actions through a ledger and tallies what each one moved."""

    flows: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    minted: Counter[tuple[int, str]] = field(default_factory=Counter)
    own_slashes: Counter[tuple[int, str]] = field(default_factory=Counter)
    slash_rounds: set[int] = field(default_factory=set)
    pool_slash_rounds: set[int] = field(default_factory=set)
    reward_rounds: set[int] = field(default_factory=set)
    ends: dict[int, dict[str, tuple[int, int, int, int]]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def step(self, action: Action) -> None:
        p = self.p
        method, kw = self.resolve(action)
        n = p.round
        lock = None
        if method == "rebond" and isinstance(kw["lock_id"], int):
            lock = p.locks(kw["delegator"]).get(kw["lock_id"])
        try:
            result = getattr(p, method)(**kw)
        except ProtocolError:
            self.refused += 1
            return
        self.accepted += 1
        if method in AMOUNT_FLOWS:
            self.flows[n, kw["delegator"], AMOUNT_FLOWS[method]] += kw["amount"]
        elif method == "rebond":
            assert lock is not None
            self.flows[n, kw["delegator"], "rebonded"] += lock[0]
        elif method == "withdraw_stake":
            self.flows[n, kw["delegator"], "withdrawn_stake"] += result
        elif method == "reward":
            self.minted[n, kw["operator"]] += result
            self.reward_rounds.add(n)
        elif method == "slash_operator":
            self.slash_rounds.add(n)
            self.own_slashes[n, kw["operator"]] += result
            if p.params.slash_delegators:
                self.pool_slash_rounds.add(n)
        elif method == "initialize_round":
            self.ends[n] = self.snapshot()

    def snapshot(self) -> dict[str, tuple[int, int, int, int]]:
        p = self.p
        self.seen |= set(p.state.balances) | set(p.state.delegators)
        return {a: values(p, a) for a in self.seen}


ALL = st.tuples(st.just("frac"), st.just(8))
EARNING_ACTIONS: st.SearchStrategy[Action] = st.one_of(
    # test_properties' actions (valid and invalid) and, as often, the valid ones that make
    # earnings happen: checkpoints, fees, claims, moves, full unbonds before a checkpoint
    # (a carried reward paid out liquid), rebonds, withdrawals and slashes of both kinds.
    ACTIONS,
    _action("initialize_round"),
    _action("reward", OPS),
    _action("pay_fees", st.just(PAYER), OPS, VALID_AMOUNT_SPECS),
    _action("claim_earnings", st.sampled_from((*OPERATORS, *DELEGATORS))),
    _action("bond", st.sampled_from(DELEGATORS), OPS, VALID_AMOUNT_SPECS),
    _action("unbond", holder("stake"), st.one_of(VALID_AMOUNT_SPECS, ALL)),
    _action("rebond", holder("locks"), st.tuples(st.just("existing"), st.integers(0, 7))),
    _action("withdraw_stake", holder("locks"), st.tuples(st.just("existing"), st.integers(0, 7))),
    _action("withdraw_fees", holder("fees"), VALID_AMOUNT_SPECS),
    _action(
        "slash_operator",
        OPS,
        st.integers(min_value=1, max_value=1_000_000),
        st.sampled_from([None, FINDER, "d0"]),
    ),
)


@st.composite
def working_setup(draw: st.DrawFn) -> list[Action]:
    """Registered operators with valid commissions and bonded delegators, then a round."""
    actions: list[Action] = []
    for op in OPERATORS:
        actions.append(("bond", op, "self", ("frac", draw(st.integers(1, 4)))))
        cut = draw(st.integers(min_value=0, max_value=180_000))
        share = draw(st.integers(min_value=820_000, max_value=1_000_000))
        actions.append(("register_operator", op, cut, share))
    for d in DELEGATORS:
        actions.append(("bond", d, draw(OPS), ("frac", draw(st.integers(1, 4)))))
    return [*actions, ("initialize_round",)]


@st.composite
def histories(draw: st.DrawFn, max_actions: int) -> tuple[Params, dict[str, int], list[Action]]:
    params = draw(params_strategy())
    balances = draw(BALANCES)
    setup = draw(st.one_of(working_setup(), setup_strategy()))
    actions = setup + draw(
        st.lists(EARNING_ACTIONS, min_size=max_actions // 3, max_size=max_actions)
    )
    return params, balances, actions


def check_account(r: Recorder, directory: Path, address: str, genesis: int) -> None:
    p = r.p
    replayed, rows = replay_earnings(directory, address)
    assert replayed.state_hash() == p.state_hash()
    assert reconcile(replayed, address, rows) == []
    # The rows are the rounds from the account's first to the last, in order.
    first = rows[0].round
    assert [row.round for row in rows] == list(range(first, p.round + 1))
    assert first == 0 or genesis == 0

    # The accounting identity, to the base unit.
    total = Counter[str]()
    for row in rows:
        for name in SUMMED:
            total[name] += getattr(row, name)
    stake = (
        total["bonded"]
        + total["rebonded"]
        - total["unbonded"]
        + total["reward"]
        - total["slashed"]
        - total["paid_out"]
    )
    assert stake == p.pending_stake(address)
    assert total["fees"] - total["withdrawn_fees"] == p.pending_fees(address)
    locked = sum(amount for amount, _ in p.locks(address).values())
    assert total["unbonded"] - total["rebonded"] - total["withdrawn_stake"] == locked
    liquid = (
        total["other_liquid"]
        - total["bonded"]
        + total["withdrawn_stake"]
        + total["withdrawn_fees"]
        + total["paid_out"]
    )
    assert liquid == p.balance(address)
    last = rows[-1]
    assert (last.total_rewards, last.total_fees, last.total_slashed) == (
        total["reward"],
        total["fees"],
        total["slashed"],
    )

    for row in rows:
        n = row.round
        where = f"{address} round {n}: {row}"
        # Each round ends where the live protocol stood right after it ended.
        end = r.ends[n].get(address, (0, 0, 0, 0)) if n < p.round else values(p, address)
        assert (row.pending_stake, row.pending_fees, row.locked, row.balance) == end, where
        # The flows are exactly what the account's accepted transactions moved.
        for name in FLOWS:
            assert getattr(row, name) == r.flows[n, address, name], f"{name}: {where}"
        assert row.operator_reward == r.minted[n, row.operator], where
        if n not in r.slash_rounds:
            assert row.slashed == 0, where
        elif n not in r.pool_slash_rounds:  # own-bond slashes only: what they returned
            assert row.slashed == r.own_slashes[n, address], where
        if n not in r.reward_rounds:
            assert abs(row.reward) <= DUST, where
        if row.operator == "":
            assert row.reward_cut == -1 and row.operator_reward == 0, where


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(histories(max_actions=50))
def test_rows_reconcile_with_the_ledger_to_the_base_unit(
    history: tuple[Params, dict[str, int], list[Action]],
) -> None:
    params, balances, actions = history
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "ledger"
        ledger = Ledger.create(directory, params, balances, fsync=False)
        r = Recorder(ledger.protocol)
        r.snapshot()
        trace = []
        try:
            for action in [*actions, ("initialize_round",), ("initialize_round",)]:
                trace.append(repr(action))
                r.step(action)
            ledger.commit()
            p = r.p
            for address in sorted(r.seen | {FINDER}):
                if address in p.state.delegators:
                    check_account(r, directory, address, balances.get(address, 0))
                else:
                    with pytest.raises(EarningsError, match=address):
                        delegator_earnings(directory, address)
        except BaseException as exc:
            exc.add_note(f"Params: {params!r}\nbalances: {balances!r}")
            exc.add_note("\n".join(trace))
            raise
        finally:
            ledger.close()


# --- the command ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("earnings")
    config = tmp / "net.yaml"
    config.write_text(NETWORK)
    out = tmp / "run"
    assert main(["run", str(config), "--out", str(out), *LOCAL]) == 0
    return out


def read_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == EARNINGS_COLUMNS
        return [{k: v if k == "operator" else int(v) for k, v in row.items()} for row in reader]


@pytest.mark.parametrize("address", ["delegator-00000", "op-a"])
def test_cli_prints_the_table_and_writes_the_csv(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str
) -> None:
    capsys.readouterr()
    out = tmp_path / "earnings.csv"
    assert main(["earnings", address, "--dir", str(run_dir), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    protocol = Ledger.replay(run_dir / "ledger")
    rounds = protocol.round
    assert printed[0].split()[:4] == ["round", "operator", "cut", "op"]
    body = printed[2 : 3 + rounds]
    assert [line.split()[0] for line in body] == [str(n) for n in range(rounds + 1)]
    assert all(line.split()[1] == ("op-a") for line in body)
    assert printed[-1].startswith("reconciles with the ledger to the base unit")

    rows = read_rows(out)
    assert [row["round"] for row in rows] == list(range(rounds + 1))
    stake = sum(
        r["bonded"] + r["rebonded"] - r["unbonded"] + r["reward"] - r["slashed"] - r["paid_out"]
        for r in rows
    )
    assert stake == rows[-1]["pending_stake"] == protocol.pending_stake(address)
    fees = sum(r["fees"] - r["withdrawn_fees"] for r in rows)
    assert fees == rows[-1]["pending_fees"] == protocol.pending_fees(address)
    assert rows[-1]["balance"] == protocol.balance(address)
    assert rows[0]["bonded"] > 0 and rows[0]["reward"] == 0  # bonded at genesis, earns from 1
    _, history = replay_rounds(run_dir / "ledger")
    minted = {(h.round, h.participant): h.rewards for h in history}
    for row in rows[1:]:
        assert row["operator"] == "op-a" and row["reward_cut"] == 100_000
        assert row["operator_reward"] == minted[row["round"], "op-a"]
        assert (row["reward"] > 0) == (row["operator_reward"] > 0)
    assert rows[-1]["total_rewards"] == sum(r["reward"] for r in rows) > 0
    assert rows[-1]["total_fees"] == sum(r["fees"] for r in rows) > 0
    assert [EarningsRow(**r) for r in rows] == delegator_earnings(run_dir / "ledger", address)


def test_cli_refuses_an_unknown_address_in_one_line(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["earnings", "nobody-at-all", "--dir", str(run_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "'nobody-at-all'" in captured.err
    assert main(["earnings", "cop-a", "--dir", str(run_dir)]) == 2  # never bonded
    assert "'cop-a': has never bonded" in capsys.readouterr().err
