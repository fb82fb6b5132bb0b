"""The figures of Rodikov (2025), redrawn from a ``stakeray simulate`` output directory.

``write_experiment_report(out)`` reads what :func:`cluster.simulate.run_experiment`
wrote (``summary.json``, ``rewards.csv``, ``rounds.csv`` and
``points/<name>=<value>-seed=<seed>.npz``), draws the paper's Figures 2, 3, 4,
5, 6, 7 and 9 as ``out/figures/fig*.png`` and writes one self-contained
``out/report.html``: a table of the sweep rows, then every figure embedded as a
data URI with a caption saying what the paper shows and what ours shows.
Figures drawn from one point use the representative sweep value (a slashing
factor of 0.03 when swept, else the middle value) and the lowest seed. A figure
whose data is missing is drawn as a small "no data" placeholder.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from cluster.analysis.report import (
    CSP,
    FIGURES_DIR,
    LOAD_SCRIPT,
    REPORT_NAME,
    STYLE,
    embed_figure,
    html_table,
    new_figure,
    no_data,
    read_csv,
)
from protocol.metrics import compute_correlation
from protocol.units import PPM

REPRESENTATIVE_SLASHING = 30_000  # s = 0.03 in PPM, the paper's moderate setting
ROLLING = 20  # rounds in Figure 3's rolling mean
WINDOW = 100  # rounds compared at the start and the end (Figure 3)
SUBSET = 10  # operators (Figure 3) and coprocessors (Figure 7) drawn
MAX_POINTS = 20_000  # scatter points per series (a fixed subsample beyond)
SUMMARY_COLUMNS = (
    "seed",
    "active_operators_final",
    "cumulative_reward_final",
    "reputation_reward_corr",
    "gini_rewards",
    "tasks",
    "elapsed_s",
)


# --- the experiment's data --------------------------------------------------------------


@dataclass
class ExperimentData:
    """Everything the figures read. Sweep values are kept as the strings of file names."""

    name: str  # the swept parameter
    values: list[str]  # in sweep order
    summary: dict[str, Any]
    rounds: list[dict[str, str]]
    rewards: list[dict[str, str]]
    points: Path
    _series: dict[tuple[str, int], dict[str, np.ndarray] | None] = field(default_factory=dict)

    def label(self, value: str) -> str:
        """``s = 0.03`` for a slashing factor, else ``name = value``."""
        if self.name == "slash_fraction" and not np.isnan(_number(value)):
            return f"s = {_number(value) / PPM:g}"
        return f"{self.name} = {value}"

    def representative(self) -> str | None:
        """The sweep value drawn alone: s = 0.03 when present, else the middle value."""
        if not self.values:
            return None
        for v in self.values:
            if self.name == "slash_fraction" and _number(v) == REPRESENTATIVE_SLASHING:
                return v
        return self.values[len(self.values) // 2]

    def seeds(self, value: str) -> list[int]:
        """Seeds with an array file for ``value``, ascending."""
        found = self.points.glob(f"{self.name}={value}-seed=*.npz")
        return sorted(int(p.stem.rsplit("=", 1)[1]) for p in found)

    def series(self, value: str | None) -> dict[str, np.ndarray] | None:
        """The per-round arrays of ``value`` at its lowest seed (None when absent)."""
        if value is None or not (seeds := self.seeds(value)):
            return None
        key = (value, seeds[0])
        if key not in self._series:
            path = self.points / f"{self.name}={value}-seed={seeds[0]}.npz"
            try:
                with np.load(path) as npz:
                    self._series[key] = {k: npz[k] for k in npz.files}
            except (OSError, ValueError):
                self._series[key] = None
        return self._series[key]

    def role(self, role: str, value: str) -> list[dict[str, str]]:
        """rewards.csv rows of one role at one sweep value (every seed)."""
        return [r for r in self.rewards if r["role"] == role and r.get(self.name) == value]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def load_experiment_output(out: Path) -> ExperimentData:
    """Read an output directory; whatever is missing reads as empty."""
    path = out / "summary.json"
    try:
        summary = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        summary = {}
    rows = summary.get("sweep") or []
    rounds = read_csv(out / "rounds.csv")
    rewards = read_csv(out / "rewards.csv")
    # The swept parameter is the first column of every row the simulator writes.
    first = rows[0] if rows else (rounds[0] if rounds else (rewards[0] if rewards else {}))
    name = next(iter(first), "slash_fraction")
    values: list[str] = []
    for r in [*rows, *rounds, *rewards]:
        if name in r and str(r[name]) not in values:
            values.append(str(r[name]))
    return ExperimentData(name, values, summary, rounds, rewards, out / "points")


def _subsample(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` points, fixed for reproducible figures."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def _evenly(order: np.ndarray, k: int) -> np.ndarray:
    """``k`` entries of ``order`` at evenly spaced ranks (all when fewer)."""
    if len(order) <= k:
        return order
    return order[np.linspace(0, len(order) - 1, k).round().astype(int)]


def _cv(values: np.ndarray) -> float:
    mean = float(np.mean(values)) if len(values) else 0.0
    return float(np.std(values)) / mean if mean > 0 else float("nan")


# --- figures: each returns the figure and what ours shows ---------------------------------

Drawn = tuple[Figure, str]


def fig2_active_and_cumulative(data: ExperimentData) -> Drawn:
    """Active operators (top) and cumulative reward (bottom) per round, one line per value."""
    title = "Fig. 2: active operators and cumulative reward"
    by_value: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in data.rounds:
        try:
            point = (float(r["active_operators"]), float(r["cumulative_reward"]))
            by_value[r[data.name]][int(r["round"])].append(point)
        except (KeyError, ValueError):
            continue
    if not by_value:
        return no_data(title, "no rounds.csv"), "no per-round data."
    fig = new_figure(9.0, 7.0)
    top, bottom = fig.subplots(2, 1, sharex=True)
    finals = []
    for i, value in enumerate(v for v in data.values if v in by_value):
        rounds = sorted(by_value[value])
        means = np.array([np.mean(by_value[value][n], axis=0) for n in rounds])
        color = f"C{i % 10}"
        top.plot(rounds, means[:, 0], color=color, label=data.label(value))
        bottom.plot(rounds, means[:, 1], color=color, label=data.label(value))
        finals.append(f"{data.label(value)}: {means[-1, 0]:.0f} active, {means[-1, 1]:,.0f} tokens")
    top.set_ylabel("active operators")
    top.set_ylim(bottom=0)
    top.set_title("active operators per round")
    top.legend(fontsize=8)
    bottom.set_xlabel("round")
    bottom.set_ylabel("cumulative reward (tokens)")
    bottom.set_title("cumulative reward (issuance + fees)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    seeds = {r.get("seed") for r in data.rounds}
    mean = f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""
    return fig, f"at the last round{mean}: " + "; ".join(finals) + "."


def fig3_operator_rewards(data: ExperimentData) -> Drawn:
    """Rolling-mean rewards per round of 10 operators chosen evenly by initial rank."""
    title = "Fig. 3: a subset of operators' rewards over time"
    value = data.representative()
    series = data.series(value)
    if value is None or series is None or series["operator_reward"].size == 0:
        return no_data(title, "no operator_reward arrays"), "no per-round operator rewards."
    rewards = series["operator_reward"]
    n_rounds = rewards.shape[0]
    window = max(1, min(WINDOW, n_rounds // 2))
    first, last = rewards[:window].mean(axis=0), rewards[-window:].mean(axis=0)
    order = np.argsort(-first, kind="stable")  # rank 1: the highest early reward
    chosen = _evenly(order, SUBSET)
    roll = max(1, min(ROLLING, n_rounds))
    kernel = np.ones(roll) / roll
    fig = new_figure(10.0, 4.5)
    ax = fig.add_subplot()
    x = np.arange(roll, n_rounds + 1)
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    for o in chosen:
        smooth = np.convolve(rewards[:, o], kernel, mode="valid")
        ax.plot(x, smooth, label=f"op {o} (rank {rank[o]})")
    ax.set_xlabel("round")
    ax.set_ylabel(f"reward per round, {roll}-round mean (tokens)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{title.split(': ')[1]} ({data.label(value)})")
    ax.legend(
        fontsize=7,
        title="initial rank",
        title_fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    fig.tight_layout()
    alive = first > 0
    late = last > 0
    ours = (
        f"{data.label(value)}, {len(chosen)} of {rewards.shape[1]} operators at evenly spaced"
        f" ranks of their mean reward in the first {window} rounds; coefficient of variation"
        f" across operators (earning) of the mean reward per round: {_cv(first[alive]):.3f}"
        f" in the first {window} rounds, {_cv(last[late]):.3f} in the last {window}"
        f" ({int(late.sum())} operators still earning)."
    )
    return fig, ours


def fig4_reputation_reward(data: ExperimentData) -> Drawn:
    """Operator reputation against total reward, one panel per sweep value."""
    title = "Fig. 4: operator reputation vs total reward"
    groups = [(v, data.role("operator", v)) for v in data.values]
    groups = [(v, rows) for v, rows in groups if rows]
    if not groups:
        return no_data(title, "no operators in rewards.csv"), "no operator rewards."
    cols = min(3, len(groups))
    rows_n = -(-len(groups) // cols)
    fig = new_figure(4.0 * cols, 3.4 * rows_n)
    axes = np.atleast_1d(fig.subplots(rows_n, cols, squeeze=False)).ravel()
    found = []
    for i, (value, rows) in enumerate(groups):
        ax = axes[i]
        rep = [float(r["reputation"]) for r in rows]
        rew = [float(r["total_reward"]) for r in rows]
        active = [r.get("active") == "1" for r in rows]
        r = compute_correlation(rep, rew)
        found.append(f"{data.label(value)} r = {r:.2f}")
        for flag, marker, who in ((True, "o", "active"), (False, "x", "inactive")):
            x = [a for a, f in zip(rep, active, strict=True) if f is flag]
            y = [b for b, f in zip(rew, active, strict=True) if f is flag]
            if x:
                ax.scatter(x, y, s=12, marker=marker, color=f"C{i % 10}", label=who)
        ax.set_title(f"{data.label(value)}: Pearson r = {r:.2f}", fontsize=10)
        ax.set_xlabel("final reputation")
        ax.set_ylabel("total reward (tokens)")
        ax.legend(fontsize=7, title=f"r = {r:.2f}", title_fontsize=7)
    for ax in axes[len(groups) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig, "Pearson r per value: " + ", ".join(found) + "."


def fig5_network(data: ExperimentData) -> Drawn:
    """The 5 operators and 10 coprocessors with the most tasks between them."""
    title = "Fig. 5: network of 5 operators and 10 coprocessors"
    value = data.representative()
    series = data.series(value)
    edges = None if series is None else series.get("edges")
    if value is None or edges is None or edges.size == 0 or edges.sum() == 0:
        return no_data(title, "no auctioned tasks"), "no operator-coprocessor edges."
    ops = np.argsort(-edges.sum(axis=1), kind="stable")[:5]
    cops = np.argsort(-edges[ops].sum(axis=0), kind="stable")[:10]
    sub = edges[np.ix_(ops, cops)]
    fig = new_figure(8.0, 6.0)
    ax = fig.add_subplot()
    y_op = np.linspace(0.9, 0.1, len(ops))
    y_cop = np.linspace(0.95, 0.05, len(cops))
    top = max(int(sub.max()), 1)
    norm = LogNorm(vmin=max(1, int(sub[sub > 0].min())), vmax=top) if sub.max() > 1 else None
    norm = norm or Normalize(vmin=0, vmax=top)
    cmap = colormaps["viridis"]
    for a in np.argsort(sub, axis=None):  # heaviest last, drawn on top
        i, j = divmod(int(a), len(cops))
        if sub[i, j] > 0:
            width = 0.5 + 5.5 * sub[i, j] / top
            ax.plot([0, 1], [y_op[i], y_cop[j]], color=cmap(norm(sub[i, j])), lw=width)
    ax.scatter(np.zeros(len(ops)), y_op, s=400, color="C1", zorder=3, edgecolors="black")
    ax.scatter(np.ones(len(cops)), y_cop, s=250, color="C0", zorder=3, edgecolors="black")
    for i, o in enumerate(ops):
        ax.annotate(
            f"op {o}",
            (0, y_op[i]),
            xytext=(-14, 0),
            textcoords="offset points",
            ha="right",
            va="center",
        )
    for j, c in enumerate(cops):
        ax.annotate(
            f"cop {c}", (1, y_cop[j]), xytext=(12, 0), textcoords="offset points", va="center"
        )
    ax.set_xlim(-0.35, 1.3)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="tasks assigned")
    ax.set_title(f"operators (left) to coprocessors (right), {data.label(value)}")
    fig.tight_layout()
    share = 100 * sub.sum() / edges.sum()
    ours = (
        f"{data.label(value)}: these 15 carry {int(sub.sum()):,} of {int(edges.sum()):,}"
        f" auctioned tasks ({share:.1f} %); the heaviest edge has {top:,} tasks, and"
        f" {int((sub > 0).sum())} of the {sub.size} pairs traded at all."
    )
    return fig, ours


def _load_reward(series: dict[str, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
    if series is None or "coprocessor_load" not in series or "coprocessor_reward" not in series:
        return None
    load = np.asarray(series["coprocessor_load"], dtype=float).ravel()
    reward = np.asarray(series["coprocessor_reward"], dtype=float).ravel()
    if load.size == 0 or load.size != reward.size:
        return None
    return load, reward


def _binned(
    load: np.ndarray, reward: np.ndarray, bins: int = 10
) -> tuple[list[float], list[float], list[float], list[int]]:
    """Mean load, and mean, std and count of the reward, in each non-empty load bin."""
    edges = np.linspace(0.0, max(1.0, float(load.max())), bins + 1)
    which = np.clip(np.digitize(load, edges) - 1, 0, bins - 1)
    centres, means, stds, counts = [], [], [], []
    for b in range(bins):
        inside = reward[which == b]
        if inside.size:
            centres.append(float(load[which == b].mean()))
            means.append(float(inside.mean()))
            stds.append(float(inside.std()))
            counts.append(int(inside.size))
    return centres, means, stds, counts


def fig6_load_reward(data: ExperimentData) -> Drawn:
    """Per coprocessor and round: reward against load, with binned mean and std."""
    title = "Fig. 6: coprocessor load vs reward"
    value = data.representative()
    pair = _load_reward(data.series(value))
    if value is None or pair is None:
        return no_data(title, "no coprocessor load arrays"), "no coprocessor load data."
    load, reward = pair
    keep = _subsample(load.size)
    fig = new_figure(9.0, 4.8)
    ax = fig.add_subplot()
    ax.scatter(load[keep], reward[keep], s=3, alpha=0.25, color="C0", label="coprocessor-round")
    centres, means, stds, counts = _binned(load, reward)
    ax.errorbar(
        centres, means, yerr=stds, color="C3", marker="o", capsize=4, lw=2, label="bin mean ± std"
    )
    ax.set_xlabel("load at the end of the round's auction (share of capacity)")
    ax.set_ylabel("reward in the round (tokens)")
    ax.set_title(f"{title.split(': ')[1]}, {data.label(value)}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    r = compute_correlation(load.tolist(), reward.tolist())
    ours = (
        f"{data.label(value)}, {load.size:,} coprocessor-rounds: Pearson r(load, reward) = {r:.2f};"
        f" reward std {stds[0]:.2f} tokens in the lowest load bin (mean {means[0]:.2f},"
        f" {counts[0]:,} points) and {stds[-1]:.2f} in the highest (mean {means[-1]:.2f},"
        f" {counts[-1]:,} points)."
    )
    return fig, ours


def fig7_coprocessor_tasks(data: ExperimentData) -> Drawn:
    """Tasks won per round by 10 coprocessors (evenly by total), as a heat map."""
    title = "Fig. 7: tasks assigned to coprocessors over time"
    value = data.representative()
    series = data.series(value)
    tasks = None if series is None else series.get("coprocessor_tasks")
    if value is None or tasks is None or tasks.size == 0 or tasks.sum() == 0:
        return no_data(title, "no auctioned tasks"), "no coprocessor task counts."
    totals = tasks.sum(axis=0)
    order = np.argsort(-totals, kind="stable")
    chosen = _evenly(order[totals[order] > 0], SUBSET)  # among those that won any
    grid = tasks[:, chosen].T.astype(float)
    fig = new_figure(10.0, 4.2)
    ax = fig.add_subplot()
    image = ax.imshow(
        grid,
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        extent=(0.5, grid.shape[1] + 0.5, len(chosen) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(chosen)), [f"cop {c} ({int(totals[c]):,})" for c in chosen], fontsize=8)
    ax.set_xlabel("round")
    ax.set_title(f"tasks won per round by {len(chosen)} coprocessors (total), {data.label(value)}")
    fig.colorbar(image, ax=ax, label="tasks in the round")
    fig.tight_layout()
    per_round = tasks[:, chosen]
    most, least = int(totals[chosen].max()), int(totals[chosen].min())
    winners = int((totals > 0).sum())
    ours = (
        f"{data.label(value)}: {winners} of {tasks.shape[1]} coprocessors won any task; the"
        f" {len(chosen)} drawn sit at evenly spaced ranks among them ({most:,} tasks down to"
        f" {least:,}); per round they won"
        f" {per_round.mean():.1f} tasks on average, at most {int(per_round.max())}."
    )
    return fig, ours


def fig9_load_by_value(data: ExperimentData) -> Drawn:
    """Load against reward of every coprocessor-round, coloured by the sweep value."""
    title = "Fig. 9: simulated coprocessor load"
    pairs = [(v, _load_reward(data.series(v))) for v in data.values]
    found = [(v, p) for v, p in pairs if p is not None]
    if not found:
        return no_data(title, "no coprocessor load arrays"), "no coprocessor load data."
    fig = new_figure(9.0, 4.8)
    ax = fig.add_subplot()
    per = max(1, MAX_POINTS // len(found))
    notes = []
    for i, (value, (load, reward)) in enumerate(found):
        keep = _subsample(load.size, per)
        color = f"C{i % 10}"
        ax.scatter(load[keep], reward[keep], s=3, alpha=0.3, color=color, label=data.label(value))
        centres, means, _, _ = _binned(load, reward)
        ax.plot(centres, means, color=color, marker="o", lw=1.5)
        r = compute_correlation(load.tolist(), reward.tolist())
        notes.append(
            f"{data.label(value)}: mean load {load.mean():.2f}, r(load, reward) = {r:.2f},"
            f" {100 * (load > 0).mean():.0f} % of coprocessor-rounds loaded"
        )
    ax.set_xlabel("load at the end of the round's auction (share of capacity)")
    ax.set_ylabel("reward in the round (tokens)")
    ax.set_title("coprocessor load vs reward by sweep value (lines: binned means)")
    ax.legend(fontsize=8, markerscale=4)
    fig.tight_layout()
    return fig, "; ".join(notes) + "."


@dataclass(frozen=True)
class PaperFigure:
    """One figure of the report: file stem, drawing function, what the paper shows."""

    name: str
    draw: Callable[[ExperimentData], Drawn]
    paper: str


PAPER_FIGURES = (
    PaperFigure(
        "fig2_active_and_cumulative",
        fig2_active_and_cumulative,
        "Fig. 2: at s = 0.2 and 0.5 active operators fall rapidly; s = 0.01 keeps more active"
        " but deters too little; s = 0.03 and 0.1 grow cumulative reward steadily without large"
        " drops in activity (no counts reported).",
    ),
    PaperFigure(
        "fig3_operator_rewards",
        fig3_operator_rewards,
        "Fig. 3: a subset of operators' rewards are diverse at first and converge toward"
        " uniform, attributed to delegating heavy tasks to coprocessors.",
    ),
    PaperFigure(
        "fig4_reputation_reward",
        fig4_reputation_reward,
        "Fig. 4: higher reputation goes with higher total reward (no coefficient reported).",
    ),
    PaperFigure(
        "fig5_network",
        fig5_network,
        "Fig. 5: task assignments from 5 operators to 10 coprocessors, coloured by volume"
        " (qualitative).",
    ),
    PaperFigure(
        "fig6_load_reward",
        fig6_load_reward,
        "Fig. 6: the reward mechanism works overall, but reward variance is large, especially"
        " at high load.",
    ),
    PaperFigure(
        "fig7_coprocessor_tasks",
        fig7_coprocessor_tasks,
        "Fig. 7: tasks assigned to a subset of coprocessors over time, colour-coded"
        " (utilisation dynamics; qualitative).",
    ),
    PaperFigure(
        "fig9_load_by_value",
        fig9_load_by_value,
        "Fig. 9: simulated coprocessor load, a scatter of load vs reward and alpha (no values"
        " reported).",
    ),
)


def save_experiment_figures(
    data: ExperimentData, directory: Path
) -> list[tuple[PaperFigure, Path, str]]:
    """Draw every figure into ``directory``; return each with its PNG and caption."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for spec in PAPER_FIGURES:
        figure, ours = spec.draw(data)
        path = directory / f"{spec.name}.png"
        figure.savefig(path, format="png", metadata={"Software": None})
        saved.append((spec, path, f"Paper {spec.paper} Ours: {ours}"))
    return saved


# --- the page ---------------------------------------------------------------------------------


def sweep_table(data: ExperimentData) -> str:
    """The sweep rows of summary.json, one per value and seed."""
    rows = data.summary.get("sweep") or []
    if not rows:
        return "<p>No summary.json sweep rows in this directory.</p>"
    head = [data.name, *(["slashing"] if data.name == "slash_fraction" else []), *SUMMARY_COLUMNS]
    body = []
    for row in rows:
        cells = [row.get(h) for h in head]
        body.append(
            ["–" if c is None else (f"{c:,.3f}" if isinstance(c, float) else c) for c in cells]
        )
    return html_table(head, body)


def render_experiment_html(
    data: ExperimentData, title: str, figures: list[tuple[PaperFigure, Path, str]]
) -> str:
    """The whole self-contained page."""
    heading = html.escape(title)
    body = "\n".join(embed_figure(spec.name, png, caption) for spec, png, caption in figures)
    values = ", ".join(data.label(v) for v in data.values) or "none"
    representative = data.representative()
    single = "no sweep value" if representative is None else data.label(representative)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{heading}</title>
<style>{STYLE}</style>
<script>{LOAD_SCRIPT}</script>
</head>
<body data-figures="{len(figures)}">
<h1>{heading}</h1>
<p>Rodikov (2025)'s Figures 2-7 and 9, redrawn from this sweep ({html.escape(values)}).
Single-point figures use {html.escape(single)} at its lowest seed.</p>
<h2>Sweep</h2>
{sweep_table(data)}
<h2>Figures</h2>
{body}
</body>
</html>
"""


def write_experiment_report(out: Path) -> Path:
    """Write ``out/report.html`` and ``out/figures/fig*.png``; return the HTML path."""
    out = Path(out)
    data = load_experiment_output(out)
    figures = save_experiment_figures(data, out / FIGURES_DIR)
    name = data.summary.get("experiment") or out.resolve().name
    path = out / REPORT_NAME
    path.write_text(render_experiment_html(data, f"stakeray experiment report: {name}", figures))
    return path
