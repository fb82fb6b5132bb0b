"""The durable ledger: a protocol whose accepted transactions go to an event log.

Layout of a ledger directory::

    events.log                 genesis, then every accepted transaction (frames)
    snapshot-00000010.msgpack  state after round 10, with the log position and hash

Group commit: transactions are buffered and written with one ``fsync`` per
:meth:`Ledger.commit` (and at every round). Recovery loads the newest snapshot
whose hash checks and replays the log after it; a torn last frame is dropped.
Replaying the whole log from genesis gives the same state hash.

Damage is never repaired silently. :meth:`Ledger.open` and
:func:`check_ledger` raise :class:`CorruptLedger` (or
:class:`~protocol.eventlog.CorruptLog`), one line naming the file and the byte
offset, and change nothing on disk, for: a bad frame that valid frames follow
(see :mod:`protocol.eventlog`), a frame with a valid checksum that does not
decode as a transaction, a bad genesis frame, a valid snapshot covering more
frames than the log holds (committed history is missing). A snapshot that
fails its checksum or does not match the log it lies within is only a lost
cache: the open skips it with a warning, falls back to an older one or to
genesis, and leaves the file in place; :func:`check_ledger` (``stakeray
verify``) reports it. :func:`plan_repair` and :func:`apply_repair` (``stakeray
repair``) cut the log back to its last good frame, keeping the cut bytes in
``events.log.corrupt-<offset>``, and move the snapshots past the cut (or
damaged) aside; nothing is deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from . import codec
from . import transactions as tx
from .errors import ProtocolError, StakerayError
from .eventlog import (
    CorruptLog,
    CorruptSnapshot,
    EventLog,
    _fsync_dir,
    frames_from,
    list_snapshots,
    read_snapshot,
    scan_log,
    write_snapshot,
)
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


class LedgerError(StakerayError):
    """The ledger directory cannot be used (missing, or its log has no genesis)."""


class CorruptLedger(LedgerError, CorruptLog):
    """The ledger's committed history is damaged; one line naming the file and byte offset.

    Raised instead of recovering (nothing on disk is changed); see the module
    docstring for the cases, and :func:`plan_repair` for the way back.
    """


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
        self.chain_id = _chain_id(events)
        """The network's identity: :func:`genesis_chain_id` of this log's genesis frame."""
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
        """Recover a ledger: newest good snapshot plus the log after it.

        A torn last frame is dropped (the file cut at the last whole frame)
        once everything else has checked out. Damage raises
        :class:`CorruptLedger` or :class:`~protocol.eventlog.CorruptLog` and
        changes nothing on disk (see the module docstring).
        """
        path = Path(directory)
        if not (path / LOG_NAME).exists():
            raise LedgerError(f"ledger: no {LOG_NAME} in {path}")
        events = EventLog(path / LOG_NAME, fsync=fsync, truncate_torn=False)
        try:
            genesis_crc = _check_genesis(events)
            _refuse_snapshots_past_the_log(path, events)
            protocol, seq, crc = _load_snapshot(path, events)
            if protocol is None:
                protocol, seq, crc = _genesis(events), 1, genesis_crc
            last = _replay(events, protocol, seq)
        except BaseException:
            events.close()
            raise
        if last is not None:
            crc = zlib.crc32(last)
        if events.dropped_bytes:
            log.warning(
                "ledger: dropping a torn tail of %d bytes at byte offset %d of %s",
                events.dropped_bytes,
                events.size,
                events.path,
            )
            events.truncate_torn_tail()
        return cls(path, protocol, events, snapshot_every=snapshot_every, last_frame_crc=crc)

    @staticmethod
    def replay(directory: str | Path) -> Protocol:
        """Rebuild the state from genesis and the whole log, ignoring snapshots. Reads only."""
        path = Path(directory) / LOG_NAME
        if not path.exists():
            raise LedgerError(f"ledger: no {LOG_NAME} in {directory}")
        with EventLog(path, fsync=False, readonly=True) as events:
            _check_genesis(events)
            protocol = _genesis(events)
            _replay(events, protocol, 1)
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
    with EventLog(path, fsync=False, readonly=True) as events:
        _check_genesis(events)
        yield _genesis(events), (
            _decode(events.path, seq, offset, payload)
            for seq, (offset, payload) in enumerate(events.frames_at(1), start=1)
        )


def _genesis(events: EventLog) -> Protocol:
    """Build the protocol from the genesis frame (checked by :func:`_check_genesis`)."""
    return Protocol.from_genesis(tx.decode_tx(next(events.frames(0))))  # type: ignore[arg-type]


def _check_genesis(events: EventLog) -> int:
    """Refuse a log whose frame 0 is not a genesis transaction; return that frame's CRC.

    Parsed, not decoded through ``decode_tx``: checking the genesis is no replay.
    """
    for payload in events.frames(0):
        try:
            genesis = tx.parse_tx(codec.unpack(payload))
        except Exception as exc:  # any failure to parse is damage: the checksum held
            why = f"does not decode ({_one_line(exc)})"
        else:
            if isinstance(genesis, tx.Genesis):
                return zlib.crc32(payload)
            why = f"is a {genesis.kind!r} transaction"
        raise CorruptLedger(
            f"{events.path}: frame 0 at byte offset 0 is not a genesis frame: it {why};"
            " nothing was changed",
            path=events.path,
            offset=0,
        )
    raise LedgerError(f"ledger: {events.path} does not start with a genesis frame (it is empty)")


def _one_line(exc: BaseException) -> str:
    """Return the first line of an error's message, shortened (pydantic's run long)."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}"
    return line if len(line) <= 160 else line[:157] + "..."


def _decode(path: Path, seq: int, offset: int, payload: bytes) -> tx.Tx:
    """Decode frame ``seq`` (not the genesis); :class:`CorruptLedger` if it is not a transaction."""
    try:
        transaction = tx.decode_tx(payload)
    except Exception as exc:  # any failure to decode is damage: the checksum held
        raise CorruptLedger(
            f"{path}: frame {seq:,} at byte offset {offset:,} has a valid checksum but does not"
            f" decode as a transaction ({_one_line(exc)}); nothing was changed",
            path=path,
            offset=offset,
        ) from None
    if isinstance(transaction, tx.Genesis):
        raise CorruptLedger(
            f"{path}: frame {seq:,} at byte offset {offset:,} is a second genesis frame;"
            " nothing was changed",
            path=path,
            offset=offset,
        )
    return transaction


def _replay(events: EventLog, protocol: Protocol, start: int) -> bytes | None:
    """Apply the log's frames from ``start`` to ``protocol``; return the last payload applied.

    A frame that does not decode raises :class:`CorruptLedger`; one the
    protocol refuses raises :class:`LedgerError` (the log does not replay:
    not disk damage, no repair cuts it), both naming the frame's offset.
    """
    payload = None
    for seq, (offset, payload) in enumerate(events.frames_at(start), start=start):
        transaction = _decode(events.path, seq, offset, payload)
        try:
            transaction.apply(protocol)
        except ProtocolError as exc:
            raise LedgerError(
                f"{events.path}: frame {seq:,} at byte offset {offset:,} does not replay"
                f" ({_one_line(exc)}): this log was not written by these rules"
            ) from exc
    return payload


def genesis_chain_id(genesis: tx.Genesis) -> str:
    """Return the chain id of a network: the hex BLAKE2b-256 of its genesis transaction.

    Hashed in the canonical encoding (``codec.encode``: map keys sorted), so every
    node that reads the same genesis frame gets the same id, and any difference in
    the parameters or the balances at genesis gives another. Signed transactions
    are bound to it (``cluster.engine.signing``).
    """
    return codec.state_hash(genesis.to_plain())


def _chain_id(events: EventLog) -> str:
    """Return the chain id of the log's first frame (read alone: never O(history))."""
    for payload in events.frames(0):
        # Parsed here, not through decode_tx: reading the genesis is no replay.
        genesis = tx.parse_tx(codec.unpack(payload))
        if isinstance(genesis, tx.Genesis):
            return genesis_chain_id(genesis)
        break
    raise LedgerError(f"ledger: {events.path} does not start with a genesis frame")


def _frame_crc(events: EventLog, seq: int) -> int:
    """Return the CRC of the payload of frame ``seq``."""
    return zlib.crc32(next(iter(events.frames(seq))))


def _snapshot_seq(path: Path) -> int | None:
    """Return how many log frames the snapshot at ``path`` covers; None if it is damaged."""
    try:
        seq = codec.unpack(read_snapshot(path))[0]
    except (CorruptSnapshot, ValueError, TypeError, IndexError, KeyError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _refuse_snapshots_past_the_log(directory: Path, events: EventLog) -> None:
    """Refuse a snapshot (checksum intact) that covers frames the log no longer holds.

    A snapshot is written only after the frames it covers were committed, so
    such a snapshot proves that committed history is missing from the log
    (cut or zeroed at a frame boundary, or a torn tail that was not a crash);
    recovering would fork history at an earlier round. Nothing is changed.
    """
    for path in list_snapshots(directory, SNAPSHOT_PREFIX):
        seq = _snapshot_seq(path)
        if seq is not None and seq > len(events):
            torn = (
                f", then a torn tail of {events.dropped_bytes:,} bytes"
                if events.dropped_bytes
                else ""
            )
            raise CorruptLedger(
                f"{events.path}: holds {len(events):,} whole frames, ending at byte offset"
                f" {events.size:,}{torn}, but {path.name} covers {seq:,}: committed history is"
                " missing; nothing was changed",
                path=events.path,
                offset=events.size,
            )


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
