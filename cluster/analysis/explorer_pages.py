"""The explorer's pages, built from a :class:`~cluster.analysis.live_history.LiveHistory`.

network, operators, one operator, delegators (one by address), one account's
earnings (:mod:`cluster.analysis.earnings`), coprocessors, distribution. Each
page function returns a :class:`~cluster.analysis.explorer_html.Page`: its
tables (each also a CSV) and its charts (inline SVG). Amounts are base units
throughout; the cells show tokens (see :mod:`cluster.analysis.explorer_html`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

from cluster.analysis.earnings import EarningsError, EarningsRow
from cluster.analysis.explorer_html import (
    Column,
    Page,
    Table,
    delegator_href,
    esc,
    figure,
    href,
    operator_href,
    short_tokens,
)
from cluster.analysis.history import RoundRow
from cluster.analysis.live_history import Concentration, LiveHistory, RoundDistribution, Staker
from cluster.analysis.svg_charts import Series, chart, lorenz
from cluster.engine.fairness import ALPHA, summarize
from cluster.engine.status import RoundTally, coprocessor_rows, operator_rows
from protocol import TOKEN, metrics
from protocol.governance import compute_tally
from protocol.state import Outcome
from protocol.units import PPM, Address

ROWS_SHOWN = 300
"""Rows a long table shows on its page (its CSV has them all)."""
CHART_LINES = 10
"""Participants drawn in a chart of one line each (the largest)."""


class NotFound(LookupError):
    """The page asked for names nothing in the ledger (a 404 with this message)."""


@dataclass
class Source:
    """What the pages read: the live history and the run directory's files."""

    history: LiveHistory
    run_dir: Path
    ledger_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    earnings: Callable[[Address], tuple[list[EarningsRow], list[str], int]] | None = None


def tok(amount: int) -> float:
    """Base units to tokens, for charts only."""
    return amount / TOKEN


def kv_table(table_id: str, title: str, items: Iterable[tuple[str, str, str, Any]]) -> Table:
    """A two-column table of (key, label, kind, value) quantities."""
    rows = [{"key": k, "quantity": label, "kind": kind, "value": v} for k, label, kind, v in items]
    return Table(
        table_id,
        title,
        [
            Column("key", "key", shown=False),
            Column("quantity", "quantity"),
            Column("value", "value", "row"),
        ],
        rows,
    )


def by_participant(rows: Iterable[RoundRow], role: str) -> dict[str, list[RoundRow]]:
    groups: dict[str, list[RoundRow]] = defaultdict(list)
    for row in rows:
        if row.role == role:
            groups[row.participant].append(row)
    return dict(sorted(groups.items()))


def lines(
    groups: Mapping[str, Sequence[RoundRow]], value: Callable[[RoundRow], float], **kw: Any
) -> list[Series]:
    return [
        Series(name, [(r.round, value(r)) for r in rows], **kw) for name, rows in groups.items()
    ]


def largest(
    groups: Mapping[str, Sequence[RoundRow]], size: Callable[[RoundRow], float]
) -> tuple[dict[str, Sequence[RoundRow]], str]:
    """The :data:`CHART_LINES` participants largest by ``size`` of their last row, and a
    caption saying so when some are left out."""
    if len(groups) <= CHART_LINES:
        return dict(groups), ""
    top = sorted(groups, key=lambda name: (-size(groups[name][-1]), name))[:CHART_LINES]
    return {name: groups[name] for name in sorted(top)}, (
        f" The {CHART_LINES} largest of {len(groups)}; the tables have them all."
    )


def missing(h: LiveHistory, reason: str = "no round has ended yet") -> str:
    return reason if not h.network else "no data"


# --- network --------------------------------------------------------------------------------


def network_page(src: Source, query: Mapping[str, str]) -> Page:
    h, p = src.history, src.history.protocol
    page = Page("network", "Network", query)
    counts = p.state.outcome_counts
    active = p.active_set
    rate = h.tasks_per_s()
    t = p.state.totals
    items: list[tuple[str, str, str, Any]] = [
        ("round", "round", "int", p.round),
        ("total_supply", "total supply", "tokens", p.total_supply),
        (
            "bonding_rate_ppb",
            "bonding rate (active stake / supply)",
            "ppb",
            p.total_active_stake * 10**9 // p.total_supply if p.total_supply else 0,
        ),
        ("target_bonding_rate_ppb", "target bonding rate", "ppb", p.params.target_bonding_rate),
        ("inflation_ppb", "inflation per round", "ppb", p.inflation),
        ("active_stake", "active stake (this round)", "tokens", p.total_active_stake),
        ("bonded", "bonded", "tokens", t.bonded),
        ("minted", "minted since genesis", "tokens", t.minted),
        ("minted_this_round", "minted this round", "tokens", p.minted_this_round),
        ("burned", "burned since genesis", "tokens", t.burned),
        ("treasury", "treasury", "tokens", p.treasury),
        ("tasks_per_s", "tasks/s (seen by the explorer, last 10 s)", "float", rate),
        ("open_tasks", "open tasks", "int", len(p.state.tasks)),
        *((f"tasks_{o.value}", f"tasks {o.value}", "int", counts.get(o, 0)) for o in Outcome),
        ("tasks_this_round", "tasks finished this round", "int", h.round_tasks_so_far()),
        ("open_proposals", "governance proposals open", "int", h.open_proposals()),
        ("proposals", "governance proposals", "int", len(p.state.proposals)),
        (
            "operators",
            "registered operators",
            "int",
            sum(1 for pool in p.state.pools.values() if pool.registered),
        ),
        ("active_operators", "active operators", "int", len(active)),
        ("stakers", "stakers (bonded accounts)", "int", len(p.state.delegators)),
        ("coprocessors", "coprocessors", "int", len(p.state.coprocessors)),
        ("frames", "ledger frames read", "int", h.frames),
    ]
    if "throughput_tasks_per_s" in src.summary:
        items.append(
            (
                "run_tasks_per_s",
                "tasks/s over the finished run (summary.json)",
                "float",
                float(src.summary["throughput_tasks_per_s"]),
            )
        )
    page.stats(kv_table("network", "Now", items))
    n = h.network
    why = missing(h)
    page.charts(
        figure(
            chart(
                "total supply",
                [Series("supply", [(r.round, tok(r.total_supply)) for r in n])],
                x_label="round",
                y_label="tokens",
                markers=True,
                from_zero=False,
                empty=why,
            ),
            "Total supply at each round's end: genesis plus issuance less burns.",
        ),
        figure(
            chart(
                f"bonding rate (target {p.params.target_bonding_rate / 1e7:g} %)",
                [Series("bonding rate %", [(r.round, r.bonding_rate_ppb / 1e7) for r in n])],
                x_label="round",
                y_label="%",
                markers=True,
                from_zero=False,
                empty=why,
            ),
            "Active stake over total supply at each round's end; below the target, inflation"
            " rises a step each round, above it falls.",
        ),
        figure(
            chart(
                "inflation per round",
                [Series("inflation %", [(r.round, r.inflation_ppb / 1e7) for r in n])],
                x_label="round",
                y_label="% of supply per round",
                markers=True,
                from_zero=False,
                empty=why,
            ),
            "The share of the supply the round's reward calls may mint.",
        ),
        figure(
            chart(
                "stake",
                [
                    Series("active stake", [(r.round, tok(r.active_stake)) for r in n], step=True),
                    Series("stakers' pending stake", [(r.round, tok(r.staked)) for r in n]),
                ],
                x_label="round",
                y_label="tokens",
                markers=True,
                empty=why,
            ),
            "Active stake (frozen at each round's start) and every staker's pending stake at"
            " the round's end.",
        ),
        figure(
            chart(
                "tasks",
                [
                    Series("finished in the round", [(r.round, r.tasks) for r in n]),
                    Series("open at its end", [(r.round, r.open_tasks) for r in n], dashed=True),
                ],
                x_label="round",
                y_label="tasks",
                markers=True,
                empty=why,
            ),
            "Tasks that got an outcome in each round, and tasks still open at its end.",
        ),
        figure(
            chart(
                "tasks per second",
                [
                    Series(
                        "tasks/s",
                        [(r.round, r.tasks_per_s) for r in n if r.tasks_per_s is not None],
                    )
                ],
                x_label="round",
                y_label="tasks/s",
                markers=True,
                empty="no round seen live yet (the ledger holds no time)",
            ),
            "Measured by the explorer while it reads the log; rounds it read at its start"
            " have no rate.",
        ),
    )
    page.table(rounds_table(h))
    governance_table(page, src)
    fairness_block(page, h)
    return page


def rounds_table(h: LiveHistory) -> Table:
    columns = [
        Column("round", "round", "int"),
        Column("total_supply", "total supply", "tokens"),
        Column("active_stake", "active stake", "tokens"),
        Column("bonding_rate_ppb", "bonding rate", "ppb"),
        Column("inflation_ppb", "inflation", "ppb"),
        Column("minted", "minted", "tokens"),
        Column("burned", "burned", "tokens"),
        Column("fees", "task fees", "tokens"),
        Column("tasks", "tasks", "int"),
        Column("settled", "settled", "int"),
        Column("open_tasks", "open", "int"),
        Column("tasks_per_s", "tasks/s", "float"),
        Column("margin", "clearing margin", "ratio"),
        Column("open_proposals", "proposals open", "int"),
        Column("stakers", "stakers", "int"),
        Column("staked", "stakers' stake", "tokens"),
        Column("staker_rewards", "stakers' rewards", "tokens"),
    ]
    rows = [
        {**{f.name: getattr(r, f.name) for f in fields(r)}, "margin": r.margin}
        for r in reversed(h.network)
    ]
    return Table(
        "rounds",
        "Rounds",
        columns,
        rows,
        limit=ROWS_SHOWN,
        note="Newest first. Each round at its end; tasks/s only for rounds the explorer saw live.",
    )


def governance_table(page: Page, src: Source) -> None:
    p = src.history.protocol
    rows = []
    for pid, q in sorted(p.state.proposals.items(), reverse=True):
        tally = compute_tally(q)
        rows.append(
            {
                "id": pid,
                "proposer": q.proposer,
                "status": str(q.status),
                "created_round": q.created_round,
                "end_round": q.end_round,
                "changes": ", ".join(f"{k}={v}" for k, v in sorted(q.changes.items())),
                "transfers": ", ".join(
                    f"{k}: {short_tokens(v)}" for k, v in sorted(q.transfers.items())
                ),
                "for": tally["for"],
                "against": tally["against"],
                "abstain": tally["abstain"],
                "quorum": q.total_active_stake * p.params.quorum // PPM,
                "votes": len(q.votes),
            }
        )
    page.table(
        Table(
            "proposals",
            "Governance proposals",
            [
                Column("id", "id", "int"),
                Column("proposer", "proposer"),
                Column("status", "status"),
                Column("created_round", "created", "int"),
                Column("end_round", "voting ends", "int"),
                Column("changes", "parameter changes"),
                Column("transfers", "treasury transfers"),
                Column("for", "for", "tokens"),
                Column("against", "against", "tokens"),
                Column("abstain", "abstain", "tokens"),
                Column("quorum", "quorum (stake)", "tokens"),
                Column("votes", "votes", "int"),
            ],
            rows,
            note="Stake-weighted tallies; a delegator's own vote is taken out of its operator's."
            if rows
            else "No proposal yet.",
        )
    )


def fairness_block(page: Page, h: LiveHistory) -> None:
    """The allocation audit of :mod:`cluster.engine.fairness`, per round."""
    audits = [rows[0].fairness() for _, rows in sorted(h.rows.items()) if rows]
    current = h.current_rows()
    if current:
        audits.append(current[0].fairness())
    summary = summarize(audits)
    drifting = summary.rounds_drifting
    if summary.drifting:
        page.add(
            f'<p class="warning">Allocation departs from stake: rounds {esc(drifting)} have a'
            f" selection p-value below {ALPHA:g}; auction mismatches"
            f" {summary.auction_mismatches}.</p>"
        )
    rows = [
        {
            "round": a.round,
            "tasks": a.tasks,
            "p_value": a.p_value,
            "max_dev": a.max_dev,
            "max_dev_operator": a.max_dev_operator,
            "auction_checked": a.auction_checked,
            "auction_mismatches": a.auction_mismatches,
            "drifting": a.drifting(),
        }
        for a in reversed(audits)
    ]
    min_p = (
        "none tested"
        if summary.min_p is None
        else (f"{summary.min_p:.3g} (round {summary.min_p_round})")
    )
    page.table(
        Table(
            "fairness",
            "Allocation fairness: selection p-values",
            [
                Column("round", "round", "int"),
                Column("tasks", "tasks tested", "int"),
                Column("p_value", "selection p-value", "float", warn=lambda r: bool(r["drifting"])),
                Column("max_dev", "largest deviation (z)", "float"),
                Column("max_dev_operator", "of operator"),
                Column("auction_checked", "auctions re-cleared", "int"),
                Column(
                    "auction_mismatches",
                    "mismatches",
                    "int",
                    warn=lambda r: bool(r["auction_mismatches"]),
                ),
                Column("drifting", f"p < {ALPHA:g}", "flag"),
            ],
            rows,
            limit=ROWS_SHOWN,
            note=(
                "Chi-square test of each round's operator choice against stake"
                f" (cluster/engine/fairness.py). Rounds tested {summary.rounds_tested},"
                f" lowest p {esc(min_p)}; a fair run of this many rounds warns at least once"
                f" with probability {summary.false_alarm:.3g}; Bonferroni over the run:"
                f" {'drifts' if summary.bonferroni else 'holds'}. The round in progress is so far."
            ),
        )
    )
    points = [
        (a.round, -math.log10(max(a.p_value, 1e-300))) for a in audits if a.p_value is not None
    ]
    page.charts(
        figure(
            chart(
                "selection p-value per round",
                [
                    Series("-log10 p", points),
                    Series(
                        f"alarm (p = {ALPHA:g})",
                        [(x, -math.log10(ALPHA)) for x, _ in points],
                        dashed=True,
                        color="#b3261e",
                    ),
                ],
                x_label="round",
                y_label="-log10 p",
                markers=True,
                empty="no round tested yet",
            ),
            "Higher is less likely under stake-proportional selection; above the dashed line the"
            " round warns.",
        )
    )


# --- operators ------------------------------------------------------------------------------


def tally_of(h: LiveHistory) -> RoundTally:
    """The last finished round's and this round's rewards and fees, as ``status`` shows them."""
    tally = RoundTally()
    last = h.rows.get(max(h.rows)) if h.rows else []
    for row in last or []:
        if row.role == "operator":
            tally.last_rewards[row.participant] = row.rewards
            tally.last_fees[row.participant] = row.fees
    for row in h.current_rows():
        if row.role == "operator":
            tally.rewards[row.participant] = row.rewards
            tally.fees[row.participant] = row.fees
    return tally


def pending_change(h: LiveHistory, name: str) -> str:
    change = h.protocol.state.pending_commissions.get(name)
    if change is None:
        return ""
    return (
        f"cut {100 * change.reward_cut / PPM:.2f} %, fee share"
        f" {100 * change.fee_share / PPM:.2f} % from round {change.round + 1}"
    )


def operators_data(h: LiveHistory) -> list[dict[str, Any]]:
    rows = operator_rows(h.protocol, tally_of(h))
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in h.all_rows():
        if row.role == "operator":
            for key in ("rewards", "fees", "tasks", "slashes", "liveness_faults"):
                totals[row.participant][key] += getattr(row, key)
    out = []
    for r in rows:
        name = r["operator"]
        missed = h.missed.get(name, [])
        out.append(
            {
                **r,
                "pending_change": pending_change(h, name),
                "rewards_total": totals[name]["rewards"],
                "fees_total": totals[name]["fees"],
                "tasks_total": totals[name]["tasks"],
                "slashes_total": totals[name]["slashes"],
                "missed_reward_calls": len(missed),
                "missed_rounds": " ".join(map(str, missed[-12:]))
                + (" …" if len(missed) > 12 else ""),
                "called_this_round": name in h.rewarded if name in h.active_at_start else None,
            }
        )
    return out


OPERATOR_COLUMNS = [
    Column("operator", "operator", link=lambda r: operator_href(r["operator"])),
    Column("stake", "stake", "tokens"),
    Column("delegators", "delegators", "int"),
    Column("reward_cut", "reward cut", "ppm"),
    Column("fee_share", "fee share", "ppm"),
    Column("pending_change", "commission change"),
    Column("active", "active", "flag"),
    Column("reputation", "reputation", "float"),
    Column("rewards_last_round", "issuance last round", "tokens"),
    Column("fees_last_round", "fees last round", "tokens"),
    Column("rewards_this_round", "issuance this round", "tokens"),
    Column("fees_this_round", "fees this round", "tokens"),
    Column("rewards_total", "issuance (all rounds)", "tokens"),
    Column("fees_total", "fees (all rounds)", "tokens"),
    Column("tasks_total", "tasks", "int"),
    Column("slashes_total", "slashes", "int", warn=lambda r: r["slashes_total"] > 0),
    Column(
        "missed_reward_calls",
        "missed reward calls",
        "int",
        warn=lambda r: r["missed_reward_calls"] > 0,
    ),
    Column("missed_rounds", "missed in rounds", warn=lambda r: r["missed_reward_calls"] > 0),
]


def missed_warning(h: LiveHistory, names: Iterable[str]) -> str:
    lines_ = []
    for name in names:
        missed = h.missed.get(name, [])
        if missed:
            shown = ", ".join(map(str, missed[-12:])) + (", …" if len(missed) > 12 else "")
            lines_.append(
                f"<b>{esc(name)}</b> missed its reward call in {len(missed)} of its active"
                f" rounds ({esc(shown)}): its pool earned no issuance in them."
            )
    return "".join(f'<p class="warning">{line}</p>' for line in lines_)


def operators_page(src: Source, query: Mapping[str, str]) -> Page:
    h = src.history
    page = Page("operators", "Operators", query)
    data = operators_data(h)
    page.add(missed_warning(h, [r["operator"] for r in data]))
    page.table(
        Table(
            "operators",
            "Operators",
            OPERATOR_COLUMNS,
            data,
            note="Stake is everything bonded to the operator (its stake next round);"
            " issuance is what its reward calls minted for the whole pool, fees its"
            " share of task fees.",
        )
    )
    groups, which = largest(by_participant(h.all_rows(), "operator"), lambda r: r.stake)
    why = missing(h)
    page.charts(
        figure(
            chart(
                "operator stake",
                lines(groups, lambda r: tok(r.stake)),
                x_label="round",
                y_label="tokens",
                markers=True,
                empty=why,
            ),
            "Each operator's stake at each round's end (the round in progress so far)." + which,
        ),
        figure(
            chart(
                "issuance and fees per round",
                lines(groups, lambda r: tok(r.rewards))
                + [
                    Series(f"{s.name} fees", s.points, dashed=True)
                    for s in lines(groups, lambda r: tok(r.fees))
                ],
                x_label="round",
                y_label="tokens",
                markers=True,
                empty=why,
            ),
            "Issuance minted by each operator's reward call (solid) and its fees (dashed)." + which,
        ),
    )
    page.table(commission_table(h, None))
    page.table(operator_rounds_table(h, None))
    return page


def commission_table(h: LiveHistory, name: str | None) -> Table:
    rows = []
    for operator, changes in sorted(h.commission.items()):
        if name is not None and operator != name:
            continue
        for c in changes:
            rows.append(
                {
                    "operator": operator,
                    "from_round": c.round,
                    "reward_cut": c.reward_cut,
                    "fee_share": c.fee_share,
                    "requested_round": c.requested,
                    "state": "in force",
                }
            )
        change = h.protocol.state.pending_commissions.get(operator)
        if change is not None:
            rows.append(
                {
                    "operator": operator,
                    "from_round": change.round + 1,
                    "reward_cut": change.reward_cut,
                    "fee_share": change.fee_share,
                    "requested_round": change.round,
                    "state": "pending",
                }
            )
    return Table(
        "commission",
        "Commission history",
        [
            Column("operator", "operator", link=lambda r: operator_href(r["operator"])),
            Column("from_round", "from round", "int"),
            Column("reward_cut", "reward cut", "ppm"),
            Column("fee_share", "fee share", "ppm"),
            Column("requested_round", "requested in round", "int"),
            Column("state", "state"),
        ],
        rows,
        note="A change requested in a round takes effect at the next round's start.",
    )


def operator_rounds_table(h: LiveHistory, name: str | None) -> Table:
    rows = []
    current = h.protocol.round
    for row in reversed(h.all_rows()):
        if row.role != "operator" or (name is not None and row.participant != name):
            continue
        missed = row.round in set(h.missed.get(row.participant, ()))
        if row.round == current:
            call = (
                "called"
                if row.participant in h.rewarded
                else ("not yet" if row.participant in h.active_at_start else "inactive")
            )
        else:
            call = "missed" if missed else ("called" if row.active or row.rewards else "inactive")
        rows.append(
            {
                "round": row.round,
                "operator": row.participant,
                "active": row.active,
                "stake": row.stake,
                "rewards": row.rewards,
                "fees": row.fees,
                "tasks": row.tasks,
                "slashes": row.slashes,
                "liveness_faults": row.liveness_faults,
                "reputation": row.reputation,
                "reward_call": call,
            }
        )
    return Table(
        "per_round" if name is None else "rounds",
        "Rewards and fees per round",
        [
            Column("round", "round", "int"),
            Column("operator", "operator", link=lambda r: operator_href(r["operator"])),
            Column("active", "active", "flag"),
            Column("stake", "stake", "tokens"),
            Column("rewards", "issuance", "tokens"),
            Column("fees", "fees", "tokens"),
            Column("tasks", "tasks", "int"),
            Column("slashes", "slashes", "int", warn=lambda r: r["slashes"] > 0),
            Column("liveness_faults", "liveness faults", "int"),
            Column("reputation", "reputation", "float"),
            Column("reward_call", "reward call", warn=lambda r: r["reward_call"] == "missed"),
        ],
        rows,
        limit=ROWS_SHOWN,
        note="Newest first; the round in progress shows what it has so far.",
    )


def operator_page(src: Source, query: Mapping[str, str], name: str) -> Page:
    h, p = src.history, src.history.protocol
    data = {r["operator"]: r for r in operators_data(h)}
    if name not in data:
        raise NotFound(f"no registered operator named {name!r}")
    row = data[name]
    page = Page("operators", f"Operator {name}", query)
    page.add(missed_warning(h, [name]))
    own_stake, own_fees = p.pending_stake(name), p.pending_fees(name)
    items = [
        ("stake", "stake (everything bonded to it)", "tokens", row["stake"]),
        ("self_stake", "its own pending stake", "tokens", own_stake),
        ("self_fees", "its own pending fees", "tokens", own_fees),
        ("delegators", "delegators", "int", row["delegators"]),
        ("reward_cut", "reward cut", "ppm", row["reward_cut"]),
        ("fee_share", "fee share (to delegators)", "ppm", row["fee_share"]),
        ("active", "active this round", "flag", row["active"]),
        ("reputation", "reputation", "float", row["reputation"]),
        ("rewards_total", "issuance (all rounds)", "tokens", row["rewards_total"]),
        ("fees_total", "fees (all rounds)", "tokens", row["fees_total"]),
        ("missed_reward_calls", "missed reward calls", "int", row["missed_reward_calls"]),
    ]
    page.stats(kv_table("operator", "Now", items))
    rows = [r for r in h.all_rows() if r.role == "operator" and r.participant == name]
    why = missing(h)
    page.charts(
        figure(
            chart(
                "stake",
                [Series(name, [(r.round, tok(r.stake)) for r in rows])],
                x_label="round",
                y_label="tokens",
                markers=True,
                empty=why,
            ),
            "Stake bonded to the operator at each round's end.",
        ),
        figure(
            chart(
                "issuance and fees per round",
                [
                    Series("issuance", [(r.round, tok(r.rewards)) for r in rows]),
                    Series("fees", [(r.round, tok(r.fees)) for r in rows], dashed=True),
                ],
                x_label="round",
                y_label="tokens",
                markers=True,
                empty=why,
            ),
            "What its reward calls minted for the pool, and its share of task fees.",
        ),
    )
    page.table(commission_table(h, name))
    page.table(operator_rounds_table(h, name))
    stakers = [s for s in h.stakers() if s.operator == name]
    page.table(stakers_table(h, stakers, "delegators", f"Delegators of {name}"))
    return page


# --- delegators -----------------------------------------------------------------------------


def stakers_table(h: LiveHistory, stakers: Sequence[Staker], table_id: str, title: str) -> Table:
    rows = [
        {
            "address": s.address,
            "operator": s.operator,
            "bonded": s.bonded,
            "stake": s.stake,
            "fees": s.fees,
            "earned": s.earned,
            "last_round": h.last_rewards.get(s.address),
        }
        for s in sorted(stakers, key=lambda s: (-s.stake, s.address))
    ]
    return Table(
        table_id,
        title,
        [
            Column("address", "address", link=lambda r: delegator_href(r["address"])),
            Column(
                "operator",
                "operator",
                link=lambda r: operator_href(r["operator"]) if r["operator"] else "",
            ),
            Column("bonded", "bonded", "tokens"),
            Column("stake", "pending stake", "tokens"),
            Column("fees", "pending fees", "tokens"),
            Column("earned", "earned so far", "tokens"),
            Column("last_round", "earned last round", "tokens"),
        ],
        rows,
        limit=ROWS_SHOWN,
        note="Pending stake is the bond plus unclaimed rewards; earned is pending stake and"
        " fees less what the account bonded (and plus what it unbonded or withdrew as fees).",
    )


def delegator_page(src: Source, query: Mapping[str, str]) -> Page:
    h, p = src.history, src.history.protocol
    address = query.get("address", "").strip()
    if not address:
        page = Page("delegator", "Delegators", query)
        page.add(
            '<p class="note">Search by address above, or pick one below (operators'
            " stake as their own delegators).</p>"
        )
        page.table(stakers_table(h, h.stakers(), "stakers", "Stakers"))
        return page
    page = Page("delegator", f"Delegator {address}", query)
    d = p.state.delegators.get(address)
    if d is None:
        known = (
            "holds a balance but has never bonded"
            if address in p.state.balances
            else ("is not in the ledger")
        )
        page.add(f'<p class="warning">{esc(address)} {known}.</p>')
        return page
    locks = p.locks(address)
    staker = next(s for s in h.stakers() if s.address == address)
    items = [
        ("address", "address", "text", address),
        ("operator", "operator", "text", d.delegate or ""),
        ("bonded", "bonded", "tokens", d.bonded),
        (
            "pending_stake",
            "pending stake (bond and unclaimed rewards)",
            "tokens",
            p.pending_stake(address),
        ),
        ("pending_fees", "pending fees", "tokens", p.pending_fees(address)),
        ("unbonding", "unbonding (locks)", "tokens", sum(a for a, _ in locks.values())),
        ("balance", "liquid balance", "tokens", p.balance(address)),
        ("earned", "earned so far", "tokens", staker.earned),
        ("last_round", "earned last round", "tokens", h.last_rewards.get(address, 0)),
        ("last_claim_round", "last claim round", "int", d.last_claim_round),
    ]
    page.stats(kv_table("delegator", "Now", items))
    if d.delegate:
        page.add(
            f'<p>Operator: <a href="{esc(operator_href(d.delegate))}">{esc(d.delegate)}</a>.'
            f' Round by round: <a href="{esc(href("/earnings", address=address))}">earnings'
            "</a> (issuance, fees, slashes, bonds and withdrawals, from"
            " cluster/analysis/earnings.py).</p>"
        )
    else:
        page.add(
            f'<p>Round by round: <a href="{esc(href("/earnings", address=address))}">'
            "earnings</a>.</p>"
        )
    page.table(
        Table(
            "locks",
            "Unbonding locks",
            [
                Column("lock", "lock", "int"),
                Column("amount", "amount", "tokens"),
                Column("withdraw_round", "withdrawable from round", "int"),
            ],
            [{"lock": i, "amount": a, "withdraw_round": w} for i, (a, w) in sorted(locks.items())],
        )
    )
    path = list(h.series.get(address, ()))
    page.charts(
        figure(
            chart(
                "pending stake and earnings",
                [
                    Series("pending stake", [(r, tok(s)) for r, s, _ in path]),
                    Series("earned so far", [(r, tok(e)) for r, _, e in path], dashed=True),
                ],
                x_label="round",
                y_label="tokens",
                markers=True,
                empty=missing(h),
            ),
            "At each round's end (the last 256 rounds).",
        )
    )
    return page


def earnings_page(src: Source, query: Mapping[str, str]) -> Page:
    address = query.get("address", "").strip()
    page = Page("delegator", f"Earnings of {address}", query)
    if not address or src.earnings is None:
        raise NotFound("give ?address=ADDRESS")
    try:
        rows, problems, reached = src.earnings(address)
    except EarningsError as exc:
        raise NotFound(str(exc)) from None
    page.add(
        f'<p><a href="{esc(delegator_href(address))}">{esc(address)}</a> round by round, replayed'
        f" from the ledger up to round {reached} (cluster/analysis/earnings.py; redone at most"
        " every few seconds).</p>"
    )
    if problems:
        page.add("".join(f'<p class="warning">{esc(x)}</p>' for x in problems))
    else:
        page.add(
            '<p class="note">The flows add up to the ledger\'s pending stake, fees, locks'
            " and balance to the base unit.</p>"
        )
    columns = []
    for f in fields(EarningsRow):
        kind = "tokens"
        if f.name == "round":
            kind = "int"
        elif f.name == "reward_cut":
            kind = "ppm"
        elif f.type in ("str", str):
            kind = "text"
        columns.append(Column(f.name, f.name.replace("_", " "), kind))
    data = [
        {f.name: getattr(r, f.name) for f in fields(r)}
        | ({"reward_cut": None} if r.reward_cut < 0 else {})
        for r in reversed(rows)
    ]
    page.charts(
        figure(
            chart(
                "issuance and fees per round",
                [
                    Series("reward", [(r.round, tok(r.reward)) for r in rows]),
                    Series("fees", [(r.round, tok(r.fees)) for r in rows], dashed=True),
                ],
                x_label="round",
                y_label="tokens",
                markers=True,
            ),
            "What the account earned each round.",
        )
    )
    page.table(Table("earnings", "Earnings per round", columns, data, limit=ROWS_SHOWN))
    return page


# --- coprocessors ---------------------------------------------------------------------------


def coprocessors_page(src: Source, query: Mapping[str, str]) -> Page:
    h, p = src.history, src.history.protocol
    page = Page("coprocessors", "Coprocessors", query)
    rows = h.all_rows()
    groups = by_participant(rows, "coprocessor")
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if row.role == "coprocessor":
            for key in ("fees", "tasks", "liveness_faults"):
                totals[row.participant][key] += getattr(row, key)
    data = []
    for r in coprocessor_rows(p):
        name = r["coprocessor"]
        last = groups.get(name, [])
        data.append(
            {
                **r,
                "load_now": Fraction(r["load"], r["capacity"]) if r["capacity"] else None,
                "peak_load": last[-1].load if last else None,
                "earnings": totals[name]["fees"],
                "tasks": totals[name]["tasks"],
            }
        )
    page.table(
        Table(
            "coprocessors",
            "Coprocessors",
            [
                Column("coprocessor", "coprocessor"),
                Column("collateral", "collateral", "tokens"),
                Column("locked", "locked", "tokens"),
                Column("capacity", "capacity", "int"),
                Column("load", "load (tasks)", "int"),
                Column("load_now", "load / capacity", "ratio"),
                Column("peak_load", "peak load this round", "float"),
                Column("reputation", "reputation", "float"),
                Column("wins", "wins", "int"),
                Column("tasks", "tasks settled", "int"),
                Column("slashes", "slashes", "int", warn=lambda r: r["slashes"] > 0),
                Column("misses", "misses", "int", warn=lambda r: r["misses"] > 0),
                Column("earnings", "earnings (all rounds)", "tokens"),
                Column("balance", "balance", "tokens"),
            ],
            data,
            note="Earnings are the fee less the clearing price of each task it ran and was paid"
            " for; slashes are wrong results caught, misses results that did not come in time.",
        )
    )
    why = missing(h)
    groups, which = largest(groups, lambda r: r.stake)
    page.charts(
        figure(
            chart(
                "peak load",
                lines(groups, lambda r: r.load),
                x_label="round",
                y_label="share of capacity",
                markers=True,
                y_range=(0.0, 1.05),
                empty=why,
            ),
            "Each coprocessor's highest load in the round over its capacity." + which,
        ),
        figure(
            chart(
                "earnings per round",
                lines(groups, lambda r: tok(r.fees)),
                x_label="round",
                y_label="tokens",
                markers=True,
                empty=why,
            ),
            "Fee less clearing price of the tasks it ran, per round." + which,
        ),
        figure(
            chart(
                "reputation",
                lines(groups, lambda r: r.reputation),
                x_label="round",
                y_label="reputation",
                markers=True,
                y_range=(0.0, 1.0),
                empty=why,
            ),
            "Reputation at each round's end." + which,
        ),
    )
    per_round = [
        {
            "round": r.round,
            "coprocessor": r.participant,
            "collateral": r.stake,
            "load": r.load,
            "tasks": r.tasks,
            "fees": r.fees,
            "slashes": r.slashes,
            "liveness_faults": r.liveness_faults,
            "reputation": r.reputation,
            "margin": Fraction(r.auction_prices, r.auction_fees) if r.auction_fees else None,
        }
        for r in reversed(rows)
        if r.role == "coprocessor"
    ]
    page.table(
        Table(
            "per_round",
            "Per round",
            [
                Column("round", "round", "int"),
                Column("coprocessor", "coprocessor"),
                Column("collateral", "collateral", "tokens"),
                Column("load", "peak load", "float"),
                Column("tasks", "tasks", "int"),
                Column("fees", "earnings", "tokens"),
                Column("slashes", "slashes", "int", warn=lambda r: r["slashes"] > 0),
                Column("liveness_faults", "liveness faults", "int"),
                Column("reputation", "reputation", "float"),
                Column("margin", "clearing margin", "ratio"),
            ],
            per_round,
            limit=ROWS_SHOWN,
            note="Newest first; the round in progress shows what it has so far.",
        )
    )
    return page


# --- distribution ---------------------------------------------------------------------------


def lorenz_series(name: str, values: Iterable[int]) -> Series:
    amounts = [v for v in values if v > 0]
    if not amounts:
        return Series(name)
    population, share = metrics.compute_lorenz_curve(amounts)
    return Series(
        f"{name} (Gini {metrics.compute_gini(amounts):.3f})",
        list(zip(population.tolist(), share.tolist(), strict=True)),
    )


def concentration_row(what: str, c: Concentration) -> dict[str, Any]:
    return {
        "distribution": what,
        "holders": c.holders,
        "total": c.total,
        "gini": c.gini,
        "hhi": c.hhi,
        "nakamoto_third": c.nakamoto_third,
        "nakamoto_half": c.nakamoto_half,
    }


CONCENTRATION_COLUMNS = [
    Column("holders", "holders", "int"),
    Column("total", "total", "tokens"),
    Column("gini", "Gini", "float"),
    Column("hhi", "HHI", "float"),
    Column("nakamoto_third", "Nakamoto 1/3", "int"),
    Column("nakamoto_half", "Nakamoto 1/2", "int"),
]


def over_rounds(
    d: Sequence[RoundDistribution], measure: str, label: str, why: str, caption: str
) -> str:
    """One concentration measure (a :class:`Concentration` field in [0, 1]) over rounds: of
    stake and rewards across stakers, and of stake across operators."""
    return figure(
        chart(
            f"{label} over rounds",
            [
                Series("stake (stakers)", [(x.round, getattr(x.stake, measure)) for x in d]),
                Series("rewards (stakers)", [(x.round, getattr(x.rewards, measure)) for x in d]),
                Series(
                    "stake (operators)",
                    [(x.round, getattr(x.operator_stake, measure)) for x in d],
                    dashed=True,
                ),
            ],
            x_label="round",
            y_label=label,
            markers=True,
            y_range=(0.0, 1.0),
            empty=why,
        ),
        caption,
    )


def distribution_page(src: Source, query: Mapping[str, str], *, static: bool = False) -> Page:
    """Stake and rewards across every staker and across operators: now, and over rounds
    (also the top of the run report, ``static``)."""
    h = src.history
    page = Page("distribution", "Distribution", query, static=static)
    stakers = h.stakers()
    operators = [r for r in h.current_rows() if r.role == "operator"]
    now = {
        "stake across stakers (now)": [s.stake for s in stakers],
        "rewards across stakers, last round": list(h.last_rewards.values()),
        "rewards across stakers, all rounds": [s.earned for s in stakers],
        "stake across operators (now)": [r.stake for r in operators],
    }
    page.table(
        Table(
            "concentration",
            "Concentration now",
            [Column("distribution", "distribution"), *CONCENTRATION_COLUMNS],
            [
                concentration_row(k, Concentration.of(max(v, 0) for v in vals))
                for k, vals in now.items()
            ],
            note="Every staker counts: delegators and operators (an operator's own bond and"
            " commission). A staker's loss in a round (a slash) counts as 0 reward. Nakamoto: the"
            " fewest holders with more than 1/3 (1/2) of the total.",
        )
    )
    page.charts(
        figure(
            lorenz(
                "Lorenz curves of stake",
                [
                    lorenz_series("stakers", now["stake across stakers (now)"]),
                    lorenz_series("operators", now["stake across operators (now)"]),
                ],
                population="share of holders",
                share="share of stake",
            ),
            "Holders sorted from least to most stake; the dashed line is equality.",
        ),
        figure(
            lorenz(
                "Lorenz curves of rewards",
                [
                    lorenz_series("last round", now["rewards across stakers, last round"]),
                    lorenz_series("all rounds", now["rewards across stakers, all rounds"]),
                ],
                population="share of stakers",
                share="share of rewards",
            ),
            "Rewards (issuance and fee shares) across stakers.",
        ),
    )
    d = h.distribution
    why = missing(h)
    page.charts(
        over_rounds(d, "gini", "Gini", why, "0 is equality; 1 - 1/n one holder with everything."),
        over_rounds(
            d, "hhi", "HHI", why, "Sum of squared shares: 1/n for equal holders, 1 for one."
        ),
        figure(
            chart(
                "Nakamoto coefficient over rounds",
                [
                    Series("stake 1/3", [(x.round, x.stake.nakamoto_third) for x in d], step=True),
                    Series(
                        "stake 1/2",
                        [(x.round, x.stake.nakamoto_half) for x in d],
                        step=True,
                        dashed=True,
                    ),
                    Series(
                        "rewards 1/3", [(x.round, x.rewards.nakamoto_third) for x in d], step=True
                    ),
                    Series(
                        "rewards 1/2",
                        [(x.round, x.rewards.nakamoto_half) for x in d],
                        step=True,
                        dashed=True,
                    ),
                ],
                x_label="round",
                y_label="stakers",
                markers=True,
                empty=why,
            ),
            "Fewest stakers holding more than a third (a half) of the stake or the round's"
            " rewards.",
        ),
    )
    rows = []
    for x in reversed(d):
        row: dict[str, Any] = {"round": x.round}
        for prefix, c in (
            ("stake", x.stake),
            ("rewards", x.rewards),
            ("operator_stake", x.operator_stake),
        ):
            for key, value in concentration_row("", c).items():
                if key != "distribution":
                    row[f"{prefix}_{key}"] = value
        rows.append(row)
    columns = [Column("round", "round", "int")]
    for prefix, label in (
        ("stake", "stake"),
        ("rewards", "rewards"),
        ("operator_stake", "operator stake"),
    ):
        columns += [
            Column(f"{prefix}_{c.key}", f"{label} {c.header}", c.kind)
            for c in CONCENTRATION_COLUMNS
        ]
    page.table(
        Table(
            "measures",
            "Concentration per round",
            columns,
            rows,
            limit=ROWS_SHOWN,
            note="Newest first; stake at each round's end, rewards earned in it.",
        )
    )
    load_block(page, h)
    return page


def load_block(page: Page, h: LiveHistory) -> None:
    n = h.network
    live = [r for r in n if r.tasks_per_s is not None]
    auctioned = [r for r in n if r.margin is not None]
    per_token = [r for r in n if r.reward_per_staked_token is not None]

    def ppt(r: Any) -> float:
        return float(r.reward_per_staked_token) * 100

    page.add(
        '<h2 id="against-load">Rewards against load</h2><p class="note">What stakers earn per'
        " round, and per staked token, against the load the market carried: tasks/s (rounds the"
        " explorer saw live), the clearing margin of auctioned tasks, and tasks per round.</p>"
    )
    page.charts(
        figure(
            chart(
                "reward per round vs tasks/s",
                [Series("rounds", [(r.tasks_per_s, tok(r.staker_rewards)) for r in live])],
                x_label="tasks/s",
                y_label="tokens to stakers",
                scatter=True,
                empty="no round seen live yet",
            ),
            "One point per round the explorer saw live.",
        ),
        figure(
            chart(
                "reward per staked token vs tasks/s",
                [
                    Series(
                        "rounds",
                        [
                            (r.tasks_per_s, ppt(r))
                            for r in live
                            if r.reward_per_staked_token is not None
                        ],
                    )
                ],
                x_label="tasks/s",
                y_label="% of active stake",
                scatter=True,
                empty="no round seen live yet",
            ),
            "The stakers' earnings in the round over the round's active stake.",
        ),
        figure(
            chart(
                "reward per staked token vs clearing margin",
                [
                    Series(
                        "rounds",
                        [
                            (float(r.margin), ppt(r))
                            for r in auctioned
                            if r.margin is not None and r.reward_per_staked_token is not None
                        ],
                    )
                ],
                x_label="clearing margin (price / fee)",
                y_label="% of active stake",
                scatter=True,
                empty="no auctioned task settled yet",
            ),
            "Mean clearing margin of the round's auctioned tasks.",
        ),
        figure(
            chart(
                "reward per round vs tasks per round",
                [Series("rounds", [(r.tasks, tok(r.staker_rewards)) for r in per_token])],
                x_label="tasks finished in the round",
                y_label="tokens to stakers",
                scatter=True,
                empty=missing(h),
            ),
            "Tasks per round, known for every round (the ledger has no clock).",
        ),
    )
    page.table(
        Table(
            "load",
            "Rewards and load per round",
            [
                Column("round", "round", "int"),
                Column("tasks", "tasks", "int"),
                Column("tasks_per_s", "tasks/s", "float"),
                Column("margin", "clearing margin", "ratio"),
                Column("minted", "issuance", "tokens"),
                Column("fees", "task fees", "tokens"),
                Column("staker_rewards", "stakers' rewards", "tokens"),
                Column("active_stake", "active stake", "tokens"),
                Column("reward_per_staked_token", "reward per staked token", "ratio"),
            ],
            [
                {
                    "round": r.round,
                    "tasks": r.tasks,
                    "tasks_per_s": r.tasks_per_s,
                    "margin": r.margin,
                    "minted": r.minted,
                    "fees": r.fees,
                    "staker_rewards": r.staker_rewards,
                    "active_stake": r.active_stake,
                    "reward_per_staked_token": r.reward_per_staked_token,
                }
                for r in reversed(n)
            ],
            limit=ROWS_SHOWN,
            note="Newest first. Reward per staked token is exact (hover for the fraction).",
        )
    )
