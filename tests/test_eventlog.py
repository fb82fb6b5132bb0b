"""Tests for the framed event log and snapshot files."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol import eventlog
from protocol.eventlog import (
    HEADER_SIZE,
    CorruptLog,
    CorruptSnapshot,
    EventLog,
    list_snapshots,
    read_frames,
    read_snapshot,
    write_snapshot,
)

PAYLOADS = [b"first", b"\x00" * 3, b"third event with more bytes" * 10]


def _write_log(path: Path, payloads: list[bytes]) -> list[int]:
    """Write ``payloads`` committed one by one; return the log's end after each.

    The file is cut to its last frame (no preallocated zeros), so tests can
    damage exactly the bytes a crash could leave.
    """
    ends = []
    with EventLog(path, fsync=False) as log:
        for p in payloads:
            log.append(p)
            log.commit()
            ends.append(log.size)
    os.truncate(path, ends[-1])
    return ends


def test_append_commit_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    with EventLog(path) as log:
        assert len(log) == 0
        assert log.append(b"a") == 0
        assert log.append_many([b"b", b"c"]) == [1, 2]
        assert len(log) == 0  # nothing committed yet
        assert log.pending == 3
        log.commit()
        assert len(log) == 3
        assert list(log.frames()) == [b"a", b"b", b"c"]
        assert list(log.frames(2)) == [b"c"]
        assert list(log.frames(3)) == []
    with EventLog(path) as log:
        assert len(log) == 3
        assert log.dropped_bytes == 0
        assert log.append(b"d") == 3
    # close() committed the last frame; the zero-filled space after it is not damage.
    end = 4 * (HEADER_SIZE + 1)
    assert read_frames(path) == ([b"a", b"b", b"c", b"d"], end, 0)
    assert path.stat().st_size > end


def test_frame_format(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    with EventLog(path, fsync=False) as log:
        log.append(b"hello")
    data = path.read_bytes()
    frame = struct.pack("<II", 5, zlib.crc32(b"hello")) + b"hello"
    assert data[: len(frame)] == frame
    assert not data[len(frame) :].strip(b"\0")  # preallocated space is zeros


def test_frames_bounds_and_snapshot_semantics(tmp_path: Path) -> None:
    with EventLog(tmp_path / "events.log", fsync=False) as log:
        log.append_many([b"a", b"b"])
        log.commit()
        with pytest.raises(ValueError):
            log.frames(3)
        with pytest.raises(ValueError):
            log.frames(-1)
        it = log.frames(1)
        log.append(b"c")
        log.commit()
        # The iterator sees what was committed when frames() was called.
        assert list(it) == [b"b"]
        assert list(log.frames(1)) == [b"b", b"c"]


def test_group_commit_is_one_write_and_one_data_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(tmp_path / "events.log")
    log.append(b"grow")
    log.commit()  # the first commit also zero-fills ahead and fsyncs the new size once
    fd = log._fd
    writes: list[int] = []
    syncs: list[str] = []
    real_pwrite, real_fsync, real_datasync = os.pwrite, os.fsync, eventlog._fdatasync

    def pwrite(f: int, data: bytes, offset: int) -> int:
        if f == fd:
            writes.append(len(data))
        return real_pwrite(f, data, offset)

    def fsync(f: int) -> None:
        syncs.append("fsync")
        real_fsync(f)

    def datasync(f: int) -> None:
        syncs.append("fdatasync")
        real_datasync(f)

    monkeypatch.setattr(eventlog.os, "pwrite", pwrite)
    monkeypatch.setattr(eventlog.os, "fsync", fsync)
    monkeypatch.setattr(eventlog, "_fdatasync", datasync)
    payloads = [bytes([i]) * (i + 1) for i in range(100)]
    log.append_many(payloads)
    log.commit()
    assert len(writes) == 1
    assert writes[0] == sum(HEADER_SIZE + len(p) for p in payloads)
    assert syncs == ["fdatasync"]  # overwriting allocated space: no metadata to flush
    log.commit()  # nothing buffered: no I/O
    assert (len(writes), len(syncs)) == (1, 1)
    log.close()
    assert read_frames(log.path)[0] == [b"grow", *payloads]


def test_log_grows_in_zero_filled_chunks(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    with EventLog(path, fsync=False) as log:
        big = b"x" * (eventlog.PREALLOCATE // 3)
        for _ in range(7):
            log.append(big)
            log.commit()
            assert log.size <= log.allocated <= log.size + 2 * eventlog.PREALLOCATE
        assert path.stat().st_size == log.allocated
    with EventLog(path, fsync=False) as log:
        assert (len(log), log.dropped_bytes) == (7, 0)
        assert list(log.frames(6)) == [big]


def test_no_fsync_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(eventlog.os, "fsync", calls.append)
    with EventLog(tmp_path / "events.log", fsync=False) as log:
        log.append(b"x")
    assert calls == []


def test_torn_tail_at_every_offset(tmp_path: Path) -> None:
    full = tmp_path / "full.log"
    ends = _write_log(full, PAYLOADS)
    data = full.read_bytes()
    prev_end = ends[-2]
    path = tmp_path / "torn.log"
    for cut in range(prev_end, len(data)):
        # A crash at the end of the file, or inside zero-filled preallocated space.
        for tail in (b"", b"\0" * 100):
            path.write_bytes(data[:cut] + tail)
            torn = data[prev_end:cut]
            with EventLog(path, fsync=False) as log:
                assert len(log) == 2, cut
                assert log.dropped_bytes == (len(torn + tail) if torn.strip(b"\0") else 0)
                assert list(log.frames()) == PAYLOADS[:2]
                assert log.append(b"again") == 2
            assert read_frames(path) == ([*PAYLOADS[:2], b"again"], prev_end + HEADER_SIZE + 5, 0)


def test_torn_tail_in_earlier_frames(tmp_path: Path) -> None:
    # A cut inside frame i keeps exactly frames 0..i-1.
    full = tmp_path / "full.log"
    ends = _write_log(full, PAYLOADS)
    data = full.read_bytes()
    starts = [0, *ends[:-1]]
    for i, start in enumerate(starts):
        for cut in (start, start + 1, start + HEADER_SIZE, ends[i] - 1):
            payloads, good_end, dropped = read_frames(_put(tmp_path, data[:cut]))
            assert payloads == PAYLOADS[:i]
            assert (good_end, dropped) == (start, cut - start)


def _put(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "scratch.log"
    path.write_bytes(data)
    return path


def test_flipped_payload_byte_is_dropped(tmp_path: Path) -> None:
    full = tmp_path / "full.log"
    ends = _write_log(full, PAYLOADS)
    data = full.read_bytes()
    prev_end = ends[-2]
    # Every byte of the last frame: header (length, crc) and payload.
    for pos in range(prev_end, len(data)):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x40
        path = _put(tmp_path, bytes(corrupt))
        with EventLog(path, fsync=False) as log:
            assert len(log) == 2, pos
            assert log.dropped_bytes == len(data) - prev_end
            assert list(log.frames()) == PAYLOADS[:2]
            log.append(PAYLOADS[2])
        assert path.read_bytes()[: len(data)] == data


def test_zero_filled_tail_is_free_space(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    _write_log(path, PAYLOADS[:1])
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)
    with EventLog(path, fsync=False) as log:
        assert (len(log), log.dropped_bytes, log.size) == (1, 0, size)
        log.append(PAYLOADS[1])
    assert read_frames(path)[0] == PAYLOADS[:2]


def test_huge_garbage_length_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    _write_log(path, PAYLOADS[:1])
    with open(path, "ab") as f:
        f.write(struct.pack("<II", 0xFFFF_FFFF, 0) + b"junk")
    assert read_frames(path) == ([PAYLOADS[0]], HEADER_SIZE + len(PAYLOADS[0]), 12)


def test_empty_payload_rejected(tmp_path: Path) -> None:
    with EventLog(tmp_path / "events.log", fsync=False) as log, pytest.raises(ValueError):
        log.append(b"")


def test_exception_in_with_block_discards_pending(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    with pytest.raises(RuntimeError), EventLog(path, fsync=False) as log:
        log.append(b"kept")
        log.commit()
        log.append(b"lost")
        raise RuntimeError("boom")
    assert log.closed
    assert read_frames(path)[0] == [b"kept"]


def test_failed_write_poisons_log_and_reopen_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.log"
    _write_log(path, PAYLOADS[:2])
    log = EventLog(path, fsync=False)
    real_pwrite = os.pwrite

    def half_write(fd: int, data: bytes, offset: int) -> int:
        real_pwrite(fd, bytes(data)[: len(data) // 2], offset)
        raise OSError("disk full")

    monkeypatch.setattr(eventlog.os, "pwrite", half_write)
    log.append(PAYLOADS[2])
    with pytest.raises(OSError, match="disk full"):
        log.commit()
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="reopen"):
        log.append(b"x")
    log.close()
    with EventLog(path, fsync=False) as log:
        assert list(log.frames()) == PAYLOADS[:2]


def test_corruption_after_open_raises_on_read(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    ends = _write_log(path, PAYLOADS)
    with EventLog(path, fsync=False) as log:
        with open(path, "r+b") as f:
            f.seek(ends[0] + HEADER_SIZE)
            f.write(b"X")
        with pytest.raises(CorruptLog):
            list(log.frames())


def test_closed_log_rejects_use(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.log", fsync=False)
    log.close()
    log.close()  # idempotent
    with pytest.raises(ValueError):
        log.append(b"x")


# --- snapshots ---------------------------------------------------------------


def test_snapshot_round_trip(tmp_path: Path) -> None:
    payload = os.urandom(10_000)
    path = write_snapshot(tmp_path, "snapshot-000001.msgpack", payload)
    assert path == tmp_path / "snapshot-000001.msgpack"
    assert read_snapshot(path) == payload
    assert not (tmp_path / "snapshot-000001.msgpack.tmp").exists()
    # Overwrite is atomic replace.
    write_snapshot(tmp_path, "snapshot-000001.msgpack", b"newer")
    assert read_snapshot(path) == b"newer"


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:-1],  # truncated payload
        lambda d: d[:5],  # truncated header
        lambda d: b"",
        lambda d: d + b"\x00",  # trailing bytes
        lambda d: d[:-1] + bytes([d[-1] ^ 1]),  # flipped payload byte
        lambda d: d[:4] + bytes([d[4] ^ 1]) + d[5:],  # flipped crc byte
    ],
)
def test_corrupt_snapshot_detected(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    path = write_snapshot(tmp_path, "snapshot-000001.msgpack", b"state bytes", fsync=False)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptSnapshot):
        read_snapshot(path)
    assert issubclass(CorruptSnapshot, ValueError)


def test_list_snapshots_sorted_numerically(tmp_path: Path) -> None:
    for n in (12, 3, 100, 7):
        write_snapshot(tmp_path, f"snapshot-{n}.msgpack", b"x", fsync=False)
    (tmp_path / "snapshot-000200.msgpack.tmp").write_bytes(b"partial")
    (tmp_path / "snapshot-latest").write_bytes(b"")
    (tmp_path / "other-5.msgpack").write_bytes(b"")
    names = [p.name for p in list_snapshots(tmp_path)]
    assert names == [
        "snapshot-3.msgpack",
        "snapshot-7.msgpack",
        "snapshot-12.msgpack",
        "snapshot-100.msgpack",
    ]
    assert [p.name for p in list_snapshots(tmp_path, prefix="other-")] == ["other-5.msgpack"]
    assert list_snapshots(tmp_path / "missing") == []


def test_snapshot_name_must_be_plain(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_snapshot(tmp_path, "../escape", b"x")
