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

import hashlib
import logging
import os
import shutil
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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
        snapshot_ratio: float = 0.0,
    ) -> None:
        self.directory = directory
        self.protocol = protocol
        self.events = events
        self.snapshot_every = snapshot_every
        # A snapshot also waits until the log since the last one is ``snapshot_ratio``
        # times that snapshot's size: snapshots then cost at most 1 / ratio of writing
        # the log, and a recovery replays at most that much log (plus the rounds).
        self.snapshot_ratio = snapshot_ratio
        # A round boundary is a group commit unless the owner commits every call itself.
        self.commit_rounds = True
        self.logged_since_snapshot = 0
        newest = list_snapshots(directory, SNAPSHOT_PREFIX)
        self.last_snapshot_bytes = newest[-1].stat().st_size if newest else 0
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
        snapshot_ratio: float = 0.0,
        fsync: bool = True,
    ) -> Ledger:
        """Start a new ledger at round 0 with a genesis frame.

        Snapshots come every ``snapshot_every`` rounds, once the log written since
        the last one is ``snapshot_ratio`` times its size.
        """
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
            snapshot_ratio=snapshot_ratio,
        )

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        snapshot_every: int = 10,
        snapshot_ratio: float = 0.0,
        fsync: bool = True,
    ) -> Ledger:
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
            damaged = _refuse_snapshots_past_the_log(path, events)
            protocol, seq, crc = _load_snapshot(path, events, damaged)
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
        return cls(
            path,
            protocol,
            events,
            snapshot_every=snapshot_every,
            last_frame_crc=crc,
            snapshot_ratio=snapshot_ratio,
        )

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
        self.logged_since_snapshot += len(payload)
        if isinstance(transaction, tx.InitializeRound):
            if self.commit_rounds:
                self.commit()
            due = self.snapshot_ratio * self.last_snapshot_bytes
            if self.protocol.round % self.snapshot_every == 0 and self.logged_since_snapshot >= due:
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
        # Lower the state once: the hash and the record share it (the same bytes as
        # encoding a Snapshot, whose plain form is its fields in order).
        params = codec.to_plain(self.protocol.params.model_dump())
        state = codec.to_plain(self.protocol.state)
        state_hash = hashlib.blake2b(codec.pack([params, state]), digest_size=32).hexdigest()
        record = [len(self.events), self.last_frame_crc, params, state, state_hash]
        name = f"{SNAPSHOT_PREFIX}{self.protocol.round:08d}.msgpack"
        data = codec.pack(record)
        path = write_snapshot(self.directory, name, data)
        self.last_snapshot_bytes, self.logged_since_snapshot = len(data), 0
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
        transactions = (
            _decode(events.path, seq, offset, payload)
            for seq, (offset, payload) in enumerate(events.frames_at(1), start=1)
        )
        yield _genesis(events), transactions


def _genesis(events: EventLog) -> Protocol:
    """Build the protocol from the genesis frame (checked by :func:`_check_genesis`)."""
    genesis = tx.decode_tx(next(events.frames(0)))
    if not isinstance(genesis, tx.Genesis):  # only if the file changed since the check
        raise LedgerError(f"ledger: {events.path} does not start with a genesis frame")
    return Protocol.from_genesis(genesis)


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
    torn = f" (a torn tail of {events.dropped_bytes} bytes)" if events.dropped_bytes else ""
    raise CorruptLedger(
        f"{events.path}: holds no whole frame{torn}: the genesis frame at byte offset 0 is"
        " missing; nothing was changed",
        path=events.path,
        offset=0,
    )


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
        raise _undecodable(path, seq, offset, exc) from None
    if isinstance(transaction, tx.Genesis):
        raise _undecodable(path, seq, offset, None)
    return transaction


def _undecodable(path: Path, seq: int, offset: int, exc: Exception | None) -> CorruptLedger:
    """The error for frame ``seq`` that is not a transaction (``None``: a second genesis)."""
    what = (
        "is a second genesis frame"
        if exc is None
        else f"has a valid checksum but does not decode as a transaction ({_one_line(exc)})"
    )
    return CorruptLedger(
        f"{path}: frame {seq} at byte offset {offset} {what}; nothing was changed",
        path=path,
        offset=offset,
    )


def _unreplayable(path: Path, seq: int, offset: int, exc: ProtocolError) -> LedgerError:
    """The error for frame ``seq`` that the protocol refuses (not damage: the rules differ)."""
    return LedgerError(
        f"{path}: frame {seq} at byte offset {offset} does not replay"
        f" ({_one_line(exc)}): the log was not written by these rules"
    )


def _replay(
    events: EventLog,
    protocol: Protocol,
    start: int,
    after: Callable[[int, int, bytes], None] | None = None,
) -> bytes | None:
    """Apply the log's frames from ``start`` to ``protocol``; return the last payload applied.

    A frame that does not decode raises :class:`CorruptLedger`; one the
    protocol refuses raises :class:`LedgerError` (the log does not replay:
    not disk damage, no repair cuts it), both naming the frame's offset.
    ``after(frames applied, offset, payload)`` runs after each frame.
    """
    payload = None
    path, decode, genesis = events.path, tx.decode_tx, tx.Genesis  # inlined _decode: hot loop
    for seq, (offset, payload) in enumerate(events.frames_at(start), start=start):
        try:
            transaction = decode(payload)
        except Exception as exc:  # any failure to decode is damage: the checksum held
            raise _undecodable(path, seq, offset, exc) from None
        if isinstance(transaction, genesis):
            raise _undecodable(path, seq, offset, None)
        try:
            transaction.apply(protocol)
        except ProtocolError as exc:
            raise _unreplayable(path, seq, offset, exc) from exc
        if after is not None:
            after(seq + 1, offset, payload)
    return payload


def _apply(path: Path, seq: int, offset: int, transaction: tx.Tx, protocol: Protocol) -> None:
    try:
        transaction.apply(protocol)
    except ProtocolError as exc:
        raise _unreplayable(path, seq, offset, exc) from exc


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
    """Return how many log frames the snapshot at ``path`` covers; None (warned) if damaged."""
    try:
        seq = codec.unpack(read_snapshot(path))[0]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise TypeError(f"its frame count is {seq!r}")
    except (CorruptSnapshot, ValueError, TypeError, IndexError, KeyError) as exc:
        log.warning("ledger: skipping damaged snapshot %s (left in place): %s", path.name, exc)
        return None
    return seq


def _refuse_snapshots_past_the_log(directory: Path, events: EventLog) -> set[Path]:
    """Refuse a snapshot (checksum intact) that covers frames the log no longer holds.

    A snapshot is written only after the frames it covers were committed, so
    such a snapshot proves that committed history is missing from the log
    (cut or zeroed at a frame boundary, or a torn tail that was not a crash);
    recovering would fork history at an earlier round. Nothing is changed.
    Return the damaged snapshots (warned about, to be skipped).
    """
    damaged = set()
    for path in list_snapshots(directory, SNAPSHOT_PREFIX):
        seq = _snapshot_seq(path)
        if seq is None:
            damaged.add(path)
        elif seq > len(events):
            torn = (
                f", then a torn tail of {events.dropped_bytes} bytes"
                if events.dropped_bytes
                else ""
            )
            raise CorruptLedger(
                f"{events.path}: holds {len(events)} whole frames, ending at byte offset"
                f" {events.size}{torn}, but {path.name} covers {seq}: committed history is"
                " missing; nothing was changed",
                path=events.path,
                offset=events.size,
            )
    return damaged


def _load_snapshot(
    directory: Path, events: EventLog, damaged: set[Path] | None = None
) -> tuple[Protocol | None, int, int]:
    """Return the newest snapshot that checks out against the log, with its seq and frame CRC.

    Snapshots that do not are skipped with a warning and left in place;
    ``damaged`` ones were already warned about.
    """
    for path in reversed(list_snapshots(directory, SNAPSHOT_PREFIX)):
        if damaged and path in damaged:
            continue
        try:
            record = codec.decode(Snapshot, read_snapshot(path))
        except (CorruptSnapshot, ValueError, TypeError) as exc:
            log.warning("ledger: skipping snapshot %s (left in place): %s", path.name, exc)
            continue
        if not 1 <= record.seq <= len(events):
            log.warning("ledger: skipping snapshot %s (left in place): beyond the log", path.name)
            continue
        if _frame_crc(events, record.seq - 1) != record.last_frame_crc:
            log.warning(
                "ledger: skipping snapshot %s (left in place): the log's history differs",
                path.name,
            )
            continue
        try:
            protocol = _snapshot_protocol(record)
        except Exception as exc:  # the checksum held: any failure to load is damage
            log.warning("ledger: skipping snapshot %s (left in place): %s", path.name, exc)
            continue
        if protocol.state_hash() != record.state_hash:
            log.warning(
                "ledger: skipping snapshot %s (left in place): state hash mismatch", path.name
            )
            continue
        return protocol, record.seq, record.last_frame_crc
    return None, 0, 0


# --- checking and repairing -------------------------------------------------------------


@dataclass(slots=True)
class LedgerCheck:
    """What :func:`check_ledger` found in a ledger that checks out."""

    protocol: Protocol
    """The state after replaying the whole log from genesis."""
    frames: int
    end: int
    """Byte offset after the last whole frame."""
    torn: int
    """Bytes of a torn tail after ``end`` (the next open drops them); 0 if none."""
    snapshots: list[Path]
    """The snapshots checked against the replay."""


def check_ledger(directory: str | Path) -> LedgerCheck:
    """Check a ledger through and through without changing anything on disk.

    The log must scan (:mod:`protocol.eventlog`: a torn tail is no damage and
    is reported), every frame must decode and replay from genesis, and every
    snapshot must pass its checksum, cover no more frames than the log holds,
    name the CRC of the frame it ends at and hold the replayed state there.
    The first problem raises :class:`~protocol.eventlog.CorruptLog`,
    :class:`CorruptLedger` or :class:`~protocol.eventlog.CorruptSnapshot`,
    naming the file and the byte offset. Costs one replay from genesis.
    """
    path = Path(directory)
    if not (path / LOG_NAME).exists():
        raise LedgerError(f"ledger: no {LOG_NAME} in {path}")
    with EventLog(path / LOG_NAME, fsync=False, readonly=True) as events:
        snapshots = list_snapshots(path, SNAPSHOT_PREFIX)
        wanted: dict[int, list[tuple[Path, Snapshot]]] = {}
        for snap in snapshots:
            record = _read_record(snap)
            if record.seq > len(events):
                raise CorruptLedger(
                    f"{events.path}: holds {len(events)} whole frames, ending at byte offset"
                    f" {events.size}, but {snap.name} covers {record.seq}: committed history"
                    " is missing",
                    path=events.path,
                    offset=events.size,
                )
            wanted.setdefault(record.seq, []).append((snap, record))

        def check(seq: int, offset: int, payload: bytes) -> None:
            for snap, record in wanted.get(seq, ()):
                problem = _snapshot_problem(
                    record, zlib.crc32(payload), offset, protocol.state_hash()
                )
                if problem:
                    raise CorruptSnapshot(f"{snap}: {problem}")

        _check_genesis(events)
        protocol = _genesis(events)
        check(1, 0, next(events.frames(0)))
        _replay(events, protocol, 1, check if wanted else None)
        return LedgerCheck(protocol, len(events), events.size, events.dropped_bytes, snapshots)


def _read_record(path: Path) -> Snapshot:
    """Read and decode a snapshot; :class:`CorruptSnapshot` if it is damaged."""
    payload = read_snapshot(path)
    try:
        record = codec.decode(Snapshot, payload)
    except Exception as exc:  # the checksum held: any failure to decode is damage
        raise CorruptSnapshot(
            f"{path}: passes its checksum but its payload (from byte offset 8) does not decode"
            f" as a snapshot ({_one_line(exc)})"
        ) from None
    if record.seq < 1:
        raise CorruptSnapshot(f"{path}: covers {record.seq} frames (at least the genesis)")
    return record


def _snapshot_problem(record: Snapshot, crc: int, offset: int, state_hash: str) -> str:
    """Say how a snapshot disagrees with the log; "" if it does not.

    ``crc``, ``offset``: the log's frame ``record.seq - 1``; ``state_hash``:
    the replayed state after it.
    """
    frame = f"frame {record.seq - 1} at byte offset {offset} of {LOG_NAME}"
    if record.last_frame_crc != crc:
        return (
            f"does not match the log: it ends at a frame with CRC {record.last_frame_crc:#010x},"
            f" {frame} has {crc:#010x}"
        )
    if state_hash != record.state_hash:
        return f"does not match the log: its state hash differs from the replay's after {frame}"
    try:
        own = _snapshot_protocol(record).state_hash()
    except Exception as exc:  # the checksum held: any failure to load is damage
        return f"its parameters or state do not load ({_one_line(exc)})"
    if own != record.state_hash:
        return "its state does not hash to the state hash it records"
    return ""


def _snapshot_protocol(record: Snapshot) -> Protocol:
    """Return the protocol a snapshot record holds."""
    protocol = Protocol(Params.build(**record.params))
    protocol.state = record.state
    return protocol


@dataclass(slots=True)
class RepairPlan:
    """What :func:`apply_repair` does to a ledger directory; made by :func:`plan_repair`."""

    directory: Path
    log_stat: tuple[int, int]
    """``(size, mtime_ns)`` of the log when planned: apply refuses a log changed since."""
    data_end: int = 0
    """Offset after the log's last non-zero byte (the rest is zero-filled free space)."""
    cut: int | None = None
    """Byte offset to cut the log at (the end of the last good frame); None: keep it whole."""
    damage: str = ""
    """What is wrong at ``cut``."""
    frames_kept: int = 0
    round_kept: int = 0
    """The round of the state the kept frames replay to."""
    frames_lost: int = 0
    """Well-formed frames from the cut on (the damaged frame counts if it is one)."""
    round_lost: int | None = None
    """The round the lost frames had reached, as far as they can be read."""
    aside: list[tuple[Path, str, str]] = field(default_factory=list)
    """``(snapshot, name it is moved to, why)``."""

    @property
    def empty(self) -> bool:
        """Whether there is nothing to do."""
        return self.cut is None and not self.aside

    def describe(self) -> list[str]:
        """Return the plan, one line per change."""
        log_path = self.directory / LOG_NAME
        if self.cut is None:
            lines = [f"{log_path}: intact ({self.frames_kept} frames, round {self.round_kept})"]
        else:
            reached = ""
            if self.round_lost is not None and self.round_lost > self.round_kept:
                reached = f" reaching round {self.round_lost}"
            lines = [
                f"{log_path}: {self.damage}",
                f"cut the log at byte offset {self.cut}: keep {self.frames_kept} frames"
                f" (back to round {self.round_kept}), remove {self.data_end - self.cut} bytes"
                f" of data holding {self.frames_lost} well-formed frames{reached}"
                f" (and {self.log_stat[0] - self.data_end} bytes of zero-filled free space)",
                f"keep the removed bytes in {LOG_NAME}.corrupt-{self.cut}",
            ]
        lines += [f"move {snap.name} aside to {new} ({why})" for snap, new, why in self.aside]
        return lines


def plan_repair(directory: str | Path) -> RepairPlan:
    """Plan how to make a damaged ledger open again; reads only.

    The cut is at the end of the last good frame before the first damage:
    a frame that is not well-formed (a torn tail included), or one with a
    valid checksum that does not decode. Snapshots past the cut, or damaged,
    or not matching the kept log are moved aside. A damaged genesis frame
    cannot be repaired, nor a frame the protocol refuses (not damage): both
    raise :class:`LedgerError`. Costs one replay of the kept frames.
    """
    path = Path(directory)
    log_path = path / LOG_NAME
    if not log_path.exists():
        raise LedgerError(
            f"ledger: no {LOG_NAME} in {path}: nothing to repair; restore it from a backup"
        )
    stat = log_path.stat()
    scan = scan_log(log_path)
    plan = RepairPlan(path, (stat.st_size, stat.st_mtime_ns), scan.data_end)
    if scan.corrupt:
        plan.cut = scan.end
        follows = (
            f"a well-formed frame follows at byte offset {scan.next_frame}"
            if scan.next_frame is not None
            else f"{scan.data_end - scan.end} bytes of data follow"
        )
        plan.damage = (
            f"frame {scan.count} at byte offset {scan.end} is damaged ({scan.problem})"
            f" and {follows}"
        )
    elif scan.torn:
        plan.cut = scan.end
        plan.damage = (
            f"a torn tail: frame {scan.count} at byte offset {scan.end} is cut short"
            f" ({scan.problem}), nothing valid follows (an open drops it too)"
        )

    records: list[tuple[Path, Snapshot]] = []
    for snap in list_snapshots(path, SNAPSHOT_PREFIX):
        try:
            records.append((snap, _read_record(snap)))
        except CorruptSnapshot as exc:
            why = str(exc).removeprefix(f"{snap}: ")
            plan.aside.append((snap, f"{snap.name}.corrupt", f"damaged: {why}"))
    wanted = {record.seq for _, record in records}
    seen: dict[int, tuple[int, int, str]] = {}  # seq -> (crc, offset, state hash) there

    frames = frames_from(log_path, 0, scan.end)
    first = next(frames, None)
    genesis = None
    if first is not None:
        try:
            genesis = tx.parse_tx(codec.unpack(first[1]))
        except Exception:  # damage, as in _check_genesis
            genesis = None
    if not isinstance(genesis, tx.Genesis) or first is None:
        raise LedgerError(
            f"{log_path}: the genesis frame at byte offset 0 is damaged: there is nothing to"
            " keep; restore the log from a backup"
        )
    protocol = Protocol.from_genesis(genesis)
    if 1 in wanted:
        seen[1] = (zlib.crc32(first[1]), 0, protocol.state_hash())
    kept, lost, rounds = 1, 0, 0
    for seq, (offset, payload) in enumerate(frames, start=1):
        try:
            transaction = _decode(log_path, seq, offset, payload)
        except CorruptLedger as exc:
            plan.cut = offset
            plan.damage = str(exc).removeprefix(f"{log_path}: ")
            plan.damage = plan.damage.removesuffix("; nothing was changed")
            lost = 1
            for _, rest in frames:  # the rest of the intact part goes too
                lost += 1
                rounds += _is_round(rest)
            break
        _apply(log_path, seq, offset, transaction, protocol)
        kept += 1
        if kept in wanted:
            seen[kept] = (zlib.crc32(payload), offset, protocol.state_hash())
    if plan.cut is not None:
        if scan.next_frame is not None:
            for _, payload in frames_from(log_path, scan.next_frame):
                lost += 1
                rounds += _is_round(payload)
        plan.frames_lost = lost
        plan.round_lost = protocol.round + rounds
    plan.frames_kept, plan.round_kept = kept, protocol.round

    where = "past the cut" if plan.cut is not None else "more than the log holds"
    suffix = f".past-{plan.cut if plan.cut is not None else scan.end}"
    for snap, record in records:
        if record.seq > kept:
            why = f"it covers {record.seq} frames, {where}: {kept} are kept"
            plan.aside.append((snap, snap.name + suffix, why))
            continue
        problem = _snapshot_problem(record, *seen[record.seq])
        if problem:
            plan.aside.append((snap, f"{snap.name}.corrupt", problem))
    order = {snap: i for i, snap in enumerate(list_snapshots(path, SNAPSHOT_PREFIX))}
    plan.aside.sort(key=lambda item: order.get(item[0], -1))
    return plan


def _is_round(payload: bytes) -> bool:
    """Whether a frame holds an ``initialize_round`` (a damaged one does not count)."""
    try:
        plain = codec.unpack(payload)
    except Exception:  # damaged frames are counted, not read
        return False
    return isinstance(plain, dict) and plain.get("kind") == tx.InitializeRound.KIND


def apply_repair(plan: RepairPlan) -> list[str]:
    """Carry out a :func:`plan_repair` plan; return what was done, one line per change.

    In this order, each step durable before the next: the log's bytes from
    the cut on are copied to ``events.log.corrupt-<cut>`` (so the log and that
    file concatenated are the old log), the snapshots are renamed aside, and
    the log is cut. Nothing is deleted. Refuses a log changed since the plan.
    """
    directory = plan.directory
    log_path = directory / LOG_NAME
    stat = log_path.stat()
    if (stat.st_size, stat.st_mtime_ns) != plan.log_stat:
        raise LedgerError(
            f"{log_path}: changed since the repair was planned (is the network still up?);"
            " plan again"
        )
    done: list[str] = []
    if plan.cut is not None:
        backup = _free_name(directory / f"{LOG_NAME}.corrupt-{plan.cut}")
        with open(log_path, "rb") as src, open(backup, "xb") as dst:
            src.seek(plan.cut)
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        _fsync_dir(directory)
        done.append(
            f"kept the {stat.st_size - plan.cut} bytes from byte offset {plan.cut} in {backup.name}"
        )
    for snap, new, _ in plan.aside:
        target = _free_name(directory / new)
        os.rename(snap, target)
        done.append(f"moved {snap.name} aside to {target.name}")
    if plan.aside:
        _fsync_dir(directory)
    if plan.cut is not None:
        with open(log_path, "r+b") as f:
            f.truncate(plan.cut)
            os.fsync(f.fileno())
        done.append(f"cut {LOG_NAME} at byte offset {plan.cut} ({plan.frames_kept} frames)")
    return done


def _free_name(path: Path) -> Path:
    """Return ``path``, or ``path.1``, ``path.2``... : the first that does not exist."""
    candidate, n = path, 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate
