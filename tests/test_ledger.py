"""Tests of the durable ledger: log, reopen, replay, snapshots and crash recovery."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol import TOKEN, Params, Protocol, ProtocolError, codec
from protocol import transactions as txs
from protocol.eventlog import HEADER_SIZE, read_frames, write_snapshot
from protocol.ledger import (
    LOG_NAME,
    CorruptLedger,
    Ledger,
    LedgerError,
    Snapshot,
    apply_repair,
    plan_repair,
)

PARAMS = Params(
    unbonding_period=2,
    max_active_operators=2,
    take_cooldown_rounds=1,
    treasury_cut=100_000,
    voting_period=2,
)
BALANCES = {
    "o0": 10**24,
    "o1": 10**24,
    "o2": 10**24,
    "d0": 10**24,
    "d1": 10**24,
    "d2": 10**24,
    "payer": 10**24,
}


def attempt(p: Protocol, method: str, *args: Any) -> Any:
    """Call ``p.method(*args)``; a refusal must change nothing. Return the result or None."""
    before = p.state_hash()
    try:
        return getattr(p, method)(*args)
    except ProtocolError:
        assert p.state_hash() == before, f"{method}{args}: refusal changed the state"
        return None


def play_round(p: Protocol, r: int) -> None:
    """Drive round ``r`` (already initialized when r > 0) with varied, partly refused, activity."""
    if r == 0:
        for op, cut, share in (("o0", 100_000, 900_000), ("o1", 50_000, 950_000)):
            p.bond(op, op, 100 * TOKEN)
            p.register_operator(op, cut, share)
        p.bond("o2", "o2", 10 * TOKEN)
        p.register_operator("o2", 0, 1_000_000)
        p.bond("d0", "o0", 300 * TOKEN)
        p.bond("d1", "o0", 50 * TOKEN)
        p.bond("d2", "o1", 70 * TOKEN)
        attempt(p, "bond", "o0", "o1", TOKEN)  # refused: an operator cannot delegate
        return
    for op in ("o0", "o1", "o2"):
        attempt(p, "reward", op)  # o2 is outside the 2-operator active set
    attempt(p, "reward", "o0")  # refused: second checkpoint
    p.pay_fees("payer", "o0", (r + 1) * TOKEN)
    attempt(p, "pay_fees", "payer", "o1", 3 * TOKEN // 7)
    attempt(p, "pay_fees", "payer", "nobody", TOKEN)  # refused: unknown operator
    p.claim_earnings("d0")
    if r == 1:
        p.propose("o0", {"unbonding_period": 1}, {})
        p.vote("o0", 0, "for")
        p.vote("d2", 0, "against")
    if r == 2:
        lock = p.unbond("d1", 20 * TOKEN)
        assert lock == 0
        attempt(p, "withdraw_stake", "d1", lock)  # refused: too early
        p.set_commission("o1", 60_000, None)
    if r == 3:
        p.bond("d2", "o0", TOKEN)  # moves d2's whole bond to o0
        p.unbond("d0", 5 * TOKEN)
        p.rebond("d0", 0)
    if r == 4:
        p.slash_operator("o1", 100_000, "finder")
        attempt(p, "withdraw_stake", "d1", 0)
        p.withdraw_fees("d0", p.pending_fees("d0") // 2)
    if r == 5:
        p.transfer("d0", "newcomer", TOKEN)
        p.bond("newcomer", "o1", TOKEN // 2)
        attempt(p, "unbond", "d2", 10**30)  # refused: too much
    if r >= 6:
        p.unbond("d0", TOKEN)


def run_rounds(p: Protocol, rounds: int, start: int = 0) -> None:
    """Play rounds ``start..rounds-1``; initialize each one but the first round 0."""
    for r in range(start, rounds):
        if r > 0:
            assert p.initialize_round() == r
        play_round(p, r)
        p.check_invariants()


def reference(rounds: int) -> Protocol:
    """The same scenario on a plain in-memory protocol."""
    p = Protocol(PARAMS, BALANCES)
    run_rounds(p, rounds)
    return p


def make_ledger(directory: Path, rounds: int, snapshot_every: int = 3) -> Ledger:
    ledger = Ledger.create(directory, PARAMS, BALANCES, snapshot_every=snapshot_every, fsync=False)
    run_rounds(ledger.protocol, rounds)
    ledger.commit()
    return ledger


def log_path(directory: Path) -> Path:
    return directory / LOG_NAME


def snapshots(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("snapshot-*"))


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count transactions decoded from the log (what recovery replays)."""
    calls: list[int] = []
    real: Callable[[bytes], txs.Tx] = txs.decode_tx

    def spy(data: bytes) -> txs.Tx:
        calls.append(1)
        return real(data)

    monkeypatch.setattr(txs, "decode_tx", spy)
    return calls


# --- reopen and replay -------------------------------------------------------------


def test_ledger_matches_plain_protocol_and_reopens(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=8)
    live = ledger.protocol.state_hash()
    assert ledger.protocol.round == 7
    assert ledger.protocol.proposal_status(0) == "executed"
    assert ledger.protocol.params.unbonding_period == 1
    assert ledger.protocol.treasury > 0
    assert live == reference(8).state_hash()
    frames = len(ledger.events)
    ledger.close()
    reopened = Ledger.open(tmp_path, fsync=False)
    assert reopened.protocol.state_hash() == live
    assert len(reopened.events) == frames
    assert reopened.events.dropped_bytes == 0
    reopened.close()


def test_replay_from_genesis_equals_live_state(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=8)
    live = ledger.protocol.state_hash()
    assert snapshots(tmp_path)  # replay must not need them
    replayed = Ledger.replay(tmp_path)
    assert replayed.state_hash() == live
    assert replayed.params == ledger.protocol.params
    ledger.close()


def test_log_holds_genesis_then_exactly_the_accepted_transactions(tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path, PARAMS, BALANCES, fsync=False)
    recorded: list[txs.Tx] = []
    shadow = Protocol(PARAMS, BALANCES)
    shadow.sink = recorded.append
    for p in (ledger.protocol, shadow):
        run_rounds(p, 5)
    ledger.close()
    payloads = read_frames(log_path(tmp_path))[0]
    decoded = [txs.decode_tx(x) for x in payloads]
    assert isinstance(decoded[0], txs.Genesis)
    assert decoded[0] == Protocol(PARAMS, BALANCES).genesis()
    assert decoded[1:] == recorded


def test_refused_transactions_are_not_logged(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=3)
    p = ledger.protocol
    frames = len(ledger.events)
    assert ledger.events.pending == 0
    before = p.state_hash()
    refusals: list[tuple[str, tuple[Any, ...]]] = [
        ("bond", ("d0", "nobody", TOKEN)),
        ("bond", ("d0", "o0", 0)),
        ("bond", ("d0", "o0", 10**40)),
        ("unbond", ("d1", -5)),
        ("unbond", ("d1", 10**40)),
        ("withdraw_stake", ("d1", 0)),  # not withdrawable yet
        ("rebond", ("d1", 99)),
        ("withdraw_fees", ("d2", 10**40)),
        ("reward", ("o0",)),  # already checkpointed this round
        ("reward", ("o2",)),  # not active
        ("register_operator", ("o0", 0, 1_000_000)),
        ("set_commission", ("o0", 500_000, None)),
        ("slash_operator", ("nobody", 1_000)),
        ("transfer", ("nobody", "d0", 1)),
        ("propose", ("nobody", {"unbonding_period": 3}, {})),
        ("vote", ("o0", 42, "for")),
    ]
    for method, args in refusals:
        with pytest.raises(ProtocolError):
            getattr(p, method)(*args)
        assert ledger.events.pending == 0, method
    ledger.commit()
    assert len(ledger.events) == frames
    assert p.state_hash() == before
    # An accepted one is logged: the counter can move.
    p.claim_earnings("d1")
    assert ledger.events.pending == 1
    ledger.close()
    assert len(read_frames(log_path(tmp_path))[0]) == frames + 1


def test_apply_logs_accepted_transactions_only(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=2)
    frames = len(ledger.events)
    with pytest.raises(ProtocolError):
        ledger.apply(txs.Bond(delegator="d0", operator="nobody", amount=TOKEN))
    ledger.apply(txs.Bond(delegator="d0", operator="o1", amount=TOKEN))
    assert ledger.protocol.delegate_of("d0") == "o1"
    live = ledger.protocol.state_hash()
    ledger.close()
    payloads = read_frames(log_path(tmp_path))[0]
    assert len(payloads) == frames + 1
    assert txs.decode_tx(payloads[-1]) == txs.Bond(delegator="d0", operator="o1", amount=TOKEN)
    assert Ledger.replay(tmp_path).state_hash() == live


def test_create_refuses_an_existing_log_and_open_needs_one(tmp_path: Path) -> None:
    make_ledger(tmp_path / "a", rounds=1).close()
    with pytest.raises(LedgerError):
        Ledger.create(tmp_path / "a", PARAMS, BALANCES, fsync=False)
    with pytest.raises(LedgerError):
        Ledger.open(tmp_path / "missing")


def test_log_without_genesis_is_refused(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "a", rounds=2)
    ledger.close()
    payloads = read_frames(log_path(tmp_path / "a"))[0]
    data = log_path(tmp_path / "a").read_bytes()
    (tmp_path / "b").mkdir()
    # Drop the genesis frame: the log starts with a plain transaction.
    log_path(tmp_path / "b").write_bytes(data[HEADER_SIZE + len(payloads[0]) :])
    with pytest.raises(LedgerError):
        Ledger.open(tmp_path / "b", fsync=False)
    with pytest.raises(LedgerError):
        Ledger.replay(tmp_path / "b")


# --- snapshots -----------------------------------------------------------------------


def test_snapshots_every_n_rounds(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=8, snapshot_every=3)
    assert snapshots(tmp_path) == ["snapshot-00000003.msgpack", "snapshot-00000006.msgpack"]
    ledger.close()
    other = tmp_path / "every2"
    make_ledger(other, rounds=8, snapshot_every=2).close()
    assert snapshots(other) == [f"snapshot-{r:08d}.msgpack" for r in (2, 4, 6)]


def test_only_the_newest_snapshots_are_kept_and_recovery_still_works(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=9, snapshot_every=1)
    live = ledger.protocol.state_hash()
    kept = snapshots(tmp_path)
    assert len(kept) == 3 and kept == sorted(kept)[-3:]
    assert kept[-1] == f"snapshot-{ledger.protocol.round:08d}.msgpack"
    ledger.close()
    assert Ledger.open(tmp_path, fsync=False).protocol.state_hash() == live


def test_recovery_uses_the_newest_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = make_ledger(tmp_path, rounds=8, snapshot_every=3)
    live = ledger.protocol.state_hash()
    frames = len(ledger.events)
    ledger.close()
    newest = codec.decode(Snapshot, _payload(tmp_path / "snapshot-00000006.msgpack"))
    assert 0 < newest.seq < frames
    assert newest.state.round == 6
    decodes = count_decodes(monkeypatch)
    reopened = Ledger.open(tmp_path, fsync=False)
    # Only the frames after the newest snapshot were replayed.
    assert len(decodes) == frames - newest.seq
    assert reopened.protocol.state_hash() == live == Ledger.replay(tmp_path).state_hash()
    reopened.close()


def _payload(path: Path) -> bytes:
    from protocol.eventlog import read_snapshot

    return read_snapshot(path)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _bad_hash(path: Path) -> None:
    record = codec.decode(Snapshot, _payload(path))
    record.state_hash = "0" * len(record.state_hash)
    write_snapshot(path.parent, path.name, codec.encode(record), fsync=False)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-3])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x05\x00\x00\x00garbage")


@pytest.mark.parametrize("damage", [_flip_byte, _bad_hash, _truncate, _garbage])
def test_corrupt_newest_snapshot_falls_back_to_older(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
) -> None:
    ledger = make_ledger(tmp_path, rounds=8, snapshot_every=3)
    live = ledger.protocol.state_hash()
    frames = len(ledger.events)
    ledger.close()
    older = codec.decode(Snapshot, _payload(tmp_path / "snapshot-00000003.msgpack"))
    damage(tmp_path / "snapshot-00000006.msgpack")
    decodes = count_decodes(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="protocol.ledger"):
        reopened = Ledger.open(tmp_path, fsync=False)
    assert "snapshot-00000006" in caplog.text
    assert len(decodes) == frames - older.seq
    assert reopened.protocol.state_hash() == live
    reopened.close()


def test_all_snapshots_corrupt_falls_back_to_genesis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = make_ledger(tmp_path, rounds=8, snapshot_every=3)
    live = ledger.protocol.state_hash()
    frames = len(ledger.events)
    ledger.close()
    for name in snapshots(tmp_path):
        _flip_byte(tmp_path / name)
    decodes = count_decodes(monkeypatch)
    reopened = Ledger.open(tmp_path, fsync=False)
    assert len(decodes) == frames  # genesis and every transaction
    assert reopened.protocol.state_hash() == live
    reopened.close()


def test_snapshot_survives_parameter_change_by_governance(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=4, snapshot_every=3)
    assert ledger.protocol.params.unbonding_period == 1  # executed in round 3
    record = codec.decode(Snapshot, _payload(tmp_path / "snapshot-00000003.msgpack"))
    assert record.params["unbonding_period"] == 1
    live = ledger.protocol.state_hash()
    ledger.close()
    reopened = Ledger.open(tmp_path, fsync=False)
    assert reopened.protocol.params.unbonding_period == 1
    assert reopened.protocol.state_hash() == live
    reopened.close()


def test_recovered_ledger_keeps_snapshotting_and_replaying(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=4, snapshot_every=3)
    ledger.close()
    reopened = Ledger.open(tmp_path, snapshot_every=3, fsync=False)
    run_rounds(reopened.protocol, 8, start=4)
    live = reopened.protocol.state_hash()
    assert live == reference(8).state_hash()
    reopened.close()
    assert snapshots(tmp_path) == ["snapshot-00000003.msgpack", "snapshot-00000006.msgpack"]
    again = Ledger.open(tmp_path, fsync=False)
    assert again.protocol.state_hash() == live == Ledger.replay(tmp_path).state_hash()
    again.close()


# --- crashes -----------------------------------------------------------------------


def _build_crash_base(directory: Path) -> tuple[str, str, int, int]:
    """Commit a scenario plus two more transactions, one commit each.

    Return (hash before the last transaction, hash after it, end of the log
    data before it, end after it). The file may be longer than the data
    (zero-filled preallocated space).
    """
    ledger = make_ledger(directory, rounds=7, snapshot_every=3)
    p = ledger.protocol
    p.pay_fees("payer", "o0", 5 * TOKEN)
    ledger.commit()
    before, size_before = p.state_hash(), ledger.events.size
    p.unbond("d0", 3 * TOKEN)
    ledger.commit()
    after, size_after = p.state_hash(), ledger.events.size
    ledger.close()
    return before, after, size_before, size_after


def _torn(data: bytes, cut: int, end: int, zero_fill: bool) -> bytes:
    """The log after a crash that wrote only ``data[:cut]`` of the last frame.

    Without ``zero_fill`` the file ends at ``cut``; with it, the unwritten
    part of the frame and some preallocated space after it are zeros.
    """
    if not zero_fill:
        return data[:cut]
    return data[:cut] + bytes(end + 4096 - cut)


@pytest.mark.parametrize("zero_fill", [False, True])
def test_crash_tearing_the_last_frame_at_every_offset(tmp_path: Path, zero_fill: bool) -> None:
    base = tmp_path / "base"
    before, after, start, end = _build_crash_base(base)
    frames = len(read_frames(log_path(base))[0])
    assert end - start > HEADER_SIZE + 1
    data = log_path(base).read_bytes()
    assert len(data) >= end
    for cut in range(start + 1, end):
        if zero_fill and not data[cut:end].strip(b"\0"):
            continue  # the unwritten bytes were zeros anyway: the frame is whole
        work = tmp_path / f"cut{cut}"
        shutil.copytree(base, work, ignore=shutil.ignore_patterns(LOG_NAME))
        log_path(work).write_bytes(_torn(data, cut, end, zero_fill))
        ledger = Ledger.open(work, fsync=False)
        assert len(ledger.events) == frames - 1, cut
        assert ledger.events.size == start, cut
        if not zero_fill:
            assert ledger.events.dropped_bytes == cut - start, cut
        assert ledger.protocol.state_hash() == before, cut
        assert ledger.protocol.state_hash() != after
        # The ledger works afterwards: new transactions, logged and replayable.
        ledger.protocol.unbond("d0", 2 * TOKEN)
        ledger.protocol.initialize_round()
        ledger.protocol.reward("o0")
        live = ledger.protocol.state_hash()
        ledger.close()
        assert len(read_frames(log_path(work))[0]) == frames + 2
        assert Ledger.replay(work).state_hash() == live
        reopened = Ledger.open(work, fsync=False)
        assert reopened.events.dropped_bytes == 0
        assert reopened.protocol.state_hash() == live
        reopened.close()
        shutil.rmtree(work)
    # Untouched, the full log gives the state after the last transaction.
    full = Ledger.open(base, fsync=False)
    assert len(full.events) == frames
    assert full.protocol.state_hash() == after
    full.close()


def test_crash_with_a_corrupt_last_frame(tmp_path: Path) -> None:
    before, _, start, end = _build_crash_base(tmp_path)
    frames = len(read_frames(log_path(tmp_path))[0])
    data = bytearray(log_path(tmp_path).read_bytes())
    data[end - 1] ^= 0x01  # last payload byte: the checksum fails
    log_path(tmp_path).write_bytes(bytes(data))
    ledger = Ledger.open(tmp_path, fsync=False)
    assert ledger.events.dropped_bytes >= end - start
    assert len(ledger.events) == frames - 1
    assert ledger.events.size == start
    assert ledger.protocol.state_hash() == before
    ledger.close()


def _refused_then_repaired(directory: Path, snapshot: str) -> None:
    """Opening refuses the snapshot beyond the log and changes nothing; repair moves it aside."""
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    with pytest.raises(CorruptLedger, match=f"{snapshot} covers .* committed history is missing"):
        Ledger.open(directory, fsync=False)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == files
    plan = plan_repair(directory)
    assert [(snap.name, new) for snap, new, _ in plan.aside] == [
        (snapshot, f"{snapshot}.past-{plan.cut}")
    ]
    apply_repair(plan)
    assert snapshot not in snapshots(directory)
    assert (directory / f"{snapshot}.past-{plan.cut}").read_bytes() == files[snapshot]


def test_crash_tearing_the_round_frame_that_triggered_a_snapshot(tmp_path: Path) -> None:
    """The newest snapshot lies beyond the torn log: never trusted, refused until repaired.

    With ``fsync=False`` a crash can lose log frames that a (synced) snapshot
    covers; with fsync on it cannot, so such a snapshot is proof of damage:
    the open refuses, and ``stakeray repair`` moves the snapshot aside.
    """
    ledger = make_ledger(tmp_path, rounds=6, snapshot_every=3)
    p = ledger.protocol
    before, size_before = p.state_hash(), ledger.events.size
    p.initialize_round()  # round 6: commits and writes snapshot-00000006
    assert "snapshot-00000006.msgpack" in snapshots(tmp_path)
    size_after = ledger.events.size
    ledger.close()
    data = log_path(tmp_path).read_bytes()
    log_path(tmp_path).write_bytes(data[: size_after - 1])
    _refused_then_repaired(tmp_path, "snapshot-00000006.msgpack")
    reopened = Ledger.open(tmp_path, snapshot_every=3, fsync=False)
    assert reopened.protocol.round == 5
    assert reopened.protocol.state_hash() == before
    assert reopened.events.size == size_before
    # Round 6 again, differently this time; the rewritten snapshot must agree.
    reopened.protocol.transfer("d1", "d2", TOKEN)
    reopened.protocol.initialize_round()
    live = reopened.protocol.state_hash()
    reopened.close()
    again = Ledger.open(tmp_path, fsync=False)
    assert again.protocol.state_hash() == live == Ledger.replay(tmp_path).state_hash()
    again.close()


def test_stale_snapshot_beyond_a_torn_log_is_never_trusted(tmp_path: Path) -> None:
    """A snapshot of a history that the crash tore away must not come back later.

    Round 6's frame is torn off after its snapshot was written (possible with
    ``fsync=False``, or when the last frame rots and fails its checksum). The
    first reopen refuses ("beyond the log") until a repair moves the snapshot
    aside. The log then grows again with a different history; once it is as
    long as the stale snapshot's ``seq``, the next reopen must still not load
    that snapshot.
    """
    ledger = make_ledger(tmp_path, rounds=6, snapshot_every=3)
    ledger.protocol.initialize_round()  # round 6: snapshot-00000006 written
    size_after = ledger.events.size
    ledger.close()
    data = log_path(tmp_path).read_bytes()
    log_path(tmp_path).write_bytes(data[: size_after - 1])  # tear the round-6 frame
    _refused_then_repaired(tmp_path, "snapshot-00000006.msgpack")
    reopened = Ledger.open(tmp_path, fsync=False)
    assert reopened.protocol.round == 5
    reopened.protocol.transfer("d1", "d2", TOKEN)  # a different history, still round 5
    live = reopened.protocol.state_hash()
    reopened.close()
    assert Ledger.replay(tmp_path).state_hash() == live
    again = Ledger.open(tmp_path, fsync=False)
    assert again.protocol.round == 5
    assert again.protocol.state_hash() == live
    again.close()


def test_crash_loses_only_uncommitted_transactions(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=4)
    committed = ledger.protocol.state_hash()
    ledger.protocol.pay_fees("payer", "o0", TOKEN)
    ledger.protocol.claim_earnings("d2")
    assert ledger.events.pending == 2
    # Crash: the buffered frames never reach the file.
    ledger.events.discard()
    ledger.close()
    reopened = Ledger.open(tmp_path, fsync=False)
    assert reopened.protocol.state_hash() == committed
    reopened.close()


def test_initialize_round_is_a_group_commit(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, rounds=2)
    ledger.protocol.pay_fees("payer", "o0", TOKEN)
    ledger.protocol.claim_earnings("d2")
    assert ledger.events.pending == 2
    frames = len(ledger.events)
    ledger.protocol.initialize_round()
    assert ledger.events.pending == 0
    assert len(ledger.events) == frames + 3
    # Committed means on disk, before close.
    assert len(read_frames(log_path(tmp_path))[0]) == frames + 3
    ledger.close()
