"""Genesis of a configured network: balances, self-bonds, delegations, coprocessors, round 1."""

from __future__ import annotations

import random
from pathlib import Path

from cluster.config.schema import CLIENT, RunConfig
from protocol.ledger import Ledger
from protocol.units import Address, Amount


def delegator_stakes(config: RunConfig) -> list[tuple[Address, Address, Amount]]:
    """Return ``(delegator, operator, stake)`` for the configured delegators (seeded)."""
    rng = random.Random(config.seed)
    net = config.network
    low = net.delegators.stake_min
    high = max(low, net.delegators.stake_max)
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
    ledger = Ledger.create(ledger_dir, net.protocol_params(), balances, fsync=fsync)
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


def coprocessor_placement(config: RunConfig) -> list[list[str]]:
    """Return the coprocessor names per coprocessor host (explicit ``host``, else round robin)."""
    count = config.network.hosts.coprocessor_hosts
    hosts: list[list[str]] = [[] for _ in range(count)]
    for i, c in enumerate(config.network.coprocessors):
        hosts[c.host if c.host is not None else i % count].append(c.name)
    return hosts


def operator_placement(config: RunConfig) -> list[list[str]]:
    """Return the operator names each operator host serves (round robin)."""
    count = min(config.network.hosts.operator_hosts, len(config.network.operators))
    hosts: list[list[str]] = [[] for _ in range(count)]
    for i, op in enumerate(config.network.operators):
        hosts[i % count].append(op.name)
    return hosts
