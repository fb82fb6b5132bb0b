"""Tables for the terminal: the reward table after a run and the ``status`` tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocol import TOKEN
from protocol.units import PPM


def format_tokens(amount: int, places: int = 4) -> str:
    """Format base units as tokens (display only; money stays integer)."""
    whole, frac = divmod(abs(amount), TOKEN)
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole:,}.{frac * 10**places // TOKEN:0{places}d}"


def format_ppm(value: int) -> str:
    return f"{100 * value / PPM:.1f}%"


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return a plain aligned table: first column left, the others right."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(parts))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
            format_tokens(c["balance"]),
        ]
        for c in status["coprocessors"]
    ]
    return render(headers, rows)


def network_line(status: dict[str, Any]) -> str:
    return (
        f"round {status['round']}  open tasks {status['open_tasks']}  "
        f"finished {status['finished_tasks']}  supply {format_tokens(status['total_supply'])}  "
        f"minted {format_tokens(status['minted'])}  burned {format_tokens(status['burned'])}  "
        f"inflation {status['inflation_ppb'] / 1e7:.4f}%"
    )
