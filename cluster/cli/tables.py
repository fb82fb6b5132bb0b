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
    """Return an experiment's results, one row per point and seed (``stakeray simulate``)."""
    ((name, _),) = config.sweep.items()
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
