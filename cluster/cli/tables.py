"""Tables for the terminal: the reward table after a run and the ``status`` tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from io import StringIO
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from protocol import TOKEN
from protocol.units import PPM

WIDTH = 200  # characters: rows never wrap in CI logs
HEADER = "bold"  # shown only on a terminal
# No borders, a rule of "-" under the header (ASCII: any stdout encoding prints it).
RULE = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n")


def format_tokens(amount: int, places: int = 4) -> str:
    """Format base units as tokens (display only; money stays integer)."""
    whole, frac = divmod(abs(amount), TOKEN)
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole:,}.{frac * 10**places // TOKEN:0{places}d}"


def format_ppm(value: int) -> str:
    return f"{100 * value / PPM:.1f}%"


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return an aligned table (first column left, the others right) as text.

    Built with :class:`rich.table.Table`; plain text (no colour codes) unless stdout
    is a terminal, and wide enough (``WIDTH``) that a row never wraps in a CI log.
    """
    table = Table(
        box=RULE,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style=HEADER,
    )
    for n, h in enumerate(headers):
        table.add_column(str(h), justify="left" if n == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(str(c)) for c in row))
    return to_text(table)


def to_text(renderable: Any) -> str:
    """Render with rich to a string: colour only when stdout is a terminal."""
    tty = sys.stdout.isatty()
    console = Console(
        file=StringIO(),
        width=WIDTH,
        force_terminal=tty,
        color_system="standard" if tty else None,
        highlight=False,
    )
    console.print(renderable)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.rstrip("\n").split("\n"))


def operator_table(
    status: dict[str, Any],
    rewards: dict[str, int] | None = None,
    fees: dict[str, int] | None = None,
) -> str:
    """Operators in the spirit of ``btcli root list_delegates``."""
    headers = ["operator", "stake", "delegators", "cut", "fee share", "active", "reputation"]
    if rewards is not None:
        headers += ["rewards (run)", "fees (run)"]
    else:
        headers += ["rewards/round", "fees/round"]
    rows = []
    for op in sorted(status["operators"], key=lambda o: -o["stake"]):
        row = [
            op["operator"],
            format_tokens(op["stake"]),
            op["delegators"],
            format_ppm(op["reward_cut"]),
            format_ppm(op["fee_share"]),
            "yes" if op["active"] else "no",
            f"{op['reputation']:.3f}",
        ]
        if rewards is not None:
            name = op["operator"]
            row += [format_tokens(rewards.get(name, 0)), format_tokens((fees or {}).get(name, 0))]
        else:
            row += [format_tokens(op["rewards_last_round"]), format_tokens(op["fees_last_round"])]
        rows.append(row)
    return render(headers, rows)


def coprocessor_table(status: dict[str, Any]) -> str:
    headers = [
        "coprocessor",
        "collateral",
        "locked",
        "reputation",
        "load",
        "wins",
        "slashes",
        "misses",
        "earned",
    ]
    rows = [
        [
            c["coprocessor"],
            format_tokens(c["collateral"]),
            format_tokens(c["locked"]),
            f"{c['reputation']:.3f}",
            f"{c['load']}/{c['capacity']}",
            c["wins"],
            c["slashes"],
            c["misses"],
            format_tokens(c["balance"]),
        ]
        for c in status["coprocessors"]
    ]
    return render(headers, rows)


def network_line(status: dict[str, Any]) -> str:
    line = Table.grid(padding=(0, 2))
    cells = [
        f"round {status['round']}",
        f"open tasks {status['open_tasks']}",
        f"finished {status['finished_tasks']}",
        f"supply {format_tokens(status['total_supply'])}",
        f"minted {format_tokens(status['minted'])}",
        f"burned {format_tokens(status['burned'])}",
        f"inflation {status['inflation_ppb'] / 1e7:.4f}%",
    ]
    for _ in cells:
        line.add_column(no_wrap=True)
    line.add_row(*(Text(c) for c in cells))
    return to_text(line)


def sweep_table(config: Any, rows: Sequence[dict[str, Any]]) -> str:
    """Return an experiment's results (``stakeray simulate``): one row per point and seed
    with one seed a point; with more, one row per point with the mean over its seeds and
    the 95 % confidence interval of the mean in brackets (Student's t, see
    :func:`cluster.analysis.experiment_report.mean_interval`)."""
    from cluster.analysis.experiment_report import mean_interval

    ((name, _),) = config.sweep.items()
    columns = (
        ("active_operators_final", "active", ",.1f"),
        ("cumulative_reward_final", "cum. reward", ",.1f"),
        ("reputation_reward_corr", "corr(rep,rew)", ".3f"),
        ("gini_rewards", "gini", ".3f"),
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row[name]), []).append(row)
    if all(len(g) == 1 for g in groups.values()):  # one seed a point: the values themselves
        headers = [name, "seed", "active", "cum. reward", "corr(rep,rew)", "gini"]
        body = []
        for row in rows:
            corr = row["reputation_reward_corr"]
            body.append(
                [
                    row[name],
                    row["seed"],
                    row["active_operators_final"],
                    f"{row['cumulative_reward_final']:,.1f}",
                    "-" if corr is None else f"{corr:.3f}",
                    f"{row['gini_rewards']:.3f}",
                ]
            )
        return render(headers, body)
    headers = [name, "seeds", *(f"{label} [95 % CI]" for _, label, _ in columns)]
    body = []
    for value, group in groups.items():
        cells: list[Any] = [value, len(group)]
        for key, _, fmt in columns:
            interval = mean_interval(r.get(key) for r in group)
            cells.append("-" if interval is None else interval.show(fmt))
        body.append(cells)
    return render(headers, body)


def earnings_table(rows: Sequence[Any]) -> str:
    """Return one account's earnings, a row per round (``stakeray earnings``): tokens with six
    places; the CSV (``--csv``) has every column in base units."""

    def short(name: str) -> str:
        return name if len(name) <= 16 else name[:12] + "..."

    headers = [
        "round",
        "operator",
        "cut",
        "op reward",
        "stake",
        "reward",
        "fees",
        "slashed",
        "bonded",
        "unbonded",
        "withdrawn",
        "claimed",
        "total rewards",
        "total fees",
        "pending stake",
        "pending fees",
    ]
    body = [
        [
            r.round,
            short(r.operator) or "-",
            format_ppm(r.reward_cut) if r.reward_cut >= 0 else "-",
            *(
                format_tokens(amount, 6)
                for amount in (
                    r.operator_reward,
                    r.stake,
                    r.reward,
                    r.fees,
                    r.slashed,
                    r.bonded + r.rebonded,
                    r.unbonded,
                    r.withdrawn_stake + r.withdrawn_fees + r.paid_out,
                    r.claimed_rewards + r.claimed_fees,
                    r.total_rewards,
                    r.total_fees,
                    r.pending_stake,
                    r.pending_fees,
                )
            ),
        ]
        for r in rows
    ]
    return render(headers, body)


def whatif_table(rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Return a what-if preview (``stakeray whatif``): the setting, one row per staker with
    its projected rewards and fees today and proposed, and the concentration of rewards
    across all stakers (see :mod:`cluster.analysis.whatif`)."""

    def change(amount: int) -> str:
        return ("+" if amount > 0 else "") + format_tokens(amount)

    what = "" if summary["proposal"] is None else f"proposal {summary['proposal']}: "
    shown = ", ".join(
        f"{k} {summary['today_values'][k]} -> {v}" for k, v in summary["changes"].items()
    )
    if summary["transfers"]:
        spend = sum(summary["transfers"].values())
        shown = ", ".join(x for x in (shown, f"treasury transfers {format_tokens(spend)}") if x)
    lines = [
        f"what-if {what}{shown or 'no changes'}",
        f"forked at round {summary['fork_round']} of {summary['run_dir']} (in memory):"
        f" {summary['rounds']} rounds x {summary['tasks_per_round']:,} tasks"
        f" ({summary['clock']}), seed {summary['seed']}",
        "",
    ]
    headers = [
        "staker",
        "role",
        "operator",
        "stake",
        "rewards today",
        "rewards proposed",
        "change",
        "fees today",
        "fees proposed",
        "change",
    ]
    body = [
        [
            r["staker"],
            r["role"],
            r["operator"],
            format_tokens(r["stake"]),
            format_tokens(r["rewards_today"]),
            format_tokens(r["rewards_proposed"]),
            change(r["rewards_change"]),
            format_tokens(r["fees_today"]),
            format_tokens(r["fees_proposed"]),
            change(r["fees_change"]),
        ]
        for r in rows
    ]
    lines += [render(headers, body), ""]
    today, proposed, delta = summary["today"], summary["proposed"], summary["change"]
    measures = [
        ("rewards, all stakers", "rewards", "tokens"),
        ("fees, all stakers", "fees", "tokens"),
        ("issuance minted", "minted", "tokens"),
        ("Gini of rewards", "gini_rewards", "ratio"),
        ("Nakamoto of rewards (1/3)", "nakamoto_rewards", "count"),
        ("Gini of rewards + fees", "gini_earnings", "ratio"),
        ("Nakamoto of rewards + fees (1/3)", "nakamoto_earnings", "count"),
        ("inflation after (ppb/round)", "inflation_ppb", "count"),
        ("active operators after", "active_operators", "count"),
        ("tasks settled", "settled", "count"),
        ("slashes (safety + audit)", "faults", "count"),
    ]
    table = []
    for label, key, kind in measures:
        if key == "faults":
            a = today["safety_faults"] + today["audit_faults"]
            b = proposed["safety_faults"] + proposed["audit_faults"]
            d = b - a
        else:
            a, b, d = today[key], proposed[key], delta[key]
        if kind == "tokens":
            cells = [format_tokens(a), format_tokens(b), change(d)]
        elif kind == "ratio":
            cells = [f"{a:.4f}", f"{b:.4f}", f"{d:+.4f}"]
        else:
            cells = [f"{a:,}", f"{b:,}", f"{d:+,}"]
        table.append([label, *cells])
    lines.append(render(["measure", "today", "proposed", "change"], table))
    unfunded = (today["unfunded"], proposed["unfunded"])
    if any(unfunded):
        lines.append(
            f"note: the client could not pay {unfunded[0]:,} (today) and {unfunded[1]:,}"
            " (proposed) of the drawn tasks; they were not escrowed"
        )
    return "\n".join(lines)
