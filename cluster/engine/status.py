"""The network's status table: operators, coprocessors and totals, for ``stakeray status``.

With them, the allocation audit of the last round in which tasks were
selected (:mod:`cluster.engine.fairness`): the coordinator counts each
batch's first assignments against the stake-weighted probabilities as it
clears them (:meth:`RoundTally.count_selected`, O(active + batch)), and the
round's chi-square p-value is taken when the round closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cluster.engine.fairness import (
    ALPHA,
    RoundFairness,
    SelectionTally,
    run_false_alarm,
    selection_probabilities,
)
from protocol import Protocol
from protocol.units import Address, Amount, Round

if TYPE_CHECKING:
    from cluster.engine.market import MarketEngine
    from cluster.engine.messages import Assignment


@dataclass
class RoundTally:
    """Rewards minted and fees settled per operator, this round and the last one; tasks
    selected per operator, this round and the last one tested."""

    rewards: dict[Address, Amount] = field(default_factory=dict)
    fees: dict[Address, Amount] = field(default_factory=dict)
    last_rewards: dict[Address, Amount] = field(default_factory=dict)
    last_fees: dict[Address, Amount] = field(default_factory=dict)
    selection: SelectionTally = field(default_factory=SelectionTally)
    selection_round: Round = 0
    last_selection: SelectionTally = field(default_factory=SelectionTally)
    fairness: RoundFairness | None = None  # the last round with selections
    rounds_tested: int = 0
    rounds_drifting: int = 0

    def next_round(self) -> None:
        self.last_rewards, self.rewards = self.rewards, {}
        self.last_fees, self.fees = self.fees, {}
        if self.selection.observed:
            self.fairness = self.selection.assess(self.selection_round)
            self.last_selection, self.selection = self.selection, SelectionTally()
            self.rounds_tested += int(self.fairness.tested)
            self.rounds_drifting += int(self.fairness.drifting())

    def add_fee(self, operator: Address, amount: Amount) -> None:
        self.fees[operator] = self.fees.get(operator, 0) + amount

    def count_selected(
        self,
        engine: MarketEngine,
        new: Sequence[tuple[int, float]],
        assignments: Sequence[Assignment],
    ) -> None:
        """Count a cleared batch's first assignments: the operators its ``new`` tasks got
        (re-offered tasks keep theirs), each drawn with the round's stake-weighted chance."""
        if not new:
            return
        p, params = engine.p, engine.p.params
        low, high = new[0][0], new[-1][0]  # a batch's new ids are one range
        probabilities = selection_probabilities(
            p.state.active, params.w_stake, params.w_random, engine.operators
        )
        self.selection.add(
            probabilities, (a.operator for a in assignments if low <= a.task_id <= high)
        )
        self.selection_round = p.round

    def fairness_status(self) -> dict[str, Any]:
        """The audit of the last round with selections, for ``stakeray status``."""
        r = self.fairness
        last = self.last_selection
        return {
            "alpha": ALPHA,
            "round": None if r is None else r.round,
            "tasks": 0 if r is None else r.tasks,
            "p_value": None if r is None else r.p_value,
            "max_dev": None if r is None else r.max_dev,
            "max_dev_operator": "" if r is None else r.max_dev_operator,
            "selected": dict(last.observed),
            "expected": {k: round(v, 4) for k, v in last.expected.items()},
            "drifting": r is not None and r.drifting(),
            "rounds_tested": self.rounds_tested,
            "rounds_drifting": self.rounds_drifting,
            "false_alarm": run_false_alarm(ALPHA, self.rounds_tested),
        }


def fairness_lines(status: dict[str, Any]) -> list[str]:
    """The terminal's fairness line, and a warning line when the last round drifted."""
    f = status.get("fairness")
    if not f or f["round"] is None:
        return ["allocation fairness: no round with selected tasks yet"]
    if f["p_value"] is None:
        test = "too few tasks to test"
    else:
        test = f"chi-square p = {f['p_value']:.3g} (warns below {f['alpha']:g})"
    line = f"allocation fairness: round {f['round']}, {f['tasks']} tasks selected, {test}"
    if f["max_dev"] is not None:
        line += f", largest deviation {f['max_dev']:+.2f} sd ({f['max_dev_operator']})"
    line += (
        f"; {f['rounds_drifting']} of {f['rounds_tested']} rounds tested drifted"
        f" (a fair network: {f['false_alarm']:.1%} chance of any)"
    )
    lines = [line]
    if f["drifting"]:
        name = f["max_dev_operator"]
        got, expected = f["selected"].get(name, 0), f["expected"].get(name, 0.0)
        lines.append(
            f"WARNING: allocation drifts from stake in round {f['round']}"
            f" (p = {f['p_value']:.3g} < {f['alpha']:g}): {name} got {got} tasks,"
            f" expected {expected:.1f}"
        )
    return lines


def operator_rows(p: Protocol, tally: RoundTally) -> list[dict[str, Any]]:
    """Return one row per registered operator: stake, delegators, commission, earnings."""
    state = p.state
    delegators: dict[Address, int] = {}
    for address, d in state.delegators.items():
        if d.delegate is not None and d.delegate != address and d.bonded > 0:
            delegators[d.delegate] = delegators.get(d.delegate, 0) + 1
    rows = []
    for name in sorted(a for a, pool in state.pools.items() if pool.registered):
        cut, share = p.commission(name)
        rows.append(
            {
                "operator": name,
                "stake": p.operator_stake(name),
                "delegators": delegators.get(name, 0),
                "reward_cut": cut,
                "fee_share": share,
                "active": p.is_active(name),
                "reputation": round(p.reputation(name), 4),
                "rewards_last_round": tally.last_rewards.get(name, 0),
                "fees_last_round": tally.last_fees.get(name, 0),
                "rewards_this_round": tally.rewards.get(name, 0),
                "fees_this_round": tally.fees.get(name, 0),
            }
        )
    return rows


def coprocessor_rows(p: Protocol) -> list[dict[str, Any]]:
    """Return one row per coprocessor: collateral, reputation, load, wins, faults of each kind."""
    return [
        {
            "coprocessor": c.address,
            "collateral": c.free + c.locked,
            "locked": c.locked,
            "reputation": round(p.reputation(c.address), 4),
            "load": c.load,
            "capacity": c.capacity,
            "wins": c.wins,
            "slashes": c.slashes,
            "misses": c.misses,
            "balance": p.balance(c.address),
        }
        for c in sorted(p.state.coprocessors.values(), key=lambda c: c.address)
    ]


def network_status(p: Protocol, tally: RoundTally) -> dict[str, Any]:
    """Return the network totals with the operator and coprocessor tables."""
    t = p.state.totals
    return {
        "round": p.round,
        "open_tasks": len(p.state.tasks),
        "finished_tasks": sum(p.state.outcome_counts.values()),
        "total_supply": p.total_supply,
        "total_active_stake": p.total_active_stake,
        "minted": t.minted,
        "burned": t.burned,
        "inflation_ppb": p.inflation,
        "operators": operator_rows(p, tally),
        "coprocessors": coprocessor_rows(p),
        "fairness": tally.fairness_status(),
    }
