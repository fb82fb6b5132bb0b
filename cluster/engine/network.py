"""A configured network: its genesis (balances, bonds, coprocessors) and its hosts' placement."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from cluster.config.schema import CLIENT, RunConfig
from protocol.ledger import Ledger
from protocol.units import Address, Amount

SNAPSHOT_RATIO = 1.0
"""A network snapshots once it has logged as many bytes as its last snapshot holds: snapshots
cost at most what the log does, and a recovery replays at most one snapshot's worth of log."""


def delegator_stakes(config: RunConfig) -> list[tuple[Address, Address, Amount]]:
    """Return ``(delegator, operator, stake)`` for the configured delegators (seeded)."""
    rng = random.Random(config.seed)
    net = config.network
    low, high = net.delegators.stake_min, net.delegators.stake_max  # the schema keeps low <= high
    names = [op.name for op in net.operators]
    rows = []
    for i in range(net.delegators.count):
        stake = rng.randint(low, high)
        rows.append((f"delegator-{i:05d}", rng.choice(names), stake))
    return rows


def create_network(config: RunConfig, ledger_dir: Path, *, fsync: bool = True) -> Ledger:
    """Create the ledger: genesis balances, bonds, registrations, then round 1 and its rewards."""
    net = config.network
    delegations = delegator_stakes(config)
    balances: dict[Address, Amount] = {op.name: op.stake for op in net.operators}
    balances.update({name: stake for name, _, stake in delegations})
    balances.update({c.name: c.collateral for c in net.coprocessors})
    balances.update(net.accounts)
    balances[CLIENT] = net.client_balance
    ledger = Ledger.create(
        ledger_dir,
        net.protocol_params(),
        balances,
        snapshot_ratio=SNAPSHOT_RATIO,
        fsync=fsync,
    )
    p = ledger.protocol
    for op in net.operators:
        if op.stake > 0:
            p.bond(op.name, op.name, op.stake)
        p.register_operator(op.name, reward_cut=op.reward_cut, fee_share=op.fee_share)
    for name, operator, stake in delegations:
        if stake > 0:
            p.bond(name, operator, stake)
    for c in net.coprocessors:
        p.register_coprocessor(c.name, c.collateral, c.capacity)
    ledger.commit()
    return ledger


@dataclass(frozen=True)
class Placement:
    """Which host serves what: coprocessors per coprocessor host, operators per operator host.

    Coprocessors go to their explicit ``host``, else round robin; operators
    round robin over at most one host each. The one source for every deploy
    and for the operator hosts' routing.
    """

    coprocessor_groups: list[list[Address]]
    operator_groups: list[list[Address]]

    @classmethod
    def of(cls, config: RunConfig) -> Placement:
        net = config.network
        copro: list[list[Address]] = [[] for _ in range(net.hosts.coprocessor_hosts)]
        for i, c in enumerate(net.coprocessors):
            copro[c.host if c.host is not None else i % len(copro)].append(c.name)
        ops: list[list[Address]] = [
            [] for _ in range(min(net.hosts.operator_hosts, len(net.operators)))
        ]
        for i, op in enumerate(net.operators):
            ops[i % len(ops)].append(op.name)
        return cls(copro, ops)

    @property
    def coprocessor_host(self) -> dict[Address, int]:
        """Return the index of each coprocessor's host."""
        return {name: i for i, group in enumerate(self.coprocessor_groups) for name in group}

    @property
    def operator_host(self) -> dict[Address, int]:
        """Return the index of each operator's host."""
        return {name: i for i, group in enumerate(self.operator_groups) for name in group}
