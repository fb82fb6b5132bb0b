"""Append-only durable event log and atomic snapshot files.

Frame format (log files and snapshot files alike)::

    +----------------+----------------+-----------------+
    | length: u32 LE | crc32: u32 LE  | payload bytes   |
    +----------------+----------------+-----------------+

``crc32`` is ``zlib.crc32(payload)``. A log file is frames back to back,
nothing else; frame ``i`` (0-based) is event sequence number ``i``. Payloads
are never empty, so a zero-filled tail (left by a crash on some filesystems)
never parses as frames.

A crash can only tear the tail: on open, scanning stops at the first short
header, short payload, empty or bad-checksum frame, and the file is truncated
to the end of the last good frame. A snapshot file is exactly one frame.

The log file is grown ahead of the data in zero-filled chunks, made durable
once; a commit then overwrites allocated blocks and needs only ``fdatasync``
(no size or block-map change to flush), which is what makes group commit
cheap. A zero tail is free space, not damage: a zero length ends the log.

``EventLog`` is single-writer: one open ``EventLog`` per file at a time.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

__all__ = [
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "CorruptLog",
    "CorruptSnapshot",
    "EventLog",
    "list_snapshots",
    "read_frames",
    "read_snapshot",
    "write_snapshot",
]

_HEADER = struct.Struct("<II")
HEADER_SIZE = _HEADER.size
MAX_PAYLOAD = 0xFFFF_FFFF
_READ_BUFFER = 1 << 20

StrPath = str | os.PathLike[str]


class CorruptLog(ValueError):
    """A committed log frame failed its checksum after the log was opened."""


class CorruptSnapshot(ValueError):
    """A snapshot file is truncated, padded or fails its checksum."""


def _frame(payload: bytes) -> bytes:
    if not payload:
        raise ValueError("empty payloads are not allowed")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _scan(f: BinaryIO, file_size: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(end_offset, payload)`` per good frame from ``f``'s position; stop at a bad one."""
    pos = f.tell()
    while True:
        header = f.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            return
        length, crc = _HEADER.unpack(header)
        # Check against the file size before reading: a garbage length must
        # not make us allocate gigabytes.
        if length == 0 or pos + HEADER_SIZE + length > file_size:
            return
        payload = f.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        pos += HEADER_SIZE + length
        yield pos, payload


def read_frames(path: StrPath) -> tuple[list[bytes], int, int]:
    """Return ``(payloads, good_end_offset, dropped_bytes)`` of the log at ``path``.

    ``dropped_bytes`` counts a torn or corrupt tail; a zero-filled tail is free space.
    """
    with open(path, "rb", buffering=_READ_BUFFER) as f:
        size = os.fstat(f.fileno()).st_size
        good_end = 0
        payloads: list[bytes] = []
        for end, payload in _scan(f, size):
            payloads.append(payload)
            good_end = end
        zero_tail = _is_zero_tail(f, good_end)
    return payloads, good_end, 0 if zero_tail else size - good_end


def _is_zero_tail(f: BinaryIO, offset: int) -> bool:
    """Return whether everything in ``f`` from ``offset`` on is zero bytes."""
    f.seek(offset)
    while chunk := f.read(_READ_BUFFER):
        if chunk.strip(b"\0"):
            return False
    return True


def _count_frames(path: StrPath) -> tuple[int, int, int, bool]:
    """Return ``(count, good_end, file_size, zero_tail)``, streaming in O(1) memory.

    ``zero_tail`` says whether everything after the last good frame is zeros
    (preallocated space) rather than a torn or corrupt frame.
    """
    with open(path, "rb", buffering=_READ_BUFFER) as f:
        size = os.fstat(f.fileno()).st_size
        count = good_end = 0
        for end, _ in _scan(f, size):
            count += 1
            good_end = end
        zero_tail = _is_zero_tail(f, good_end)
    return count, good_end, size, zero_tail


_fdatasync = getattr(os, "fdatasync", os.fsync)
PREALLOCATE = 4 << 20
_ZEROS = bytes(1 << 20)


def _fsync_dir(directory: StrPath) -> None:
    # Makes a create/rename durable. Not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventLog:
    """An append-only log of byte payloads with group commit.

    ``append`` only buffers; ``commit`` makes every buffered frame durable
    with one write and one fsync. Sequence numbers count all committed
    frames of the file from 0.
    """

    def __init__(self, path: StrPath, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        created = not self.path.exists()
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self.count, self.size, self.allocated, zero_tail = _count_frames(self.path)
            self.dropped_bytes = 0
            if not zero_tail:
                self.dropped_bytes = self.allocated - self.size
                os.ftruncate(self._fd, self.size)
                os.fsync(self._fd)
                self.allocated = self.size
            if created and fsync:
                _fsync_dir(self.path.parent)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        self._pending: list[bytes] = []
        self._failed = False

    def _check_open(self) -> int:
        if self._fd is None:
            raise ValueError(f"event log {self.path} is closed")
        if self._failed:
            # After a failed write or fsync the file's durable contents are
            # unknown; reopening rescans and repairs it.
            raise RuntimeError(f"event log {self.path} failed a commit; reopen it")
        return self._fd

    @property
    def pending(self) -> int:
        """Number of appended frames not yet committed."""
        return len(self._pending)

    def append(self, payload: bytes) -> int:
        """Buffer one non-empty payload and return its sequence number."""
        self._check_open()
        self._pending.append(_frame(bytes(payload)))
        return self.count + len(self._pending) - 1

    def append_many(self, payloads: Iterable[bytes]) -> list[int]:
        """Buffer several payloads; return their sequence numbers."""
        return [self.append(p) for p in payloads]

    def commit(self) -> None:
        """Write all buffered frames with one write and (if enabled) one fsync."""
        fd = self._check_open()
        if not self._pending:
            return
        data = b"".join(self._pending)
        try:
            if self.size + len(data) > self.allocated:
                self._grow(fd, self.size + len(data))
            _write_at(fd, data, self.size)
            if self.fsync:
                _fdatasync(fd)
        except BaseException:
            self._failed = True
            # Best effort: leave no torn frame behind for other readers.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)
            raise
        self.count += len(self._pending)
        self.size += len(data)
        self._pending.clear()

    def _grow(self, fd: int, needed: int) -> None:
        """Zero-fill the file to past ``needed`` and make the new size durable once."""
        target = needed + PREALLOCATE
        while self.allocated < target:
            step = min(len(_ZEROS), target - self.allocated)
            _write_at(fd, _ZEROS[:step], self.allocated)
            self.allocated += step
        if self.fsync:
            os.fsync(fd)

    def discard(self) -> int:
        """Drop the uncommitted frames; return how many there were."""
        n = len(self._pending)
        self._pending.clear()
        return n

    def frames(self, start_seq: int = 0) -> Iterator[bytes]:
        """Iterate committed payloads from ``start_seq``, read from disk.

        Frames committed after this call are not included.
        """
        self._check_open()
        if not 0 <= start_seq <= self.count:
            raise ValueError(f"start_seq {start_seq} outside 0..{self.count}")
        return self._iter_frames(start_seq, self.count, self.size)

    def _iter_frames(self, start_seq: int, count: int, end: int) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=_READ_BUFFER) as f:
            # Skip by headers alone; these frames were validated when scanned or written.
            for seq in range(start_seq):
                header = f.read(HEADER_SIZE)
                if len(header) < HEADER_SIZE:
                    raise CorruptLog(f"{self.path}: frame {seq} of {count} is unreadable")
                f.seek(_HEADER.unpack(header)[0], os.SEEK_CUR)
            seq = start_seq
            for _, payload in _scan(f, end):
                yield payload
                seq += 1
            if seq != count:
                raise CorruptLog(f"{self.path}: frame {seq} of {count} is unreadable")

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        """Commit buffered frames and close; idempotent."""
        if self._fd is None:
            return
        try:
            if not self._failed:
                self.commit()
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an exception the buffered frames belong to a failed operation:
        # don't make them durable.
        if exc_type is not None:
            self.discard()
        self.close()

    def __del__(self) -> None:
        # Release the descriptor only; committing from a finalizer would make
        # durability depend on garbage collection.
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    # A regular-file write is normally complete; loop for the rare short write.
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def write_snapshot(directory: StrPath, name: str, payload: bytes, *, fsync: bool = True) -> Path:
    """Atomically write ``payload`` as one frame to ``directory/name``; return its path."""
    if not name or os.sep in name or (os.altsep and os.altsep in name) or name in (".", ".."):
        raise ValueError(f"bad snapshot name {name!r}")
    directory = Path(directory)
    final = directory / name
    tmp = directory / (name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(_frame(bytes(payload)))
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, final)
    if fsync:
        _fsync_dir(directory)
    return final


def read_snapshot(path: StrPath) -> bytes:
    """Return the payload of the snapshot at ``path``; raise ``CorruptSnapshot`` if damaged."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER_SIZE:
        raise CorruptSnapshot(f"{path}: {len(data)} bytes is shorter than a header")
    length, crc = _HEADER.unpack_from(data)
    payload = data[HEADER_SIZE:]
    if len(payload) != length:
        raise CorruptSnapshot(f"{path}: header says {length} bytes, file has {len(payload)}")
    if zlib.crc32(payload) != crc:
        raise CorruptSnapshot(f"{path}: checksum mismatch")
    return payload


def list_snapshots(directory: StrPath, prefix: str = "snapshot-") -> list[Path]:
    """Return snapshot paths ``<prefix><int>...`` sorted by that int, newest last.

    In-progress ``.tmp`` files are skipped; a missing directory has none.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = re.compile(re.escape(prefix) + r"(\d+)")
    found: list[tuple[int, str, Path]] = []
    for entry in directory.iterdir():
        m = pattern.match(entry.name)
        if m and not entry.name.endswith(".tmp") and entry.is_file():
            found.append((int(m.group(1)), entry.name, entry))
    found.sort()
    return [p for _, _, p in found]
