"""A sweep on Ray vs in one process: ``simulate --workers 2`` / ``--workers 1`` (target >= 1.6x).

The sweep: ``examples/paper.yaml``'s five slashing factors x 10 Monte Carlo
seeds = 50 points, each the paper's network (100 operators, 100 coprocessors,
1,000 tasks a round) for 200 rounds instead of 1,000: the config's ``rounds``
is set to 200 and ``seeds`` to 10 (``--rounds``, ``--seeds``), so that the
serial run takes ~55 s on a 2-core machine (~1.1 s a point).

Both sides run in this process, one after the other (``--reps N``: N times,
alternating which goes first; the medians are compared), each into a fresh
temporary directory (nothing resumed), the same code paths as the command:

* ``--workers 1``: ``run_experiment`` with no runner, every point in this process;
* ``--workers 2``: ``ray_sweep(2)`` (an embedded Ray with 2 CPUs, token
  authentication as ``stakeray simulate`` does it) and its ``RaySweep`` runner.
  Its time includes starting and stopping Ray (printed apart too).

Then the outputs are compared: the summary's sweep rows (but ``elapsed_s``),
``rewards.csv`` and ``rounds.csv`` must be identical, else exit 1.

Run from the repository root::

    python bench/sweep_workers.py            # full run, ~1.5 minutes
    python bench/sweep_workers.py --quick    # 20 rounds, 2 seeds, target not enforced
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from cluster.analysis.simulate import (  # noqa: E402
    ExperimentConfig,
    load_experiment,
    run_experiment,
)
from cluster.runtime.sweep import ray_sweep  # noqa: E402

TARGET = 1.6
OUTPUTS = ("rewards.csv", "rounds.csv")


def rows(out: Path) -> list[dict[str, Any]]:
    sweep = json.loads((out / "summary.json").read_text())["sweep"]
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in sweep]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 rounds, 2 seeds, no target")
    parser.add_argument("--experiment", default=str(ROOT / "examples" / "paper.yaml"))
    parser.add_argument("--rounds", type=int, default=200, help="rounds per point (200)")
    parser.add_argument("--seeds", type=int, default=10, help="Monte Carlo seeds (10)")
    parser.add_argument("--workers", type=int, default=2, help="Ray side's workers (2)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions, alternating (1)")
    args = parser.parse_args()
    rounds, seeds = (20, 2) if args.quick else (args.rounds, args.seeds)
    base = load_experiment(args.experiment)
    config = ExperimentConfig.model_validate(
        {**base.model_dump(), "rounds": rounds, "seeds": seeds}
    )
    points = len(config.points()) * config.seeds
    tasks = points * config.rounds * config.tasks.per_round
    print(
        f"{points} points ({len(config.points())} values x {seeds} seeds), {rounds} rounds x"
        f" {config.tasks.per_round:,} tasks each ({tasks:,} tasks); {os.cpu_count()} CPUs here"
    )
    serials: list[float] = []
    parallels: list[float] = []
    starts: list[float] = []
    same = True
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory(prefix="stakeray-sweep-workers-") as tmp:
            serial_out, ray_out = Path(tmp) / "serial", Path(tmp) / "ray"
            for side in ("serial", "ray") if rep % 2 == 0 else ("ray", "serial"):
                start = time.perf_counter()
                if side == "serial":
                    run_experiment(config, serial_out, progress=False)
                    serials.append(time.perf_counter() - start)
                    continue
                with ray_sweep(args.workers) as runner:
                    starts.append(time.perf_counter() - start)
                    run_experiment(config, ray_out, progress=False, runner=runner)
                parallels.append(time.perf_counter() - start)
            same = same and rows(serial_out) == rows(ray_out)
            same = same and all(
                (serial_out / n).read_bytes() == (ray_out / n).read_bytes() for n in OUTPUTS
            )
    serial, parallel, ready = (statistics.median(x) for x in (serials, parallels, starts))
    speedup = serial / parallel
    every = "" if args.reps == 1 else "  (each: {})"
    print(f"{'side':<28} {'seconds':>8} {'points/s':>9}" + (" (median)" if every else ""))
    label = "--workers 1 (in process)"
    shown = every.format(", ".join(f"{x:.1f}" for x in serials))
    print(f"{label:<28} {serial:>8.1f} {points / serial:>9.2f}{shown}")
    label = f"--workers {args.workers} (local Ray)"
    shown = every.format(", ".join(f"{x:.1f}" for x in parallels))
    print(f"{label:<28} {parallel:>8.1f} {points / parallel:>9.2f}{shown}")
    print(f"  of which Ray start {ready:.1f} s")
    print(f"results identical (sweep rows, {', '.join(OUTPUTS)}): {'yes' if same else 'NO'}")
    ok = same and (args.quick or speedup >= TARGET)
    verdict = "PASS" if speedup >= TARGET and same else "FAIL"
    print(f"speed-up {speedup:.2f}x (target >= {TARGET}x) {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
