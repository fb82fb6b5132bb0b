"""The measurement report of a run directory: ``report.html`` and ``figures/*.png``.

``write_report(run_dir)`` reads ``summary.json``, ``rounds.csv`` (rebuilt from
the ledger if absent), ``tasks.csv`` and the ledger itself (for delegators'
stakes and operators' commission), draws one PNG per figure with
matplotlib's Agg canvas, and writes one self-contained HTML page that embeds
every figure as a base64 data URI. A figure without data is drawn as a small
"no data" figure, so any run directory reports.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cluster.analysis.compare import read_comparison
from cluster.analysis.history import ROUND_COLUMNS, DelegatorStake, replay_delegators, replay_rounds
from cluster.engine.fairness import ALPHA, MIN_EXPECTED, RoundFairness, summarize
from protocol import TOKEN, metrics
from protocol.errors import StakerayError
from protocol.ledger import LOG_NAME
from protocol.state import Outcome
from protocol.units import PPM

LEDGER_DIR = "ledger"
REPORT_NAME = "report.html"
FIGURES_DIR = "figures"
ROUNDS_PER_YEAR = 365  # APR assumes one protocol round a day
INT_COLUMNS = {"round", "active", "stake", "rewards", "fees", "tasks", "slashes"}
INT_COLUMNS |= {"auction_fees", "auction_prices", "liveness_faults"}
INT_COLUMNS |= {"selected", "selection_tasks"}
FLOAT_COLUMNS = {"reputation", "load", "expected_selected"}
OPTIONAL_FLOAT_COLUMNS = {"selection_p", "selection_max_dev"}  # empty: not tested
OPTIONAL_INT_COLUMNS = {"auction_checked", "auction_mismatches"}  # empty: not checked


class ReportError(StakerayError):
    """The directory is not a run directory (one-line message)."""


# --- the run's data -------------------------------------------------------------------------


@dataclass
class RunData:
    """Everything the figures and tables read, loaded once."""

    name: str
    summary: dict[str, Any]
    rounds: list[dict[str, Any]]
    tasks: list[dict[str, str]]
    delegators: list[DelegatorStake]
    commission: dict[str, tuple[int, int]] = field(default_factory=dict)
    rounds_per_year: int = ROUNDS_PER_YEAR

    def role(self, role: str) -> list[dict[str, Any]]:
        """Return the round rows of one role."""
        return [r for r in self.rounds if r["role"] == role]

    def round_numbers(self) -> list[int]:
        """Return the rounds the history covers, ascending."""
        return sorted({r["round"] for r in self.rounds})


def load_run(run_dir: Path, rounds_per_year: int = ROUNDS_PER_YEAR) -> RunData:
    """Load a run directory; raise ``ReportError`` if it has no ledger log."""
    if not (run_dir / "ledger" / LOG_NAME).is_file():
        raise ReportError(f"{run_dir}: not a run directory (no ledger/{LOG_NAME})")
    protocol, delegators = replay_delegators(run_dir / "ledger")
    commission = {a: protocol.commission(a) for a in protocol.state.pools}
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return RunData(
        name=run_dir.resolve().name,
        summary=summary,
        rounds=load_rounds(run_dir),
        tasks=read_csv(run_dir / "tasks.csv"),
        delegators=delegators,
        commission=commission,
        rounds_per_year=rounds_per_year,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    """Read a CSV as dicts; a missing file is empty."""
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def load_rounds(run_dir: Path) -> list[dict[str, Any]]:
    """Return ``rounds.csv`` typed (or the ledger's history when the file is absent)."""
    raw = read_csv(run_dir / "rounds.csv")
    if not raw and not (run_dir / "rounds.csv").is_file():
        _, rows = replay_rounds(run_dir / "ledger")
        cells = (("" if v is None else str(v) for v in astuple(r)) for r in rows)
        raw = [dict(zip(ROUND_COLUMNS, row, strict=True)) for row in cells]
    return [typed_round(r) for r in raw]


def typed_round(row: dict[str, str]) -> dict[str, Any]:
    """Convert one CSV row; columns an older run lacks read as 0."""
    out: dict[str, Any] = {"participant": row["participant"], "role": row["role"]}
    for name in INT_COLUMNS:
        out[name] = int(row.get(name) or 0)
    for name in FLOAT_COLUMNS:
        out[name] = float(row.get(name) or 0.0)
    for name in OPTIONAL_FLOAT_COLUMNS:
        out[name] = float(row[name]) if row.get(name) else None
    for name in OPTIONAL_INT_COLUMNS:
        out[name] = int(row[name]) if row.get(name) else None
    out["selection_max_dev_operator"] = row.get("selection_max_dev_operator") or ""
    out["audited"] = "selection_tasks" in row  # False: written before the allocation audit
    return out


def tok(amount: float) -> float:
    """Base units to tokens (for plotting only)."""
    return amount / TOKEN


def per_participant(
    rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], float]
) -> dict[str, float]:
    """Sum ``key(row)`` per participant."""
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[r["participant"]] += key(r)
    return dict(sorted(totals.items()))


def per_round(
    rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], float]
) -> dict[int, float]:
    """Sum ``key(row)`` per round."""
    totals: dict[int, float] = defaultdict(float)
    for r in rows:
        totals[r["round"]] += key(r)
    return dict(sorted(totals.items()))


def final_stakes(data: RunData) -> dict[str, float]:
    """Each operator's stake (tokens) in the last round."""
    ops = data.role("operator")
    if not ops:
        return {}
    last = max(r["round"] for r in ops)
    return {r["participant"]: tok(r["stake"]) for r in ops if r["round"] == last}


def total_rewards(data: RunData) -> dict[str, float]:
    """Each operator's issuance plus fees (tokens) over the run."""
    return per_participant(data.role("operator"), lambda r: tok(r["rewards"] + r["fees"]))


def margin(prices: float, fees: float) -> float:
    """Clearing margin price/fee, NaN without auctioned fees."""
    return prices / fees if fees else float("nan")


# --- figures --------------------------------------------------------------------------------


def new_figure(width: float = 8.0, height: float = 4.0) -> Figure:
    """A figure on the Agg canvas (no pyplot state)."""
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def no_data(title: str, reason: str) -> Figure:
    """A small placeholder figure for a run without the data."""
    fig = new_figure(5.0, 1.6)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=11, weight="bold")
    ax.text(0.5, 0.3, f"no data: {reason}", ha="center", va="center", fontsize=10)
    return fig


def shares_figure(values: dict[str, float], title: str, unit: str) -> Figure:
    """Bar chart of shares with the Lorenz curve beside it."""
    if len(values) == 0 or sum(values.values()) <= 0:
        return no_data(title, f"no operator {unit}")
    names, vals = list(values), np.array(list(values.values()), dtype=float)
    fig = new_figure(10.0, 4.0)
    bars, lorenz = fig.subplots(1, 2)
    bars.bar(names, vals / vals.sum())
    bars.set_ylabel("share")
    bars.set_title(f"{title} by operator")
    bars.tick_params(axis="x", labelrotation=30)
    pop, share = metrics.compute_lorenz_curve(vals)
    lorenz.plot(pop, share, marker="o", label="Lorenz curve")
    lorenz.plot([0, 1], [0, 1], linestyle="--", color="grey", label="equality")
    lorenz.set_xlabel("share of operators")
    lorenz.set_ylabel(f"share of {unit}")
    lorenz.set_title(f"Lorenz curve (Gini {metrics.compute_gini(vals):.3f})")
    lorenz.legend()
    fig.tight_layout()
    return fig


def fig_stake_shares(data: RunData) -> Figure:
    return shares_figure(final_stakes(data), "final stake share", "stake")


def fig_reward_shares(data: RunData) -> Figure:
    return shares_figure(total_rewards(data), "total reward share", "rewards")


def fig_concentration(data: RunData) -> Figure:
    """Gini, HHI and Nakamoto coefficients of operator stake per round."""
    stakes: dict[int, list[float]] = defaultdict(list)
    for r in data.role("operator"):
        stakes[r["round"]].append(tok(r["stake"]))
    rounds = [n for n in sorted(stakes) if sum(stakes[n]) > 0]
    if not rounds:
        return no_data("stake concentration", "no operator stake")
    fig = new_figure()
    left = fig.add_subplot()
    right = left.twinx()
    left.plot(rounds, [metrics.compute_gini(stakes[n]) for n in rounds], label="Gini")
    left.plot(rounds, [metrics.compute_hhi(stakes[n]) for n in rounds], label="HHI")
    for threshold, style in ((1 / 3, ":"), (1 / 2, "-.")):
        naka = [metrics.compute_nakamoto_coefficient(stakes[n], threshold) for n in rounds]
        label = f"Nakamoto {'1/3' if threshold < 0.5 else '1/2'}"
        right.step(rounds, naka, where="mid", linestyle=style, color="black", label=label)
    left.set_xlabel("round")
    left.set_ylabel("Gini, HHI")
    left.set_ylim(0, 1.05)
    right.set_ylabel("Nakamoto coefficient (operators)")
    right.set_ylim(0, max(len(v) for v in stakes.values()) + 0.5)
    lines = left.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
    left.set_title("concentration of operator stake")
    fig.tight_layout()
    return fig


def fig_operator_rewards(data: RunData) -> Figure:
    """Per operator and round: issuance (solid) and fees (dashed)."""
    ops = data.role("operator")
    if not any(r["rewards"] or r["fees"] for r in ops):
        return no_data("operator rewards", "no issuance or fees")
    fig = new_figure()
    ax = fig.add_subplot()
    by_op: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ops:
        by_op[r["participant"]].append(r)
    for i, (name, rows) in enumerate(sorted(by_op.items())):
        rounds = [r["round"] for r in rows]
        color = f"C{i % 10}"
        ax.plot(rounds, [tok(r["rewards"]) for r in rows], color=color, label=f"{name} issuance")
        fees = [tok(r["fees"]) for r in rows]
        ax.plot(rounds, fees, color=color, linestyle="--", label=f"{name} fees")
    ax.set_xlabel("round")
    ax.set_ylabel("tokens per round")
    ax.set_ylim(bottom=0)
    ax.set_title("operator rewards: issuance and fees")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def fig_delegator_apr(data: RunData) -> Figure:
    """Per-delegator APR grouped by operator, labelled with its commission."""
    groups: dict[str, list[DelegatorStake]] = defaultdict(list)
    for d in data.delegators:
        if d.start > 0 and d.rounds > 0:
            groups[d.operator].append(d)
    if not groups:
        return no_data("delegator APR", "no delegators")
    fig = new_figure()
    ax = fig.add_subplot()
    names = sorted(groups)
    aprs = []
    for name in names:
        apr = [
            float(metrics.compute_apr(d.start, d.end, d.rounds, data.rounds_per_year))
            for d in groups[name]
        ]
        aprs.append(100 * np.array(apr))
    ax.boxplot(aprs)
    ax.set_xticks(range(1, len(names) + 1), [commission_label(data, n) for n in names])
    ax.set_ylabel("APR (%)")
    ax.set_title(f"delegator APR by operator ({data.rounds_per_year} rounds a year)")
    fig.tight_layout()
    return fig


def commission_label(data: RunData, operator: str) -> str:
    """``name\\ncut x % / fee share y %``."""
    if operator not in data.commission:
        return operator
    cut, share = data.commission[operator]
    return f"{operator}\ncut {100 * cut / PPM:.1f} % / fees {100 * share / PPM:.0f} %"


def fig_clearing_margin(data: RunData) -> Figure:
    """Mean clearing margin per round, and per coprocessor-round against its load."""
    ops = data.role("operator")
    prices = per_round(ops, lambda r: r["auction_prices"])
    fees = per_round(ops, lambda r: r["auction_fees"])
    rounds = [n for n in fees if fees[n] > 0]
    cops = [r for r in data.role("coprocessor") if r["auction_fees"] > 0]
    if not rounds and not cops:
        return no_data("auction clearing margin", "no auctioned tasks")
    fig = new_figure(10.0, 4.0)
    left, right = fig.subplots(1, 2)
    left.plot(rounds, [margin(prices[n], fees[n]) for n in rounds], marker="o")
    left.set_xlabel("round")
    left.set_ylabel("margin = price / fee")
    left.set_title("mean clearing margin per round")
    for i, (name, rows) in enumerate(sorted(group_by(cops).items())):
        right.scatter(
            [r["load"] for r in rows],
            [margin(r["auction_prices"], r["auction_fees"]) for r in rows],
            color=f"C{i % 10}",
            label=name,
        )
    right.set_xlabel("coprocessor peak load (share of capacity)")
    right.set_ylabel("margin = price / fee")
    right.set_title("clearing margin vs coprocessor load")
    if cops:
        right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def group_by(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group round rows by participant."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["participant"]].append(r)
    return groups


def fig_coprocessor_load(data: RunData) -> Figure:
    """Per coprocessor-round: peak load against the fees it earned."""
    cops = data.role("coprocessor")
    if not cops:
        return no_data("coprocessor load vs reward", "no coprocessors")
    fig = new_figure()
    ax = fig.add_subplot()
    for i, (name, rows) in enumerate(sorted(group_by(cops).items())):
        loads = [r["load"] for r in rows]
        ax.scatter(loads, [tok(r["fees"]) for r in rows], color=f"C{i % 10}", label=name)
    ax.set_xlabel("peak load (share of capacity)")
    ax.set_ylabel("reward in the round (tokens)")
    ax.set_title("coprocessor load vs reward, one point per round")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_reputation_reward(data: RunData) -> Figure:
    """Final reputation against total reward, per participant."""
    if not data.rounds:
        return no_data("reputation vs reward", "no rounds")
    last = max(r["round"] for r in data.rounds)
    reputation = {r["participant"]: r["reputation"] for r in data.rounds if r["round"] == last}
    reward = per_participant(data.rounds, lambda r: tok(r["rewards"] + r["fees"]))
    roles = {r["participant"]: r["role"] for r in data.rounds}
    names = [n for n in reward if n in reputation]
    r_all = metrics.compute_correlation([reputation[n] for n in names], [reward[n] for n in names])
    fig = new_figure()
    ax = fig.add_subplot()
    for role, marker in (("operator", "s"), ("coprocessor", "o")):
        group = [n for n in names if roles[n] == role]
        x, y = [reputation[n] for n in group], [reward[n] for n in group]
        ax.scatter(
            x, y, marker=marker, label=f"{role}s (r = {metrics.compute_correlation(x, y):.2f})"
        )
        for n in group:
            ax.annotate(n, (reputation[n], reward[n]), fontsize=7)
    ax.set_xlabel("final reputation")
    ax.set_ylabel("total reward (tokens)")
    ax.set_title(f"reputation vs total reward (Pearson r = {r_all:.2f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_active_operators(data: RunData) -> Figure:
    """Number of active operators per round."""
    active = per_round(data.role("operator"), lambda r: r["active"])
    if not active:
        return no_data("active operators", "no operators")
    fig = new_figure(8.0, 3.0)
    ax = fig.add_subplot()
    ax.step(list(active), list(active.values()), where="mid", marker="o")
    ax.set_xlabel("round")
    ax.set_ylabel("active operators")
    ax.set_ylim(0, max(active.values()) + 1)
    ax.set_title("active operators per round")
    fig.tight_layout()
    return fig


def latency_percentiles(tasks: Sequence[dict[str, str]]) -> dict[str, tuple[float, ...]]:
    """p50, p90, p99 latency (s) of settled tasks, by kind."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    for t in tasks:
        if t.get("outcome") == Outcome.SETTLED and t.get("latency_s"):
            by_kind[t["kind"]].append(float(t["latency_s"]))
    return {
        k: tuple(float(np.percentile(v, q)) for q in (50, 90, 99))
        for k, v in sorted(by_kind.items())
    }


def fig_throughput(data: RunData) -> Figure:
    """Tasks settled per round, and latency percentiles by kind."""
    settled = per_round(data.role("operator"), lambda r: r["tasks"])
    latency = latency_percentiles(data.tasks)
    if not any(settled.values()) and not latency:
        return no_data("throughput and latency", "no settled tasks")
    fig = new_figure(10.0, 4.0)
    left, right = fig.subplots(1, 2)
    left.bar(list(settled), list(settled.values()))
    left.set_xlabel("round")
    left.set_ylabel("tasks settled")
    left.set_title("task throughput per round")
    kinds = list(latency)
    x = np.arange(len(kinds))
    for i, label in enumerate(("p50", "p90", "p99")):
        right.bar(x + (i - 1) * 0.27, [latency[k][i] for k in kinds], width=0.27, label=label)
    right.set_xticks(x, kinds)
    right.set_ylabel("latency (s)")
    right.set_title("latency percentiles by kind")
    if kinds:
        right.legend()
    fig.tight_layout()
    return fig


def fig_slashes(data: RunData) -> Figure:
    """Faults per round, stacked by role: safety faults (slashed) and liveness faults (unpaid)."""
    if not data.rounds:
        return no_data("slashes", "no rounds")
    rounds = data.round_numbers()
    fig = new_figure(8.0, 3.0)
    ax = fig.add_subplot()
    bottom = np.zeros(len(rounds))
    totals = {}
    for column, kind, hatch in (("slashes", "slashed", ""), ("liveness_faults", "liveness", "//")):
        before = bottom.sum()
        for role in ("operator", "coprocessor"):
            counts = per_round(data.role(role), lambda r, c=column: r[c])
            heights = np.array([counts.get(n, 0) for n in rounds])
            if heights.any():
                ax.bar(rounds, heights, bottom=bottom, label=f"{role}s, {kind}", hatch=hatch)
            bottom += heights
        totals[kind] = int(bottom.sum() - before)
    ax.set_xlabel("round")
    ax.set_ylabel("faults")
    ax.set_title(
        f"faults per round: {totals['slashed']} slashed (wrong results),"
        f" {totals['liveness']} liveness (no result in time)"
    )
    if bottom.any():
        ax.legend()
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report: file stem, drawing function, one-line caption."""

    name: str
    draw: Callable[[RunData], Figure]
    caption: str


FIGURES = (
    FigureSpec(
        "stake_shares",
        fig_stake_shares,
        "Operators' shares of the final stake, with the Lorenz curve.",
    ),
    FigureSpec(
        "reward_shares",
        fig_reward_shares,
        "Operators' shares of total rewards (issuance plus fees), with the Lorenz curve.",
    ),
    FigureSpec(
        "concentration",
        fig_concentration,
        "Gini, HHI and Nakamoto coefficients (1/3 and 1/2) of operator stake over rounds.",
    ),
    FigureSpec(
        "operator_rewards",
        fig_operator_rewards,
        "Each operator's rewards per round: issuance minted (solid) and fees earned (dashed).",
    ),
    FigureSpec(
        "delegator_apr",
        fig_delegator_apr,
        "APR of each delegator from its pending-stake growth, grouped by operator and commission"
        " (annualised at the rounds a year in its title; operators' self-bonds excluded).",
    ),
    FigureSpec(
        "clearing_margin",
        fig_clearing_margin,
        "Auction clearing margin (price/fee of auctioned tasks) per round, and per"
        " coprocessor-round against its peak load.",
    ),
    FigureSpec(
        "coprocessor_load",
        fig_coprocessor_load,
        "Coprocessors' peak load against the fees they earned, one point per round.",
    ),
    FigureSpec(
        "reputation_reward",
        fig_reputation_reward,
        "Final reputation against total reward for every operator and coprocessor.",
    ),
    FigureSpec("active_operators", fig_active_operators, "Operators in the active set per round."),
    FigureSpec(
        "throughput",
        fig_throughput,
        "Tasks settled per round, and p50/p90/p99 latency of settled tasks by kind.",
    ),
    FigureSpec(
        "slashes",
        fig_slashes,
        "Faults per round: safety faults (a wrong result, slashed) and liveness faults"
        " (no result in time, unpaid), operators and coprocessors.",
    ),
)


def save_figures(data: RunData, directory: Path) -> list[tuple[FigureSpec, Path]]:
    """Draw every figure into ``directory``; return each spec with its PNG path."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for spec in FIGURES:
        path = directory / f"{spec.name}.png"
        spec.draw(data).savefig(path, format="png", metadata={"Software": None})
        saved.append((spec, path))
    return saved


# --- tables ---------------------------------------------------------------------------------


def inequality_row(values: Sequence[float]) -> list[str]:
    """Gini, Nakamoto 1/3 and 1/2, HHI, Theil, top-5 share of ``values``."""
    if len(values) == 0 or sum(values) <= 0:
        return ["–"] * 6
    v = np.asarray(values, dtype=float)
    return [
        f"{metrics.compute_gini(v):.3f}",
        str(metrics.compute_nakamoto_coefficient(v, 1 / 3)),
        str(metrics.compute_nakamoto_coefficient(v, 1 / 2)),
        f"{metrics.compute_hhi(v):.3f}",
        f"{float(metrics.compute_theil_index(v)):.3f}",
        f"{float(metrics.compute_top_k_share(v, 5)):.3f}",
    ]


def metrics_table(data: RunData) -> str:
    """HTML table of the inequality measures and the funding split."""
    head = ["", "Gini", "Nakamoto 1/3", "Nakamoto 1/2", "HHI", "Theil", "top-5 share"]
    rows = [
        ["final stake", *inequality_row(list(final_stakes(data).values()))],
        ["total rewards", *inequality_row(list(total_rewards(data).values()))],
    ]
    ops = data.role("operator")
    issuance = [r["rewards"] for r in ops]
    fees = [r["fees"] for r in ops]
    if sum(issuance) + sum(fees) > 0:
        fee_share, issuance_share = metrics.compute_funding_shares(issuance, fees)
        funding = f"fee-funded {float(fee_share):.3f}, issuance-funded {float(issuance_share):.3f}"
    else:
        funding = "no rewards"
    table = html_table(head, rows)
    return f"{table}\n<p>Operator rewards: {html.escape(funding)}.</p>"


def round_fairness(data: RunData) -> list[RoundFairness]:
    """Each round's allocation audit (the round-level columns of its first row)."""
    seen: dict[int, RoundFairness] = {}
    for r in data.rounds:
        if r["round"] not in seen:
            seen[r["round"]] = RoundFairness(
                r["round"],
                r["selection_tasks"],
                p_value=r["selection_p"],
                max_dev=r["selection_max_dev"],
                max_dev_operator=r["selection_max_dev_operator"],
                auction_checked=r["auction_checked"],
                auction_mismatches=r["auction_mismatches"],
            )
    return [seen[n] for n in sorted(seen)]


def fairness_html(data: RunData, alpha: float = ALPHA) -> str:
    """The "Allocation fairness" table, its reading, and a warning when allocation drifts."""
    s = summarize(round_fairness(data), alpha)
    min_p = "–" if s.min_p is None else f"{s.min_p:.3g} (round {s.min_p_round})"
    if s.max_dev is None:
        deviation = "–"
    else:
        deviation = f"{s.max_dev:+.2f} sd, {s.max_dev_operator} (round {s.max_dev_round})"
    if s.auction_checked is None:
        auction = ["not checked", "–"]
    else:
        auction = [str(s.auction_checked), str(s.auction_mismatches)]
    head = [
        "rounds tested",
        f"rounds with p < {alpha:g}",
        "min p",
        "largest deviation",
        "auctions re-cleared",
        "auction mismatches",
    ]
    table = html_table(
        head, [[s.rounds_tested, len(s.rounds_drifting), min_p, deviation, *auction]]
    )
    reading = (
        "Each round's first assignments per operator are tested against the stake-weighted"
        " selection probabilities (Pearson chi-square over the active operators; cells"
        f" expected to get fewer than {MIN_EXPECTED:g} tasks are merged; largest deviation ="
        f" (observed - expected) / sqrt(expected)). A fair round has p < {alpha:g} with"
        f" probability {alpha:g}, so a fair run of {s.rounds_tested} tested rounds shows at"
        f" least one such round with probability {s.false_alarm:.1%}. Held to {alpha:g} over"
        f" the whole run (Bonferroni: min p < {alpha:g} / {max(s.rounds_tested, 1)}): "
        f"{'drifts' if s.bonferroni else 'no drift'}. Each auctioned assignment is re-cleared"
        " by the clearing rule; any mismatch is a certain violation (p = 0)."
    )
    if data.rounds and not any(r["audited"] for r in data.rounds):
        reading = (
            "This rounds.csv was written before the allocation audit: remove it and run"
            " stakeray report again to rebuild it from the ledger."
        )
    elif s.auction_checked is None:
        reading += " The auctions were not re-cleared: no config.json prices the coprocessors."
    parts = [table, f"<p>{html.escape(reading)}</p>"]
    if s.drifting:
        warning = "Allocation drifts from stake:"
        if s.rounds_drifting:
            rounds = ", ".join(map(str, s.rounds_drifting))
            warning += f" selection p < {alpha:g} in round(s) {rounds};"
        if s.auction_mismatches:
            warning += f" {s.auction_mismatches} auctioned assignment(s) differ from the rule;"
        warning = warning.rstrip(";") + "."
        parts.append(f'<p class="warning"><strong>Warning:</strong> {html.escape(warning)}</p>')
    return "\n".join(parts)


def html_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain HTML table with escaped cells."""
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    lines = [f"<table>\n<tr>{cells}</tr>"]
    for row in rows:
        lines.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def summary_table(summary: dict[str, Any]) -> str:
    """summary.json as a two-column table (amounts also shown in tokens)."""
    if not summary:
        return "<p>No summary.json in this run directory.</p>"
    rows = []
    for key, value in summary.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        if key in {"minted", "burned", "total_supply", "treasury"}:
            shown = f"{tok(int(value)):,.4f} tokens ({value})"
        rows.append([key, shown])
    return html_table(["field", "value"], rows)


# --- the page -------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; max-width: 1050px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 14px; }
figure { margin: 2em 0; }
figure img { max-width: 100%; }
figcaption { font-size: 14px; color: #444; }
.warning { color: #a00; }
"""

# Sets data-images-loaded on <body> to the count of images that decoded (for headless checks).
LOAD_SCRIPT = """
window.addEventListener("load", function () {
  var ok = Array.prototype.filter.call(document.images, function (img) {
    return img.complete && img.naturalWidth > 0;
  });
  document.body.dataset.imagesLoaded = String(ok.length);
});
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def embed_figure(name: str, png: Path, caption: str) -> str:
    """One <figure> with the PNG embedded as a data URI and an escaped caption."""
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    return (
        f'<figure id="{name}">'
        f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(name)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def figure_html(spec: FigureSpec, png: Path) -> str:
    """One <figure> with the PNG embedded as a data URI."""
    return embed_figure(spec.name, png, spec.caption)


def comparison_html(result: dict[str, Any] | None) -> str:
    """The "live against simulated" section (``stakeray compare``), or nothing."""
    if result is None:
        return ""
    parts = [
        "<h2>Live against simulated</h2>",
        f"<p>simulated run: {html.escape(str(result['simulated']))}"
        " (the same network on the market engine with drawn outcomes;"
        " bounds in docs/experiments.md)</p>",
    ]
    for role, data in result["roles"].items():
        rows = [
            [
                html.escape(p["name"]),
                f"{p['live_share']:.4%}",
                f"{p['sim_share']:.4%}",
                p["live_slashes"],
                p["sim_slashes"],
            ]
            for p in data["participants"]
        ]
        head = [role, "live share", "simulated share", "live slashes", "simulated slashes"]
        parts.append(html_table(head, rows))
        gini, nakamoto = data["gini"], data["nakamoto"]
        parts.append(
            f"<p>Gini {gini[0]:.4f} / {gini[1]:.4f}; Nakamoto {nakamoto[0]} / {nakamoto[1]};"
            f" divergence (total variation) {data['divergence']:.4f}</p>"
        )
    refunds, hashes = result["refunds"], result["state_hash"]
    same = "identical" if hashes[0] == hashes[1] else "different"
    parts.append(f"<p>refunded or failed tasks {refunds[0]} / {refunds[1]}; ledgers {same}</p>")
    return "\n".join(parts)


def distribution_html(run_dir: Path) -> str:
    """The explorer's distribution section (every staker, stake and rewards, Lorenz curves,
    Gini / HHI / Nakamoto over rounds): the same code as ``stakeray explorer``'s page."""
    from cluster.analysis.explorer_pages import Source, distribution_page
    from cluster.analysis.live_history import replay_history

    ledger_dir = run_dir / LEDGER_DIR
    page = distribution_page(
        Source(replay_history(ledger_dir), run_dir, ledger_dir), {}, static=True
    )
    return '<section class="distribution">\n' + "\n".join(page.blocks) + "\n</section>"


def render_html(
    data: RunData,
    figures: Sequence[tuple[FigureSpec, Path]],
    comparison: dict[str, Any] | None = None,
    distribution: str = "",
) -> str:
    """The whole self-contained page."""
    title = html.escape(f"stakeray run report: {data.name}")
    body = "\n".join(figure_html(spec, png) for spec, png in figures)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{title}</title>
<style>{STYLE}</style>
<script>{LOAD_SCRIPT}</script>
</head>
<body data-figures="{len(figures)}">
<h1>{title}</h1>
{distribution}
<h2>Summary</h2>
{summary_table(data.summary)}
<h2>Inequality and funding</h2>
{metrics_table(data)}
<h2>Allocation fairness</h2>
{fairness_html(data)}
{comparison_html(comparison)}
<h2>Figures</h2>
{body}
</body>
</html>
"""


def write_report(run_dir: Path, rounds_per_year: int = ROUNDS_PER_YEAR) -> Path:
    """Write ``run_dir/report.html`` and ``run_dir/figures/*.png``; return the HTML path."""
    run_dir = Path(run_dir)
    data = load_run(run_dir, rounds_per_year)
    figures = save_figures(data, run_dir / FIGURES_DIR)
    path = run_dir / REPORT_NAME
    distribution = distribution_html(run_dir) if (run_dir / LEDGER_DIR).is_dir() else ""
    path.write_text(render_html(data, figures, read_comparison(run_dir), distribution))
    return path
