"""Verification time / execution time per task kind (target: matmul n=768 ratio <= 0.1).

For each kind at a realistic size the inputs are generated once, then both
``workers.execute(spec, inputs)`` and ``workers.verify(spec, result, inputs)`` are
timed (median of several repetitions after one warm-up), so input generation is
charged to neither side. The table shows the ratio verify / execute per kind.

Run from the repository root::

    python bench/verify_cost.py           # realistic sizes, a few seconds
    python bench/verify_cost.py --quick   # small sizes, does not enforce the target

Exits 1 if a full run finds matmul's ratio above the target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import workers  # noqa: E402

TARGET = 0.1
FULL = {"matmul": 768, "fft": 2**20, "sort": 2**20, "montecarlo": 10**7, "hashsearch": 2**16}
QUICK = {"matmul": 256, "fft": 2**16, "sort": 2**16, "montecarlo": 10**6, "hashsearch": 2**12}


def median_time(fn: Callable[[], Any], reps: int) -> float:
    fn()  # warm-up: BLAS threads, FFT plans, caches
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, target not enforced")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per side")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL

    print(f"backend: {workers.backend.get_xp().__name__}")
    print(f"{'kind':<11} {'size':>9} {'execute ms':>11} {'verify ms':>10} {'ratio':>8}")
    ratios: dict[str, float] = {}
    for kind, size in sizes.items():
        spec = workers.TaskSpec(kind, size, seed=1)
        inputs = workers.make_inputs(spec)
        result = workers.execute(spec, inputs)
        if not workers.verify(spec, result, inputs):
            print(f"{kind}: correct result rejected", file=sys.stderr)
            return 1
        t_exec = median_time(lambda s=spec, i=inputs: workers.execute(s, i), args.reps)
        t_ver = median_time(lambda s=spec, r=result, i=inputs: workers.verify(s, r, i), args.reps)
        ratios[kind] = t_ver / t_exec
        print(
            f"{kind:<11} {size:>9} {t_exec * 1e3:>11.3f} {t_ver * 1e3:>10.3f} {ratios[kind]:>8.4f}"
        )

    if args.quick:
        print(f"quick run: matmul ratio {ratios['matmul']:.4f} (target {TARGET} not enforced)")
        return 0
    ok = ratios["matmul"] <= TARGET
    print(f"{'PASS' if ok else 'FAIL'}: matmul verify/execute {ratios['matmul']:.4f} <= {TARGET}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
