"""What-if previews: a run's ledger forked in memory and run forward under other parameters.

``stakeray whatif RUN_DIR --set inflation_change=1000 --rounds 50`` (or
``--proposal ID``, :func:`whatif_proposal`) answers "what would this change do
to everyone's earnings?" without touching the network:

1. **fork**: the run's ledger is replayed from genesis into memory
   (:meth:`protocol.ledger.Ledger.replay`, read-only: nothing in the run
   directory changes) and copied twice;
2. **change**: one copy keeps today's parameters, the other gets the proposed
   ones, applied as governance would (``Params.replace``; a change of
   ``inflation`` also resets the minter's current rate). With ``--proposal``
   the proposal's changes and treasury transfers are applied to the second
   copy as if it had passed now, and the first copy sees it defeated, so
   that neither executes it again when its vote would end;
3. **run forward**: each copy runs ``rounds`` rounds on the shared market
   engine, one :func:`cluster.analysis.simulate.run_round` a round (the loop of
   ``stakeray simulate``): the round close with the config's reward misses
   (:class:`cluster.engine.faults.RewardMisses`, ``miss_rate``), then the
   round's tasks: as many as the round clock's ``every_tasks`` (a time-based
   clock: the run's mean tasks per round so far, escrowed tasks over rounds),
   kinds drawn from the workload mix with difficulties as the gateway
   computes them, fees from the workload's fee distribution, the workload's
   deadline; execution drawn from each executor's ``fault_rate``; tasks a
   coprocessor failed re-offered the next round. Both copies draw the same
   workload (one seed), so only the parameters differ. Tasks the client can
   no longer pay are not escrowed (``unfunded``); tasks in flight at the fork
   (a network that is up) are left to their deadline;
4. **compare**: per staker (every operator and delegator), the projected
   rewards are the growth of ``pending_stake`` (bond plus unclaimed rewards;
   a slash shows as a loss) and the projected fees that of ``pending_fees``,
   exact in base units; the concentration of rewards across all stakers
   (Gini, Nakamoto 1/3) under each, negative rewards counted as zero.

Seeded: the same run, changes, rounds and seed give the same output.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

import workers
from cluster.analysis.simulate import run_round
from cluster.config.schema import CLIENT, ConfigError, RunConfig, load_config
from cluster.config.workload import GeneratedTask, draw_fees
from cluster.engine.coordinator import CONFIG_FILE
from cluster.engine.faults import RewardMisses
from cluster.engine.gateway import Gateway
from cluster.engine.market import MarketEngine, Pricing
from protocol import Params, Protocol, codec
from protocol.errors import ProtocolError, StakerayError
from protocol.ledger import LOG_NAME, Ledger
from protocol.metrics import compute_gini, compute_nakamoto_coefficient
from protocol.state import ProposalStatus, State
from protocol.units import Address, Amount

MAX_ROUNDS = 100_000
"""The most rounds one preview runs forward."""


class WhatIfError(StakerayError):
    """A what-if preview cannot run (a bad ``--set``, no such proposal, not a run directory)."""


@dataclass(frozen=True, slots=True)
class Staker:
    """An operator or a delegator at the fork: its operator and its pending stake then."""

    address: Address
    role: str  # "operator" | "delegator"
    operator: Address
    stake: Amount


@dataclass
class Projection:
    """One copy's ``rounds`` forward: what each staker gained, and the network's totals."""

    params: Params
    rewards: dict[Address, Amount]
    """Growth of each staker's ``pending_stake`` (base units; a slash is a loss)."""
    fees: dict[Address, Amount]
    """Growth of each staker's ``pending_fees`` (base units)."""
    minted: Amount = 0
    """Issuance minted by the operators' reward calls."""
    fees_credited: Amount = 0
    """Fees credited to the operators' pools."""
    tasks: int = 0
    settled: int = 0
    safety_faults: int = 0
    audit_faults: int = 0
    unfunded: int = 0
    """Tasks not escrowed because the client could not pay them."""
    inflation_ppb: int = 0
    """The minter's rate after the last round."""
    active_operators: int = 0
    state_hash: str = ""

    def concentration(self, stakers: Sequence[Staker]) -> dict[str, float | int]:
        """Gini and Nakamoto (1/3) of the stakers' rewards, and of rewards plus fees."""
        rewards = [max(0, self.rewards[s.address]) for s in stakers]
        earnings = [max(0, self.rewards[s.address] + self.fees[s.address]) for s in stakers]
        return {
            "gini_rewards": compute_gini(rewards),
            "nakamoto_rewards": compute_nakamoto_coefficient(rewards),
            "gini_earnings": compute_gini(earnings),
            "nakamoto_earnings": compute_nakamoto_coefficient(earnings),
        }


@dataclass
class WhatIf:
    """A preview: the fork, the workload it ran, the changes, and both projections."""

    run_dir: Path
    fork_round: int
    rounds: int
    seed: int
    tasks_per_round: int
    clock: str
    """Where ``tasks_per_round`` came from."""
    changes: dict[str, Any]
    today_values: dict[str, Any]
    stakers: list[Staker]
    today: Projection
    proposed: Projection
    proposal: int | None = None
    transfers: dict[Address, Amount] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One row per staker (operators first, then by stake), amounts in base units."""
        rows = []
        for s in self.stakers:
            a, b = self.today, self.proposed
            rows.append(
                {
                    "staker": s.address,
                    "role": s.role,
                    "operator": s.operator,
                    "stake": s.stake,
                    "rewards_today": a.rewards[s.address],
                    "rewards_proposed": b.rewards[s.address],
                    "rewards_change": b.rewards[s.address] - a.rewards[s.address],
                    "fees_today": a.fees[s.address],
                    "fees_proposed": b.fees[s.address],
                    "fees_change": b.fees[s.address] - a.fees[s.address],
                }
            )
        return rows

    def summary(self) -> dict[str, Any]:
        """The preview's setting, each projection's totals and concentration, and the changes."""
        sides = {}
        for name, side in (("today", self.today), ("proposed", self.proposed)):
            sides[name] = {
                **side.concentration(self.stakers),
                "rewards": sum(side.rewards[s.address] for s in self.stakers),
                "fees": sum(side.fees[s.address] for s in self.stakers),
                "minted": side.minted,
                "fees_credited": side.fees_credited,
                "tasks": side.tasks,
                "settled": side.settled,
                "safety_faults": side.safety_faults,
                "audit_faults": side.audit_faults,
                "unfunded": side.unfunded,
                "inflation_ppb": side.inflation_ppb,
                "active_operators": side.active_operators,
                "state_hash": side.state_hash,
            }
        change = {
            key: sides["proposed"][key] - sides["today"][key]
            for key in sides["today"]
            if key != "state_hash"
        }
        return {
            "run_dir": str(self.run_dir),
            "fork_round": self.fork_round,
            "rounds": self.rounds,
            "seed": self.seed,
            "tasks_per_round": self.tasks_per_round,
            "clock": self.clock,
            "proposal": self.proposal,
            "changes": self.changes,
            "today_values": self.today_values,
            "transfers": self.transfers,
            "stakers": len(self.stakers),
            "today": sides["today"],
            "proposed": sides["proposed"],
            "change": change,
        }

    def write_csv(self, path: str | Path) -> None:
        """Write :meth:`rows` as CSV (amounts in base units)."""
        rows = self.rows()
        columns = list(rows[0]) if rows else ["staker"]
        with Path(path).open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


# --- the changes -------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """Read a ``--set`` value: ``true``/``false``, an integer (``100_000`` too), a float,
    or JSON (``{...}`` for the nested ``gas`` and ``load_curve``); else raise ValueError."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for parse in (int, float):
        try:
            value = parse(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(text)
        return value
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(text) from None


def parse_changes(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` items: keys must be :class:`protocol.Params` fields."""
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WhatIfError(f"--set {item!r}: expected KEY=VALUE")
        if key not in Params.model_fields:
            close = difflib.get_close_matches(key, list(Params.model_fields), n=1)
            hint = f"did you mean {close[0]}?" if close else "see protocol/params.py"
            raise WhatIfError(f"--set {key}: not a protocol parameter ({hint})")
        try:
            changes[key] = parse_value(text)
        except ValueError:
            raise WhatIfError(
                f"--set {key}: {text!r} is not a number, true/false or JSON"
            ) from None
    return changes


def changed_params(params: Params, changes: Mapping[str, Any], what: str = "--set") -> Params:
    """Return ``params`` with ``changes``, validated; a bad one is a one-line error naming it."""
    for key in changes:
        if key not in Params.model_fields:
            raise WhatIfError(f"{what} {key}: not a protocol parameter")
    try:
        return params.replace(**changes)
    except ProtocolError as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in changes.items())
        raise WhatIfError(f"{what} {shown}: {exc}") from None


def apply_changes(
    p: Protocol,
    changes: Mapping[str, Any],
    transfers: Mapping[Address, Amount] | None = None,
) -> None:
    """Apply parameter changes (and treasury transfers) to ``p`` as an executed proposal
    would (:func:`protocol.governance.execute_proposals`)."""
    params = changed_params(p.params, changes)
    state = p.state
    spend = sum((transfers or {}).values())
    if spend > state.totals.treasury:
        raise WhatIfError(
            f"transfers of {spend} base units exceed the treasury ({state.totals.treasury})"
        )
    for to in sorted(transfers or {}):
        amount = (transfers or {})[to]
        state.balances[to] = state.balances.get(to, 0) + amount
    state.totals.treasury -= spend
    state.totals.liquid += spend
    if "inflation" in changes:
        state.minter.inflation = params.inflation
    p.params = params


# --- the fork ------------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> tuple[RunConfig, Protocol]:
    """Read a run directory's config and replay its ledger into memory (reads only)."""
    directory = Path(run_dir)
    if not (directory / "ledger" / LOG_NAME).is_file():
        raise WhatIfError(f"{directory}: no ledger/{LOG_NAME}: not a stakeray run directory")
    if not (directory / CONFIG_FILE).is_file():
        raise WhatIfError(f"{directory}: no {CONFIG_FILE}: not a stakeray run directory")
    config = load_config(directory / CONFIG_FILE)
    if config.workload is None:
        raise ConfigError(
            f"{directory / CONFIG_FILE}: workload: missing; the preview draws its tasks from it"
        )
    return config, Ledger.replay(directory / "ledger")


def fork(p: Protocol) -> Protocol:
    """Return an independent copy of ``p`` (no sink: nothing it does is logged)."""
    copy = Protocol(p.params)
    copy.state = codec.decode(State, codec.encode(p.state))
    return copy


def stakers_of(p: Protocol) -> list[Staker]:
    """Every operator and bonded delegator, operators first, then by stake (largest first)."""
    state = p.state
    found = []
    for address, d in state.delegators.items():
        pool = state.pools.get(address)
        operator = pool is not None and pool.registered
        if not operator and (d.bonded == 0 or d.delegate is None):
            continue
        found.append(
            Staker(
                address,
                "operator" if operator else "delegator",
                d.delegate or "",
                p.pending_stake(address),
            )
        )
    found.sort(key=lambda s: (s.role != "operator", -s.stake, s.address))
    return found


def tasks_per_round(config: RunConfig, p: Protocol) -> tuple[int, str]:
    """Return the round clock's tasks per round, and where the number came from."""
    clock = config.network.market.clock
    if clock.every_tasks is not None:
        return clock.every_tasks, "market.clock.every_tasks"
    rounds = max(1, p.round)
    mean = max(1, round(p.state.next_task_id / rounds))
    return mean, f"time clock: mean of {p.state.next_task_id} tasks over {rounds} rounds"


def mix_difficulties(config: RunConfig) -> list[float]:
    """Each workload mix line's difficulty, as :meth:`Gateway.difficulty` computes it."""
    assert config.workload is not None
    gateway = SimpleNamespace(market=config.network.market)  # all the method reads
    return [
        Gateway.difficulty(  # type: ignore[arg-type]
            gateway, GeneratedTask(0, 0.0, workers.TaskSpec(m.kind, m.size), 1)
        )
        for m in config.workload.mix
    ]


def project(
    config: RunConfig,
    base: Protocol,
    stakers: Sequence[Staker],
    rounds: int,
    seed: int,
    count: int,
) -> Projection:
    """Run ``base`` (a fork, changed in place) ``rounds`` rounds forward; see the module."""
    workload = config.workload
    assert workload is not None
    net = config.network
    p = base
    state = p.state
    engine = MarketEngine(
        p,
        {c.name: Pricing(c.cost_ppm, c.margin_ppm) for c in net.coprocessors},
        seed=config.seed,
        resources={o.name: o.resources for o in net.operators},
        operators={o.name for o in net.operators},
    )
    fault_rates = {o.name: o.fault_rate for o in net.operators}
    fault_rates.update({c.name: c.fault_rate for c in net.coprocessors})
    misses = RewardMisses(config)
    levels = np.array(mix_difficulties(config), dtype=np.float64)
    weights = np.array([m.weight for m in workload.mix], dtype=np.float64)
    weights /= weights.sum()
    rng = np.random.default_rng([seed, p.round])
    start_stake = {s.address: p.pending_stake(s.address) for s in stakers}
    start_fees = {s.address: p.pending_fees(s.address) for s in stakers}
    out = Projection(p.params, {}, {})
    tasks = state.tasks
    reoffer = sorted(
        t for t, task in tasks.items() if not task.assigned and task.operator is not None
    )
    for _ in range(rounds):
        picks = rng.choice(len(levels), size=count, p=weights)
        fees = draw_fees(workload.fees, count, rng)
        # The client pays what it can (refunds at the round close only add to it).
        balance, affordable = state.balances.get(CLIENT, 0), 0
        for fee in fees:
            if fee > balance:
                break
            balance -= fee
            affordable += 1
        out.unfunded += count - affordable
        step = run_round(
            engine,
            fees[:affordable],
            levels[picks[:affordable]].tolist(),
            reoffer,
            client=CLIENT,
            fault_rates=fault_rates,
            outcome_seed=seed,
            deadline_rounds=workload.deadline_rounds,
            missed=misses.is_missed,
        )
        reoffer = step.reoffer
        out.minted += sum(step.rewards.values())
        out.fees_credited += sum(step.earned.values())
        out.tasks += affordable
        out.settled += len(step.settled)
        out.safety_faults += len(step.safety)
        out.audit_faults += len(step.audited)
    out.params = p.params
    out.rewards = {a: p.pending_stake(a) - start_stake[a] for a in start_stake}
    out.fees = {a: p.pending_fees(a) - start_fees[a] for a in start_fees}
    out.inflation_ppb = state.minter.inflation
    out.active_operators = len(state.active)
    out.state_hash = p.state_hash()
    return out


def check_rounds(rounds: int) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
        raise WhatIfError(f"--rounds: must be an integer from 1 to {MAX_ROUNDS:,}, got {rounds!r}")


def run_whatif(
    run_dir: str | Path,
    changes: Mapping[str, Any],
    rounds: int,
    seed: int | None = None,
    *,
    proposal: int | None = None,
) -> WhatIf:
    """Preview ``changes`` (``Params`` fields) on a run: ``rounds`` forward under today's
    parameters and under the changed ones (``seed``: default the run's). With
    ``proposal``, that open proposal's changes and transfers (:func:`whatif_proposal`)."""
    check_rounds(rounds)
    config, p = load_run(run_dir)
    seed = config.seed if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WhatIfError(f"--seed: must be an integer >= 0, got {seed!r}")
    transfers: dict[Address, Amount] = {}
    if proposal is not None:
        found = p.state.proposals.get(proposal)
        if found is None:
            raise WhatIfError(f"--proposal {proposal}: no such proposal in {run_dir}")
        if found.status != ProposalStatus.OPEN:
            raise WhatIfError(f"--proposal {proposal}: {found.status.value}, not open")
        changes, transfers = dict(found.changes), dict(found.transfers)
    changes = dict(changes)
    what = f"--proposal {proposal}" if proposal is not None else "--set"
    changed_params(p.params, changes, what)  # refuse a bad change before any work
    today_values = {k: getattr(p.params, k) for k in changes}
    today_values = {
        k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in today_values.items()
    }
    stakers = stakers_of(p)
    count, clock = tasks_per_round(config, p)
    today, proposed = fork(p), fork(p)
    if proposal is not None:
        today.state.proposals[proposal].status = ProposalStatus.DEFEATED
        proposed.state.proposals[proposal].status = ProposalStatus.EXECUTED
    try:
        apply_changes(proposed, changes, transfers)
    except WhatIfError as exc:
        raise WhatIfError(f"{what}: {exc}") from None
    return WhatIf(
        run_dir=Path(run_dir),
        fork_round=p.round,
        rounds=rounds,
        seed=seed,
        tasks_per_round=count,
        clock=clock,
        changes=changes,
        today_values=today_values,
        stakers=stakers,
        today=project(config, today, stakers, rounds, seed, count),
        proposed=project(config, proposed, stakers, rounds, seed, count),
        proposal=proposal,
        transfers=transfers,
    )


def whatif(
    run_dir: str | Path, changes: Mapping[str, Any], rounds: int, seed: int | None = None
) -> WhatIf:
    """Preview parameter ``changes`` on a run (see the module docstring)."""
    return run_whatif(run_dir, changes, rounds, seed)


def whatif_proposal(
    run_dir: str | Path, proposal_id: int, rounds: int, seed: int | None = None
) -> WhatIf:
    """Preview an open governance proposal: its changes and transfers as if it passed now,
    against the network without it (the explorer's "what would this proposal do")."""
    if isinstance(proposal_id, bool) or not isinstance(proposal_id, int):
        raise WhatIfError(f"--proposal: must be an integer, got {proposal_id!r}")
    return run_whatif(run_dir, {}, rounds, seed, proposal=proposal_id)
