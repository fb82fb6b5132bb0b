"""Follow a ledger's event log from another process: read only the frames added since last time.

A :class:`LogTail` keeps the byte offset after the last whole frame it read
and, at each :meth:`LogTail.read`, reads on from there with
:func:`protocol.eventlog.frames_from`: it opens the file read-only, takes no
lock and writes nothing, so the coordinator appending to the log never waits
for it. A frame still being written fails its checksum (or reads as the
zero-filled free space after the data) and is read at the next call.

The log is only appended to, except by ``stakeray repair`` (cut back) or a
new run written into the same directory. Each read first checks that the
genesis frame and the last frame read are still where they were (two 8-byte
reads); if not, it says so (``restarted``) and reads from the start again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import time
import zlib
from pathlib import Path

from protocol import transactions as tx
from protocol.eventlog import HEADER_SIZE, frames_from
from protocol.ledger import LOG_NAME, CorruptLedger, LedgerError

_HEADER = struct.Struct("<II")
SETTLE_NS = 2_000_000_000
"""A log not modified for this long is not read again until its mtime changes."""


def ledger_dir_of(directory: str | Path) -> Path:
    """Return the ledger directory of a run directory, or ``directory`` if it is a ledger."""
    path = Path(directory)
    if (path / "ledger" / LOG_NAME).is_file():
        return path / "ledger"
    if (path / LOG_NAME).is_file():
        return path
    raise LedgerError(f"{path}: not a run directory (no ledger/{LOG_NAME})")


class LogTail:
    """The frames of one ``events.log``, read incrementally (never written, never locked)."""

    def __init__(self, ledger_dir: str | Path) -> None:
        self.path = Path(ledger_dir) / LOG_NAME
        if not self.path.is_file():
            raise LedgerError(f"ledger: no {LOG_NAME} in {ledger_dir}")
        self.offset = 0
        """Byte offset after the last whole frame read."""
        self.frames = 0
        """Frames read so far (the genesis frame included)."""
        self.more = False
        """Whether the last read stopped at its limit (more frames may be waiting)."""
        self._first: tuple[int, int] | None = None  # (length, crc) of the genesis frame
        self._last: tuple[int, int, int] | None = None  # (offset, length, crc) of the last frame
        self._stat: tuple[int, int] | None = None

    def read(self, limit: int = 5000) -> tuple[bool, list[tx.Tx]]:
        """Return ``(restarted, transactions)``: the frames after the last read, decoded.

        ``restarted``: the log is not the one read so far (cut back, or a new
        run); the transactions then start again from the genesis frame. At
        most ``limit`` frames are read (``more`` says whether that stopped it).
        A well-formed frame that does not decode raises :class:`CorruptLedger`.
        """
        stat = os.stat(self.path)
        key = (stat.st_size, stat.st_mtime_ns)
        restarted = self._last is not None and not self._unchanged(stat.st_size)
        # The file is grown ahead of its data, so only its mtime tells of a write, and only
        # to the filesystem's clock tick: an mtime within SETTLE_NS of now proves nothing.
        settled = time.time_ns() - stat.st_mtime_ns > SETTLE_NS
        if restarted:
            self.offset, self.frames, self._first, self._last = 0, 0, None, None
        elif key == self._stat and settled and not self.more:
            return False, []
        # The stat is taken before reading: a write during the read is seen next time.
        self._stat = key
        out: list[tx.Tx] = []
        with contextlib.closing(frames_from(self.path, self.offset)) as frames:
            for offset, payload in itertools.islice(frames, limit):
                out.append(self._decode(offset, payload))
                crc = zlib.crc32(payload)
                if self._first is None:
                    self._first = (len(payload), crc)
                self._last = (offset, len(payload), crc)
                self.offset = offset + HEADER_SIZE + len(payload)
                self.frames += 1
        self.more = len(out) == limit
        return restarted, out

    def _decode(self, offset: int, payload: bytes) -> tx.Tx:
        """Decode frame ``self.frames``: the genesis frame first, transactions after it."""
        seq = self.frames
        try:
            transaction = tx.decode_tx(payload)
        except Exception as exc:  # the checksum held: a frame that does not decode is damage
            first = str(exc).strip().splitlines()[:1]
            raise CorruptLedger(
                f"{self.path}: frame {seq} at byte offset {offset} does not decode as a"
                f" transaction ({type(exc).__name__}: {first[0] if first else ''})",
                path=self.path,
                offset=offset,
            ) from None
        if (seq == 0) != isinstance(transaction, tx.Genesis):
            what = "is not a genesis frame" if seq == 0 else "is a second genesis frame"
            raise CorruptLedger(
                f"{self.path}: frame {seq} at byte offset {offset} {what}",
                path=self.path,
                offset=offset,
            )
        return transaction

    def _unchanged(self, size: int) -> bool:
        """Whether the genesis frame and the last frame read are still in the file."""
        if self._last is None or self._first is None or size < self.offset:
            return False
        with open(self.path, "rb", buffering=0) as f:
            first = _HEADER.unpack(os.pread(f.fileno(), HEADER_SIZE, 0).ljust(HEADER_SIZE, b"\0"))
            offset, length, crc = self._last
            last = _HEADER.unpack(
                os.pread(f.fileno(), HEADER_SIZE, offset).ljust(HEADER_SIZE, b"\0")
            )
        return first == self._first and last == (length, crc)
