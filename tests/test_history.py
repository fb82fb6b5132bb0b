"""The per-round history rebuilt from the ledger log matches what the live run did."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from cluster.analysis.history import ROUND_COLUMNS, RoundRow, replay_rounds, write_rounds_csv
from protocol import TOKEN, Params, Protocol
from protocol import transactions as tx
from protocol.ledger import Ledger, LedgerError

RICH = 10**24
ACCOUNTS = ("op", "op2", "d", "client", "cop", "cop2")
FEE = 10 * TOKEN
COLLATERAL = 100 * TOKEN


def run(directory: Path) -> tuple[Protocol, Counter[tuple[int, str]]]:
    """Drive three rounds on a ledger; return the live protocol and the rewards it minted."""
    ledger = Ledger.create(directory, Params(), dict.fromkeys(ACCOUNTS, RICH), fsync=False)
    p = ledger.protocol
    minted: Counter[tuple[int, str]] = Counter()
    p.bond("op", "op", 1_000 * TOKEN)
    p.register_operator("op", reward_cut=100_000, fee_share=900_000)
    p.bond("d", "op", 500 * TOKEN)
    p.bond("op2", "op2", 1_000 * TOKEN)
    p.register_operator("op2")
    p.register_coprocessor("cop", COLLATERAL, 4)
    p.register_coprocessor("cop2", COLLATERAL, 2)

    p.initialize_round()  # round 1: three tasks settled
    for op in ("op", "op2"):
        minted[1, op] += p.reward(op)
    p.escrow_tasks("client", [(1, FEE), (2, FEE), (3, FEE)])
    p.assign_task(1, "op", "cop", 4 * TOKEN)
    p.assign_task(2, "op2", "cop2", 3 * TOKEN)
    p.assign_task(3, "op")  # the operator runs it: it earns the whole fee
    assert p.settle_tasks([1, 2, 3]) == 3

    p.initialize_round()  # round 2: cop fails task 4, cop2 takes it over
    minted[2, "op"] += p.reward("op")
    p.escrow_tasks("client", [(4, FEE), (5, FEE)])
    p.assign_task(4, "op", "cop", 6 * TOKEN)
    p.assign_task(5, "op2", "cop", 5 * TOKEN)
    p.fail_coprocessor(4)
    p.assign_task(4, "op", "cop2", 2 * TOKEN)
    assert p.settle_tasks([4, 5, 1]) == 2  # 1 is finished already

    p.initialize_round()  # round 3: a signed reward, operator faults, task 8 left open
    minted[3, "op2"] += p.apply_signed("op2", 0, tx.Reward(operator="op2"))
    minted[3, "op"] += p.reward("op")
    p.escrow_tasks("client", [(6, FEE), (7, FEE), (8, FEE)])
    p.assign_task(6, "op2", "cop2", 7 * TOKEN)
    p.fail_operator(6)
    p.assign_task(7, "op")
    p.settle_tasks([7])
    p.audit_fault(7, "op")
    p.slash_operator("op2", 10_000)
    p.assign_task(8, "op", "cop", 1 * TOKEN)
    ledger.commit()
    ledger.close()
    return p, minted


@pytest.fixture
def history(tmp_path: Path) -> tuple[Protocol, Counter[tuple[int, str]], Protocol, list[RoundRow]]:
    live, minted = run(tmp_path / "ledger")
    replayed, rows = replay_rounds(tmp_path / "ledger")
    return live, minted, replayed, rows


def by_key(rows: list[RoundRow]) -> dict[tuple[int, str], RoundRow]:
    return {(r.round, r.participant): r for r in rows}


def test_replay_matches_the_live_state(history) -> None:
    live, _, replayed, _ = history
    assert replayed.state_hash() == live.state_hash()
    assert replayed.round == 3


def test_rows_and_order(history) -> None:
    _, _, _, rows = history
    assert len(rows) == 3 * 4
    keys = [(r.round, r.role, r.participant) for r in rows]
    assert keys == sorted(keys)
    assert [r.participant for r in rows[:4]] == ["cop", "cop2", "op", "op2"]
    assert {r.role for r in rows if r.participant.startswith("cop")} == {"coprocessor"}
    assert all(isinstance(r.stake, int) and isinstance(r.fees, int) for r in rows)


def test_rewards_match_what_reward_returned(history) -> None:
    _, minted, _, rows = history
    rewards = {(r.round, r.participant): r.rewards for r in rows if r.rewards}
    assert rewards == dict(minted)
    assert all(v > 0 for v in minted.values())
    assert all(r.rewards == 0 for r in rows if r.role == "coprocessor")


def test_fees_tasks_slashes_and_load(history) -> None:
    _, _, _, rows = history
    k = by_key(rows)
    expected = {
        # (round, who): (fees, tasks, slashes)
        (1, "op"): (4 * TOKEN + FEE, 2, 0),
        (1, "op2"): (3 * TOKEN, 1, 0),
        (1, "cop"): (FEE - 4 * TOKEN, 1, 0),
        (1, "cop2"): (FEE - 3 * TOKEN, 1, 0),
        (2, "op"): (2 * TOKEN, 1, 0),
        (2, "op2"): (5 * TOKEN, 1, 0),
        (2, "cop"): (FEE - 5 * TOKEN, 1, 1),
        (2, "cop2"): (FEE - 2 * TOKEN, 1, 0),
        (3, "op"): (FEE, 1, 1),
        (3, "op2"): (0, 0, 2),
        (3, "cop"): (0, 0, 0),
        (3, "cop2"): (0, 0, 0),
    }
    assert {key: (r.fees, r.tasks, r.slashes) for key, r in k.items()} == expected
    loads = {key: r.load for key, r in k.items() if r.role == "coprocessor"}
    assert loads == {
        (1, "cop"): 0.25,
        (1, "cop2"): 0.5,
        (2, "cop"): 0.5,
        (2, "cop2"): 0.5,
        (3, "cop"): 0.25,
        (3, "cop2"): 0.5,
    }
    assert all(r.load == 0.0 and r.active == 1 for r in rows if r.role == "operator")


def test_end_of_round_state(history) -> None:
    live, _, _, rows = history
    last = {r.participant: r for r in rows if r.round == 3}
    for op in ("op", "op2"):
        assert last[op].stake == live.operator_stake(op)
        assert last[op].reputation == round(live.reputation(op), 6)
    for name in ("cop", "cop2"):
        c = live.state.coprocessors[name]
        assert last[name].stake == c.free + c.locked
        assert last[name].reputation == round(live.reputation(name), 6)
    assert last["cop"].stake < COLLATERAL  # slashed in round 2
    before = {r.participant: r.stake for r in rows if r.round == 2}
    assert last["op2"].stake < before["op2"] + last["op2"].rewards  # slashed in round 3
    assert last["op"].stake < before["op"] + last["op"].rewards  # audit fault in round 3


def test_csv(tmp_path: Path) -> None:
    live, _ = run(tmp_path / "ledger")
    out = tmp_path / "rounds.csv"
    replayed = write_rounds_csv(tmp_path / "ledger", out)
    assert replayed.state_hash() == live.state_hash()
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ROUND_COLUMNS
    _, rows = replay_rounds(tmp_path / "ledger")
    assert len(table) == 1 + len(rows)
    assert table[1][:3] == ["1", "cop", "coprocessor"]


def test_no_rounds_and_no_ledger(tmp_path: Path) -> None:
    Ledger.create(tmp_path / "empty", Params(), {"a": 1}, fsync=False).close()
    protocol, rows = replay_rounds(tmp_path / "empty")
    assert protocol.round == 0 and rows == []
    with pytest.raises(LedgerError):
        replay_rounds(tmp_path / "missing")
