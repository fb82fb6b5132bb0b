"""The durable ledger: a protocol whose accepted transactions go to an event log.

Layout of a ledger directory::

    events.log                 genesis, then every accepted transaction (frames)
    snapshot-00000010.msgpack  state after round 10, with the log position and hash

Group commit: transactions are buffered and written with one ``fsync`` per
:meth:`Ledger.commit` (and at every round). Recovery loads the newest snapshot
whose hash checks and replays the log after it; a torn last frame is dropped.
Replaying the whole log from genesis gives the same state hash.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from . import codec
from . import transactions as tx
from .eventlog import CorruptSnapshot, EventLog, list_snapshots, read_snapshot, write_snapshot
from .params import Params
from .protocol import Protocol
from .state import State
from .units import Address, Amount

log = logging.getLogger(__name__)

LOG_NAME = "events.log"
KEEP_SNAPSHOTS = 3
"""How many of the newest snapshots a ledger keeps (recovery falls back through them)."""
SNAPSHOT_PREFIX = "snapshot-"


@dataclass(slots=True)
class Snapshot:
    """A snapshot record: the state after ``seq`` log frames, and its hash."""

    seq: int
    last_frame_crc: int
    params: dict[str, Any]
    state: State
    state_hash: str


class LedgerError(Exception):
    """The ledger directory cannot be used (missing, or its log has no genesis)."""


class Ledger:
    """A :class:`Protocol` bound to a durable event log in ``directory``."""

    def __init__(
        self,
        directory: Path,
        protocol: Protocol,
        events: EventLog,
        *,
        snapshot_every: int,
        last_frame_crc: int,
    ) -> None:
        self.directory = directory
        self.protocol = protocol
        self.events = events
        self.snapshot_every = snapshot_every
        self.last_frame_crc = last_frame_crc
        protocol.sink = self._append

    # --- opening --------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: str | Path,
        params: Params | None = None,
        balances: Mapping[Address, Amount] | None = None,
        *,
        snapshot_every: int = 10,
        fsync: bool = True,
    ) -> Ledger:
        """Start a new ledger at round 0 with a genesis frame."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        if (path / LOG_NAME).exists() and (path / LOG_NAME).stat().st_size > 0:
            raise LedgerError(f"ledger: {path / LOG_NAME} already exists; open it instead")
        protocol = Protocol(params, balances)
        events = EventLog(path / LOG_NAME, fsync=fsync)
        genesis = tx.encode_tx(protocol.genesis())
        events.append(genesis)
        events.commit()
        return cls(
            path,
            protocol,
            events,
            snapshot_every=snapshot_every,
            last_frame_crc=zlib.crc32(genesis),
        )

    @classmethod
    def open(cls, directory: str | Path, *, snapshot_every: int = 10, fsync: bool = True) -> Ledger:
        """Recover a ledger: newest good snapshot plus the log after it."""
        path = Path(directory)
        if not (path / LOG_NAME).exists():
            raise LedgerError(f"ledger: no {LOG_NAME} in {path}")
        events = EventLog(path / LOG_NAME, fsync=fsync)
        if events.dropped_bytes:
            log.warning("ledger: dropped a torn tail of %d bytes", events.dropped_bytes)
        _forget_lost_snapshots(path, len(events))
        protocol, seq, crc = _load_snapshot(path, events)
        if protocol is None:
            protocol, seq, crc = _genesis(events), 1, _frame_crc(events, 0)
        for payload in events.frames(seq):
            tx.decode_tx(payload).apply(protocol)
            crc = zlib.crc32(payload)
        return cls(path, protocol, events, snapshot_every=snapshot_every, last_frame_crc=crc)

    @staticmethod
    def replay(directory: str | Path) -> Protocol:
        """Rebuild the state from genesis and the whole log, ignoring snapshots."""
        with read_log(directory) as (protocol, transactions):
            for transaction in transactions:
                transaction.apply(protocol)
        return protocol

    # --- writing --------------------------------------------------------------

    def _append(self, transaction: tx.Tx) -> None:
        payload = tx.encode_tx(transaction)
        self.events.append(payload)
        self.last_frame_crc = zlib.crc32(payload)
        if isinstance(transaction, tx.InitializeRound):
            self.commit()
            if self.protocol.round % self.snapshot_every == 0:
                self.snapshot()

    def apply(self, transaction: tx.Tx) -> Any:
        """Apply a transaction; it is logged if accepted."""
        return self.protocol.apply(transaction)

    def commit(self) -> None:
        """Write and fsync every buffered transaction (one group commit)."""
        self.events.commit()

    def snapshot(self) -> Path:
        """Write a snapshot of the committed state."""
        self.commit()
        record = Snapshot(
            seq=len(self.events),
            last_frame_crc=self.last_frame_crc,
            params=self.protocol.params.model_dump(),
            state=self.protocol.state,
            state_hash=self.protocol.state_hash(),
        )
        name = f"{SNAPSHOT_PREFIX}{self.protocol.round:08d}.msgpack"
        path = write_snapshot(self.directory, name, codec.encode(record))
        # Older snapshots only serve if newer ones are damaged: a few suffice, and
        # keeping all of them grows the ledger quadratically with the run.
        for old in list_snapshots(self.directory, SNAPSHOT_PREFIX)[:-KEEP_SNAPSHOTS]:
            old.unlink(missing_ok=True)
        return path

    def close(self) -> None:
        """Commit and close the log."""
        self.protocol.sink = None
        self.events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def read_log(directory: str | Path) -> Iterator[tuple[Protocol, Iterator[tx.Tx]]]:
    """Open a ledger's log for reading: the protocol at genesis and the logged transactions.

    The transactions come unapplied, in order, while the context is open; a
    reader applies them (``transaction.apply(protocol)``) and may look at the
    state before and after each, as the per-round history does.
    """
    path = Path(directory) / LOG_NAME
    if not path.exists():
        raise LedgerError(f"ledger: no {LOG_NAME} in {directory}")
    with EventLog(path, fsync=False) as events:
        yield _genesis(events), (tx.decode_tx(payload) for payload in events.frames(1))


def _genesis(events: EventLog) -> Protocol:
    for payload in events.frames(0):
        genesis = tx.decode_tx(payload)
        if not isinstance(genesis, tx.Genesis):
            break
        return Protocol.from_genesis(genesis)
    raise LedgerError(f"ledger: {events.path} does not start with a genesis frame")


def _frame_crc(events: EventLog, seq: int) -> int:
    """Return the CRC of the payload of frame ``seq``."""
    return zlib.crc32(next(iter(events.frames(seq))))


def _forget_lost_snapshots(directory: Path, committed: int) -> None:
    """Delete snapshots of a history a crash tore off the log: they must never come back."""
    for path in list_snapshots(directory, SNAPSHOT_PREFIX):
        try:
            seq = codec.unpack(read_snapshot(path))[0]
        except (CorruptSnapshot, ValueError, TypeError, IndexError):
            continue
        if isinstance(seq, int) and seq > committed:
            log.warning("ledger: removing snapshot %s of a lost history", path.name)
            path.unlink()


def _load_snapshot(directory: Path, events: EventLog) -> tuple[Protocol | None, int, int]:
    """Return the newest snapshot that checks out against the log, with its seq and frame CRC."""
    for path in reversed(list_snapshots(directory, SNAPSHOT_PREFIX)):
        try:
            record = codec.decode(Snapshot, read_snapshot(path))
        except (CorruptSnapshot, ValueError, TypeError) as exc:
            log.warning("ledger: skipping snapshot %s: %s", path.name, exc)
            continue
        if not 1 <= record.seq <= len(events):
            log.warning("ledger: skipping snapshot %s: beyond the log", path.name)
            continue
        if _frame_crc(events, record.seq - 1) != record.last_frame_crc:
            log.warning("ledger: skipping snapshot %s: the log's history differs", path.name)
            continue
        protocol = Protocol(Params.build(**record.params))
        protocol.state = record.state
        if protocol.state_hash() != record.state_hash:
            log.warning("ledger: skipping snapshot %s: state hash mismatch", path.name)
            continue
        return protocol, record.seq, record.last_frame_crc
    return None, 0, 0
