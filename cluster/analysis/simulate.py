"""The paper's experiments: the market's rules with execution replaced by drawn outcomes.

``stakeray simulate EXPERIMENT.yaml --out DIR`` runs, for every point of a
sweep and every Monte Carlo seed, a network of operators and coprocessors for
a number of rounds. The rules are the protocol's own code:

- stake, delegation, issuance, reward calls, fee pools, operator slashing and
  the active set: a real :class:`protocol.Protocol` (``initialize_round``,
  ``reward``, ``pay_fees_batch``, ``slash_operator``);
- operator choice: :func:`protocol.selection.select_operators`;
- the Dutch auction: :func:`protocol.auction.clear_batch` over a
  :class:`~protocol.auction.CoprocessorBook` with asks from
  :func:`protocol.market.compute_ask_from`;
- coprocessor slashes: :func:`protocol.market.compute_slash_of` with the load
  curve's amplification (:func:`protocol.market.compute_amplification_ppm`);
- reputation: :func:`protocol.reputation.compute_gas_update`.

What is drawn instead of run: each task's difficulty (lognormal) and its
outcome, a Bernoulli of the executor's reliability. An operator runs a task
itself when its resources cover the difficulty (SPEC 6), else auctions it; no
taker above the reserve: it runs it itself. A coprocessor's failure is caught
by verification: its collateral is slashed (half to the operator) and the
client refunded. An operator's own failure is caught only by an audit
(``audit_rate``): then its own bond is slashed by the sweep's slashing factor
and the client refunded; an operator whose bond falls below
``min_operator_bond`` leaves the active set, as SPEC 7 says.

Batching is per round: one selection, one ``clear_batch``, one fee batch per
round; only reward calls, slashes and reputation updates are per participant.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cluster.config.schema import ConfigError, first_error, read_yaml
from cluster.engine.progress import Progress
from protocol import Params, Protocol, ProtocolError
from protocol.auction import CoprocessorBook, clear_batch
from protocol.market import (
    compute_ask_factors_many,
    compute_ask_from,
    compute_required_collateral,
    compute_slash_of,
)
from protocol.metrics import compute_correlation, compute_gini, compute_nakamoto_coefficient
from protocol.reputation import compute_gas_update, compute_reputation
from protocol.selection import select_operators
from protocol.state import Coprocessor
from protocol.units import PPM, TOKEN, Address, ppm_of, tokens

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
    bar = progress if isinstance(progress, Progress) else None
    if progress is True:
        bar = Progress(config.rounds, unit="rounds", note=f"{name}={value} seed {seed}")
    rng = np.random.default_rng([config.seed, seed])
    params = config.point_params(name, value)
    delegation = config.point_delegators(name, value)
    ops = draw_population("op", config.operators, rng)
    cops = draw_population("cop", config.coprocessors, rng)
    d_names = [f"del-{i:06d}" for i in range(delegation.count)]
    d_stake = [tokens(f"{x:.6f}") for x in rng.uniform(*delegation.stake, delegation.count)]
    collateral = list(cops.stake)  # a coprocessor's "stake" is its collateral
    balances = dict(zip(ops.names, ops.stake, strict=True))
    # A delegator keeps a few base units liquid: moving a bond is a bond of 1 more unit.
    balances.update({d: x + 1000 for d, x in zip(d_names, d_stake, strict=True)})
    fee_scale = tokens(f"{config.tasks.fee_per_difficulty:.9f}")
    # The client holds twice the expected fees (lognormal mean), not more: a liquid
    # balance counts against the bonding rate that steers issuance (SPEC 3).
    mean_difficulty = config.tasks.difficulty_median * math.exp(
        config.tasks.difficulty_sigma**2 / 2
    )
    expected = config.rounds * config.tasks.per_round * mean_difficulty * fee_scale
    balances[CLIENT] = int(2 * expected) + 10 * TOKEN
    p = Protocol(params, balances)
    for op, stake in zip(ops.names, ops.stake, strict=True):
        p.bond(op, op, stake)
        p.register_operator(op, reward_cut=100_000, fee_share=900_000)
    for d, x, o in zip(
        d_names, d_stake, rng.integers(0, len(ops.names), len(d_names)), strict=True
    ):
        p.bond(d, ops.names[int(o)], x)
    redelegations = 0
    gas = params.gas
    cop_f = np.full(len(cops.names), gas.initial_f)
    op_f = np.full(len(ops.names), gas.initial_f)
    op_index = {n: i for i, n in enumerate(ops.names)}
    op_reward = np.zeros(len(ops.names))  # tokens: issuance + fees
    op_issuance = np.zeros(len(ops.names))
    cop_reward = np.zeros(len(cops.names))
    cop_tasks = np.zeros(len(cops.names), dtype=np.int64)
    cop_slashes = np.zeros(len(cops.names), dtype=np.int64)
    op_slashes = np.zeros(len(ops.names), dtype=np.int64)
    rounds: list[dict[str, Any]] = []
    shape_ops, shape_cops = (config.rounds, len(ops.names)), (config.rounds, len(cops.names))
    series = {
        "operator_reward": np.zeros(shape_ops, dtype=np.float64),
        "coprocessor_reward": np.zeros(shape_cops, dtype=np.float64),
        "coprocessor_tasks": np.zeros(shape_cops, dtype=np.int32),
        "coprocessor_load": np.zeros(shape_cops, dtype=np.float32),
        "edges": np.zeros((len(ops.names), len(cops.names)), dtype=np.int64),
    }
    cumulative = 0.0
    next_task = 0
    started = time.perf_counter()
    for _ in range(config.rounds):
        n = p.initialize_round()
        active = p.active_set
        names = sorted(active)
        minted = 0
        for op in names:
            amount = p.reward(op)
            minted += amount
            op_issuance[op_index[op]] += amount / TOKEN
            op_reward[op_index[op]] += amount / TOKEN
            series["operator_reward"][n - 1, op_index[op]] += amount / TOKEN
        # Tasks of the round.
        count = config.tasks.per_round
        difficulty = rng.lognormal(
            math.log(config.tasks.difficulty_median), config.tasks.difficulty_sigma, count
        )
        fees = [max(1, int(d * fee_scale)) for d in difficulty]
        ids = list(range(next_task, next_task + count))
        next_task += count
        picks = (
            select_operators(
                names,
                [active[x] for x in names],
                ids,
                config.seed + seed,
                w_stake=params.w_stake,
                w_random=params.w_random,
            )
            if names
            else [None] * count
        )
        op_of = np.array([op_index[x] if x is not None else -1 for x in picks])
        placed = op_of >= 0
        own = placed & (ops.resources[np.maximum(op_of, 0)] >= difficulty)
        heavy = np.flatnonzero(placed & ~own)
        # The auction: one book for the round, asks at the round's median fee.
        book_cops = [
            Coprocessor(
                address=c,
                capacity=int(cops.capacity[i]),
                free=collateral[i],
                reputation_f=float(cop_f[i]),
            )
            for i, c in enumerate(cops.names)
        ]
        median_fee = int(np.median([fees[i] for i in heavy])) if len(heavy) else 1
        reputation = [compute_reputation(float(f)) for f in cop_f]
        factors = compute_ask_factors_many([0.0] * len(book_cops), reputation, params)
        asks = [
            compute_ask_from(
                factors[i], median_fee, ppm_of(median_fee, int(cops.cost_ppm[i])), 0, params
            )
            for i in range(len(book_cops))
        ]
        book = CoprocessorBook(
            asks=np.array(asks, dtype=object),
            capacity=cops.capacity.astype(np.int64) * 1,
            load=np.zeros(len(cops.names), dtype=np.int64),
            collateral=np.array(collateral, dtype=object),
            reputation=np.array(reputation),
            min_reputation=params.min_reputation,
        )
        heavy_fees = [fees[i] for i in heavy]
        required = [compute_required_collateral(f, params) for f in heavy_fees]
        results = clear_batch(
            heavy_fees,
            book,
            step_ppm=params.auction_step,
            reserve_ppm=params.reserve_ratio,
            required=required,
        )
        winner = np.full(count, -1)
        price = np.zeros(count, dtype=object)
        for j, r in zip(heavy, results, strict=True):
            if r.winner is not None:
                winner[j] = r.winner
                price[j] = r.price
        # Outcomes.
        draws = rng.random(count)
        by_cop = winner >= 0
        self_run = placed & ~by_cop
        cop_ok = by_cop & (draws < cops.reliability[np.maximum(winner, 0)])
        op_ok = self_run & (draws < ops.reliability[np.maximum(op_of, 0)])
        audited = self_run & ~op_ok & (rng.random(count) < params.audit_rate / PPM)
        # Pay: operators' pools get the price (the whole fee when self-run and not caught).
        earned: dict[int, int] = {}
        utilisation = (book.load / np.maximum(cops.capacity, 1)).tolist()
        amp = [
            f.amplification_ppm for f in compute_ask_factors_many(utilisation, reputation, params)
        ]
        for j in np.flatnonzero(placed):
            o = int(op_of[j])
            if by_cop[j]:
                c = int(winner[j])
                cop_tasks[c] += 1
                series["coprocessor_tasks"][n - 1, c] += 1
                series["edges"][o, c] += 1
                if cop_ok[j]:
                    earned[o] = earned.get(o, 0) + int(price[j])
                    pay = (fees[j] - int(price[j])) / TOKEN
                    cop_reward[c] += pay
                    series["coprocessor_reward"][n - 1, c] += pay
                else:
                    slash = compute_slash_of(required[_pos(heavy, j)], amp[c], params)
                    collateral[c] -= slash
                    cop_slashes[c] += 1
            elif op_ok[j] or not audited[j]:
                earned[o] = earned.get(o, 0) + fees[j]
        rows = [(CLIENT, ops.names[o], amount) for o, amount in sorted(earned.items())]
        if rows:
            p.pay_fees_batch(rows)
        for o, amount in earned.items():
            op_reward[o] += amount / TOKEN
            series["operator_reward"][n - 1, o] += amount / TOKEN
        for j in np.flatnonzero(audited):
            o = int(op_of[j])
            try:
                p.slash_operator(ops.names[o], params.slash_fraction)
            except ProtocolError:  # nothing left to slash
                continue
            op_slashes[o] += 1
        # Reputation (GAS), one step per participant with the round's outcomes.
        cop_n = np.bincount(winner[by_cop], minlength=len(cops.names))
        cop_k = np.bincount(winner[cop_ok], minlength=len(cops.names))
        cop_f = np.array(
            [
                compute_gas_update(f, int(a), int(b), gas)
                for f, a, b in zip(cop_f, cop_n, cop_k, strict=True)
            ]
        )
        op_n = np.bincount(op_of[self_run], minlength=len(ops.names))
        op_k = np.bincount(op_of[op_ok | (self_run & ~audited)], minlength=len(ops.names))
        op_f = np.array(
            [
                compute_gas_update(f, int(a), int(b), gas)
                for f, a, b in zip(op_f, op_n, op_k, strict=True)
            ]
        )
        if delegation.redelegate_every and n % delegation.redelegate_every == 0 and names:
            redelegations += redelegate(p, d_names, names, op_f, op_index, delegation, rng)
        cumulative += minted / TOKEN + sum(earned.values()) / TOKEN
        loads = book.load / np.maximum(cops.capacity, 1)
        series["coprocessor_load"][n - 1] = loads
        rounds.append(
            {
                name: value,
                "seed": seed,
                "round": n,
                "active_operators": len(names),
                "cumulative_reward": round(cumulative, 6),
                "tasks": count,
                "self_executed": int(self_run.sum()),
                "auctioned": int(by_cop.sum()),
                "coprocessor_failures": int((by_cop & ~cop_ok).sum()),
                "operator_slashes": int(audited.sum()),
                "mean_load": round(float(loads.mean()), 6),
                "max_load": round(float(loads.max()), 6),
            }
        )
        if bar is not None:
            bar.advance(1, round_=n)
    if bar is not None and bar is not progress:
        bar.close()
    op_rep = np.array([compute_reputation(f) for f in op_f])
    stakes = [p.operator_stake(o) for o in ops.names]

    corr = compute_correlation(op_rep, op_reward)
    row = {
        name: value,
        "slashing": params.slash_fraction / PPM,
        "seed": seed,
        "operators": len(ops.names),
        "coprocessors": len(cops.names),
        "rounds": config.rounds,
        "tasks": next_task,
        "active_operators_final": len(p.active_set),
        "cumulative_reward_final": round(cumulative, 6),
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
            "seed": seed,
            "role": "operator",
            "id": o,
            "total_reward": round(float(op_reward[i]), 6),
            "issuance": round(float(op_issuance[i]), 6),
            "reputation": round(float(op_rep[i]), 6),
            "active": int(p.is_active(o)),
            "stake": round(p.operator_stake(o) / TOKEN, 6),
            "slashes": int(op_slashes[i]),
            "tasks": 0,
        }
        for i, o in enumerate(ops.names)
    ] + [
        {
            name: value,
            "seed": seed,
            "role": "coprocessor",
            "id": c,
            "total_reward": round(float(cop_reward[i]), 6),
            "issuance": 0.0,
            "reputation": round(compute_reputation(float(cop_f[i])), 6),
            "active": 1,
            "stake": round(collateral[i] / TOKEN, 6),
            "slashes": int(cop_slashes[i]),
            "tasks": int(cop_tasks[i]),
        }
        for i, c in enumerate(cops.names)
    ]
    p.check_invariants()
    return PointResult(row, rounds, participants, series)


def redelegate(
    p: Protocol,
    delegators: list[str],
    active: list[str],
    op_f: np.ndarray,
    op_index: dict[str, int],
    delegation: DelegatorsSimConfig,
    rng: np.random.Generator,
) -> int:
    """Move a share of bonds to the most reputable of a few sampled active operators."""
    moved = 0
    movers = rng.random(len(delegators)) < delegation.redelegate_share
    for i in np.flatnonzero(movers):
        d = delegators[int(i)]
        sample = rng.choice(len(active), size=min(delegation.sample, len(active)), replace=False)
        best = max((active[int(k)] for k in sample), key=lambda o: op_f[op_index[o]])
        if p.delegate_of(d) == best or op_f[op_index[best]] <= op_f[op_index[p.delegate_of(d)]]:
            continue
        try:
            p.bond(d, best, 1)  # a bond to another operator moves the whole bond
        except ProtocolError:
            continue
        moved += 1
    return moved


def _pos(heavy: np.ndarray, j: int) -> int:
    return int(np.searchsorted(heavy, j))


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
