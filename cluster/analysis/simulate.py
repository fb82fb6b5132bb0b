"""The paper's experiments: the market engine with execution replaced by drawn outcomes.

``stakeray simulate EXPERIMENT.yaml --out DIR`` runs, for every point of a
sweep and every Monte Carlo seed, a network of operators and coprocessors for
a number of rounds on the same engine as the live cluster
(:class:`cluster.engine.market.MarketEngine`) over a real in-memory
:class:`protocol.Protocol` (no ledger on disk). Every rule is the protocol's;
this module only draws the network, the tasks and the outcomes, and counts.

The network: operators bond their stake to themselves and register (10 %
reward cut, 90 % fee share), delegators bond to random operators,
coprocessors register with their collateral and capacity
(``register_coprocessor``: the collateral is in the protocol), and a client
is funded for the fees. Each round:

1. ``close_round``: ``initialize_round`` (active set, issuance, GAS reputation
   from the last round's outcomes, ...), one reward call per active operator,
   expiry of tasks past their deadline;
2. the round's tasks are drawn (difficulty lognormal, fee proportional to it)
   and escrowed in one transaction;
3. ``clear``: stake-weighted operator choice; an operator runs a task itself
   when its resources cover the difficulty (SPEC 6), the others go to one
   batch of Dutch auctions (``clear_batch``, one ask rate per coprocessor from
   ``compute_ask_ppm``), and nobody above the reserve: the operator runs it.
   Tasks re-offered by the last round's safety faults are cleared with them;
4. execution is drawn (:func:`cluster.engine.execution.draw_outcomes`): each
   attempt is right with its executor's reliability;
5. ``settle``, one ``settle_batch``: a coprocessor's wrong result is a safety
   fault (``fail_coprocessor``: ``s * locked collateral * amplification(load)``
   is slashed, ``redistribution`` of it goes to the operator's balance and the
   rest is burned; the task is re-offered without that coprocessor, and the
   client is refunded after ``max_attempts``); every other task settles (the
   operator's pool gets the clock price as fees, the whole fee when it ran the
   task itself, and the coprocessor ``fee - price``); an operator's own wrong
   result is caught only where :func:`protocol.market.is_audit_sample` picks
   the task (``audit_rate``): the task settles as any other and then
   ``audit_fault`` slashes the operator's own bond (its whole pool with
   ``slash_delegators``) by the slashing factor, the slash burned; a wrong
   result no audit samples goes unnoticed. An operator whose bond falls below
   ``min_operator_bond`` leaves the active set (SPEC 7).

With ``delegators.redelegate_every`` some delegators move their bonds towards
the operators with the best GAS reputation (the pools' own).

What a point reports (``rewards.csv``, one row per participant, with the
slashing factor as a fraction in ``slashing``): per operator, its issuance
plus the fees credited for its settled tasks, its audit faults as
``slashes`` and the tasks it ran itself; per coprocessor, ``fee - price`` on
its settled tasks plus any uptime incentive (SPEC 9), its safety faults and
the tasks it won; stake and collateral as the protocol holds them at the end.
Per round (``rounds.csv``): the active set, the cumulative reward (issuance
and fees), self-run and auctioned assignments (re-offered tasks included),
safety and audit faults, and the coprocessors' load after the clearing.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cluster.config.schema import ConfigError, first_error, read_yaml
from cluster.engine.execution import draw_outcomes
from cluster.engine.market import MarketEngine, Pricing
from cluster.engine.messages import Assignment
from cluster.engine.progress import Progress
from protocol import Params, Protocol, ProtocolError
from protocol.market import is_audit_sample
from protocol.metrics import compute_correlation, compute_gini, compute_nakamoto_coefficient
from protocol.state import Coprocessor
from protocol.units import PPM, TOKEN, Address, Amount, Round, tokens

CLIENT: Address = "client"

Range = Annotated[
    list[Annotated[float, Field(ge=0.0, le=1e12, allow_inf_nan=False)]],
    Field(min_length=2, max_length=2),
]
"""``[low, high]``: finite, non-negative, and (checked by each model) ordered."""


class ParticipantsConfig(BaseModel):
    """A population drawn uniformly between the bounds of each ``[low, high]`` range."""

    model_config = ConfigDict(extra="forbid")
    count: Annotated[int, Field(ge=1, le=100_000)]
    stake: Range = [1000.0, 10000.0]
    resources: Range = [0.5, 4.0]
    reliability: Range = [0.9, 0.999]
    capacity: Annotated[list[int], Field(min_length=2, max_length=2)] = [5, 20]
    cost_ppm: Annotated[list[int], Field(min_length=2, max_length=2)] = [100_000, 400_000]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for name in ("stake", "resources", "reliability", "capacity", "cost_ppm"):
            low, high = getattr(self, name)
            if low > high or low < 0:
                raise ValueError(f"{name}: need 0 <= low <= high, got {[low, high]}")
        if self.reliability[1] > 1:
            raise ValueError("reliability: must be <= 1")
        return self


class TasksConfig(BaseModel):
    """Tasks per round, their difficulty (lognormal) and fee per unit of difficulty."""

    model_config = ConfigDict(extra="forbid")
    per_round: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    difficulty_median: Annotated[float, Field(gt=0)] = 1.0
    difficulty_sigma: Annotated[float, Field(ge=0)] = 1.0
    fee_per_difficulty: Annotated[float, Field(gt=0)] = 1.0


class DelegatorsSimConfig(BaseModel):
    """Delegators bonded to random operators; with ``redelegate_every`` > 0 they follow
    reputation: every that many rounds a ``redelegate_share`` of them looks at ``sample``
    random active operators and moves its bond to the most reputable (a feedback loop
    the paper lists as future work)."""

    model_config = ConfigDict(extra="forbid")
    count: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    stake: Range = [10.0, 500.0]
    redelegate_every: Annotated[int, Field(ge=0)] = 0
    redelegate_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    sample: Annotated[int, Field(ge=1)] = 5

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.stake[0] > self.stake[1]:
            raise ValueError(f"stake: need low <= high, got {self.stake}")
        return self


SIMULATOR_KNOBS = ("redelegate_every",)
"""Sweepable settings of the simulator itself (the other sweep keys are ``Params`` fields)."""


class ExperimentConfig(BaseModel):
    """The whole experiment: network, tasks, rounds, protocol parameters and the sweep."""

    model_config = ConfigDict(extra="forbid")
    name: str = "experiment"
    seed: int = 0
    seeds: Annotated[int, Field(ge=1, le=1000)] = 1
    rounds: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    operators: ParticipantsConfig
    coprocessors: ParticipantsConfig
    tasks: TasksConfig = TasksConfig()
    delegators: DelegatorsSimConfig = DelegatorsSimConfig()
    params: dict[str, Any] = Field(default_factory=dict)
    sweep: dict[str, list[Any]] = Field(default_factory=lambda: {"slash_fraction": [100_000]})

    @model_validator(mode="after")
    def _sweep(self) -> Self:
        if len(self.sweep) != 1:
            raise ValueError("sweep: give exactly one parameter and its values")
        ((name, values),) = self.sweep.items()
        if (name not in Params.model_fields and name not in SIMULATOR_KNOBS) or not values:
            raise ValueError(f"sweep: {name!r} is not a protocol parameter with values")
        return self

    def point_params(self, name: str, value: Any) -> Params:
        """Return the protocol parameters of one sweep point."""
        overrides = {name: value} if name in Params.model_fields else {}
        return Params.build(**{**self.params, **overrides})

    def point_delegators(self, name: str, value: Any) -> DelegatorsSimConfig:
        """Return the delegator settings of one sweep point."""
        if name in SIMULATOR_KNOBS:
            return self.delegators.model_copy(update={name: int(value)})
        return self.delegators

    def points(self) -> list[tuple[str, Any]]:
        ((name, values),) = self.sweep.items()
        return [(name, v) for v in values]


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Load and validate an experiment file (one-line errors naming the field)."""
    data = read_yaml(path)
    try:
        config = ExperimentConfig.model_validate(data)
        for name, value in config.points():
            config.point_params(name, value)
    except ValidationError as exc:
        raise first_error(exc, str(path)) from None
    except ProtocolError as exc:
        raise ConfigError(f"{path}: params: {exc}") from None
    return config


# --- one simulation --------------------------------------------------------------------


@dataclass
class Population:
    """Drawn attributes, one array entry per participant."""

    names: list[str]
    stake: list[int]
    resources: np.ndarray
    reliability: np.ndarray
    capacity: np.ndarray
    cost_ppm: np.ndarray


def draw_population(prefix: str, spec: ParticipantsConfig, rng: np.random.Generator) -> Population:
    n = spec.count
    stake = rng.uniform(*spec.stake, n)
    return Population(
        names=[f"{prefix}-{i:04d}" for i in range(n)],
        stake=[tokens(f"{s:.6f}") for s in stake],
        resources=rng.uniform(*spec.resources, n),
        reliability=rng.uniform(*spec.reliability, n),
        capacity=rng.integers(spec.capacity[0], spec.capacity[1] + 1, n),
        cost_ppm=rng.integers(spec.cost_ppm[0], spec.cost_ppm[1] + 1, n),
    )


@dataclass
class PointResult:
    """What one sweep point and seed produced; ``series`` holds per-round arrays for figures:
    ``operator_reward`` and ``coprocessor_reward`` (tokens), ``coprocessor_tasks`` and
    ``coprocessor_load`` (rounds x participants), and ``edges`` (operator x coprocessor tasks).
    """

    row: dict[str, Any]
    rounds: list[dict[str, Any]]
    participants: list[dict[str, Any]]
    series: dict[str, np.ndarray] | None = None


def build_network(
    config: ExperimentConfig,
    params: Params,
    delegation: DelegatorsSimConfig,
    rng: np.random.Generator,
) -> tuple[Protocol, Population, Population, list[str]]:
    """Draw the populations and build their protocol: operators bond and register,
    delegators bond to random operators, coprocessors register with their collateral
    and capacity, and the client is funded. Return it, the operators, the coprocessors
    and the delegators."""
    ops = draw_population("op", config.operators, rng)
    cops = draw_population("cop", config.coprocessors, rng)
    d_names = [f"del-{i:06d}" for i in range(delegation.count)]
    d_stake = [tokens(f"{x:.6f}") for x in rng.uniform(*delegation.stake, delegation.count)]
    balances = dict(zip(ops.names, ops.stake, strict=True))
    balances.update(zip(cops.names, cops.stake, strict=True))  # a coprocessor's collateral
    # A delegator keeps a few base units liquid: moving a bond is a bond of 1 more unit.
    balances.update({d: x + 1000 for d, x in zip(d_names, d_stake, strict=True)})
    # The client holds twice the expected fees (lognormal mean), not more: a liquid
    # balance counts against the bonding rate that steers issuance (SPEC 3).
    tasks = config.tasks
    mean_difficulty = tasks.difficulty_median * math.exp(tasks.difficulty_sigma**2 / 2)
    expected = config.rounds * tasks.per_round * mean_difficulty * fee_scale(config)
    balances[CLIENT] = int(2 * expected) + 10 * TOKEN
    p = Protocol(params, balances)
    for op, stake in zip(ops.names, ops.stake, strict=True):
        p.bond(op, op, stake)
        p.register_operator(op, reward_cut=100_000, fee_share=900_000)
    for d, x, o in zip(
        d_names, d_stake, rng.integers(0, len(ops.names), len(d_names)), strict=True
    ):
        p.bond(d, ops.names[int(o)], x)
    for c, collateral, capacity in zip(cops.names, cops.stake, cops.capacity.tolist(), strict=True):
        p.register_coprocessor(c, collateral, capacity)
    return p, ops, cops, d_names


def fee_scale(config: ExperimentConfig) -> int:
    """Return the fee of a task of difficulty 1, in base units."""
    return tokens(f"{config.tasks.fee_per_difficulty:.9f}")


# --- one round (shared with the what-if previews, cluster.analysis.whatif) ----------------


@dataclass(slots=True)
class RoundStep:
    """What one round of :func:`run_round` did, in the order it happened."""

    round: Round
    """The round it opened."""
    rewards: dict[Address, Amount]
    """The operators' reward calls: the amount each minted."""
    expired: list[int]
    """Tasks past their deadline at the round close (refunded, or liveness faults)."""
    uptime: dict[Address, Amount]
    """What each of ``uptime_of`` gained at the round close (SPEC 9's uptime incentive);
    only those that gained."""
    first_id: int
    """The id of the round's first new task."""
    assigned: list[Assignment]
    ok: list[bool]
    """Whether each assignment's drawn execution was right."""
    settled: list[int]
    safety: list[int]
    """Tasks a coprocessor got wrong: slashed, and re-offered while attempts remain."""
    audited: list[int]
    """Tasks an operator ran itself, got wrong and an audit sampled: its audit faults."""
    earned: dict[Address, Amount]
    """Fees credited to each operator's pool (the clock price, or the whole fee of a task
    it ran itself)."""
    paid: dict[Address, Amount]
    """What each coprocessor was paid: ``fee - price`` of its settled tasks."""
    loads: list[int]
    """The load of each of ``loads_of`` after the clearing."""
    reoffer: list[int]
    """Open tasks to re-offer next round (the coprocessors' safety faults, and earlier
    re-offers still unassigned)."""


def run_round(
    engine: MarketEngine,
    fees: Sequence[Amount],
    difficulties: Sequence[float],
    reoffer: Sequence[int],
    *,
    client: Address,
    fault_rates: Mapping[str, float],
    outcome_seed: int,
    deadline_rounds: int | None = None,
    missed: Callable[[Address, Round], bool] | None = None,
    uptime_of: Sequence[Address] = (),
    loads_of: Sequence[Address] = (),
) -> RoundStep:
    """One round of the market with drawn execution, as ``stakeray simulate`` runs it.

    1. ``close_round`` (``missed``: reward calls skipped, see
       :class:`cluster.engine.faults.RewardMisses`);
    2. escrow the round's new tasks (``fees``, ``client`` pays; ``deadline_rounds``:
       their deadline, default the parameter's) and clear them with ``reoffer``
       (open tasks a coprocessor failed) in one clearing, ``difficulties`` deciding
       which an operator runs itself;
    3. draw each attempt's outcome (:func:`draw_outcomes`, keyed by ``outcome_seed``,
       each executor right with ``1 - fault_rates[executor]``);
    4. settle in one ``settle_batch``: a coprocessor's wrong result is a safety
       fault, an operator's own wrong one an audit fault where
       :func:`is_audit_sample` picks it (unnoticed otherwise), the rest settle.
    """
    state = engine.p.state
    before = [state.balances.get(c, 0) for c in uptime_of]
    n, rewards, expired = engine.close_round(missed)
    uptime = {
        c: gained
        for c, was in zip(uptime_of, before, strict=True)
        if (gained := state.balances.get(c, 0) - was)
    }
    first = engine.escrow(client, fees, None, deadline_rounds) if fees else state.next_task_id
    assigned = engine.clear(
        list(zip(range(first, first + len(fees)), difficulties, strict=True)), reoffer
    )
    coprocessors = state.coprocessors
    loads = [coprocessors[c].load for c in loads_of]
    ok = draw_outcomes(
        outcome_seed,
        [a.coprocessor or a.operator for a in assigned],
        [a.task_id for a in assigned],
        [a.attempt for a in assigned],
        fault_rates,
    )
    audit_rate = engine.p.params.audit_rate
    tasks = state.tasks
    settled: list[int] = []
    safety: list[int] = []
    audited: list[int] = []
    earned: dict[Address, Amount] = {}
    paid: dict[Address, Amount] = {}
    for a, right in zip(assigned, ok, strict=True):
        task_id, operator, price = a.task_id, a.operator, a.price
        if a.coprocessor is None:
            settled.append(task_id)
            earned[operator] = earned.get(operator, 0) + price
            if not right and is_audit_sample(outcome_seed, task_id, audit_rate):
                audited.append(task_id)
            continue
        if right:
            settled.append(task_id)
            earned[operator] = earned.get(operator, 0) + price
            paid[a.coprocessor] = paid.get(a.coprocessor, 0) + tasks[task_id].fee - price
        else:
            safety.append(task_id)
    engine.settle(settled, safety, audited=audited)
    # A task a coprocessor failed is re-offered next round (unless out of attempts); one
    # whose assignment was refused (its operator left the active set) waits for its
    # deadline, which refunds it.
    again = [t for t in sorted({*reoffer, *safety}) if t in tasks and not tasks[t].assigned]
    return RoundStep(
        n,
        rewards,
        expired,
        uptime,
        first,
        assigned,
        ok,
        settled,
        safety,
        audited,
        earned,
        paid,
        loads,
        again,
    )


def simulate_point(
    config: ExperimentConfig,
    name: str,
    value: Any,
    seed: int,
    progress: bool | Progress | None = False,
) -> PointResult:
    """Run one network for ``config.rounds`` rounds with ``params[name] = value``.

    ``progress``: a reporter to advance by one per round (the sweep's), or ``True``
    for one of this point's own on stderr.
    """
    return run_point(config, name, value, seed, progress)[0]


def run_point(
    config: ExperimentConfig,
    name: str,
    value: Any,
    seed: int,
    progress: bool | Progress | None = False,
) -> tuple[PointResult, Protocol]:
    """:func:`simulate_point`, and the protocol the network ends with (to inspect)."""
    bar = progress if isinstance(progress, Progress) else None
    if progress is True:
        bar = Progress(config.rounds, unit="rounds", note=f"{name}={value} seed {seed}")
    rng = np.random.default_rng([config.seed, seed])
    params = config.point_params(name, value)
    delegation = config.point_delegators(name, value)
    p, ops, cops, d_names = build_network(config, params, delegation, rng)
    state = p.state
    network_seed = config.seed * 1000 + seed  # seeds < 1000: one key per (experiment, seed)
    engine = MarketEngine(
        p,
        {
            c: Pricing(cost_ppm=int(cost))
            for c, cost in zip(cops.names, cops.cost_ppm.tolist(), strict=True)
        },
        seed=network_seed,
        resources=dict(zip(ops.names, ops.resources.tolist(), strict=True)),
    )
    fault_rates = {
        **dict(zip(ops.names, (1.0 - ops.reliability).tolist(), strict=True)),
        **dict(zip(cops.names, (1.0 - cops.reliability).tolist(), strict=True)),
    }
    n_ops, n_cops = len(ops.names), len(cops.names)
    index = {x: i for i, x in enumerate(ops.names)}
    index.update({x: i for i, x in enumerate(cops.names)})
    capacity = cops.capacity.astype(np.float64)
    tasks_config = config.tasks
    scale = fee_scale(config)
    log_median = math.log(tasks_config.difficulty_median)
    count = tasks_config.per_round
    # Totals in base units (exact), and per-round series in tokens.
    op_issuance = [0] * n_ops
    op_fees = [0] * n_ops
    cop_paid = [0] * n_cops
    cop_uptime = [0] * n_cops
    op_tasks = np.zeros(n_ops, dtype=np.int64)
    cop_tasks = np.zeros(n_cops, dtype=np.int64)
    cop_slashes = np.zeros(n_cops, dtype=np.int64)
    op_slashes = np.zeros(n_ops, dtype=np.int64)
    rounds: list[dict[str, Any]] = []
    shape_ops, shape_cops = (config.rounds, n_ops), (config.rounds, n_cops)
    series = {
        "operator_reward": np.zeros(shape_ops, dtype=np.float64),
        "coprocessor_reward": np.zeros(shape_cops, dtype=np.float64),
        "coprocessor_tasks": np.zeros(shape_cops, dtype=np.int32),
        "coprocessor_load": np.zeros(shape_cops, dtype=np.float32),
        "edges": np.zeros((n_ops, n_cops), dtype=np.int64),
    }
    redelegations = 0
    cumulative = 0
    reoffer: list[int] = []
    started = time.perf_counter()
    uptime_paid = params.coprocessor_issuance_share > 0
    for _ in range(config.rounds):
        # The round's tasks (drawn first: closing the round draws nothing from ``rng``).
        difficulty = rng.lognormal(log_median, tasks_config.difficulty_sigma, count)
        fees = [f if f > 0 else 1 for f in map(int, (difficulty * scale).tolist())]
        step = run_round(
            engine,
            fees,
            difficulty.tolist(),
            reoffer,
            client=CLIENT,
            fault_rates=fault_rates,
            outcome_seed=network_seed,
            uptime_of=cops.names if uptime_paid else (),
            loads_of=cops.names,
        )
        n = step.round
        row_ops = series["operator_reward"][n - 1]
        row_cops = series["coprocessor_reward"][n - 1]
        minted = 0
        for op, amount in step.rewards.items():
            i = index[op]
            op_issuance[i] += amount
            row_ops[i] += amount / TOKEN
            minted += amount
        for i, c in enumerate(cops.names if uptime_paid else ()):  # SPEC 9's uptime incentive
            uptime = step.uptime.get(c, 0)
            if uptime:
                cop_uptime[i] += uptime
                row_cops[i] += uptime / TOKEN
                minted += uptime
        loads = np.array(step.loads, dtype=np.float64) / capacity
        audited = step.audited
        caught_ids = set(audited)
        own: list[int] = []  # operator of each task run by its operator
        caught: list[int] = []  # operator of each audit fault
        pairs: list[int] = []  # operator * n_cops + coprocessor of each auctioned task
        failed: list[int] = []  # coprocessor of each safety fault
        for a, right in zip(step.assigned, step.ok, strict=True):
            o = index[a.operator]
            if a.coprocessor is None:
                own.append(o)
                if not right and a.task_id in caught_ids:
                    caught.append(o)
                continue
            c = index[a.coprocessor]
            pairs.append(o * n_cops + c)
            if not right:
                failed.append(c)
        safety = step.safety
        fees_paid = 0
        for op, amount in step.earned.items():
            o = index[op]
            op_fees[o] += amount
            row_ops[o] += amount / TOKEN
            fees_paid += amount
        for cop, amount in step.paid.items():
            c = index[cop]
            cop_paid[c] += amount
            row_cops[c] += amount / TOKEN
        op_tasks += np.bincount(own, minlength=n_ops)
        edges = np.bincount(pairs, minlength=n_ops * n_cops).reshape(n_ops, n_cops)
        series["edges"] += edges
        series["coprocessor_tasks"][n - 1] = per_cop = edges.sum(axis=0)
        cop_tasks += per_cop
        cop_slashes += np.bincount(failed, minlength=n_cops)
        op_slashes += np.bincount(caught, minlength=n_ops)
        reoffer = step.reoffer
        active = sorted(state.active)
        if delegation.redelegate_every and n % delegation.redelegate_every == 0 and active:
            redelegations += redelegate(p, d_names, active, delegation, rng)
        cumulative += minted + fees_paid
        series["coprocessor_load"][n - 1] = loads
        rounds.append(
            {
                name: value,
                "seed": seed,
                "round": n,
                "active_operators": len(active),
                "cumulative_reward": round(cumulative / TOKEN, 6),
                "tasks": count,
                "self_executed": len(own),
                "auctioned": len(pairs),
                "coprocessor_failures": len(safety),
                "operator_slashes": len(audited),
                "mean_load": round(float(loads.mean()), 6),
                "max_load": round(float(loads.max()), 6),
            }
        )
        if bar is not None:
            bar.advance(1, round_=n)
    if bar is not None and bar is not progress:
        bar.close()
    p.check_invariants()
    op_rep = np.array([p.reputation(o) for o in ops.names])
    op_reward = np.array([(a + b) / TOKEN for a, b in zip(op_issuance, op_fees, strict=True)])
    stakes = [p.operator_stake(o) for o in ops.names]
    slashing = params.slash_fraction / PPM
    corr = compute_correlation(op_rep, op_reward)
    row = {
        name: value,
        "slashing": slashing,
        "seed": seed,
        "operators": n_ops,
        "coprocessors": n_cops,
        "rounds": config.rounds,
        "tasks": state.next_task_id,
        "active_operators_final": len(p.active_set),
        "cumulative_reward_final": round(cumulative / TOKEN, 6),
        "reputation_reward_corr": None if math.isnan(corr) else round(corr, 6),
        "gini_rewards": round(compute_gini(op_reward), 6),
        "elapsed_s": round(time.perf_counter() - started, 3),
        "gini_stake_final": round(compute_gini(stakes), 6),
        "nakamoto_stake_final": compute_nakamoto_coefficient(stakes),
        "redelegations": redelegations,
    }
    participants = [
        {
            name: value,
            "slashing": slashing,
            "seed": seed,
            "role": "operator",
            "id": o,
            "total_reward": round(float(op_reward[i]), 6),
            "issuance": round(op_issuance[i] / TOKEN, 6),
            "reputation": round(float(op_rep[i]), 6),
            "active": int(p.is_active(o)),
            "stake": round(stakes[i] / TOKEN, 6),
            "slashes": int(op_slashes[i]),
            "tasks": int(op_tasks[i]),
        }
        for i, o in enumerate(ops.names)
    ] + [
        {
            name: value,
            "slashing": slashing,
            "seed": seed,
            "role": "coprocessor",
            "id": c,
            "total_reward": round((cop_uptime[i] + cop_paid[i]) / TOKEN, 6),
            "issuance": round(cop_uptime[i] / TOKEN, 6),
            "reputation": round(p.reputation(c), 6),
            "active": 1,
            "stake": round(get_collateral(state.coprocessors[c]) / TOKEN, 6),
            "slashes": int(cop_slashes[i]),
            "tasks": int(cop_tasks[i]),
        }
        for i, c in enumerate(cops.names)
    ]
    return PointResult(row, rounds, participants, series), p


def get_collateral(c: Coprocessor) -> int:
    """Return all of a coprocessor's collateral: free, locked and unbonding."""
    return c.free + c.locked + sum(lock.amount for lock in c.locks.values())


def redelegate(
    p: Protocol,
    delegators: list[str],
    active: list[str],
    delegation: DelegatorsSimConfig,
    rng: np.random.Generator,
) -> int:
    """Move a share of bonds to the most reputable of a few sampled active operators
    (reputation: the pools' GAS log-odds)."""
    pools = p.state.pools
    moved = 0
    movers = rng.random(len(delegators)) < delegation.redelegate_share
    for i in np.flatnonzero(movers):
        d = delegators[int(i)]
        sample = rng.choice(len(active), size=min(delegation.sample, len(active)), replace=False)
        best = max((active[int(k)] for k in sample), key=lambda o: pools[o].reputation_f)
        current = p.delegate_of(d)
        if current == best or pools[best].reputation_f <= pools[current].reputation_f:
            continue
        try:
            p.bond(d, best, 1)  # a bond to another operator moves the whole bond
        except ProtocolError:
            continue
        moved += 1
    return moved


# --- the sweep ---------------------------------------------------------------------------


Run = tuple[str, Any, int]
"""One simulation of a sweep: the swept parameter, its value and the Monte Carlo seed."""

PointRunner = Callable[[ExperimentConfig, list[Run]], Iterator[tuple[int, PointResult]]]
"""Runs the given runs elsewhere (``cluster.runtime.sweep``: as Ray tasks) and yields
``(index in that list, result)`` for each as it finishes, in any order."""


def run_experiment(
    config: ExperimentConfig,
    out: Path,
    *,
    progress: bool = True,
    runner: PointRunner | None = None,
) -> dict[str, Any]:
    """Run every sweep point and seed (skipping those already in ``out``); write the outputs.

    ``runner``: where the points not yet in ``out`` run (default: one after the
    other in this process). Whatever order they finish in, each point's files are
    written here as soon as it is back (so an interrupted sweep resumes), and the
    summary and CSVs keep the sweep's order: point, then seed.
    """
    out.mkdir(parents=True, exist_ok=True)
    parts = out / "points"
    parts.mkdir(exist_ok=True)
    started = time.perf_counter()
    runs = [(name, value, seed) for name, value in config.points() for seed in range(config.seeds)]
    results: dict[int, PointResult] = {}
    pending: list[int] = []
    bar = Progress(len(runs) * config.rounds, enabled=progress, unit="rounds")

    def point_path(i: int) -> Path:
        name, value, seed = runs[i]
        return parts / f"{name}={value}-seed={seed}.json"

    def in_process() -> Iterator[tuple[int, PointResult]]:
        for k, i in enumerate(pending):
            name, value, seed = runs[i]
            bar.advance(0, note=f"point {i + 1}/{len(runs)} {name}={value} seed {seed}")
            yield k, simulate_point(config, name, value, seed, bar)

    finished: Iterator[tuple[int, PointResult]] | None = None
    try:
        for i in range(len(runs)):
            path = point_path(i)
            arrays = path.with_suffix(".npz")
            if path.exists() and arrays.exists():  # resumable: a finished point is kept
                data = json.loads(path.read_text())
                with np.load(arrays) as npz:
                    series = {k: npz[k] for k in npz.files}
                results[i] = PointResult(data["row"], data["rounds"], data["participants"], series)
                name, value, seed = runs[i]
                note = f"point {i + 1}/{len(runs)} {name}={value} seed {seed}"
                bar.advance(config.rounds, note=note)
            else:
                pending.append(i)
        if runner is None:
            finished = in_process()
        else:
            bar.advance(0, note=f"{len(pending)} points to run")
            finished = runner(config, [runs[i] for i in pending])
        for k, result in finished:
            i = pending[k]
            if i in results:
                raise RuntimeError(f"sweep runner: point {k} came back twice")
            path = point_path(i)
            np.savez_compressed(path.with_suffix(".npz"), **(result.series or {}))
            plain = {
                "row": result.row,
                "rounds": result.rounds,
                "participants": result.participants,
            }
            path.write_text(json.dumps(plain))  # last: its presence marks the point finished
            results[i] = result
            if runner is not None:  # the in-process path advanced round by round
                name, value, seed = runs[i]
                note = f"point {len(results)}/{len(runs)} done: {name}={value} seed {seed}"
                bar.advance(config.rounds, note=note)
    finally:
        close = getattr(finished, "close", None)
        if close is not None:  # a runner's generator stops what it still has running
            close()
        bar.close()
    if len(results) != len(runs):
        raise RuntimeError(f"sweep runner: {len(runs) - len(results)} points never came back")
    ordered = [results[i] for i in range(len(runs))]
    summary = {
        "experiment": config.name,
        "seed": config.seed,
        "sweep": [r.row for r in ordered],
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _write_csv(out / "rewards.csv", [x for r in ordered for x in r.participants])
    _write_csv(out / "rounds.csv", [x for r in ordered for x in r.rounds])
    return summary


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        if not rows:
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
