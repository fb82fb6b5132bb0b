"""Round cost with 1,000 operators at 10^3 vs 10^6 delegators (target: ratio <= 1.2).

A round is ``initialize_round()`` plus ``reward(op)`` for every active
operator: the per-round work of the protocol. Nothing in it may loop over
delegators, so its cost must not grow with their number.

Two networks with 1,000 self-bonded operators (``max_active_operators=1000``)
are built one after the other, each with delegators bonded round-robin to the
operators with ``Protocol.bond``. For each: ``gc.collect()`` after the build,
5 warm-up rounds, then the median of 41 measured rounds. The small network is
measured before and again after the big one (a drift check); the ratio is
``big / small`` with ``small`` the median of both small samples pooled.

Run from the repository root::

    python bench/round_cost.py            # 10^3 vs 10^6 delegators, ~15 s, ~450 MB
    python bench/round_cost.py --quick    # 10^3 vs 10^4, a few seconds
    python bench/round_cost.py --profile  # add a cProfile of rounds on the big network

Exits 1 if a full run misses the target.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protocol import TOKEN, Params, Protocol  # noqa: E402

TARGET = 1.2
OPERATORS = 1_000
SMALL = 10**3
BIG = 10**6
BIG_QUICK = 10**4


def operator_name(i: int) -> str:
    return f"op{i:04d}"


def build(n_delegators: int, *, progress: bool) -> Protocol:
    """Return a network at round 1: 1,000 active operators and ``n_delegators`` bonded to them."""
    start = time.perf_counter()
    operators = [operator_name(i) for i in range(OPERATORS)]
    delegators = [f"d{i:07d}" for i in range(n_delegators)]
    balances = dict.fromkeys(operators, 10**24)
    balances.update(dict.fromkeys(delegators, 10**21))
    p = Protocol(Params(max_active_operators=OPERATORS), balances)
    del balances
    for i, op in enumerate(operators):
        # Distinct self-bonds: a deterministic, tie-free active set.
        p.bond(op, op, 1_000 * TOKEN + i)
        p.register_operator(op, reward_cut=100_000, fee_share=900_000)
    step = max(n_delegators // 10, 1)
    for i, d in enumerate(delegators):
        p.bond(d, operators[i % OPERATORS], TOKEN + i)
        if progress and (i + 1) % step == 0:
            elapsed = time.perf_counter() - start
            print(f"  bonded {i + 1:>9,} / {n_delegators:,} delegators  ({elapsed:5.1f} s)")
            sys.stdout.flush()
    p.initialize_round()
    if len(p.active_set) != OPERATORS:
        raise SystemExit(f"expected {OPERATORS} active operators, got {len(p.active_set)}")
    if len(p.state.delegators) != n_delegators + OPERATORS:
        raise SystemExit("delegator count mismatch")
    print(f"  built {n_delegators:,} delegators in {time.perf_counter() - start:.1f} s")
    return p


def one_round(p: Protocol) -> None:
    """The measured unit: initialize the next round and checkpoint every active operator."""
    p.initialize_round()
    for op in p.active_set:
        p.reward(op)


def measure(p: Protocol, rounds: int, warmup: int) -> list[float]:
    """Return the seconds of each measured round after ``warmup`` unmeasured ones."""
    gc.collect()
    for _ in range(warmup):
        one_round(p)
    times: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        one_round(p)
        times.append(time.perf_counter() - t0)
    if p.minted_this_round <= 0:
        raise SystemExit("no reward was minted: the benchmark is not exercising reward()")
    return times


def profile_rounds(p: Protocol, rounds: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(rounds):
        one_round(p)
    prof.disable()
    print(f"\ncProfile of {rounds} rounds on the big network (top 15 by cumulative time):")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(15)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^4 instead of 10^6 delegators")
    ap.add_argument("--rounds", type=int, default=41, help="measured rounds per sample")
    ap.add_argument("--warmup", type=int, default=5, help="unmeasured rounds before each sample")
    ap.add_argument("--profile", action="store_true", help="cProfile rounds on the big network")
    args = ap.parse_args(argv)
    big = BIG_QUICK if args.quick else BIG

    print(f"round cost: {OPERATORS:,} operators, {SMALL:,} vs {big:,} delegators")
    print(f"[1/3] small network, {SMALL:,} delegators")
    p = build(SMALL, progress=False)
    small_before = measure(p, args.rounds, args.warmup)
    del p
    gc.collect()

    print(f"[2/3] big network, {big:,} delegators")
    p = build(big, progress=True)
    big_times = measure(p, args.rounds, args.warmup)
    rss = peak_rss_mb()
    if args.profile:
        profile_rounds(p, 5)
    del p
    gc.collect()

    print(f"[3/3] small network again, {SMALL:,} delegators (drift check)")
    p = build(SMALL, progress=False)
    small_after = measure(p, args.rounds, args.warmup)
    del p

    small = statistics.median(small_before + small_after)
    big_median = statistics.median(big_times)
    ratio = big_median / small
    print()
    print(f"{'network':<28} {'median ms/round':>16} {'min':>8} {'max':>8}")
    rows = [
        (f"{SMALL:,} delegators (before)", small_before),
        (f"{big:,} delegators", big_times),
        (f"{SMALL:,} delegators (after)", small_after),
    ]
    for label, times in rows:
        print(
            f"{label:<28} {statistics.median(times) * 1e3:>16.3f}"
            f" {min(times) * 1e3:>8.3f} {max(times) * 1e3:>8.3f}"
        )
    print(f"peak RSS {rss:,.0f} MB; {args.rounds} measured rounds per sample after {args.warmup}")
    before, after = statistics.median(small_before), statistics.median(small_after)
    drift = max(before, after) / min(before, after) - 1
    if drift > 0.10:
        print(
            f"WARNING: the two small-network medians differ by {drift:.0%}:"
            " the machine was busy during the run; rerun on a quiet machine"
        )
    ratio_min = min(big_times) / min(small_before + small_after)
    print(f"\nratio of the minimums = {ratio_min:.3f}  (information)")
    print(f"ratio big/small (medians) = {ratio:.3f}  (target <= {TARGET})")
    passed = ratio <= TARGET
    if args.quick:
        print("quick run: target not enforced")
        return 0
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
