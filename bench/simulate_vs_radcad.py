"""Our simulator vs the same model written in radCAD, per round, at 100 x 100.

Both sides run Rodikov (2025)'s reward-distribution model on the setting of
``examples/paper.yaml`` (100 operators, 100 coprocessors, 1,000 tasks a round,
slashing factor 0.1), in this process, interleaved:

* ours: ``cluster.analysis.simulate.simulate_point``, the market engine
  (``cluster.engine.market.MarketEngine``: escrow, stake-weighted selection,
  ``clear_batch`` with ``compute_ask_ppm`` rates, one ``settle_batch`` per
  round) over a real in-memory ``protocol.Protocol`` (issuance, rewards, fee
  pools, collateral, slashing, GAS reputation), outcomes drawn by
  ``draw_outcomes``, over ``--rounds`` rounds;
* radCAD: ``bench/radcad_model.py``, the same rules as an idiomatic radCAD
  model (plain dicts and lists as state, seven partial state update blocks of
  policies and state update functions, radCAD's default deep copies), run with
  ``Simulation(model, timesteps=T, runs=1)`` in an ``Experiment`` on radCAD's
  single-process backend over ``--timesteps`` rounds. It imports no stakeray
  code: this script passes the configuration and ``Params()`` values to it.

Each side is timed end to end (building the network included) and divided by
its number of rounds; ``--reps`` repetitions alternate which side goes first,
and the ratio is radCAD's median ms/round over ours. Target: >= 50x. CPU time
of this process per round is shown too, for information (the machine may be
shared). A sanity table compares the economics over the radCAD run's rounds:
both draw the same population from the same seed, but the task stream differs
after the first round (ours draws outcomes and audits by keyed hashes, radCAD
from the shared generator), and so does the operator choice (blake2b per task
vs a weighted ``Generator.choice``), so who executes what differs. The rules
differ in two details too: ours re-offers a task a coprocessor failed (radCAD
drops it) and settles an operator's own task before an audit slashes it
(radCAD withholds the fee). A ratio outside
[0.5, 2] on any line (except rare counts below 5) prints a warning and fails
the run.

Run from the repository root (needs ``pip install radcad``)::

    python bench/simulate_vs_radcad.py            # full run, ~10 s
    python bench/simulate_vs_radcad.py --quick    # smoke run, target not enforced
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.analysis.simulate import ExperimentConfig, load_experiment, simulate_point  # noqa: E402
from protocol.params import Params  # noqa: E402

TARGET = 50.0
SWEEP = ("slash_fraction", 100_000)
PARAM_NAMES = (
    "inflation",
    "inflation_change",
    "target_bonding_rate",
    "max_active_operators",
    "min_operator_bond",
    "treasury_cut",
    "collateral_ratio",
    "auction_step",
    "reserve_ratio",
    "slash_fraction",
    "audit_rate",
    "min_reputation",
)


def radcad_settings(config: ExperimentConfig, rounds: int) -> dict[str, Any]:
    """Everything the radCAD model needs, as plain values (it imports no stakeray code)."""
    params = Params.build(**{**config.params, SWEEP[0]: SWEEP[1]})
    return {
        "seed": config.seed,
        "run": 0,
        "rounds": rounds,  # the client is funded for as many rounds as ours, as simulate does
        "operators": config.operators.model_dump(),
        "coprocessors": config.coprocessors.model_dump(),
        "tasks": config.tasks.model_dump(),
        "params": {name: getattr(params, name) for name in PARAM_NAMES},
        "gas": params.gas.model_dump(),
        "load_curve": params.load_curve.model_dump(),
    }


def timed(fn: Any, rounds: int) -> tuple[float, float, Any]:
    """Return wall-clock and CPU (this process) ms per round of ``fn()``, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall * 1000 / rounds, cpu * 1000 / rounds, result


def sanity(
    ours: Any, results: list[dict[str, Any]], timesteps: int
) -> list[tuple[str, float, float]]:
    """Per-round means over the first ``timesteps`` rounds of both runs."""
    theirs = [s["metrics"] for s in results if s["substep"] == 7]
    assert len(theirs) == timesteps, f"radCAD returned {len(theirs)} rounds"
    mine = ours.rounds[:timesteps]
    ops_issuance = sum(p["issuance"] for p in ours.participants if p["role"] == "operator")
    rows = []
    for key in ("tasks", "self_executed", "auctioned", "coprocessor_failures", "operator_slashes"):
        rows.append(
            (
                f"{key} per round",
                statistics.mean(r[key] for r in mine),
                statistics.mean(r[key] for r in theirs),
            )
        )
    rows.append(
        (
            f"cumulative reward after {timesteps} rounds (tokens)",
            mine[-1]["cumulative_reward"],
            theirs[-1]["cumulative_reward"],
        )
    )
    rows.append(
        (
            "minted per round, mean of each whole run (tokens)",
            ops_issuance / len(ours.rounds),
            statistics.mean(r["minted"] for r in theirs),
        )
    )
    last = (
        "active operators (last round)",
        mine[-1]["active_operators"],
        theirs[-1]["active_operators"],
    )
    rows.append(last)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, target not enforced")
    parser.add_argument("--rounds", type=int, default=100, help="rounds of our simulator")
    parser.add_argument("--timesteps", type=int, default=20, help="rounds (timesteps) of radCAD")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--config", default=str(ROOT / "examples" / "paper.yaml"))
    args = parser.parse_args()
    try:
        import radcad
    except ImportError:
        print("radCAD is not installed: pip install radcad", file=sys.stderr)
        return 2
    import radcad_model  # bench/radcad_model.py, beside this script

    rounds, timesteps, reps = args.rounds, args.timesteps, args.reps
    if args.quick:
        rounds, timesteps, reps = 10, 3, 1
    timesteps = min(timesteps, rounds)
    config = load_experiment(args.config).model_copy(update={"rounds": rounds})
    settings = radcad_settings(config, rounds)
    n_ops, n_cops = config.operators.count, config.coprocessors.count
    print(
        f"radCAD {radcad.__version__}; {n_ops} operators x {n_cops} coprocessors, "
        f"{config.tasks.per_round} tasks/round, {SWEEP[0]}={SWEEP[1]}; "
        f"ours {rounds} rounds, radCAD {timesteps} timesteps, {reps} reps"
    )
    ours_ms: list[float] = []
    radcad_ms: list[float] = []
    ours_cpu: list[float] = []
    radcad_cpu: list[float] = []
    ours_result: Any = None
    radcad_results: Any = None
    for rep in range(reps):
        sides = ["ours", "radcad"] if rep % 2 == 0 else ["radcad", "ours"]
        for side in sides:
            if side == "ours":
                ms, cpu, ours_result = timed(
                    lambda: simulate_point(config, SWEEP[0], SWEEP[1], 0), rounds
                )
                ours_ms.append(ms)
                ours_cpu.append(cpu)
            else:
                ms, cpu, radcad_results = timed(
                    lambda: radcad_model.run(settings, timesteps), timesteps
                )
                radcad_ms.append(ms)
                radcad_cpu.append(cpu)
        print(
            f"  rep {rep + 1} ({sides[0]} first): ours {ours_ms[-1]:.2f} ms/round, "
            f"radCAD {radcad_ms[-1]:.2f} ms/round"
        )
    ratio = statistics.median(radcad_ms) / statistics.median(ours_ms)
    cpu_ratio = statistics.median(radcad_cpu) / statistics.median(ours_cpu)
    print()
    print(f"{'side':<40} {'median ms/round':>16} {'min':>9} {'max':>9} {'CPU ms/round':>13}")
    for label, samples, cpu in (
        (f"ours: simulate_point ({rounds} rounds)", ours_ms, ours_cpu),
        (f"radCAD model ({timesteps} timesteps)", radcad_ms, radcad_cpu),
    ):
        print(
            f"{label:<40} {statistics.median(samples):>16.2f} "
            f"{min(samples):>9.2f} {max(samples):>9.2f} {statistics.median(cpu):>13.2f}"
        )
    print()
    head = f"sanity (same seed, first {timesteps} rounds)"
    print(f"{head:<52} {'ours':>12} {'radCAD':>12} {'radCAD/ours':>12}")
    sane = True
    for label, a, b in sanity(ours_result, radcad_results, timesteps):
        r = b / a if a else (1.0 if b == a else float("inf"))
        # Counts of rare events (failures, slashes) are noisy over a few rounds: a factor 2.
        sane &= 0.5 <= r <= 2.0 or max(a, b) < 5
        print(f"{label:<52} {a:>12.2f} {b:>12.2f} {r:>12.3f}")
    if not sane:
        print("WARNING: the two models' economics differ by more than a factor of 2")
    print()
    passed = ratio >= TARGET
    verdict = "" if args.quick else ("  PASS" if passed else "  FAIL")
    print(f"(information) ratio of the median CPU times: {cpu_ratio:.1f}x")
    print(f"ratio radCAD / ours (median ms/round): {ratio:.1f}x  (target >= {TARGET:g}x){verdict}")
    if args.quick:
        return 0
    return 0 if passed and sane else 1


if __name__ == "__main__":
    sys.exit(main())
