"""An in-process run of the protocol ledger: rounds, checkpoints and fee payments.

This is the protocol half of a stakeray run (no Ray): it builds the network
from a :class:`RunConfig`, drives rounds on a durable ledger, and writes the
run directory. The Ray cluster drives the same ledger with real tasks.
"""

from __future__ import annotations

import csv
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from protocol import Protocol, ProtocolError
from protocol.ledger import Ledger
from protocol.units import Address, Amount

from .config import RunConfig

CLIENT: Address = "client"


@dataclass
class RunResult:
    """What a run produced, for the reward table and the summary."""

    directory: Path
    rounds: int
    minted: Amount
    burned: Amount
    state_hash: str
    conservation_ok: bool
    rewards: dict[Address, Amount] = field(default_factory=dict)
    fees: dict[Address, Amount] = field(default_factory=dict)
    stakes: dict[Address, Amount] = field(default_factory=dict)
    delegator_counts: dict[Address, int] = field(default_factory=dict)
    elapsed_s: float = 0.0


def build_network(config: RunConfig, directory: Path) -> tuple[Ledger, list[Address]]:
    """Create the ledger with genesis balances, self-bonds, registrations and delegations."""
    rng = random.Random(config.seed)
    net = config.network
    delegators = [f"delegator-{i:05d}" for i in range(net.delegators.count)]
    stakes = [
        rng.randint(
            net.delegators.stake_min, max(net.delegators.stake_min, net.delegators.stake_max)
        )
        for _ in delegators
    ]
    balances = {op.name: op.stake for op in net.operators}
    balances.update(zip(delegators, stakes, strict=True))
    balances[CLIENT] = net.client_balance
    ledger = Ledger.create(directory / "ledger", net.protocol_params(), balances)
    p = ledger.protocol
    for op in net.operators:
        if op.stake > 0:
            p.bond(op.name, op.name, op.stake)
        p.register_operator(op.name, reward_cut=op.reward_cut, fee_share=op.fee_share)
    names = [op.name for op in net.operators]
    for name, stake in zip(delegators, stakes, strict=True):
        if stake > 0:
            p.bond(name, rng.choice(names), stake)
    ledger.commit()
    return ledger, delegators


def pick_operator(p: Protocol, rng: random.Random) -> Address:
    """Pick an active operator with probability proportional to its round stake (SPEC 6)."""
    active = p.active_set
    names = sorted(active)
    return rng.choices(names, weights=[active[n] for n in names])[0]


def run_economy(config: RunConfig, directory: Path, *, progress: bool = True) -> RunResult:
    """Run the configured rounds and write ``rounds.csv`` and ``summary.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ledger, _ = build_network(config, directory)
    p = ledger.protocol
    rng = random.Random(config.seed + 1)
    misses = {op.name: op.miss_rate for op in config.network.operators}
    rewards: dict[Address, Amount] = {}
    fees: dict[Address, Amount] = {}
    work = config.workload
    with (directory / "rounds.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["round", "operator", "active", "stake", "minted", "fees", "inflation_ppb"])
        for _ in range(work.rounds):
            n = p.initialize_round()
            minted: dict[Address, Amount] = {}
            for op in sorted(p.active_set):
                if rng.random() >= misses.get(op, 0.0):
                    minted[op] = p.reward(op)
            paid: dict[Address, Amount] = {}
            if p.active_set and work.payments_per_round and work.fees_per_round:
                each = work.fees_per_round // work.payments_per_round
                rows = [
                    (CLIENT, pick_operator(p, rng), each) for _ in range(work.payments_per_round)
                ]
                try:
                    p.pay_fees_batch([r for r in rows if r[2] > 0])
                    for _, op, amount in rows:
                        paid[op] = paid.get(op, 0) + amount
                except ProtocolError as exc:
                    print(f"round {n}: fees not paid: {exc}", file=sys.stderr)
            for op in sorted(p.state.pools):
                if not p.is_registered(op) and op not in p.active_set:
                    continue
                rewards[op] = rewards.get(op, 0) + minted.get(op, 0)
                fees[op] = fees.get(op, 0) + paid.get(op, 0)
                writer.writerow(
                    [
                        n,
                        op,
                        int(p.is_active(op)),
                        p.operator_stake(op),
                        minted.get(op, 0),
                        paid.get(op, 0),
                        p.inflation,
                    ]
                )
            ledger.commit()
            if progress:
                print(f"\rround {n}/{work.rounds}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    ledger.snapshot()
    try:
        p.check_invariants()
        conservation_ok = True
    except AssertionError:
        conservation_ok = False
    t = p.state.totals
    result = RunResult(
        directory=directory,
        rounds=p.round,
        minted=t.minted,
        burned=t.burned,
        state_hash=p.state_hash(),
        conservation_ok=conservation_ok,
        rewards=rewards,
        fees=fees,
        stakes={op: p.operator_stake(op) for op in rewards},
        delegator_counts=count_delegators(p),
        elapsed_s=time.perf_counter() - started,
    )
    write_summary(result, p)
    ledger.close()
    return result


def count_delegators(p: Protocol) -> dict[Address, int]:
    """Return how many accounts other than the operator are bonded to each operator."""
    counts: dict[Address, int] = {}
    for address, d in p.state.delegators.items():
        if d.delegate is not None and d.delegate != address and d.bonded > 0:
            counts[d.delegate] = counts.get(d.delegate, 0) + 1
    return counts


def write_summary(result: RunResult, p: Protocol) -> None:
    """Write ``summary.json`` (amounts as strings: they exceed JSON's safe integers)."""
    stake_dust, fee_dust = p.unclaimable()
    summary = {
        "rounds": result.rounds,
        "minted": str(result.minted),
        "burned": str(result.burned),
        "total_supply": str(p.total_supply),
        "treasury": str(p.treasury),
        "inflation_ppb": p.inflation,
        "conservation_ok": result.conservation_ok,
        "unclaimable_dust": {"stake": str(stake_dust), "fees": str(fee_dust)},
        "state_hash": result.state_hash,
        "elapsed_s": round(result.elapsed_s, 3),
    }
    (result.directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
