"""The network's status table: operators, coprocessors and totals, for ``stakeray status``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol import Protocol
from protocol.units import Address, Amount


@dataclass
class RoundTally:
    """Rewards minted and fees settled per operator, this round and the last one."""

    rewards: dict[Address, Amount] = field(default_factory=dict)
    fees: dict[Address, Amount] = field(default_factory=dict)
    last_rewards: dict[Address, Amount] = field(default_factory=dict)
    last_fees: dict[Address, Amount] = field(default_factory=dict)

    def next_round(self) -> None:
        self.last_rewards, self.rewards = self.rewards, {}
        self.last_fees, self.fees = self.fees, {}

    def add_fee(self, operator: Address, amount: Amount) -> None:
        self.fees[operator] = self.fees.get(operator, 0) + amount


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
    }
