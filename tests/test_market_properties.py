"""Property-based tests of the market (SPEC 6-9, 11) inside the random-transaction world.

The world of ``test_properties`` (operators, delegators, payer) gains two
coprocessors, and its action list gains every market transaction with valid
and invalid arguments: coprocessor registration, collateral top-up, unbond
and withdraw, escrow with fresh and duplicate task ids, assignment (self or
to a coprocessor at a price in ``[0, fee]`` or outside it), settlement
(including finished and duplicated ids), refunds, coprocessor and operator
faults and audits. After EVERY action the properties of ``test_properties``
hold (atomic refusals, exact conservation, dust bound) plus the market's own
bookkeeping: every coprocessor's load and locked collateral match the tasks
it holds, and no task id is both open and finished. At the end the log
replays through the codec to the same state hash.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import (
    ACTIONS,
    DELEGATORS,
    FINDER,
    OPERATORS,
    PAYER,
    UNKNOWN,
    Action,
    Runner,
    setup_strategy,
)
from test_properties import run_scenario as base_run_scenario

from protocol import PPM, TOKEN, Params, ProtocolError

COPROCESSORS = ("c0", "c1")
ACCOUNTS = (*OPERATORS, *DELEGATORS, PAYER, *COPROCESSORS)
ANY_COP = st.sampled_from((*COPROCESSORS, "d0", UNKNOWN))
COPS = st.sampled_from(COPROCESSORS)
FRAC = st.tuples(st.just("frac"), st.integers(min_value=1, max_value=8))
AMOUNTS = st.one_of(
    FRAC,
    st.tuples(st.just("abs"), st.sampled_from([1, 7, 10**18, 0, -1, True, 10**40])),
    st.tuples(st.just("over"), st.integers(min_value=1, max_value=10**18)),
)
TASK_SPECS = st.one_of(
    st.tuples(
        st.sampled_from(["open", "assigned", "held", "finished", "settled"]), st.integers(0, 9)
    ),
    st.tuples(st.just("raw"), st.sampled_from([-1, 10**6, "x"])),
)
FEES = st.one_of(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=TOKEN, max_value=10**21),
    st.sampled_from([0, -1, True]),
)
ESCROW_ROWS = st.lists(
    st.tuples(st.sampled_from(["fresh", "fresh", "fresh", "dup", "batchdup"]), FEES),
    min_size=1,
    max_size=4,
)
VALID_ROWS = st.lists(
    st.tuples(st.just("fresh"), st.integers(min_value=1, max_value=10**21)), min_size=1, max_size=3
)
PRICES = st.one_of(
    st.tuples(st.just("frac"), st.integers(min_value=0, max_value=8)),  # k/8 of the fee
    st.tuples(st.just("raw"), st.sampled_from([-1, None, True, "over"])),
)
OPS_OWNER = st.sampled_from(OPERATORS)
TASK_OPERATORS = st.one_of(st.sampled_from((*OPERATORS, "d0", UNKNOWN)), st.just("owner"))


def _action(kind: str, *args: st.SearchStrategy[Any]) -> st.SearchStrategy[Action]:
    return st.tuples(st.just(kind), *args)


MARKET_ACTIONS: st.SearchStrategy[Action] = st.one_of(
    _action("register_coprocessor", ANY_COP, AMOUNTS, st.sampled_from([1, 2, 3, 0])),
    _action("top_up_collateral", ANY_COP, AMOUNTS),
    _action("unbond_collateral", ANY_COP, AMOUNTS),
    _action("unbond_collateral", COPS, FRAC),
    _action("withdraw_collateral", ANY_COP, st.integers(min_value=-1, max_value=4)),
    _action("withdraw_collateral", COPS, st.integers(min_value=0, max_value=4)),
    _action("escrow_tasks", st.sampled_from([PAYER, PAYER, "d1", UNKNOWN]), ESCROW_ROWS),
    _action("escrow_tasks", st.just(PAYER), ESCROW_ROWS),
    _action("escrow_tasks", st.just(PAYER), VALID_ROWS),
    _action("escrow_tasks", st.sampled_from([PAYER, "d2"]), VALID_ROWS),
    _action("assign_task", TASK_SPECS, TASK_OPERATORS, st.none(), PRICES),
    _action("assign_task", TASK_SPECS, TASK_OPERATORS, ANY_COP, PRICES),
    *(
        _action(
            "assign_task",
            st.tuples(st.just("open"), st.integers(0, n)),
            st.just("owner"),
            cop,
            FRAC,
        )
        for n in (7, 8, 9)
        for cop in (COPS, st.none())
    ),
    _action("settle_tasks", st.lists(TASK_SPECS, min_size=0, max_size=4)),
    _action(
        "settle_tasks", st.lists(st.tuples(st.just("assigned"), st.integers(0, 9)), max_size=3)
    ),
    _action("refund_task", TASK_SPECS),
    _action("fail_coprocessor", TASK_SPECS),
    _action("fail_coprocessor", st.tuples(st.just("held"), st.integers(0, 9))),
    _action("fail_operator", st.tuples(st.just("assigned"), st.integers(0, 9)), st.just(None)),
    _action(
        "audit_fault", st.tuples(st.just("settled"), st.integers(0, 9)), OPS_OWNER, st.just(None)
    ),
    _action("fail_operator", TASK_SPECS, st.sampled_from([None, FINDER])),
    _action("audit_fault", TASK_SPECS, TASK_OPERATORS, st.sampled_from([None, FINDER])),
)
ALL_ACTIONS = st.one_of(ACTIONS, MARKET_ACTIONS, MARKET_ACTIONS)


@st.composite
def params_strategy(draw: st.DrawFn) -> Params:
    return Params(
        unbonding_period=draw(st.integers(min_value=1, max_value=3)),
        max_active_operators=2,
        take_cooldown_rounds=draw(st.integers(min_value=0, max_value=3)),
        slash_delegators=draw(st.booleans()),
        treasury_cut=draw(st.sampled_from([0, 100_000])),
        voting_period=draw(st.integers(min_value=1, max_value=2)),
        min_operator_bond=draw(st.sampled_from([0, 0, TOKEN])),
        collateral_ratio=draw(st.sampled_from([0, 200_000, 200_000, PPM])),
        slash_fraction=draw(st.sampled_from([0, 100_000, 100_000, PPM])),
        redistribution=draw(st.sampled_from([0, 500_000, PPM])),
        max_attempts=draw(st.integers(min_value=1, max_value=3)),
        coprocessor_issuance_share=draw(st.sampled_from([0, 0, 100_000, PPM])),
        min_reputation=draw(st.sampled_from([0.0, 0.5, 0.5, 0.6])),
    )


BALANCES = st.fixed_dictionaries(
    {a: st.integers(min_value=10**23, max_value=10**25) for a in ACCOUNTS}
)


@st.composite
def scenarios(draw: st.DrawFn, max_actions: int) -> tuple[Params, dict[str, int], list[Action]]:
    params = draw(params_strategy())
    balances = draw(BALANCES)
    prefix = draw(setup_strategy())
    for c in COPROCESSORS:
        if draw(st.integers(0, 3)):  # usually
            prefix.append(("register_coprocessor", c, ("frac", 1), draw(st.integers(1, 3))))
    if draw(st.integers(0, 3)):  # usually
        prefix.append(("escrow_tasks", PAYER, draw(VALID_ROWS)))
    actions = prefix + draw(st.lists(ALL_ACTIONS, min_size=max_actions // 3, max_size=max_actions))
    return params, balances, actions


class MarketRunner(Runner):
    """The base runner plus market actions, market events and market bookkeeping checks."""

    next_task: int = 0

    def task(self, spec: tuple[str, Any]) -> Any:
        kind, value = spec
        if kind == "raw":
            return value
        state = self.p.state
        if kind in ("finished", "settled"):
            ids = sorted(
                i for i, o in state.finished.items() if kind == "finished" or o[0] == "settled"
            )
        else:
            ids = sorted(
                i
                for i, t in state.tasks.items()
                if kind == "open"
                or (kind == "assigned" and t.assigned)
                or (kind == "held" and t.coprocessor is not None)
            )
        return ids[value % len(ids)] if ids else 10**6 + value

    def resolve(self, action: Action) -> tuple[str, dict[str, Any]]:
        p = self.p
        kind, *a = action
        if kind == "register_coprocessor":
            who, spec, capacity = a
            collateral = self.amount(spec, p.balance(who) // 8)
            return kind, {"coprocessor": who, "collateral": collateral, "capacity": capacity}
        if kind == "top_up_collateral":
            who, spec = a
            return kind, {"coprocessor": who, "amount": self.amount(spec, p.balance(who) // 8)}
        if kind == "unbond_collateral":
            who, spec = a
            c = p.state.coprocessors.get(who)
            return kind, {"coprocessor": who, "amount": self.amount(spec, c.free if c else 0)}
        if kind == "withdraw_collateral":
            who, index = a
            c = p.state.coprocessors.get(who)
            ids = sorted(c.locks) if c else []
            lock_id = ids[index % len(ids)] if ids and index >= 0 else index
            return kind, {"coprocessor": who, "lock_id": lock_id}
        if kind == "escrow_tasks":
            client, rows = a
            tasks: list[tuple[int, int]] = []
            known = sorted(set(p.state.tasks) | set(p.state.finished))
            for how, fee in rows:
                if (
                    how == "fresh"
                    or (how == "dup" and not known)
                    or (how == "batchdup" and not tasks)
                ):
                    tasks.append((self.next_task, fee))
                    self.next_task += 1
                elif how == "dup":
                    tasks.append((known[fee % len(known)] if isinstance(fee, int) else known[0], 1))
                else:
                    tasks.append((tasks[0][0], fee))
            return kind, {"client": client, "tasks": tasks}
        if kind == "assign_task":
            spec, operator, coprocessor, price_spec = a
            task_id = self.task(spec)
            task = p.state.tasks.get(task_id) if isinstance(task_id, int) else None
            if operator == "owner":
                owner = task.operator if task is not None else None
                active = sorted(p.active_set)
                index = task_id if isinstance(task_id, int) else 0
                operator = owner or (active[index % len(active)] if active else OPERATORS[0])
            fee = task.fee if task is not None else 1
            how, value = price_spec
            price = fee * value // 8 if how == "frac" else (fee + 1 if value == "over" else value)
            return kind, {
                "task_id": task_id,
                "operator": operator,
                "coprocessor": coprocessor,
                "price": price,
            }
        if kind == "settle_tasks":
            return kind, {"task_ids": [self.task(s) for s in a[0]]}
        if kind in ("refund_task", "fail_coprocessor"):
            return kind, {"task_id": self.task(a[0])}
        if kind == "fail_operator":
            return kind, {"task_id": self.task(a[0]), "finder": a[1]}
        if kind == "audit_fault":
            spec, operator, finder = a
            task_id = self.task(spec)
            if operator == "owner":
                done = self.p.state.finished.get(task_id) if isinstance(task_id, int) else None
                operator = done[1] if done is not None and done[1] else OPERATORS[0]
            return kind, {"task_id": task_id, "operator": operator, "finder": finder}
        return super().resolve(action)

    def step(self, action: Action) -> None:
        p = self.p
        method, kwargs = self.resolve(action)
        call = f"p.{method}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        before = p.state_hash()
        ratio = 1
        if method in ("pay_fees", "settle_tasks"):
            # Fees per unit of the receiving pool's active stake, rounded up (fee dust bound).
            earned: dict[str, int] = {}
            if method == "pay_fees":
                if isinstance(kwargs["amount"], int):
                    earned[kwargs["operator"]] = kwargs["amount"]
            else:
                for i in set(kwargs["task_ids"]):
                    t = p.state.tasks.get(i) if isinstance(i, int) else None
                    if t is not None and t.assigned:
                        earned[t.operator] = earned.get(t.operator, 0) + t.price
            for op, amount in earned.items():
                stake = p.active_set.get(op, 0)
                if stake:
                    ratio = max(ratio, -(-amount // stake))
        try:
            getattr(p, method)(**kwargs)
        except ProtocolError as exc:
            self.refused += 1
            self.trace.append(f"{call}  # refused: {type(exc).__name__}")
            assert p.state_hash() == before, f"non-atomic refusal: {call} raised {exc!r}"
        else:
            self.accepted += 1
            if method in (
                "pay_fees",
                "reward",
                "slash_operator",
                "settle_tasks",
                "fail_operator",
                "audit_fault",
            ):
                self.events += 1 + (len(p.state.pools) if method == "settle_tasks" else 0)
            self.fee_ratio = max(self.fee_ratio, ratio)
            self.trace.append(call)
        self.check()

    def check(self) -> None:
        super().check()
        state = self.p.state
        assert not set(state.tasks) & set(state.finished), "a task is both open and finished"
        for name, c in state.coprocessors.items():
            held = [t for t in state.tasks.values() if t.coprocessor == name]
            assert c.load == len(held) <= c.capacity, f"coprocessor {name}: load {c.load}"
            assert c.locked == sum(t.collateral for t in held), f"coprocessor {name}: locked"
            assert c.free >= 0 and c.locked >= 0
        for t in state.tasks.values():
            assert 0 <= t.price <= t.fee
            assert t.assigned or (t.coprocessor is None and t.collateral == 0)
            assert t.attempts < self.p.params.max_attempts or t.attempts == 0


def run_scenario(params: Params, balances: dict[str, int], actions: list[Action]) -> MarketRunner:
    """The base scenario run (every check, then replay) with the market runner."""
    runner = base_run_scenario(params, balances, actions, MarketRunner)
    assert isinstance(runner, MarketRunner)
    return runner


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios(max_actions=60))
def test_random_market_transactions_keep_every_property(
    scenario: tuple[Params, dict[str, int], list[Action]],
) -> None:
    run_scenario(*scenario)


@pytest.mark.slow
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios(max_actions=150))
def test_random_market_transactions_keep_every_property_long(
    scenario: tuple[Params, dict[str, int], list[Action]],
) -> None:
    run_scenario(*scenario)


def test_market_actions_are_mostly_reachable() -> None:
    """A fixed scenario reaches every market transaction at least once (guards the runner)."""
    params = Params(max_active_operators=2, coprocessor_issuance_share=100_000, unbonding_period=2)
    balances = dict.fromkeys(ACCOUNTS, 10**24)
    actions: list[Action] = [
        ("bond", "o0", "self", ("frac", 2)),
        ("register_operator", "o0", 0, PPM),
        ("bond", "d0", "o0", ("frac", 2)),
        ("initialize_round",),
        ("register_coprocessor", "c0", ("frac", 1), 2),
        ("top_up_collateral", "c0", ("abs", 7)),
        ("escrow_tasks", PAYER, [("fresh", TOKEN), ("fresh", TOKEN), ("fresh", 5)]),
        ("assign_task", ("open", 0), "owner", "c0", ("frac", 4)),
        ("assign_task", ("open", 1), "owner", None, ("frac", 0)),
        ("settle_tasks", [("assigned", 0), ("assigned", 1), ("assigned", 0)]),
        ("settle_tasks", [("settled", 0)]),
        ("audit_fault", ("settled", 0), "owner", FINDER),
        ("assign_task", ("open", 0), "owner", "c0", ("frac", 8)),
        ("fail_coprocessor", ("held", 0)),
        ("fail_operator", ("open", 0), FINDER),
        ("escrow_tasks", PAYER, [("fresh", 3)]),
        ("refund_task", ("open", 0)),
        ("unbond_collateral", "c0", ("frac", 8)),
        ("initialize_round",),
        ("initialize_round",),
        ("withdraw_collateral", "c0", 0),
    ]
    runner = run_scenario(params, balances, actions)
    refused = [line for line in runner.trace if "refused" in line]
    assert not refused, refused
