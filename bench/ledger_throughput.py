"""Durable ledger throughput vs SQLite (WAL, synchronous=FULL): target >= 1.0x.

Settlement-like rows ``(payer, operator, amount)`` are made durable in
batches of ``B`` rows, one sync per batch, by two paths fed the same rows
(row mixes: ``hosts``, as the cluster settles, where the target applies, and
``random``, the worst case for us, reported for information; see
``make_batches``):

* ours: ``ledger.protocol.pay_fees_batch(rows)`` then ``ledger.commit()`` on a
  :class:`protocol.ledger.Ledger` created with ``fsync=True`` (the rows are
  checked, applied to the state and logged as one frame);
* SQLite: ``PRAGMA journal_mode=WAL``, ``PRAGMA synchronous=FULL``, a table
  ``(payer TEXT, operator TEXT, amount INTEGER)``, ``executemany`` of the rows
  then ``commit()`` (only stores them).

Both live in one temporary directory (same filesystem). Every repetition runs
both paths on the same batches, alternating which goes first; the table gives
the median rows/s over repetitions and the ratio is ``ours / sqlite`` of those
medians, per batch size. ``pay_fees`` row by row with one commit per batch is
measured too, for information only. At the end the ledger is replayed from
genesis and its state hash compared with the live one ("replay ok").

Run from the repository root::

    python bench/ledger_throughput.py            # B = 100 and 1000, ~20 s
    python bench/ledger_throughput.py --quick    # a few seconds
    python bench/ledger_throughput.py --profile  # add a cProfile of our path, fsync floor
    python bench/ledger_throughput.py --dir /mnt/disk   # where the files go

Exits 1 if a full run misses the target for any batch size, or (any run) if
the replayed state hash differs.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protocol import TOKEN, Params  # noqa: E402
from protocol.ledger import Ledger  # noqa: E402

TARGET = 1.0
PAYERS = 1_000
OPERATORS = 100
HOSTS = 4  # operator hosts; each sends settlement batches for its own operators
CLIENTS = 10  # escrow accounts (gateways) that pay settled tasks
Row = tuple[str, str, int]
Batch = list[Row]
WORKLOADS = ("hosts", "random")


def make_batches(rows: int, size: int, seed: int, workload: str = "hosts") -> list[Batch]:
    """Return ``rows // size`` batches of settlement rows ``(payer, operator, amount)``.

    ``hosts`` is how the cluster settles: a batch comes from one operator host
    (round robin over ``HOSTS``) and covers its operators, paid from the
    escrow of one of ``CLIENTS`` gateways. ``random`` is the worst case for
    us: every row has its own random payer out of 1,000 and operator out of
    100, so a batch of 100 updates ~63 pools where SQLite appends 100 rows.
    """
    rng = random.Random(seed)
    payers = [f"payer{i:04d}" for i in range(PAYERS)]
    operators = [f"op{i:03d}" for i in range(OPERATORS)]
    if workload == "random":
        return [
            [
                (rng.choice(payers), rng.choice(operators), rng.randrange(10**12, 10**15))
                for _ in range(size)
            ]
            for _ in range(rows // size)
        ]
    hosted = [operators[h::HOSTS] for h in range(HOSTS)]
    batches = []
    for b in range(rows // size):
        mine = hosted[b % HOSTS]
        client = payers[rng.randrange(CLIENTS)]
        batches.append(
            [(client, rng.choice(mine), rng.randrange(10**12, 10**15)) for _ in range(size)]
        )
    return batches


def create_ledger(directory: Path) -> Ledger:
    """A ledger at round 1 with 100 active operators, each with a delegator, and funded payers."""
    operators = [f"op{i:03d}" for i in range(OPERATORS)]
    balances = {f"payer{i:04d}": 10**30 for i in range(PAYERS)}
    balances.update(dict.fromkeys(operators, 10**24))
    balances.update({f"del{i:03d}": 10**24 for i in range(OPERATORS)})
    ledger = Ledger.create(directory, Params(), balances, fsync=True)
    p = ledger.protocol
    for i, op in enumerate(operators):
        p.bond(op, op, 1_000 * TOKEN + i)
        p.register_operator(op, reward_cut=100_000, fee_share=900_000)
        p.bond(f"del{i:03d}", op, 500 * TOKEN)  # operators hold delegated stake too
    p.initialize_round()  # commits: the operators are active, fees are shared
    return ledger


def create_sqlite(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise SystemExit(f"sqlite: journal_mode is {mode!r}, not 'wal'")
    con.execute("PRAGMA synchronous=FULL")
    if con.execute("PRAGMA synchronous").fetchone()[0] != 2:  # 2 = FULL
        raise SystemExit("sqlite: synchronous is not FULL")
    con.execute("CREATE TABLE fees (payer TEXT, operator TEXT, amount INTEGER)")
    con.commit()
    return con


@dataclass(slots=True)
class Sample:
    """One repetition of one path: throughput and where the time per batch went."""

    rows_per_s: float
    stage_us: float  # per batch: apply + encode (ours) or executemany (sqlite)
    commit_us: float  # per batch: write + fsync (ours) or COMMIT (sqlite)


def sample(rows: int, batches: int, total: float, stage: float) -> Sample:
    return Sample(rows / total, stage / batches * 1e6, (total - stage) / batches * 1e6)


def run_ours(ledger: Ledger, batches: list[Batch]) -> tuple[float, float]:
    """Return (total seconds, seconds in pay_fees_batch); the rest is ``commit``."""
    p = ledger.protocol
    stage = 0.0
    t0 = time.perf_counter()
    for rows in batches:
        t1 = time.perf_counter()
        p.pay_fees_batch(rows)
        stage += time.perf_counter() - t1
        ledger.commit()
    return time.perf_counter() - t0, stage


def run_single(ledger: Ledger, batches: list[Batch]) -> tuple[float, float]:
    """Return (total seconds, seconds in the ``pay_fees`` calls)."""
    p = ledger.protocol
    stage = 0.0
    t0 = time.perf_counter()
    for rows in batches:
        t1 = time.perf_counter()
        for payer, operator, amount in rows:
            p.pay_fees(payer, operator, amount)
        stage += time.perf_counter() - t1
        ledger.commit()
    return time.perf_counter() - t0, stage


def run_sqlite(con: sqlite3.Connection, batches: list[Batch]) -> tuple[float, float]:
    """Return (total seconds, seconds in ``executemany``); the rest is ``commit``."""
    stage = 0.0
    t0 = time.perf_counter()
    for rows in batches:
        t1 = time.perf_counter()
        con.executemany("INSERT INTO fees VALUES (?, ?, ?)", rows)
        stage += time.perf_counter() - t1
        con.commit()
    return time.perf_counter() - t0, stage


def bench_size(
    root: Path,
    size: int,
    rows: int,
    reps: int,
    single_share: int,
    profile: bool,
    workload: str = "hosts",
) -> dict[str, list[Sample]]:
    """Return one sample per repetition for each path at batch size ``size``."""
    batches = make_batches(rows, size, seed=size, workload=workload)
    n_rows = len(batches) * size
    single_batches = batches[: max(len(batches) // single_share, 1)]
    n_single = len(single_batches) * size
    ledger = create_ledger(root / f"ledger-{workload}-{size}")
    con = create_sqlite(root / f"sqlite-{workload}-{size}.db")
    # Warm-up: files exist and have grown a little, code paths are hot.
    run_ours(ledger, batches[:5])
    run_sqlite(con, batches[:5])
    run_single(ledger, batches[:1])

    paths: dict[str, Callable[[], Sample]] = {
        "ours": lambda: sample(n_rows, len(batches), *run_ours(ledger, batches)),
        "sqlite": lambda: sample(n_rows, len(batches), *run_sqlite(con, batches)),
    }
    samples: dict[str, list[Sample]] = {"ours": [], "sqlite": [], "single": []}
    for rep in range(reps):
        order = ["ours", "sqlite"] if rep % 2 == 0 else ["sqlite", "ours"]
        for name in order:
            samples[name].append(paths[name]())
        single = run_single(ledger, single_batches)
        samples["single"].append(sample(n_single, len(single_batches), *single))

    if profile:
        prof = cProfile.Profile()
        prof.enable()
        run_ours(ledger, batches)
        prof.disable()
        for key in ("cumulative", "tottime"):
            print(f"\ncProfile of our path, {n_rows:,} rows in batches of {size} (top 12, {key}):")
            pstats.Stats(prof, stream=sys.stdout).sort_stats(key).print_stats(12)

    count = con.execute("SELECT COUNT(*) FROM fees").fetchone()[0]
    con.close()
    live = ledger.protocol.state_hash()
    ledger.close()
    replayed = Ledger.replay(root / f"ledger-{workload}-{size}").state_hash()
    if replayed != live:
        raise SystemExit(f"B={size}: REPLAY MISMATCH: live {live} != replayed {replayed}")
    log_mb = (root / f"ledger-{workload}-{size}" / "events.log").stat().st_size / 2**20
    db_mb = sum(f.stat().st_size for f in root.glob(f"sqlite-{workload}-{size}.db*")) / 2**20
    print(
        f"  B={size}: replay ok ({live[:16]}...); log {log_mb:.1f} MB,"
        f" sqlite {count:,} rows {db_mb:.1f} MB"
    )
    return samples


def fsync_floor(root: Path, record: int, n: int = 500) -> None:
    """Print the raw cost of the two durability primitives (``--profile`` only).

    Our log appends and ``fsync``s (the file grows: the journal commits its
    size and extents each time); a SQLite WAL, once past its first
    checkpoint, overwrites blocks it already holds before ``fdatasync``.
    """
    data = b"x" * record

    def median_us(path: Path, op: Callable[[int, int], object], setup: bytes) -> float:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if setup:
                os.write(fd, setup)
                os.fsync(fd)
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                op(fd, i)
                times.append(time.perf_counter() - t0)
            return statistics.median(times) * 1e6
        finally:
            os.close(fd)
            path.unlink()

    def append(fd: int, _: int) -> None:
        os.write(fd, data)
        os.fsync(fd)

    def overwrite(fd: int, i: int) -> None:
        os.pwrite(fd, data, i * record)
        os.fdatasync(fd)

    grow = median_us(root / "floor-append", append, b"")
    reuse = median_us(root / "floor-overwrite", overwrite, b"\0" * (record * n))
    print(
        f"\nfsync floor, {record:,}-byte records, median of {n}: append + fsync {grow:.0f} us,"
        f" overwrite preallocated + fdatasync {reuse:.0f} us"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows and repetitions")
    ap.add_argument("--sizes", default="100,1000", help="batch sizes, comma-separated")
    ap.add_argument(
        "--workloads",
        default="hosts,random",
        help="row mixes (hosts: as the cluster settles, target enforced; random: worst case)",
    )
    ap.add_argument("--rows", type=int, default=None, help="rows per repetition and path")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per batch size")
    ap.add_argument("--dir", default=None, help="parent directory of the temporary files")
    ap.add_argument(
        "--profile", action="store_true", help="cProfile our path once per size; fsync floor"
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"--workloads: unknown {w!r}; choose from {', '.join(WORKLOADS)}")
    rows = args.rows or (10_000 if args.quick else 100_000)
    reps = args.reps or (3 if args.quick else 9)
    single_share = 5  # the row-by-row path runs on 1/5 of the batches

    results: dict[tuple[str, int], dict[str, list[Sample]]] = {}
    with tempfile.TemporaryDirectory(prefix="ledger-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        print(
            f"ledger throughput: {rows:,} rows per repetition, {reps} repetitions,"
            f" batch sizes {sizes}; files in {root}"
        )
        print(f"  sqlite {sqlite3.sqlite_version}; one fsync per batch on both paths")
        for workload in workloads:
            for size in sizes:
                results[workload, size] = bench_size(
                    root, size, rows, reps, single_share, args.profile, workload
                )
        if args.profile:
            for size in sizes:
                fsync_floor(root, 26 * size)  # ~ one batch frame (2,633 B at B=100)

    print()
    print(
        f"{'rows':<7}{'batch':>5} {'path':<36} {'median rows/s':>13} {'min':>9} {'max':>9}"
        f" {'stage us':>9} {'commit us':>9}"
    )
    labels = {
        "ours": "Ledger pay_fees_batch + commit",
        "sqlite": "SQLite WAL executemany + commit",
        "single": "Ledger pay_fees x B + commit (info)",
    }
    ratios: dict[tuple[str, int], float] = {}
    for (workload, size), samples in results.items():
        for name in ("ours", "sqlite", "single"):
            rates = [s.rows_per_s for s in samples[name]]
            stage = statistics.median(s.stage_us for s in samples[name])
            commit = statistics.median(s.commit_us for s in samples[name])
            print(
                f"{workload:<7}{size:>5} {labels[name]:<36} {statistics.median(rates):>13,.0f}"
                f" {min(rates):>9,.0f} {max(rates):>9,.0f} {stage:>9.1f} {commit:>9.1f}"
            )
        ratios[workload, size] = statistics.median(
            s.rows_per_s for s in samples["ours"]
        ) / statistics.median(s.rows_per_s for s in samples["sqlite"])
    print(
        "stage us / commit us: median per batch; stage = pay_fees_batch (check, apply, encode)"
        " or executemany, commit = write + fsync or COMMIT"
    )
    print()
    for (workload, size), ratio in ratios.items():
        target = f"target >= {TARGET}x" if workload == "hosts" else "information"
        print(f"ratio ours/sqlite, {workload} rows, B={size}: {ratio:.3f}x  ({target})")
    print("replay ok")
    if args.quick:
        print("quick run: target not enforced")
        return 0
    passed = all(r >= TARGET for (w, _), r in ratios.items() if w == "hosts")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
