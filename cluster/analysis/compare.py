"""Live against simulated: two run directories of one network, side by side.

``stakeray compare RUN_DIR SIM_DIR`` reads what ``stakeray run`` (real
kernels) and ``stakeray simulate NETWORK.yaml`` (drawn outcomes, the same
market engine) wrote, and shows for every operator and coprocessor its share
of the role's rewards in each, the Gini and Nakamoto coefficients of rewards,
slashes and refunds, and the divergence (total variation distance of the
shares). docs/experiments.md derives the bounds they must agree within:

- without faults, execution is the only difference between the two and every
  result verifies, so the ledgers are identical: same state hash, divergence 0;
- with faults, each faulty coprocessor's slashes over its attempts is a
  binomial draw of its ``fault_rate`` in both; :func:`slash_rate_bound` gives
  the interval each must fall in (4 standard deviations).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.metrics import compute_gini, compute_nakamoto_coefficient
from protocol.units import TOKEN

ROLES = ("operator", "coprocessor")
Z = 4.0
"""Standard deviations a binomial count may stray (two-sided false alarm about 6e-5)."""


@dataclass
class Side:
    """One run directory's totals per participant, from its ``rounds.csv``."""

    directory: Path
    earned: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> name -> base units
    slashes: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: Path) -> Side:
        rounds, summary = directory / "rounds.csv", directory / "summary.json"
        for path in (rounds, summary):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing; not a finished run directory")
        side = cls(directory, {role: {} for role in ROLES})
        side.summary = json.loads(summary.read_text())
        with rounds.open() as fh:
            for row in csv.DictReader(fh):
                role, name = row["role"], row["participant"]
                if role not in ROLES:
                    continue
                earned = side.earned[role]
                earned[name] = earned.get(name, 0) + int(row["rewards"]) + int(row["fees"])
                side.slashes[name] = side.slashes.get(name, 0) + int(row["slashes"] or 0)
                side.tasks[name] = side.tasks.get(name, 0) + int(row["tasks"] or 0)
        return side

    def shares(self, role: str) -> dict[str, float]:
        earned = self.earned[role]
        total = sum(earned.values())
        return {n: (v / total if total else 0.0) for n, v in earned.items()}


def total_variation(a: dict[str, float], b: dict[str, float]) -> float:
    """Return half the L1 distance between two share vectors (0: equal, 1: disjoint)."""
    return sum(abs(a.get(n, 0.0) - b.get(n, 0.0)) for n in {*a, *b}) / 2


def slash_rate_bound(attempts: int, fault_rate: float) -> tuple[float, float]:
    """Return the interval a coprocessor's slashes / attempts falls in at ``Z`` sigmas."""
    if attempts <= 0:
        return 0.0, 1.0
    sd = math.sqrt(fault_rate * (1.0 - fault_rate) / attempts)
    return max(0.0, fault_rate - Z * sd), min(1.0, fault_rate + Z * sd)


def compare(live_dir: Path, sim_dir: Path) -> dict[str, Any]:
    """Return the comparison of two run directories (see the module docstring)."""
    live, sim = Side.read(live_dir), Side.read(sim_dir)
    out: dict[str, Any] = {"live": str(live_dir), "simulated": str(sim_dir), "roles": {}}
    for role in ROLES:
        a, b = live.shares(role), sim.shares(role)
        la, lb = list(live.earned[role].values()), list(sim.earned[role].values())
        out["roles"][role] = {
            "participants": [
                {
                    "name": n,
                    "live_share": a.get(n, 0.0),
                    "sim_share": b.get(n, 0.0),
                    "live_tokens": live.earned[role].get(n, 0) / TOKEN,
                    "sim_tokens": sim.earned[role].get(n, 0) / TOKEN,
                    "live_slashes": live.slashes.get(n, 0),
                    "sim_slashes": sim.slashes.get(n, 0),
                    "live_tasks": live.tasks.get(n, 0),
                    "sim_tasks": sim.tasks.get(n, 0),
                }
                for n in sorted({*a, *b})
            ],
            "gini": (compute_gini(la) if la else 0.0, compute_gini(lb) if lb else 0.0),
            "nakamoto": (
                compute_nakamoto_coefficient(la) if la else 0,
                compute_nakamoto_coefficient(lb) if lb else 0,
            ),
            "divergence": total_variation(a, b),
        }
    out["refunds"] = tuple(
        int(s.summary.get("tasks_refunded", 0)) + int(s.summary.get("tasks_failed", 0))
        for s in (live, sim)
    )
    out["state_hash"] = (live.summary.get("state_hash"), sim.summary.get("state_hash"))
    return out


def format_comparison(result: dict[str, Any]) -> str:
    """Return the comparison as plain-text tables."""
    lines = [f"live {result['live']}  vs  simulated {result['simulated']}"]
    for role, data in result["roles"].items():
        lines.append("")
        head = (
            f"{role:<12}{'live share':>12}{'sim share':>12}{'live slashes':>14}{'sim slashes':>13}"
        )
        lines += [head, "-" * len(head)]
        for p in data["participants"]:
            lines.append(
                f"{p['name']:<12}{p['live_share']:>12.4%}{p['sim_share']:>12.4%}"
                f"{p['live_slashes']:>14}{p['sim_slashes']:>13}"
            )
        g, k = data["gini"], data["nakamoto"]
        lines.append(
            f"gini {g[0]:.4f} / {g[1]:.4f}   nakamoto {k[0]} / {k[1]}"
            f"   divergence (total variation) {data['divergence']:.4f}"
        )
    refunds, hashes = result["refunds"], result["state_hash"]
    lines.append("")
    lines.append(f"refunded or failed tasks: {refunds[0]} / {refunds[1]}")
    same = "identical" if hashes[0] == hashes[1] else "different"
    lines.append(f"ledgers: {same} (state {str(hashes[0])[:16]} / {str(hashes[1])[:16]})")
    return "\n".join(lines)


COMPARISON_FILE = "comparison.json"
"""Where ``stakeray compare`` leaves its result in the live run directory (the report shows it)."""


def write_comparison(result: dict[str, Any]) -> Path:
    """Save ``result`` beside the live run's files; return the path."""
    path = Path(result["live"]) / COMPARISON_FILE
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def read_comparison(run_dir: Path) -> dict[str, Any] | None:
    """Return the comparison saved in ``run_dir``, if any."""
    path = Path(run_dir) / COMPARISON_FILE
    return json.loads(path.read_text()) if path.is_file() else None
