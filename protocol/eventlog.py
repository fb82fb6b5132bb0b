"""Append-only durable event log and atomic snapshot files.

Frame format (log files and snapshot files alike)::

    +----------------+----------------+-----------------+
    | length: u32 LE | crc32: u32 LE  | payload bytes   |
    +----------------+----------------+-----------------+

``crc32`` is ``zlib.crc32(payload)``. A log file is frames back to back,
nothing else; frame ``i`` (0-based) is event sequence number ``i``. Payloads
are never empty, so a zero-filled tail (left by a crash on some filesystems)
never parses as frames.

A crash can only tear the tail. On open, scanning stops at the first frame
that is not well-formed (a short header, a zero length, a length past the end
of the file, a bad checksum); call its offset ``B``. If nothing but zero bytes
follows ``B``, the log simply ends there. Otherwise the open looks for a
well-formed frame (non-zero length that fits in the file, matching checksum)
starting at any later byte offset up to the last non-zero byte (a resync):

* none found: the bytes from ``B`` on are a torn tail (the last frame cut
  short by a crash), and a writable open truncates the file at ``B``;
* one found: committed data follows the damage, so the log is corrupt and the
  open raises :class:`CorruptLog` naming the file and ``B``, changing nothing.

The resync stops at the first frame it finds (normally the next frame after
the damaged one), so it costs about one frame; only a tail with no frame in
it is searched to its end, in time linear in its size and within a budget
(:data:`RESYNC_BUDGET`): a tail it cannot clear is reported as corrupt, never
dropped. A snapshot file is exactly one frame.

The log file is grown ahead of the data in zero-filled chunks, made durable
once; a commit then overwrites allocated blocks and needs only ``fdatasync``
(no size or block-map change to flush), which is what makes group commit
cheap. A zero tail is free space, not damage.

``EventLog`` is single-writer: one open ``EventLog`` per file at a time.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from .errors import StakerayError

__all__ = [
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "RESYNC_BUDGET",
    "CorruptLog",
    "CorruptSnapshot",
    "EventLog",
    "LogScan",
    "frames_from",
    "list_snapshots",
    "read_frames",
    "read_snapshot",
    "scan_log",
    "write_snapshot",
]

_HEADER = struct.Struct("<II")
HEADER_SIZE = _HEADER.size
MAX_PAYLOAD = 0xFFFF_FFFF
_READ_BUFFER = 1 << 20

StrPath = str | os.PathLike[str]


class CorruptLog(StakerayError, ValueError):
    """Committed log data is damaged; the message is one line naming the file and offset.

    Raised on open for a bad frame that valid data follows (see the module
    docstring), and on reading a frame that fails after the log was opened.
    Nothing on disk is changed by the refusal. ``path`` and ``offset`` (the
    byte offset of the damaged frame) are kept when known.
    """

    def __init__(
        self, message: str, *, path: StrPath | None = None, offset: int | None = None
    ) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.offset = offset


class CorruptSnapshot(StakerayError, ValueError):
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

    ``dropped_bytes`` counts a torn tail; a zero-filled tail is free space.
    A corrupt log raises :class:`CorruptLog`. Reads only.
    """
    with open(path, "rb", buffering=_READ_BUFFER) as f:
        size = os.fstat(f.fileno()).st_size
        payloads = [payload for _, payload in _scan(f, size)]
    scan = scan_log(path)
    if scan.corrupt:
        raise scan.error(path)
    return payloads[: scan.count], scan.end, scan.torn


def frames_from(
    path: StrPath, offset: int = 0, stop: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, payload)`` of the well-formed frames from ``offset`` on. Reads only.

    Stops silently at the first frame that is not well-formed or does not end
    by ``stop`` (default: the end of the file): a reader of a damaged log's
    intact parts (repair), not a check.
    """
    with open(path, "rb", buffering=_READ_BUFFER) as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(offset)
        for end, payload in _scan(f, size if stop is None else min(stop, size)):
            yield offset, payload
            offset = end


RESYNC_BUDGET = 1 << 30
"""Work a resync may do per MiB of non-zero tail (at least one, at most
``_RESYNC_MAX_MIB``) before it gives up on proving the tail torn; the tail is then
reported as corrupt, never dropped. Counted in bytes checksummed: each candidate frame
costs 4 KiB plus its payload up to 64 KiB, or 64 KiB per piece of CRC arithmetic.
About a second of work per MiB; a torn batch frame of 0.5 MB uses a third of its share."""
_RESYNC_MAX_MIB = 8
_RESYNC_WINDOW = 1 << 20
_RESYNC_TRY_COST = 4 << 10
_RESYNC_DIRECT = 64 << 10
_RESYNC_MATH_COST = 64 << 10


@dataclass(frozen=True, slots=True)
class LogScan:
    """What a log file holds, as an open sees it (:func:`scan_log`)."""

    count: int
    """Well-formed frames from the start of the file."""
    end: int
    """Byte offset just after the last of them (where a bad frame, if any, starts)."""
    size: int
    """The file's size."""
    data_end: int
    """Offset after the last non-zero byte from ``end`` on; ``end`` when only zeros follow."""
    problem: str = ""
    """Why the frame at ``end`` is not well-formed; empty when the log ends cleanly."""
    next_frame: int | None = None
    """Offset of a well-formed frame after ``end``: the log is corrupt, not torn."""
    undecided: bool = False
    """The resync ran out of budget before clearing the tail: treated as corrupt."""

    @property
    def corrupt(self) -> bool:
        """Whether the log is damaged before its end (never dropped: refused)."""
        return self.next_frame is not None or self.undecided

    @property
    def torn(self) -> int:
        """Bytes from ``end`` to the end of the file that a writable open drops; 0 if none."""
        if self.data_end > self.end and not self.corrupt:
            return self.size - self.end
        return 0

    def error(self, path: StrPath) -> CorruptLog:
        """Return the one-line :class:`CorruptLog` for a corrupt scan of ``path``."""
        if self.next_frame is not None:
            after = f"a well-formed frame follows at byte offset {self.next_frame}"
        else:
            after = (
                f"{self.data_end - self.end} bytes of data follow it that the resync"
                " could not clear as a torn tail"
            )
        return CorruptLog(
            f"{path}: frame {self.count} at byte offset {self.end} is damaged"
            f" ({self.problem}) and {after}: the log is corrupt, not torn; nothing was changed",
            path=path,
            offset=self.end,
        )


def scan_log(path: StrPath) -> LogScan:
    """Scan the log at ``path``: its well-formed frames, and what follows them. Reads only.

    Costs one pass over the file (what any open reads) plus, when non-zero
    bytes follow the last well-formed frame, a resync over them (see the
    module docstring).
    """
    with open(path, "rb", buffering=_READ_BUFFER) as f:
        size = os.fstat(f.fileno()).st_size
        count = end = 0
        for end, _ in _scan(f, size):  # noqa: B007 (the last end is the one kept)
            count += 1
        data_end = _data_end(f, end)
        if data_end <= end:
            return LogScan(count, end, size, end)
        problem = _frame_problem(f, end, size)
        next_frame, undecided = _find_frame(f.fileno(), end + 1, data_end, size)
    return LogScan(count, end, size, data_end, problem, next_frame, undecided)


def _data_end(f: BinaryIO, offset: int) -> int:
    """Return the offset after the last non-zero byte of ``f`` from ``offset`` on, or ``offset``."""
    f.seek(offset)
    last = pos = offset
    while chunk := f.read(_READ_BUFFER):
        # Comparing with zeros is a memcmp; rstrip walks byte by byte, so it
        # only runs on the last block of a chunk that holds data.
        if chunk != (_ZEROS if len(chunk) == len(_ZEROS) else bytes(len(chunk))):
            end = len(chunk)  # it holds data: find the last block with some
            start = max(0, end - _BLOCK)
            while chunk[start:end] == _ZEROS[: end - start]:
                end, start = start, max(0, start - _BLOCK)
            last = pos + start + len(chunk[start:end].rstrip(b"\0"))
        pos += len(chunk)
    return last


def _frame_problem(f: BinaryIO, offset: int, size: int) -> str:
    """Say why the frame at ``offset`` is not well-formed."""
    f.seek(offset)
    header = f.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return f"its header is cut short at {len(header)} of {HEADER_SIZE} bytes"
    length, _ = _HEADER.unpack(header)
    if length == 0:
        return "zero length"
    if offset + HEADER_SIZE + length > size:
        return f"length {length} runs past the end of the file"
    return "checksum mismatch"


def _find_frame(fd: int, start: int, stop: int, size: int) -> tuple[int | None, bool]:
    """Return ``(offset, undecided)`` of the first well-formed frame starting in ``[start, stop)``.

    ``stop`` is the end of the non-zero data: everything from it to ``size``
    is zeros, so a frame's payload reaching past it is checksummed as its
    non-zero part extended by zeros (without reading them). Candidates are
    the offsets whose length field is non-zero and fits in the file
    (vectorized). A short payload is checksummed directly; a long one from
    prefix checksums of the tail (:class:`_PrefixCrc`), so the work is linear
    in the tail, not in its square. ``undecided`` is True when
    :data:`RESYNC_BUDGET` ran out first.
    """
    import numpy as np  # only a damaged or torn log gets here

    budget = RESYNC_BUDGET * min(_RESYNC_MAX_MIB, max(1, -(-(stop - start) // (1 << 20))))
    prefix = _PrefixCrc(fd, start)
    pos = start
    while pos < stop:
        n = min(_RESYNC_WINDOW, stop - pos)
        window = os.pread(fd, n + HEADER_SIZE, pos)
        m = min(n, len(window) - 3)  # offsets with a whole length field
        if m <= 0:
            break
        lengths = np.ndarray((m,), dtype="<u4", buffer=window, strides=(1,))
        room = (size - HEADER_SIZE - pos) - np.arange(m, dtype=np.int64)
        for i in np.flatnonzero((lengths != 0) & (lengths <= room)).tolist():
            offset = pos + i
            length, crc = _HEADER.unpack(os.pread(fd, HEADER_SIZE, offset))
            body = offset + HEADER_SIZE
            nonzero = max(0, min(body + length, stop) - body)
            direct = nonzero <= _RESYNC_DIRECT
            budget -= _RESYNC_TRY_COST + (nonzero if direct else _RESYNC_MATH_COST)
            if length > nonzero:
                budget -= _RESYNC_MATH_COST
            if budget < 0:
                return None, True
            if direct:
                check = zlib.crc32(os.pread(fd, nonzero, body)) if nonzero else 0
            else:
                check = prefix.crc(body, body + nonzero)
            if length > nonzero:
                check = _crc_zero_extend(check, length - nonzero)
            if check == crc:
                return offset, False
        pos += n
    return None, False


class _PrefixCrc:
    """``zlib.crc32`` of any ``file[a:b]`` past ``start``, from prefix checksums.

    Keeps the checksum of ``file[start:start + k * STEP]`` for each ``k``
    reached (filled in on demand), so one range costs two reads shorter than
    ``STEP`` and some CRC arithmetic: crc(A + B) = x^(8|B|) crc(A) + crc(B).
    """

    STEP = 1 << 16

    def __init__(self, fd: int, start: int) -> None:
        self.fd = fd
        self.start = start
        self.points = [0]

    def _at(self, pos: int) -> int:
        """Return ``crc32(file[start:pos])``."""
        k = (pos - self.start) // self.STEP
        while len(self.points) <= k:
            at = self.start + (len(self.points) - 1) * self.STEP
            self.points.append(zlib.crc32(os.pread(self.fd, self.STEP, at), self.points[-1]))
        at = self.start + k * self.STEP
        return zlib.crc32(os.pread(self.fd, pos - at, at), self.points[k])

    def crc(self, a: int, b: int) -> int:
        """Return ``zlib.crc32(file[a:b])`` for ``start <= a <= b``."""
        return self._at(b) ^ _crc_multmodp(_crc_x8n(b - a), self._at(a))


# CRC-32 arithmetic (zlib's polynomial, reflected) to checksum "bytes + k zeros"
# without reading the zeros: crc32(d + b"\0" * k) == ~(x^(8k) * ~crc32(d)) mod P.
_CRC_POLY = 0xEDB88320


def _crc_multmodp(a: int, b: int) -> int:
    """Return ``a * b`` modulo the CRC-32 polynomial (zlib's ``multmodp``)."""
    if not a:
        return 0
    m = 1 << 31
    product = 0
    while True:
        if a & m:
            product ^= b
            if not a & (m - 1):
                return product
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _crc_x2n_table() -> list[int]:
    table, p = [], 1 << 30  # x^1
    for _ in range(32):
        table.append(p)
        p = _crc_multmodp(p, p)
    return table


_CRC_X2N = _crc_x2n_table()  # x^(2^n) mod P


def _crc_x8n(n: int) -> int:
    """Return x^(8n) modulo the CRC-32 polynomial: ``n`` bytes' shift (zlib's ``x2nmodp``)."""
    power, k = 1 << 31, 3  # x^0; a byte is x^8 = x^(2^3)
    while n:
        if n & 1:
            power = _crc_multmodp(_CRC_X2N[k & 31], power)
        n >>= 1
        k += 1
    return power


def _crc_zero_extend(crc: int, zeros: int) -> int:
    """Return ``zlib.crc32(zeros * b"\0", crc)`` in O(log zeros) without the bytes."""
    return _crc_multmodp(_crc_x8n(zeros), crc ^ 0xFFFF_FFFF) ^ 0xFFFF_FFFF


_fdatasync = getattr(os, "fdatasync", os.fsync)
PREALLOCATE = 4 << 20
_ZEROS = bytes(1 << 20)
_BLOCK = 1 << 16


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

    def __init__(
        self,
        path: StrPath,
        *,
        fsync: bool = True,
        readonly: bool = False,
        truncate_torn: bool = True,
    ) -> None:
        """Open (or create) the log and scan it; a corrupt log raises :class:`CorruptLog`.

        ``readonly``: the file must exist and is never written; a torn tail is
        only reported (``dropped_bytes``), and frames end before it.
        ``truncate_torn=False``: a writable log keeps its torn tail until
        :meth:`truncate_torn_tail` (writes are refused until then), so a
        caller can check more before changing the file.
        """
        self.path = Path(path)
        self.fsync = fsync
        self.readonly = readonly
        created = False
        if readonly:
            self._fd: int | None = os.open(self.path, os.O_RDONLY)
        else:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._pending: list[bytes] = []
        self._failed = False
        self._blocked = True  # cannot append: closed, failed, read-only or a torn tail left
        try:
            self.scan = scan_log(self.path)
            if self.scan.corrupt:
                raise self.scan.error(self.path)
            self.count, self.size, self.allocated = self.scan.count, self.scan.end, self.scan.size
            self.dropped_bytes = self.scan.torn
            """Bytes of a torn tail found on open (dropped, or to be dropped)."""
            self._torn_pending = self.dropped_bytes > 0
            self._blocked = readonly or self._torn_pending
            if self._torn_pending and truncate_torn and not readonly:
                self.truncate_torn_tail()
            if created and fsync:
                _fsync_dir(self.path.parent)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def truncate_torn_tail(self) -> int:
        """Cut a torn tail found on open off the file (durably); return the bytes cut."""
        fd = self._check_open()
        if self.readonly:
            raise ValueError(f"event log {self.path} is read-only")
        if not self._torn_pending:
            return 0
        os.ftruncate(fd, self.size)
        os.fsync(fd)
        self.allocated = self.size
        self._torn_pending = False
        self._blocked = False
        return self.dropped_bytes

    def _check_open(self) -> int:
        if self._fd is None:
            raise ValueError(f"event log {self.path} is closed")
        if self._failed:
            # After a failed write or fsync the file's durable contents are
            # unknown; reopening rescans and repairs it.
            raise RuntimeError(f"event log {self.path} failed a commit; reopen it")
        return self._fd

    def _check_writable(self) -> int:
        fd = self._check_open()
        if self.readonly or self._torn_pending:
            why = "is read-only" if self.readonly else "has a torn tail to truncate first"
            raise ValueError(f"event log {self.path} {why}")
        return fd

    @property
    def pending(self) -> int:
        """Number of appended frames not yet committed."""
        return len(self._pending)

    def append(self, payload: bytes) -> int:
        """Buffer one non-empty payload and return its sequence number."""
        if self._blocked:
            self._check_writable()  # raises
        self._pending.append(_frame(bytes(payload)))
        return self.count + len(self._pending) - 1

    def append_many(self, payloads: Iterable[bytes]) -> list[int]:
        """Buffer several payloads; return their sequence numbers."""
        return [self.append(p) for p in payloads]

    def commit(self) -> None:
        """Write all buffered frames with one write and (if enabled) one fsync."""
        if not self._pending:
            self._check_open()
            return
        fd = self._check_writable()
        data = b"".join(self._pending)
        try:
            if self.size + len(data) > self.allocated:
                self._grow(fd, self.size + len(data))
            _write_at(fd, data, self.size)
            if self.fsync:
                _fdatasync(fd)
        except BaseException:
            self._failed = self._blocked = True
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
        return (payload for _, payload in self.frames_at(start_seq))

    def frames_at(self, start_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        """Like :meth:`frames`, yielding ``(byte offset, payload)`` per frame."""
        self._check_open()
        if not 0 <= start_seq <= self.count:
            raise ValueError(f"start_seq {start_seq} outside 0..{self.count}")
        return self._iter_frames(start_seq, self.count, self.size)

    def _iter_frames(self, start_seq: int, count: int, end: int) -> Iterator[tuple[int, bytes]]:
        with open(self.path, "rb", buffering=_READ_BUFFER) as f:
            # Skip by headers alone; these frames were validated when scanned or written.
            offset = 0
            for seq in range(start_seq):
                header = f.read(HEADER_SIZE)
                if len(header) < HEADER_SIZE:
                    raise CorruptLog(
                        f"{self.path}: frame {seq} of {count} at byte offset {offset}"
                        " is unreadable",
                        path=self.path,
                        offset=offset,
                    )
                length = _HEADER.unpack(header)[0]
                f.seek(length, os.SEEK_CUR)
                offset += HEADER_SIZE + length
            seq = start_seq
            for frame_end, payload in _scan(f, end):
                yield offset, payload
                offset = frame_end
                seq += 1
            if seq != count:
                raise CorruptLog(
                    f"{self.path}: frame {seq} of {count} at byte offset {offset} failed"
                    " its checksum after the log was opened",
                    path=self.path,
                    offset=offset,
                )

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
            self._blocked = True

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
        raise CorruptSnapshot(
            f"{path}: {len(data)} bytes is shorter than a header (cut at byte offset {len(data)})"
        )
    length, crc = _HEADER.unpack_from(data)
    payload = data[HEADER_SIZE:]
    if len(payload) != length:
        raise CorruptSnapshot(
            f"{path}: the header at byte offset 0 says {length} payload bytes,"
            f" the file has {len(payload)}"
        )
    if zlib.crc32(payload) != crc:
        raise CorruptSnapshot(
            f"{path}: checksum mismatch in the payload at byte offsets {HEADER_SIZE}..{len(data)}"
        )
    return payload


def list_snapshots(directory: StrPath, prefix: str = "snapshot-") -> list[Path]:
    """Return snapshot paths ``<prefix><int>[.msgpack]`` sorted by that int, newest last.

    Anything else (in-progress ``.tmp`` files, snapshots a repair moved aside
    as ``.corrupt`` or ``.past-<offset>``) is skipped; a missing directory has none.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = re.compile(re.escape(prefix) + r"(\d+)(\.msgpack)?")
    found: list[tuple[int, str, Path]] = []
    for entry in directory.iterdir():
        m = pattern.fullmatch(entry.name)
        if m and not entry.name.endswith(".tmp") and entry.is_file():
            found.append((int(m.group(1)), entry.name, entry))
    found.sort()
    return [p for _, _, p in found]
