"""The whole ``examples/paper.yaml`` sweep in simulate mode (target: <= 30 s on 2 cores).

Five slashing factors, each 100 operators x 100 coprocessors x 1,000 rounds x
1,000 tasks (5,000,000 tasks in all), on the shared market engine with drawn
outcomes (``cluster/analysis/simulate.py`` over ``cluster/engine/market.py``),
in this one process. Wall-clock time from start to the written
``summary.json``, in a fresh temporary directory (nothing resumed).

Run from the repository root::

    python bench/paper_sweep.py            # the full sweep, about a minute
    python bench/paper_sweep.py --quick    # 100 rounds per point, target not enforced
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.analysis.simulate import load_experiment, run_experiment  # noqa: E402

TARGET_S = 30.0  # issue 13: the sweep on the shared engine must not regress


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 rounds, target not enforced")
    parser.add_argument("--experiment", default=str(ROOT / "examples" / "paper.yaml"))
    args = parser.parse_args()
    config = load_experiment(args.experiment)
    if args.quick:
        config = config.model_copy(update={"rounds": 100})
    with tempfile.TemporaryDirectory(prefix="stakeray-sweep-") as tmp:
        start = time.perf_counter()
        summary = run_experiment(config, Path(tmp), progress=False)
        elapsed = time.perf_counter() - start
    print(f"{'point':>16} {'tasks':>10} {'seconds':>8} {'tasks/s':>10} {'active':>7}")
    tasks = 0
    for row in summary["sweep"]:
        ((name, _),) = config.sweep.items()
        tasks += row["tasks"]
        print(
            f"{name[:6]}={row[name]:<9} {row['tasks']:>10,} {row['elapsed_s']:>8.2f}"
            f" {row['tasks'] / row['elapsed_s']:>10,.0f} {row['active_operators_final']:>7}"
        )
    verdict = "PASS" if elapsed <= TARGET_S else "FAIL"
    print(f"whole sweep: {tasks:,} tasks in {elapsed:.1f} s (target <= {TARGET_S:.0f} s) {verdict}")
    return 0 if args.quick or elapsed <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
