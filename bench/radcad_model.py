"""Rodikov (2025)'s reward-distribution model written as a plain radCAD model.

The baseline of ``bench/simulate_vs_radcad.py``: the rules of
``cluster/simulate.py`` written the way a cadCAD/radCAD user would, with no
stakeray code (nothing from ``protocol`` or ``cluster`` is imported here; the
benchmark passes every number in as plain values). The state is plain Python:
lists of operator and coprocessor records (dicts), the round's tasks as a list
of dicts, money as integers of base units (1 token = 10**18) with the same
PPM/PPB rounding as the protocol, so both sides compute the same economics.

One timestep is one round, seven partial state update blocks (substeps):

1. ``issuance``: active set (top ``max_active_operators`` by stake at or above
   ``min_operator_bond``, ties keep incumbents), inflation steered by the
   bonding rate, ``mintable = supply * inflation``, split over the active
   operators by stake; the reward (less the treasury cut, split into the
   operator's commission and its delegators' share, both its own here: each
   operator is its only delegator) is added to its stake;
2. ``tasks``: ``tasks_per_round`` tasks with a lognormal difficulty and a fee,
   each given to an active operator chosen with probability stake / total; an
   operator runs a task itself when its resources cover the difficulty;
3. ``auction``: the standing ask of every coprocessor at the round's median
   auctioned fee (cost with the load premium, plus the slash it risks times
   its failure chance), then one descending clock per auctioned task, computed
   in Python in closed form (the first tick where an eligible coprocessor
   accepts; ties to higher reputation, lower load, lower index); a winner
   locks ``collateral_ratio`` of the fee; nobody above the reserve: the
   operator runs it;
4. ``outcomes``: a Bernoulli draw of the executor's reliability per task, and
   an audit draw (``audit_rate``) for the operator's own failures;
5. ``settlement``: the operator's pool gets the clock price (the whole fee when
   it ran the task and was not caught), split by ``fee_share``; the winning
   coprocessor gets ``fee - price``; a failed coprocessor loses
   ``slash_fraction`` of the locked collateral times the load curve's
   amplification; an operator caught by an audit loses ``slash_fraction`` of
   its bond (burned), and leaves the active set below ``min_operator_bond``;
6. ``reputation``: one GAS step per participant,
   ``f <- omega + beta f + alpha (k - n p) / sqrt(n p (1 - p))``;
7. ``metrics``: the round's summary (minted, fees, counts, cumulative reward).

What radCAD does per step with its defaults (``deepcopy=True``, pickle as the
deepcopy method, substeps kept): for every substep it makes a shallow copy of
the previous substep's state; every policy function gets a deep copy
(``pickle.loads(pickle.dumps(state))``) of the whole state; every state update
function gets a deep copy of the whole state and another of the policies'
signals; the returned values go into a new state dict that is appended to the
results, so every substep of every timestep is kept. Nothing else here copies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from radcad import Backend, Engine, Experiment, Model, Simulation

TOKEN = 10**18
PPM = 10**6
PPB = 10**9
P_EPS = 1e-9


# --- plain helpers ------------------------------------------------------------------------


def sigmoid(f: float) -> float:
    if f >= 0:
        return 1.0 / (1.0 + math.exp(-f))
    z = math.exp(f)
    return z / (1.0 + z)


def gas_update(f: float, n: int, k: int, gas: dict[str, float]) -> float:
    """GAS: ``omega + beta f + alpha (k - n p) / sqrt(n p (1 - p))``; score 0 when ``n == 0``."""
    score = 0.0
    if n > 0:
        p = min(max(sigmoid(f), P_EPS), 1.0 - P_EPS)
        score = (k - n * p) / math.sqrt(n * p * (1.0 - p))
    return gas["omega"] + gas["beta"] * f + gas["alpha"] * score


def load_curve(x: float, c: dict[str, float]) -> float:
    d = c["A"] - c["C"]
    at_f = d + (c["F"] - c["B"]) * c["E"]
    if x < c["B"]:
        return c["A"] * math.exp(-(((x - c["B"]) / c["B"]) ** 2)) - c["C"]
    if x <= c["F"]:
        return d + (x - c["B"]) * c["E"]
    return max(at_f + c["G"] * (x - c["F"]) * (x + c["F"] - 2.0 * c["H"]), 0.0)


def load_premium_ppm(x: float, c: dict[str, float]) -> int:
    d = c["A"] - c["C"]
    at_f = d + (c["F"] - c["B"]) * c["E"]
    peak_x, peak = (c["B"], d) if c["E"] <= 0.0 else (c["F"], at_f)
    if x <= peak_x:
        return 0
    return int(min(max((peak - load_curve(x, c)) / peak, 0.0), 1.0) * PPM)


def amplification_ppm(x: float, c: dict[str, float]) -> int:
    if x <= c["F"]:
        return PPM
    at_f = c["A"] - c["C"] + (c["F"] - c["B"]) * c["E"]
    return int((1.0 + -c["G"] * (x - c["F"]) * (x + c["F"] - 2.0 * c["H"]) / at_f) * PPM)


def slash_of(locked: int, amp_ppm: int, slash_fraction: int) -> int:
    return min(locked, locked * slash_fraction // PPM * amp_ppm // PPM)


# --- policies and state updates ----------------------------------------------------------


def p_issuance(params, substep, history, state):
    operators = state["operators"]
    minter = state["minter"]
    floor = max(params["min_operator_bond"], 1)
    candidates = [i for i, op in enumerate(operators) if op["stake"] > 0 and op["stake"] >= floor]
    candidates.sort(key=lambda i: (-operators[i]["stake"], not operators[i]["active"], i))
    active = {i: operators[i]["stake"] for i in candidates[: params["max_active_operators"]]}
    total = sum(active.values())
    supply = minter["supply"]
    rate = total * PPB // supply if supply > 0 else 0
    inflation = minter["inflation"]
    if rate < params["target_bonding_rate"]:
        inflation += params["inflation_change"]
    elif rate > params["target_bonding_rate"]:
        inflation = max(inflation - params["inflation_change"], 0)
    mintable = supply * inflation // PPB
    rewards = {i: mintable * (stake * PPB // total) // PPB for i, stake in active.items()}
    return {"active": active, "rewards": rewards, "inflation": inflation}


def s_round(params, substep, history, state, signal):
    return "round", state["round"] + 1


def s_active(params, substep, history, state, signal):
    return "active", signal["active"]


def s_operators_issuance(params, substep, history, state, signal):
    operators = state["operators"]
    for i, op in enumerate(operators):
        op["active"] = i in signal["active"]
    for i, minted in signal["rewards"].items():
        op = operators[i]
        reward = minted - minted * params["treasury_cut"] // PPM
        commission = reward * params["reward_cut"] // PPM
        op["stake"] += commission + (reward - commission)  # the operator is its only delegator
        op["issuance"] += minted
    return "operators", operators


def s_minter_issuance(params, substep, history, state, signal):
    minter = state["minter"]
    minted = sum(signal["rewards"].values())
    minter["inflation"] = signal["inflation"]
    minter["minted_round"] = minted
    minter["minted"] += minted
    minter["supply"] += minted
    return "minter", minter


def p_tasks(params, substep, history, state):
    rng = params["rng"]
    count = params["tasks_per_round"]
    difficulty = rng.lognormal(
        math.log(params["difficulty_median"]), params["difficulty_sigma"], count
    )
    fee_scale = params["fee_scale"]
    active = state["active"]
    ids = list(active)
    total = sum(active.values())
    picks: list[int | None] = [None] * count
    if ids:
        p = np.array([active[i] / total for i in ids])
        picks = [ids[j] for j in params["choice_rng"].choice(len(ids), size=count, p=p / p.sum())]
    operators = state["operators"]
    first = state["round"] * count
    tasks = []
    for t in range(count):
        d = float(difficulty[t])
        o = picks[t]
        tasks.append(
            {
                "id": first + t,
                "difficulty": d,
                "fee": max(1, int(d * fee_scale)),
                "operator": o,
                "self_run": o is not None and operators[o]["resources"] >= d,
                "coprocessor": None,
                "price": 0,
                "required": 0,
                "ok": False,
                "audited": False,
            }
        )
    return {"tasks": tasks}


def s_tasks(params, substep, history, state, signal):
    return "tasks", signal["tasks"]


def p_auction(params, substep, history, state):
    tasks = state["tasks"]
    cops = state["coprocessors"]
    curve = params["load_curve"]
    heavy = [t for t in tasks if t["operator"] is not None and not t["self_run"]]
    median_fee = int(np.median([t["fee"] for t in heavy])) if heavy else 1
    ratio, slash = params["collateral_ratio"], params["slash_fraction"]
    reputation = [sigmoid(c["f"]) for c in cops]
    asks = []
    for c, rep in zip(cops, reputation, strict=True):
        cost = median_fee * c["cost_ppm"] // PPM
        premium = load_premium_ppm(0.0, curve)
        exposure = slash_of(median_fee * ratio // PPM, amplification_ppm(0.0, curve), slash)
        failure = int((1.0 - rep) * PPM)
        asks.append(-(-cost * (PPM + premium) // PPM) + -(-exposure * failure // PPM))
    load = [0] * len(cops)
    free = [c["collateral"] for c in cops]
    step, reserve, floor = params["auction_step"], params["reserve_ratio"], params["min_reputation"]
    for t in heavy:
        fee = t["fee"]
        need = fee * ratio // PPM
        tick = max(1, fee * step // PPM)
        last = (fee - fee * reserve // PPM) // tick
        best = None
        for i, c in enumerate(cops):
            if load[i] >= c["capacity"] or free[i] < need or reputation[i] < floor:
                continue
            k = 0 if asks[i] <= 0 else -(-asks[i] // tick)  # first tick where fee - P >= ask
            if k <= last:
                key = (k, -reputation[i], load[i], i)
                if best is None or key < best:
                    best = key
        if best is None:
            t["self_run"] = True  # no taker above the reserve: the operator runs it
            continue
        k, _, _, i = best
        t["coprocessor"], t["price"], t["required"] = i, fee - k * tick, need
        load[i] += 1
        free[i] -= need
    return {"tasks": tasks, "load": load}


def s_coprocessor_load(params, substep, history, state, signal):
    cops = state["coprocessors"]
    for c, load in zip(cops, signal["load"], strict=True):
        c["load"] = load
    return "coprocessors", cops


def p_outcomes(params, substep, history, state):
    rng = params["rng"]
    tasks = state["tasks"]
    draws = rng.random(len(tasks))
    audits = rng.random(len(tasks))
    rate = params["audit_rate"] / PPM
    ops, cops = state["operators"], state["coprocessors"]
    for t, u, a in zip(tasks, draws.tolist(), audits.tolist(), strict=True):
        if t["operator"] is None:
            continue
        if t["coprocessor"] is not None:
            t["ok"] = u < cops[t["coprocessor"]]["reliability"]
        else:
            t["ok"] = u < ops[t["operator"]]["reliability"]
            t["audited"] = not t["ok"] and a < rate
    return {"tasks": tasks}


def p_settlement(params, substep, history, state):
    tasks, ops, cops = state["tasks"], state["operators"], state["coprocessors"]
    curve = params["load_curve"]
    earned: dict[int, int] = {}
    cop_pay: dict[int, int] = {}
    cop_slash: dict[int, int] = {}
    amp = [amplification_ppm(c["load"] / max(c["capacity"], 1), curve) for c in cops]
    for t in tasks:
        o = t["operator"]
        if o is None:
            continue
        c = t["coprocessor"]
        if c is not None:
            if t["ok"]:
                earned[o] = earned.get(o, 0) + t["price"]
                cop_pay[c] = cop_pay.get(c, 0) + t["fee"] - t["price"]
            else:
                s = slash_of(t["required"], amp[c], params["slash_fraction"])
                cop_slash[c] = cop_slash.get(c, 0) + s
        elif t["ok"] or not t["audited"]:
            earned[o] = earned.get(o, 0) + t["fee"]
    # Operator slashes, one per audited failure, each on the bond left by the previous one.
    stake = {i: op["stake"] for i, op in enumerate(ops)}
    penalties: list[tuple[int, int]] = []
    for t in tasks:
        if t["audited"]:
            o = t["operator"]
            penalty = stake[o] * params["slash_fraction"] // PPM
            stake[o] -= penalty
            penalties.append((o, penalty))
    return {"earned": earned, "cop_pay": cop_pay, "cop_slash": cop_slash, "penalties": penalties}


def s_operators_settlement(params, substep, history, state, signal):
    ops = state["operators"]
    for o, amount in signal["earned"].items():
        to_delegators = amount * params["fee_share"] // PPM
        ops[o]["fees"] += to_delegators + (amount - to_delegators)  # both its own
    for o, penalty in signal["penalties"]:
        ops[o]["stake"] -= penalty
        ops[o]["slashes"] += 1
    return "operators", ops


def s_coprocessors_settlement(params, substep, history, state, signal):
    cops = state["coprocessors"]
    for c, pay in signal["cop_pay"].items():
        cops[c]["rewards"] += pay
    for c, s in signal["cop_slash"].items():
        cops[c]["collateral"] -= s
    return "coprocessors", cops


def s_minter_settlement(params, substep, history, state, signal):
    minter = state["minter"]
    burned = sum(p for _, p in signal["penalties"])
    minter["burned"] += burned
    minter["supply"] -= burned
    minter["fees_round"] = sum(signal["earned"].values())
    minter["client"] -= minter["fees_round"]
    return "minter", minter


def p_reputation(params, substep, history, state):
    tasks = state["tasks"]
    n_op = [0] * len(state["operators"])
    k_op = [0] * len(state["operators"])
    n_cop = [0] * len(state["coprocessors"])
    k_cop = [0] * len(state["coprocessors"])
    for t in tasks:
        if t["operator"] is None:
            continue
        if t["coprocessor"] is not None:
            n_cop[t["coprocessor"]] += 1
            k_cop[t["coprocessor"]] += t["ok"]
        else:
            n_op[t["operator"]] += 1
            k_op[t["operator"]] += t["ok"] or not t["audited"]
    return {"op": list(zip(n_op, k_op, strict=True)), "cop": list(zip(n_cop, k_cop, strict=True))}


def s_operators_reputation(params, substep, history, state, signal):
    ops = state["operators"]
    for op, (n, k) in zip(ops, signal["op"], strict=True):
        op["f"] = gas_update(op["f"], n, k, params["gas"])
    return "operators", ops


def s_coprocessors_reputation(params, substep, history, state, signal):
    cops = state["coprocessors"]
    for c, (n, k) in zip(cops, signal["cop"], strict=True):
        c["f"] = gas_update(c["f"], n, k, params["gas"])
        c["tasks"] += n
        c["slashed_tasks"] += n - k
    return "coprocessors", cops


def p_metrics(params, substep, history, state):
    tasks, minter = state["tasks"], state["minter"]
    by_cop = [t for t in tasks if t["coprocessor"] is not None]
    self_run = [t for t in tasks if t["operator"] is not None and t["coprocessor"] is None]
    return {
        "row": {
            "round": state["round"],
            "active_operators": len(state["active"]),
            "minted": minter["minted_round"] / TOKEN,
            "fees": minter["fees_round"] / TOKEN,
            "tasks": len(tasks),
            "self_executed": len(self_run),
            "auctioned": len(by_cop),
            "coprocessor_failures": sum(not t["ok"] for t in by_cop),
            "operator_slashes": sum(t["audited"] for t in self_run),
        }
    }


def s_metrics(params, substep, history, state, signal):
    row = signal["row"]
    previous = state["metrics"]["cumulative_reward"]
    row["cumulative_reward"] = previous + row["minted"] + row["fees"]
    return "metrics", row


STATE_UPDATE_BLOCKS = [
    {
        "label": "issuance",
        "policies": {"issuance": p_issuance},
        "variables": {
            "round": s_round,
            "active": s_active,
            "operators": s_operators_issuance,
            "minter": s_minter_issuance,
        },
    },
    {"label": "tasks", "policies": {"tasks": p_tasks}, "variables": {"tasks": s_tasks}},
    {
        "label": "auction",
        "policies": {"auction": p_auction},
        "variables": {"tasks": s_tasks, "coprocessors": s_coprocessor_load},
    },
    {"label": "outcomes", "policies": {"outcomes": p_outcomes}, "variables": {"tasks": s_tasks}},
    {
        "label": "settlement",
        "policies": {"settlement": p_settlement},
        "variables": {
            "operators": s_operators_settlement,
            "coprocessors": s_coprocessors_settlement,
            "minter": s_minter_settlement,
        },
    },
    {
        "label": "reputation",
        "policies": {"reputation": p_reputation},
        "variables": {
            "operators": s_operators_reputation,
            "coprocessors": s_coprocessors_reputation,
        },
    },
    {"label": "metrics", "policies": {"metrics": p_metrics}, "variables": {"metrics": s_metrics}},
]


# --- building and running ------------------------------------------------------------------


def _draw(rng: np.random.Generator, spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["count"]
    return {
        "stake": [round(s * 1e6) * 10**12 for s in rng.uniform(*spec["stake"], n)],
        "resources": rng.uniform(*spec["resources"], n).tolist(),
        "reliability": rng.uniform(*spec["reliability"], n).tolist(),
        "capacity": rng.integers(spec["capacity"][0], spec["capacity"][1] + 1, n).tolist(),
        "cost_ppm": rng.integers(spec["cost_ppm"][0], spec["cost_ppm"][1] + 1, n).tolist(),
    }


def build_model(settings: dict[str, Any]) -> Model:
    """A radCAD ``Model`` from plain settings (see ``bench/simulate_vs_radcad.py``)."""
    rng = np.random.default_rng([settings["seed"], settings["run"]])
    ops, cops = _draw(rng, settings["operators"]), _draw(rng, settings["coprocessors"])
    p, tasks, gas = settings["params"], settings["tasks"], settings["gas"]
    fee_scale = round(tasks["fee_per_difficulty"] * 1e9) * 10**9
    mean_difficulty = tasks["difficulty_median"] * math.exp(tasks["difficulty_sigma"] ** 2 / 2)
    client = int(2 * settings["rounds"] * tasks["per_round"] * mean_difficulty * fee_scale)
    client += 10 * TOKEN
    operators = [
        {
            "stake": ops["stake"][i],
            "resources": ops["resources"][i],
            "reliability": ops["reliability"][i],
            "f": gas["initial_f"],
            "active": False,
            "issuance": 0,
            "fees": 0,
            "slashes": 0,
        }
        for i in range(settings["operators"]["count"])
    ]
    coprocessors = [
        {
            "collateral": cops["stake"][i],
            "capacity": cops["capacity"][i],
            "cost_ppm": cops["cost_ppm"][i],
            "reliability": cops["reliability"][i],
            "f": gas["initial_f"],
            "load": 0,
            "rewards": 0,
            "tasks": 0,
            "slashed_tasks": 0,
        }
        for i in range(settings["coprocessors"]["count"])
    ]
    initial_state = {
        "round": 0,
        "operators": operators,
        "coprocessors": coprocessors,
        "active": {},
        "tasks": [],
        "minter": {
            "inflation": p["inflation"],
            "supply": sum(ops["stake"]) + client,
            "client": client,
            "minted": 0,
            "burned": 0,
            "minted_round": 0,
            "fees_round": 0,
        },
        "metrics": {"cumulative_reward": 0.0},
    }
    params = {name: [value] for name, value in p.items()}
    params.update(
        {
            "gas": [gas],
            "load_curve": [settings["load_curve"]],
            "tasks_per_round": [tasks["per_round"]],
            "difficulty_median": [tasks["difficulty_median"]],
            "difficulty_sigma": [tasks["difficulty_sigma"]],
            "fee_scale": [fee_scale],
            "reward_cut": [100_000],
            "fee_share": [900_000],
            # Difficulties and outcomes continue the population's stream, as in simulate.py;
            # the operator choice has a stream of its own.
            "rng": [rng],
            "choice_rng": [np.random.default_rng([settings["seed"], settings["run"], 1])],
        }
    )
    return Model(
        initial_state=initial_state, state_update_blocks=STATE_UPDATE_BLOCKS, params=params
    )


def run(settings: dict[str, Any], timesteps: int) -> list[dict[str, Any]]:
    """Build the model and run it as radCAD documents; return radCAD's raw results."""
    model = build_model(settings)
    simulation = Simulation(model=model, timesteps=timesteps, runs=1)
    experiment = Experiment([simulation])
    # One run: the single-process backend (the default, Pathos, would start a process pool
    # for it, a fixed cost outside the per-round work measured here).
    experiment.engine = Engine(backend=Backend.SINGLE_PROCESS)
    return experiment.run()
