"""Fault injection on a durable ledger: a torn tail is dropped, every other damage is refused.

One ledger of a few hundred frames and three snapshots is built once; each
case writes a damaged copy and checks, against an oracle computed from the
intact frames:

* a torn tail (the damage reaches no intact frame after it) opens to the
  state after the last whole frame, and the open cuts the log there;
* anything else (an intact frame follows the damage, a snapshot covers lost
  frames, no genesis) raises with the byte offset of the first damaged frame,
  from ``Ledger.open`` and from ``stakeray verify`` (exit 2);
* neither a refused open nor ``verify`` changes a byte of the directory;
* ``repair --yes`` then cuts at that offset (keeping the cut bytes and the
  snapshots aside), and the ledger opens to the replay of the kept frames.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import os
import re
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_ledger import BALANCES, PARAMS, run_rounds

from cluster.cli.app import main
from protocol import Protocol, codec, eventlog
from protocol import transactions as txs
from protocol.eventlog import (
    HEADER_SIZE,
    CorruptLog,
    EventLog,
    frames_from,
    read_snapshot,
    scan_log,
    write_snapshot,
)
from protocol.ledger import (
    LOG_NAME,
    CorruptLedger,
    Ledger,
    LedgerError,
    Snapshot,
    apply_repair,
    check_ledger,
    plan_repair,
)

ROUNDS = 36
SNAPSHOT_EVERY = 5
PREALLOCATE = 64 << 10
JUNK = (b"\xa5\x5a" * 4, b"\x14\x00\x00\x00\xde\xad\xbe\xef")  # huge length; plausible length


@dataclass(frozen=True)
class Base:
    """The intact ledger: the log's frames, its file size, the snapshots, the prefix states."""

    data: bytes
    size: int
    starts: list[int]
    payloads: list[bytes]
    snapshots: dict[str, bytes]
    seqs: dict[str, int]
    hashes: list[str]
    """``hashes[k]``: the state hash after the first ``k`` frames (``k >= 1``)."""

    @property
    def n(self) -> int:
        return len(self.starts)

    def end(self, i: int) -> int:
        return self.starts[i + 1] if i + 1 < self.n else len(self.data)

    def frame_at(self, pos: int) -> int:
        """Index of the frame holding byte ``pos`` (``n``: past the last frame)."""
        return bisect.bisect_right(self.starts, pos) - 1 if pos < len(self.data) else self.n


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """The intact ledger; its log preallocates 64 KiB steps (not 4 MiB) to keep the matrix fast."""
    directory = tmp_path_factory.mktemp("base")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eventlog, "PREALLOCATE", PREALLOCATE)
        ledger = Ledger.create(
            directory, PARAMS, BALANCES, snapshot_every=SNAPSHOT_EVERY, fsync=False
        )
        run_rounds(ledger.protocol, ROUNDS)
        ledger.close()
    raw = (directory / LOG_NAME).read_bytes()
    frames = list(frames_from(directory / LOG_NAME))
    starts = [offset for offset, _ in frames]
    payloads = [payload for _, payload in frames]
    end = starts[-1] + HEADER_SIZE + len(payloads[-1])
    assert not raw[end:].strip(b"\0") and len(raw) > end  # preallocated zeros follow
    protocol = Protocol.from_genesis(txs.decode_tx(payloads[0]))  # type: ignore[arg-type]
    hashes = ["", protocol.state_hash()]
    for payload in payloads[1:]:
        txs.decode_tx(payload).apply(protocol)
        hashes.append(protocol.state_hash())
    snapshots = {p.name: p.read_bytes() for p in sorted(directory.glob("snapshot-*"))}
    seqs = {name: codec.unpack(read_snapshot(directory / name))[0] for name in snapshots}
    assert len(starts) >= 200 and len(snapshots) >= 2
    assert max(seqs.values()) < len(starts) - 5  # frames after the newest snapshot
    return Base(raw[:end], len(raw), starts, payloads, snapshots, seqs, hashes)


# --- the oracle and the checks -----------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What a damaged log must do."""

    kept: int
    """Whole frames before the first damaged one."""
    refused_at: int | None
    """Byte offset every refusal names; None: the log opens."""
    torn: bool
    """The open drops a torn tail (the log is cut at the end of the kept frames)."""
    cut: int | None = None
    """Where ``repair`` cuts the log (None: the file is whole, only snapshots move)."""


def expect_damage(base: Base, damaged: bytes) -> Expect:
    """Oracle for a log that holds ``damaged`` (the frames' bytes, changed; maybe more)."""
    old = base.data + bytes(max(0, len(damaged) - len(base.data)))  # zeros followed the frames
    changed = [
        p
        for block in range(0, len(damaged), 64)
        if damaged[block : block + 64] != old[block : block + 64]
        for p in range(block, min(block + 64, len(damaged)))
        if damaged[p] != old[p]
    ]
    if not changed:
        return _expect(base, base.n, torn=False)
    i = base.frame_at(changed[0])
    touched = {base.frame_at(p) for p in changed}
    if any(j not in touched for j in range(i + 1, base.n)):
        return Expect(i, base.starts[i], False, base.starts[i])  # an intact frame follows
    return _expect(base, i, torn=True)


def expect_truncation(base: Base, cut: int) -> Expect:
    """Oracle for a log file cut at byte ``cut``."""
    i = base.frame_at(cut)
    if i == base.n:
        return _expect(base, base.n, torn=False)
    return _expect(base, i, torn=cut != base.starts[i])


def _expect(base: Base, kept: int, *, torn: bool) -> Expect:
    end = base.starts[kept] if kept < base.n else len(base.data)
    if kept == 0 or max(base.seqs.values()) > kept:  # no genesis; a snapshot past the log
        return Expect(kept, end, torn, end if torn else None)
    return Expect(kept, None, torn)


def put(work: Path, base: Base, log: bytes | None, size: int | None = None) -> None:
    """Write a ledger directory: ``log`` zero-extended to ``size`` (sparse), the snapshots."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for name, data in base.snapshots.items():
        (work / name).write_bytes(data)
    if log is not None:
        with open(work / LOG_NAME, "wb") as f:
            f.write(log)
            if size is not None and size > len(log):
                f.truncate(size)


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def check_case(
    work: Path,
    base: Base,
    expect: Expect,
    capsys: pytest.CaptureFixture[str],
    case: str,
    *,
    repair: bool = True,
) -> None:
    """Check one damaged directory against its expectation (see the module docstring)."""
    before = digest(work)
    rc, out, err = cli(capsys, "verify", str(work))
    assert digest(work) == before, f"{case}: verify changed the directory"
    if expect.refused_at is not None:
        assert rc == 2, f"{case}: verify exit {rc}: {out} {err}"
        assert err.startswith("error: ") and err.count("\n") == 1, f"{case}: {err!r}"
        assert re.search(rf"byte offset {expect.refused_at}\b", err), f"{case}: {err}"
        with pytest.raises(CorruptLog) as refused:
            Ledger.open(work, fsync=False)
        assert refused.value.offset == expect.refused_at, f"{case}: {refused.value}"
        assert digest(work) == before, f"{case}: a refused open changed the directory"
        if repair:
            check_repair(work, base, expect, case)
        return
    assert rc == 0, f"{case}: verify exit {rc}: {err}"
    assert ("torn frame" in out) == expect.torn, f"{case}: {out}"
    ledger = Ledger.open(work, fsync=False)
    assert len(ledger.events) == expect.kept, case
    assert ledger.protocol.state_hash() == base.hashes[expect.kept], case
    assert bool(ledger.events.dropped_bytes) == expect.torn, case
    ledger.close()
    after = digest(work)
    assert {k: v for k, v in after.items() if k != LOG_NAME} == {
        k: v for k, v in before.items() if k != LOG_NAME
    }, f"{case}: the open changed a snapshot"
    end = base.starts[expect.kept] if expect.kept < base.n else len(base.data)
    if expect.torn:
        assert (work / LOG_NAME).stat().st_size == end, f"{case}: torn tail not cut"
    else:
        assert after == before, f"{case}: the open changed an intact log"


def check_repair(work: Path, base: Base, expect: Expect, case: str) -> None:
    """``repair --yes`` cuts at the refused offset; the ledger then opens to the kept prefix."""
    old = (work / LOG_NAME).read_bytes()
    if expect.kept == 0:
        with pytest.raises(LedgerError, match="genesis"):
            plan_repair(work)
        return
    plan = plan_repair(work)
    assert plan.cut == expect.cut, f"{case}: {plan.describe()}"
    assert plan.frames_kept == expect.kept, f"{case}: {plan.describe()}"
    assert plan.round_kept == _round(base, expect.kept), case
    moved = {snap.name: new for snap, new, _ in plan.aside}
    assert set(moved) == {s for s, seq in base.seqs.items() if seq > expect.kept}, case
    apply_repair(plan)
    if plan.cut is not None:
        assert (work / f"{LOG_NAME}.corrupt-{plan.cut}").read_bytes() == old[plan.cut :], case
    for name, new in moved.items():
        assert (work / new).read_bytes() == base.snapshots[name], case
    assert not plan_repair(work).describe()[1:], f"{case}: a second repair has work"
    ledger = Ledger.open(work, fsync=False)
    assert ledger.protocol.state_hash() == base.hashes[expect.kept], case
    assert len(ledger.events) == expect.kept, case
    ledger.close()
    assert Ledger.replay(work).state_hash() == base.hashes[expect.kept], case
    check_ledger(work)


def _round(base: Base, kept: int) -> int:
    return sum(txs.decode_tx(p).kind == "initialize_round" for p in base.payloads[1:kept])


def sample_frames(base: Base) -> list[int]:
    """A deterministic sample of frame indexes: the ends, around the snapshots, every 9th."""
    picked = {0, 1, 2, base.n - 2, base.n - 1, *range(3, base.n, 9)}
    for seq in base.seqs.values():
        picked |= {seq - 1, seq}
    return sorted(i for i in picked if 0 <= i < base.n)


def inside(start: int, end: int) -> list[int]:
    """Offsets inside the frame ``[start, end)``: in its length, its CRC, its payload."""
    middle = (start + end) // 2
    return sorted({start + 1, start + 3, start + 5, start + HEADER_SIZE, middle, end - 1})


# --- the log -----------------------------------------------------------------------------


def test_intact_copy_opens_and_verifies(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(tmp_path / "w", base, base.data, base.size)
    check_case(tmp_path / "w", base, Expect(base.n, None, False), capsys, "intact")


@pytest.mark.parametrize("fill", ["zeros", "junk"])
def test_overwrite_at_every_frame_boundary(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str], fill: str
) -> None:
    """8 bytes over every frame header (and over the free space after the last frame)."""
    work = tmp_path / "w"
    refused = 0
    for i in range(base.n + 1):
        at = base.starts[i] if i < base.n else len(base.data)
        patch = bytes(HEADER_SIZE) if fill == "zeros" else JUNK[i % 2]
        damaged = base.data[:at] + patch + base.data[at + HEADER_SIZE :]
        expect = expect_damage(base, damaged)
        put(work, base, damaged, base.size)
        # Repair every refusal near the ends and around snapshots, every 7th elsewhere.
        check_case(work, base, expect, capsys, f"{fill} at frame {i}", repair=i % 7 == 0)
        refused += expect.refused_at is not None
    assert refused >= base.n - 2  # all but the last frame (and the free space)


@pytest.mark.parametrize("how", ["flip", "zeros", "junk"])
def test_damage_inside_frames(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """Flip a byte, or overwrite 4 with zeros or junk, at sampled offsets inside frames."""
    work = tmp_path / "w"
    for i in sample_frames(base):
        start, end = base.starts[i], base.end(i)
        for at in inside(start, end):
            damaged = bytearray(base.data)
            if how == "flip":
                damaged[at] ^= 0xFF
            else:
                width = min(4, len(base.data) - at)
                damaged[at : at + width] = bytes(width) if how == "zeros" else b"\xa5" * width
            expect = expect_damage(base, bytes(damaged))
            put(work, base, bytes(damaged), base.size)
            case = f"{how} at {at} (frame {i})"
            check_case(work, base, expect, capsys, case, repair=at == start + HEADER_SIZE)


def test_truncation(base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Cut the file at the boundaries of sampled frames and inside them."""
    work = tmp_path / "w"
    cuts = {0, len(base.data), len(base.data) + 100}
    for i in sample_frames(base):
        start, end = base.starts[i], base.end(i)
        cuts |= {start, *inside(start, end), start + HEADER_SIZE - 1}
    for cut in sorted(cuts):
        expect = expect_truncation(base, cut)
        put(work, base, (base.data + bytes(200))[:cut])
        check_case(work, base, expect, capsys, f"cut at {cut}", repair=cut % 5 == 0)


def test_torn_tail_in_preallocated_space(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash mid-commit: part of a new frame written into the zero-filled space.

    With the preallocation the log really has (4 MiB and more of zeros).
    """
    work = tmp_path / "w"
    frame = eventlog._frame(base.payloads[-1])
    size = len(base.data) + eventlog.PREALLOCATE + 12345
    for written in (1, 4, HEADER_SIZE, HEADER_SIZE + 1, len(frame) // 2, len(frame) - 3):
        assert frame[written:].strip(b"\0"), "the unwritten bytes must not be zeros anyway"
        put(work, base, base.data + frame[:written], size)
        check_case(work, base, Expect(base.n, None, True), capsys, f"torn {written}")
    # The header written and a block of the payload not (a hole of zeros).
    hole = frame[:HEADER_SIZE] + bytes(4) + frame[HEADER_SIZE + 4 :]
    put(work, base, base.data + hole, size)
    check_case(work, base, Expect(base.n, None, True), capsys, "torn with a hole")


def test_deleted_log_is_refused_and_nothing_else_changes(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "w"
    put(work, base, None)
    before = digest(work)
    with pytest.raises(LedgerError, match=f"no {LOG_NAME}"):
        Ledger.open(work, fsync=False)
    rc, _, err = cli(capsys, "verify", str(work))
    assert rc == 2 and f"no {LOG_NAME}" in err
    rc, _, err = cli(capsys, "repair", str(work), "--yes")
    assert rc == 2 and "restore it from a backup" in err
    assert digest(work) == before


def _rebuilt(base: Base, k: int, payload: bytes) -> tuple[bytes, list[int]]:
    """The log with frame ``k``'s payload replaced (a valid checksum); and the new offsets."""
    payloads = [*base.payloads[:k], payload, *base.payloads[k + 1 :]]
    frames = [eventlog._frame(p) for p in payloads]
    starts = [sum(len(f) for f in frames[:i]) for i in range(len(frames))]
    return b"".join(frames), starts


def _wrong_types(base: Base, k: int) -> bytes:
    plain = codec.unpack(base.payloads[k])
    key = next(key for key in plain if key != "kind")
    return codec.pack({**plain, key: [1, 2, 3]})


JUNK_PAYLOADS: dict[str, Callable[[Base, int], bytes]] = {
    "junk msgpack": lambda base, k: b"\xc1 not msgpack",
    "trailing bytes": lambda base, k: base.payloads[k] + b"\x00",
    "a wrong kind": lambda base, k: codec.pack({"kind": "no-such-kind"}),
    "wrong field types": _wrong_types,
    "a second genesis": lambda base, k: base.payloads[0],
}


@pytest.mark.parametrize("junk", sorted(JUNK_PAYLOADS))
def test_valid_checksum_with_a_junk_payload(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str], junk: str
) -> None:
    """A frame whose checksum holds but whose payload is not a transaction.

    ``verify`` decodes every frame and refuses it with its offset. The open
    decodes the genesis and the frames after the snapshot it starts from (a
    frame under a good snapshot is not read again: the snapshot holds the
    state past it), so it refuses the damage there; ``repair`` cuts at it.
    """
    work = tmp_path / "w"
    newest = max(base.seqs.values())
    for k in (1, newest - 3, newest + 2, base.n - 1):
        if junk == "a second genesis" and k == 0:
            continue
        data, starts = _rebuilt(base, k, JUNK_PAYLOADS[junk](base, k))
        put(work, base, data, base.size)
        before = digest(work)
        rc, _, err = cli(capsys, "verify", str(work))
        assert rc == 2 and f"frame {k} at byte offset {starts[k]} " in err, (k, err)
        assert digest(work) == before
        if k >= newest:
            with pytest.raises(CorruptLedger) as refused:
                Ledger.open(work, fsync=False)
            assert refused.value.offset == starts[k]
            assert digest(work) == before
        else:
            Ledger.open(work, fsync=False).close()  # from the newest snapshot, past the damage
            assert digest(work) == before
        plan = plan_repair(work)
        assert (plan.cut, plan.frames_kept) == (starts[k], k), plan.describe()
        apply_repair(plan)
        reopened = Ledger.open(work, fsync=False)
        assert reopened.protocol.state_hash() == base.hashes[k]
        reopened.close()
        assert check_ledger(work).protocol.state_hash() == base.hashes[k]


@pytest.mark.parametrize("genesis", ["junk", "a transfer", "flipped"])
def test_bad_genesis_is_refused_and_cannot_be_repaired(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str], genesis: str
) -> None:
    work = tmp_path / "w"
    if genesis == "flipped":
        data = bytearray(base.data)
        data[base.end(0) // 2] ^= 0x01
        data = bytes(data)
    else:
        payload = b"\xc1" * 9 if genesis == "junk" else base.payloads[1]
        data = _rebuilt(base, 0, payload)[0]
    put(work, base, data, base.size)
    before = digest(work)
    with pytest.raises(CorruptLog) as refused:
        Ledger.open(work, fsync=False)
    assert refused.value.offset == 0 and "offset 0" in str(refused.value)
    rc, _, err = cli(capsys, "verify", str(work))
    assert rc == 2 and "byte offset 0 " in err
    rc, _, err = cli(capsys, "repair", str(work), "--yes")
    assert rc == 2 and "restore the log from a backup" in err
    assert digest(work) == before


# --- snapshots ---------------------------------------------------------------------------


def _flip(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    return bytes(flipped)


def _bad_hash(data: bytes) -> bytes:
    """The same snapshot with another state hash, and a valid checksum."""
    record = codec.decode(Snapshot, data[HEADER_SIZE:])
    record.state_hash = "0" * len(record.state_hash)
    return eventlog._frame(codec.encode(record))


SNAPSHOT_DAMAGE: dict[str, Callable[[bytes], bytes | None]] = {
    "flip": _flip,
    "truncate": lambda data: data[:-3],
    "delete": lambda data: None,
    "header only": lambda data: data[:HEADER_SIZE],
    "another state hash": _bad_hash,
}


@pytest.mark.parametrize("damage", sorted(SNAPSHOT_DAMAGE))
def test_snapshot_damage(
    base: Base,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    """A damaged snapshot with an intact log: the open falls back, keeps the file; verify
    refuses it by name; repair moves it aside; a deleted snapshot is no damage."""
    work = tmp_path / "w"
    for name in base.snapshots:
        put(work, base, base.data, base.size)
        damaged = SNAPSHOT_DAMAGE[damage](base.snapshots[name])
        if damaged is None:
            (work / name).unlink()
        else:
            (work / name).write_bytes(damaged)
        before = digest(work)
        with caplog.at_level(logging.WARNING, logger="protocol.ledger"):
            ledger = Ledger.open(work, fsync=False)
        assert ledger.protocol.state_hash() == base.hashes[base.n], (damage, name)
        ledger.close()
        assert digest(work) == before, (damage, name)  # nothing deleted, nothing cut
        rc, _, err = cli(capsys, "verify", str(work))
        assert digest(work) == before
        if damaged is None:
            assert rc == 0, err
            assert plan_repair(work).empty
            continue
        if damage != "another state hash" or base.seqs[name] == max(base.seqs.values()):
            assert name in caplog.text, (damage, name)  # a skipped snapshot is warned about
        caplog.clear()
        assert rc == 2 and err.startswith(f"error: {work / name}: "), err
        assert "byte offset" in err, err
        plan = plan_repair(work)
        assert plan.cut is None and [(s.name, new) for s, new, _ in plan.aside] == [
            (name, f"{name}.corrupt")
        ]
        apply_repair(plan)
        assert (work / f"{name}.corrupt").read_bytes() == damaged
        assert cli(capsys, "verify", str(work))[0] == 0
        reopened = Ledger.open(work, fsync=False)
        assert reopened.protocol.state_hash() == base.hashes[base.n]
        reopened.close()


def test_snapshot_past_a_log_cut_at_a_frame_boundary(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log cut cleanly (no torn frame) is still refused if a snapshot covers the lost frames."""
    newest = max(base.seqs.values())
    work = tmp_path / "w"
    put(work, base, base.data[: base.starts[newest - 1]], base.size)
    check_case(work, base, expect_truncation(base, base.starts[newest - 1]), capsys, "cut")
    assert sorted(p.name for p in work.glob("*.past-*")) == sorted(
        f"{name}.past-{base.starts[newest - 1]}" for name, seq in base.seqs.items() if seq == newest
    )


# --- the command line ---------------------------------------------------------------------


def test_repair_command_on_a_run_directory(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    damaged = bytearray(base.data)
    middle = base.starts[base.n // 2]
    damaged[middle + HEADER_SIZE + 1] ^= 0x10
    put(run / "ledger", base, bytes(damaged), base.size)
    before = digest(run / "ledger")
    rc, out, err = cli(capsys, "repair", str(run))
    assert rc == 1 and f"cut the log at byte offset {middle}:" in out
    assert f"keep {base.n // 2} frames (back to round {_round(base, base.n // 2)})" in out
    assert "nothing changed" in out
    assert digest(run / "ledger") == before
    rc, out, err = cli(capsys, "repair", str(run), "--yes")
    assert rc == 0, err
    assert f"cut {LOG_NAME} at byte offset {middle}" in out
    rc, out, err = cli(capsys, "verify", str(run))
    assert rc == 0 and f"rounds {_round(base, base.n // 2)}  invariants ok" in out
    rc, out, err = cli(capsys, "repair", str(run))
    assert rc == 0 and "nothing to repair" in out


# --- the event log's resync --------------------------------------------------------------


def test_crc_zero_extension_matches_zlib() -> None:
    for data in (b"", b"a", os.urandom(100)):
        for zeros in (0, 1, 7, 4096, 100_003):
            assert eventlog._crc_zero_extend(zlib.crc32(data), zeros) == zlib.crc32(
                data + bytes(zeros)
            )


def test_a_frame_reaching_into_the_zero_tail_is_found(tmp_path: Path) -> None:
    """The last frame's payload may end in zero bytes: the resync still sees it whole."""
    path = tmp_path / LOG_NAME
    with EventLog(path, fsync=False) as log:
        log.append_many([b"first", b"second", b"ends in zeros" + bytes(40)])
    data = bytearray(path.read_bytes())
    data[HEADER_SIZE + 2] ^= 1  # damage frame 0
    path.write_bytes(bytes(data))
    scan = scan_log(path)
    assert scan.corrupt and scan.next_frame == HEADER_SIZE + 5
    with pytest.raises(CorruptLog, match=r"frame 0 at byte offset 0 .* follows at byte offset 13"):
        EventLog(path, fsync=False)
    assert path.read_bytes() == data


def test_resync_budget_exhausted_is_corrupt_never_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / LOG_NAME
    with EventLog(path, fsync=False) as log:
        log.append_many([b"first", b"second"])
    with open(path, "r+b") as f:
        f.seek(HEADER_SIZE + 5)
        f.write(b"\x05\x00\x00\x00" * 64)  # many plausible lengths, no valid frame
    before = path.read_bytes()
    assert scan_log(path).torn
    monkeypatch.setattr(eventlog, "RESYNC_BUDGET", 2048)
    scan = scan_log(path)
    assert scan.undecided and scan.corrupt and not scan.torn
    with pytest.raises(CorruptLog, match="could not clear"):
        EventLog(path, fsync=False)
    assert path.read_bytes() == before


def test_readonly_and_deferred_truncation(tmp_path: Path) -> None:
    path = tmp_path / LOG_NAME
    with EventLog(path, fsync=False) as log:
        log.append_many([b"first", b"second"])
    data = path.read_bytes()
    torn = data[: HEADER_SIZE + 5 + 3]
    path.write_bytes(torn)
    with EventLog(path, readonly=True) as log:
        assert (len(log), log.dropped_bytes) == (1, 3)
        assert list(log.frames()) == [b"first"]
        with pytest.raises(ValueError, match="read-only"):
            log.append(b"x")
    assert path.read_bytes() == torn
    log = EventLog(path, fsync=False, truncate_torn=False)
    with pytest.raises(ValueError, match="torn tail"):
        log.append(b"x")
    assert path.read_bytes() == torn
    assert log.truncate_torn_tail() == 3
    log.append(b"x")
    log.close()
    assert eventlog.read_frames(path)[0] == [b"first", b"x"]
    with pytest.raises(FileNotFoundError):
        EventLog(tmp_path / "missing.log", readonly=True)


def test_moved_aside_files_are_not_snapshots(tmp_path: Path) -> None:
    for name in ("snapshot-1.msgpack", "snapshot-2.msgpack.corrupt", "snapshot-3.msgpack.past-9"):
        write_snapshot(tmp_path, name, b"x", fsync=False)
    assert [p.name for p in eventlog.list_snapshots(tmp_path)] == ["snapshot-1.msgpack"]
