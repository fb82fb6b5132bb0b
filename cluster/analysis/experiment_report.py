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

Across Monte Carlo seeds every sweep point is summarised by the mean of each
metric and a 95 % confidence interval of that mean (:func:`mean_interval`:
Student's t with ``seeds - 1`` degrees of freedom, from a table for 1 to 30
degrees of freedom and 1.96 beyond; scipy is not a dependency). The report
writes them to ``out/points.csv`` (``<metric>_mean``, ``_low``, ``_high`` per
point; ``_low`` and ``_high`` empty with a single seed), shows them in a table
and as error bars (``figures/sweep_intervals.png``, Figure 2's bands).
"""

from __future__ import annotations

import csv
import html
import json
import math
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
POINTS_NAME = "points.csv"  # per sweep point: mean and 95 % interval of every metric
INTERVALS_FIGURE = "sweep_intervals"
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
        """The per-round arrays of ``value`` at its lowest seed (None when absent; kept)."""
        if value is None or not (seeds := self.seeds(value)):
            return None
        key = (value, seeds[0])
        if key not in self._series:
            self._series[key] = self.series_at(value, seeds[0])
        return self._series[key]

    def series_at(self, value: str, seed: int) -> dict[str, np.ndarray] | None:
        """The per-round arrays of ``value`` at ``seed``, read afresh (None when absent)."""
        if (value, seed) in self._series:
            return self._series[(value, seed)]
        path = self.points / f"{self.name}={value}-seed={seed}.npz"
        try:
            with np.load(path) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError):
            return None

    def summary_rounds(self) -> int | None:
        """The number of rounds each point ran (None when no row says)."""
        for row in self.summary.get("sweep") or []:
            if isinstance(row.get("rounds"), int):
                return int(row["rounds"])
        return None

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


# --- intervals across seeds ---------------------------------------------------------------

T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
"""Student's t, two-sided 95 % (the 0.975 quantile), for 1 to 30 degrees of freedom."""


def t95(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom (1.96 beyond 30:
    the normal's, which understates the interval by at most 3 % at 31 dof)."""
    if dof < 1:
        raise ValueError(f"t95: need at least 1 degree of freedom, got {dof}")
    return T95[dof - 1] if dof <= len(T95) else 1.96


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` seeds' values and its 95 % confidence interval (``low`` and
    ``high`` are None with a single seed: there is no interval, only the value)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def half(self) -> float | None:
        return None if self.high is None else self.high - self.mean

    def show(self, fmt: str = ",.3f") -> str:
        """``mean [low, high]``, or the value alone with one seed."""
        if self.low is None or self.high is None:
            return format(self.mean, fmt)
        return f"{self.mean:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"


def mean_interval(values: Any) -> Interval | None:
    """Mean and 95 % confidence interval of the mean of ``values`` (None and NaN dropped):
    ``mean ± t95(n - 1) * s / sqrt(n)`` with ``s`` the sample standard deviation. None
    when nothing is left; no interval (``low = high = None``) with one value."""
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not kept:
        return None
    n = len(kept)
    mean = math.fsum(kept) / n
    if n == 1:
        return Interval(mean, None, None, 1)
    var = math.fsum((v - mean) ** 2 for v in kept) / (n - 1)
    half = t95(n - 1) * math.sqrt(var / n)
    return Interval(mean, mean - half, mean + half, n)


def band(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise mean and 95 % interval of a (seeds x points) array (the mean itself as
    both bounds with one seed)."""
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    half = t95(n - 1) * samples.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Metric:
    """One per-seed measure of a sweep point: its column, what it is, how it is shown."""

    key: str
    label: str
    fmt: str = ",.3f"


ROW_METRICS = (
    Metric("active_operators_final", "active operators at the end", ",.1f"),
    Metric("cumulative_reward_final", "cumulative reward (tokens)", ",.0f"),
    Metric("reputation_reward_corr", "corr(operator reputation, total reward)"),
    Metric("gini_rewards", "Gini of operators' rewards"),
    Metric("gini_stake_final", "Gini of operator stake"),
    Metric("nakamoto_stake_final", "Nakamoto coefficient of stake (1/3)", ",.1f"),
    Metric("redelegations", "bond moves", ",.0f"),
)
"""Metrics of summary.json's rows."""

PARTICIPANT_METRICS = (
    Metric("operator_audit_faults", "audit faults per operator", ",.2f"),
    Metric("coprocessor_winners", "coprocessors that won any task", ",.1f"),
    Metric("coprocessor_safety_faults", "safety faults per coprocessor", ",.2f"),
    Metric("coprocessor_tasks_reward_corr", "corr(coprocessor tasks, reward)"),
    Metric("coprocessor_reputation_reward_corr", "corr(coprocessor reputation, reward)"),
)
"""Metrics of rewards.csv."""

SERIES_METRICS = (
    Metric("operator_reward_cv_first", "Fig. 3: CV of operators' reward, first window"),
    Metric("operator_reward_cv_last", "Fig. 3: CV of operators' reward, last window"),
    Metric("network_top_share", "Fig. 5: share of auctioned tasks the top 5 x 10 carry"),
    Metric("coprocessor_load_reward_corr", "Fig. 6: corr(load, reward) per coprocessor-round"),
    Metric("reward_std_lowest_load", "Fig. 6: reward std in the lowest load bin"),
    Metric("reward_std_highest_load", "Fig. 6: reward std in the highest load bin"),
    Metric("reward_peak_bin_mean", "Fig. 6: highest binned mean reward", ",.2f"),
    Metric("reward_peak_bin_load", "Fig. 6: load of that bin", ",.2f"),
    Metric("reward_full_load_mean", "Fig. 6: mean reward in the highest load bin", ",.2f"),
    Metric("drawn_coprocessor_tasks", "Fig. 7: tasks per round of the 10 drawn", ",.2f"),
    Metric("coprocessor_mean_load", "Fig. 9: mean coprocessor load"),
    Metric("coprocessor_loaded_share", "Fig. 9: share of coprocessor-rounds loaded"),
)
"""Metrics of the per-round arrays (points/*.npz), computed as the figures compute them."""


def checkpoints(rounds: int) -> list[int]:
    """Rounds at which the active set is reported: a tenth, a quarter and half the run."""
    return sorted({r for r in (rounds // 10, rounds // 4, rounds // 2) if 0 < r < rounds})


def _corr(x: list[float], y: list[float]) -> float | None:
    r = compute_correlation(x, y) if len(x) > 1 else float("nan")
    return None if math.isnan(r) else r


def seed_metrics(data: ExperimentData) -> dict[str, dict[int, dict[str, float | None]]]:
    """``{sweep value: {seed: {metric: value}}}`` from every file of the output."""
    found: dict[str, dict[int, dict[str, float | None]]] = defaultdict(lambda: defaultdict(dict))
    for row in data.summary.get("sweep") or []:
        try:
            value, seed = str(row[data.name]), int(row["seed"])
        except (KeyError, TypeError, ValueError):
            continue
        for m in ROW_METRICS:
            if m.key in row:
                found[value][seed][m.key] = row[m.key]
    rounds = data.summary_rounds()
    marks = checkpoints(rounds) if rounds else []
    for r in data.rounds:
        try:
            n = int(r["round"])
            if n in marks:
                active = float(r["active_operators"])
                found[r[data.name]][int(r["seed"])][f"active_at_{n}"] = active
        except (KeyError, ValueError):
            continue
    groups: dict[tuple[str, int, str], list[dict[str, str]]] = defaultdict(list)
    for r in data.rewards:
        try:
            groups[(r[data.name], int(r["seed"]), r["role"])].append(r)
        except (KeyError, ValueError):
            continue
    for (value, seed, role), rows in groups.items():
        try:
            slashes = [float(r["slashes"]) for r in rows]
            tasks = [float(r["tasks"]) for r in rows]
            reward = [float(r["total_reward"]) for r in rows]
            rep = [float(r["reputation"]) for r in rows]
        except (KeyError, ValueError):
            continue
        into = found[value][seed]
        if role == "operator":
            into["operator_audit_faults"] = float(np.mean(slashes))
        elif role == "coprocessor":
            into["coprocessor_winners"] = float(sum(t > 0 for t in tasks))
            into["coprocessor_safety_faults"] = float(np.mean(slashes))
            into["coprocessor_tasks_reward_corr"] = _corr(tasks, reward)
            into["coprocessor_reputation_reward_corr"] = _corr(rep, reward)
    for value in data.values:
        for seed in data.seeds(value):
            series = data.series_at(value, seed)
            if series is not None:
                found[value][seed].update(series_metrics(series))
    return found


def series_metrics(series: dict[str, np.ndarray]) -> dict[str, float | None]:
    """The figures' own numbers for one point and seed (see SERIES_METRICS)."""
    found: dict[str, float | None] = {}
    rewards = series.get("operator_reward")
    if rewards is not None and rewards.size:
        first, last, _ = _early_late(rewards)
        found["operator_reward_cv_first"] = _nan_none(_cv(first[first > 0]))
        found["operator_reward_cv_last"] = _nan_none(_cv(last[last > 0]))
    edges = series.get("edges")
    if edges is not None and edges.size and edges.sum() > 0:
        _, _, sub = _top_network(edges)
        found["network_top_share"] = float(sub.sum() / edges.sum())
    pair = _load_reward(series)
    if pair is not None:
        load, reward = pair
        found["coprocessor_mean_load"] = float(load.mean())
        found["coprocessor_loaded_share"] = float((load > 0).mean())
        found["coprocessor_load_reward_corr"] = _corr(load.tolist(), reward.tolist())
        centres, means, stds, _ = _binned(load, reward)
        peak = int(np.argmax(means))
        found["reward_std_lowest_load"] = stds[0]
        found["reward_std_highest_load"] = stds[-1]
        found["reward_peak_bin_mean"] = means[peak]
        found["reward_peak_bin_load"] = centres[peak]
        found["reward_full_load_mean"] = means[-1]
    tasks = series.get("coprocessor_tasks")
    if tasks is not None and tasks.size and tasks.sum() > 0:
        chosen, _ = _drawn_coprocessors(tasks)
        found["drawn_coprocessor_tasks"] = float(tasks[:, chosen].mean())
    return found


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def point_metrics(data: ExperimentData) -> list[Metric]:
    """Every metric the output has, in a fixed order (checkpoints after the first)."""
    rounds = data.summary_rounds()
    marks = [
        Metric(f"active_at_{n}", f"active operators at round {n:,}", ",.1f")
        for n in (checkpoints(rounds) if rounds else [])
    ]
    return [ROW_METRICS[0], *marks, *ROW_METRICS[1:], *PARTICIPANT_METRICS, *SERIES_METRICS]


@dataclass
class PointIntervals:
    """One sweep value: its seeds and the interval of every metric it has."""

    value: str
    seeds: list[int]
    intervals: dict[str, Interval]


def point_intervals(data: ExperimentData) -> list[PointIntervals]:
    """Mean and 95 % interval over seeds of every metric, per sweep value in sweep order."""
    per_seed = seed_metrics(data)
    metrics = point_metrics(data)
    points = []
    for value in data.values:
        seeds = per_seed.get(value, {})
        if not seeds:
            continue
        intervals = {}
        for m in metrics:
            found = mean_interval(seeds[s].get(m.key) for s in sorted(seeds))
            if found is not None:
                intervals[m.key] = found
        points.append(PointIntervals(value, sorted(seeds), intervals))
    return points


def _plain(x: float | None) -> str:
    return "" if x is None else repr(round(x, 6))


def write_points_csv(data: ExperimentData, points: list[PointIntervals], path: Path) -> None:
    """One row per sweep point: its value (and slashing factor), the number of seeds, and
    ``<metric>_mean``, ``_low``, ``_high`` of every metric (bounds empty with one seed)."""
    metrics = [m for m in point_metrics(data) if any(m.key in p.intervals for p in points)]
    head = [data.name, *(["slashing"] if data.name == "slash_fraction" else []), "seeds"]
    head += [f"{m.key}_{part}" for m in metrics for part in ("mean", "low", "high")]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(head)
        for p in points:
            row: list[Any] = [p.value]
            if data.name == "slash_fraction":
                row.append(_plain(_number(p.value) / PPM))
            row.append(len(p.seeds))
            for m in metrics:
                i = p.intervals.get(m.key)
                row += (
                    ["", "", ""] if i is None else [_plain(i.mean), _plain(i.low), _plain(i.high)]
                )
            writer.writerow(row)


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
    banded = False
    for i, value in enumerate(v for v in data.values if v in by_value):
        rounds = sorted(by_value[value])
        # Per round: mean over seeds and its 95 % interval (shaded with two seeds or more).
        stats = [[mean_interval(c) for c in zip(*by_value[value][n], strict=True)] for n in rounds]
        means = np.array([[c.mean for c in row] for row in stats])
        color = f"C{i % 10}"
        for k, ax in enumerate((top, bottom)):
            ax.plot(rounds, means[:, k], color=color, label=data.label(value))
            if all(row[k].low is not None for row in stats):
                low = [row[k].low for row in stats]
                high = [row[k].high for row in stats]
                ax.fill_between(rounds, low, high, color=color, alpha=0.2, lw=0)
                banded = True
        last = stats[-1]
        finals.append(
            f"{data.label(value)}: {last[0].show(',.1f')} active, {last[1].show(',.0f')} tokens"
        )
    top.set_ylabel("active operators")
    top.set_ylim(bottom=0)
    shaded = " (shaded: 95 % interval of the mean over seeds)" if banded else ""
    top.set_title(f"active operators per round{shaded}")
    top.legend(fontsize=8)
    bottom.set_xlabel("round")
    bottom.set_ylabel("cumulative reward (tokens)")
    bottom.set_title("cumulative reward (issuance + fees)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    seeds = {r.get("seed") for r in data.rounds}
    mean = f" (mean of {len(seeds)} seeds [95 % interval])" if len(seeds) > 1 else ""
    return fig, f"at the last round{mean}: " + "; ".join(finals) + "."


def _early_late(rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Each operator's mean reward per round in the first and the last window, and the
    window (``WINDOW`` rounds, at most half the run)."""
    window = max(1, min(WINDOW, rewards.shape[0] // 2))
    return rewards[:window].mean(axis=0), rewards[-window:].mean(axis=0), window


def fig3_operator_rewards(data: ExperimentData) -> Drawn:
    """Rolling-mean rewards per round of 10 operators chosen evenly by initial rank."""
    title = "Fig. 3: a subset of operators' rewards over time"
    value = data.representative()
    series = data.series(value)
    if value is None or series is None or series["operator_reward"].size == 0:
        return no_data(title, "no operator_reward arrays"), "no per-round operator rewards."
    rewards = series["operator_reward"]
    n_rounds = rewards.shape[0]
    first, last, window = _early_late(rewards)
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
        per_seed = defaultdict(lambda: ([], []))
        for row in rows:
            per_seed[row.get("seed")][0].append(float(row["reputation"]))
            per_seed[row.get("seed")][1].append(float(row["total_reward"]))
        seeds_r = mean_interval(_corr(x, y) for x, y in per_seed.values())
        if len(per_seed) > 1 and seeds_r is not None:
            found.append(
                f"{data.label(value)} r = {r:.2f} pooled, {seeds_r.show('.2f')} over"
                f" {len(per_seed)} seeds"
            )
        else:
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
    return fig, "Pearson r per value: " + "; ".join(found) + "."


def _top_network(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 5 operators with the most auctioned tasks, the 10 coprocessors with the most
    of theirs, and the tasks between them."""
    ops = np.argsort(-edges.sum(axis=1), kind="stable")[:5]
    cops = np.argsort(-edges[ops].sum(axis=0), kind="stable")[:10]
    return ops, cops, edges[np.ix_(ops, cops)]


def fig5_network(data: ExperimentData) -> Drawn:
    """The 5 operators and 10 coprocessors with the most tasks between them."""
    title = "Fig. 5: network of 5 operators and 10 coprocessors"
    value = data.representative()
    series = data.series(value)
    edges = None if series is None else series.get("edges")
    if value is None or edges is None or edges.size == 0 or edges.sum() == 0:
        return no_data(title, "no auctioned tasks"), "no operator-coprocessor edges."
    ops, cops, sub = _top_network(edges)
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


def _drawn_coprocessors(tasks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``SUBSET`` coprocessors at evenly spaced ranks of their total among those that won
    any task, and every coprocessor's total."""
    totals = tasks.sum(axis=0)
    order = np.argsort(-totals, kind="stable")
    return _evenly(order[totals[order] > 0], SUBSET), totals


def fig7_coprocessor_tasks(data: ExperimentData) -> Drawn:
    """Tasks won per round by 10 coprocessors (evenly by total), as a heat map."""
    title = "Fig. 7: tasks assigned to coprocessors over time"
    value = data.representative()
    series = data.series(value)
    tasks = None if series is None else series.get("coprocessor_tasks")
    if value is None or tasks is None or tasks.size == 0 or tasks.sum() == 0:
        return no_data(title, "no auctioned tasks"), "no coprocessor task counts."
    chosen, totals = _drawn_coprocessors(tasks)
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


INTERVAL_PANELS = (
    "active_operators_final",
    "cumulative_reward_final",
    "reputation_reward_corr",
    "gini_rewards",
)


def intervals_figure(data: ExperimentData, points: list[PointIntervals]) -> Drawn:
    """The main metrics per sweep value: mean over seeds with 95 % error bars."""
    title = "the sweep: mean and 95 % interval over seeds"
    if not points:
        return no_data(title, "no sweep rows"), "no sweep rows."
    labels = {m.key: m.label for m in point_metrics(data)}
    fig = new_figure(9.0, 6.5)
    axes = fig.subplots(2, 2).ravel()
    x = np.arange(len(points))
    for ax, key in zip(axes, INTERVAL_PANELS, strict=True):
        got = [(k, p.intervals[key]) for k, p in enumerate(points) if key in p.intervals]
        if got:
            xs = [x[k] for k, _ in got]
            ys = [i.mean for _, i in got]
            err = np.array([[0.0, 0.0] if i.half is None else [i.half, i.half] for _, i in got]).T
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=5, color="C0", lw=1.5)
        ax.set_xticks(x, [data.label(p.value) for p in points], fontsize=8)
        ax.set_title(labels.get(key, key), fontsize=10)
    seeds = sorted({len(p.seeds) for p in points})
    fig.suptitle(f"{title} ({'/'.join(map(str, seeds))} seeds per point)", fontsize=11)
    fig.tight_layout()
    shown = [
        f"{data.label(p.value)}: {p.intervals['active_operators_final'].show(',.1f')} active"
        for p in points
        if "active_operators_final" in p.intervals
    ]
    return fig, "at the last round: " + "; ".join(shown) + "."


# --- the page ---------------------------------------------------------------------------------


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def points_table(data: ExperimentData, points: list[PointIntervals]) -> str:
    """One row per metric, one column per sweep value: mean [95 % interval] over seeds."""
    if not points:
        return "<p>No sweep points in this directory.</p>"
    metrics = [m for m in point_metrics(data) if any(m.key in p.intervals for p in points)]
    head = ["metric"]
    head += [f"{data.label(p.value)} ({_seeds(len(p.seeds))})" for p in points]
    body = []
    for m in metrics:
        cells = [p.intervals[m.key].show(m.fmt) if m.key in p.intervals else "–" for p in points]
        body.append([m.label, *cells])
    return html_table(head, body)


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
    data: ExperimentData,
    title: str,
    figures: list[tuple[PaperFigure, Path, str]],
    points: list[PointIntervals] | None = None,
    intervals: tuple[Path, str] | None = None,
) -> str:
    """The whole self-contained page."""
    heading = html.escape(title)
    body = "\n".join(embed_figure(spec.name, png, caption) for spec, png, caption in figures)
    points = point_intervals(data) if points is None else points
    error_bars = "" if intervals is None else embed_figure(INTERVALS_FIGURE, *intervals)
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
<body data-figures="{len(figures) + (intervals is not None)}">
<h1>{heading}</h1>
<p>Rodikov (2025)'s Figures 2-7 and 9, redrawn from this sweep ({html.escape(values)}).
Single-point figures use {html.escape(single)} at its lowest seed.</p>
<h2>Sweep</h2>
<p>Per sweep point: the mean over Monte Carlo seeds and, with two seeds or more, the 95 %
confidence interval of the mean in brackets (Student's t, seeds - 1 degrees of freedom); also
in <code>{POINTS_NAME}</code>.</p>
{points_table(data, points)}
{error_bars}
<h3>Every seed</h3>
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
    points = point_intervals(data)
    write_points_csv(data, points, out / POINTS_NAME)
    figure, ours = intervals_figure(data, points)
    png = out / FIGURES_DIR / f"{INTERVALS_FIGURE}.png"
    figure.savefig(png, format="png", metadata={"Software": None})
    caption = f"Mean over seeds with 95 % confidence intervals of the mean; {ours}"
    name = data.summary.get("experiment") or out.resolve().name
    path = out / REPORT_NAME
    title = f"stakeray experiment report: {name}"
    path.write_text(render_experiment_html(data, title, figures, points, (png, caption)))
    return path
