"""The transaction table: a kind is defined once (its class in protocol/transactions.py)
and the protocol, the signed edge and the CLI all follow from it."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from nacl.signing import SigningKey
from pydantic import ValidationError

from cluster.cli.app import build_parser, build_tx, tx_fields, tx_kinds
from cluster.engine.signing import apply_signed, sign_tx
from protocol import TOKEN, Params, Protocol, ProtocolError, codec, staking
from protocol import transactions as txs
from protocol.errors import InsufficientBalance, InvalidAmount, NotOwner
from protocol.units import tokens

ROOT = Path(__file__).resolve().parents[1]


def addr(key: SigningKey) -> str:
    return bytes(key.verify_key).hex()


# --- a kind defined once ---------------------------------------------------------------


@pytest.fixture
def tip() -> Iterator[type[txs.Tx]]:
    """A throwaway kind, defined here only, removed again after the test."""

    class Tip(txs.Tx):
        """Give ``amount`` of liquid balance to ``to``; return the amount given."""

        kind: Literal["tip"] = "tip"
        signer = "giver"
        cli = "tip"
        giver: str
        to: str
        amount: txs.Tokens
        note: str | None = None

        def rule(self, machine: txs.Machine) -> int:
            state = machine.state
            staking.check_amount(self.amount)
            staking.check_account(state, self.giver)
            if state.balances[self.giver] < self.amount:
                raise InsufficientBalance(f"amount: {self.amount} exceeds the liquid balance")
            state.balances[self.giver] -= self.amount
            state.balances[self.to] = state.balances.get(self.to, 0) + self.amount
            return self.amount

    try:
        yield Tip
    finally:
        del txs.TX_KINDS["tip"]


def test_a_kind_defined_once_is_in_the_table_the_protocol_signing_and_the_cli(
    tip: type[txs.Tx],
) -> None:
    alice, bob = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    a, b = addr(alice), addr(bob)

    # The table.
    assert txs.TX_KINDS["tip"] is tip
    assert tip.KIND == "tip" and tip.fields == ("giver", "to", "amount", "note")
    assert tip.token_fields == {"amount"}

    # The protocol: a method with the fields as parameters, through apply and the sink.
    p = Protocol(Params(), {a: 100 * TOKEN, b: 0})
    sunk: list[txs.Tx] = []
    p.sink = sunk.append
    assert p.tip(a, b, 3) == 3  # type: ignore[attr-defined]
    assert p.tip(giver=a, to=b, amount=4, note="thanks") == 4  # type: ignore[attr-defined]
    assert p.balance(b) == 7
    assert [t.to_plain() for t in sunk] == [
        {"kind": "tip", "giver": a, "to": b, "amount": 3, "note": None},
        {"kind": "tip", "giver": a, "to": b, "amount": 4, "note": "thanks"},
    ]
    assert [txs.decode_tx(txs.encode_tx(t)) for t in sunk] == sunk
    before = p.state_hash()
    for bad in (0, -1, True, "5"):
        with pytest.raises(InvalidAmount):
            p.tip(a, b, bad)  # type: ignore[attr-defined]
    assert p.state_hash() == before and len(sunk) == 2
    params = inspect.signature(p.tip).parameters  # type: ignore[attr-defined]
    assert list(params) == ["giver", "to", "amount", "note"]
    assert params["note"].default is None
    assert "Give ``amount``" in (p.tip.__doc__ or "")  # type: ignore[attr-defined]

    # Replay of the logged frames.
    q = Protocol(Params(), {a: 100 * TOKEN, b: 0})
    for t in sunk:
        q.apply(txs.decode_tx(txs.encode_tx(t)))
    assert q.state_hash() == p.state_hash()

    # The signed edge: its signer field must be the signer.
    net = Protocol(Params(), {a: 100 * TOKEN})
    chain = "c0" * 32
    signed = sign_tx(alice, 0, tip(giver=a, to=b, amount=TOKEN), chain)
    assert apply_signed(net, signed, chain) == TOKEN
    assert net.nonce(a) == 1 and net.balance(b) == TOKEN
    with pytest.raises(NotOwner, match="cannot act as giver"):
        apply_signed(net, sign_tx(bob, 0, tip(giver=a, to=b, amount=TOKEN), chain), chain)

    # The CLI: its name, its fields in order, amounts in tokens.
    assert tx_kinds()["tip"] is tip
    assert tx_fields(tip) == ("to", "amount", "note")
    assert build_tx("tip", a, ["to=" + b, "amount=1.5"]) == {
        "kind": "tip",
        "giver": a,
        "to": b,
        "amount": tokens("1.5"),
    }
    with pytest.raises(Exception, match="tx tip: missing to="):
        build_tx("tip", a, ["amount=1"])
    args = build_parser().parse_args(["tx", "tip", "to=x", "amount=1", "--key", "alice"])
    assert args.kind == "tip"


def test_a_removed_kind_is_gone_everywhere() -> None:
    class Gone(txs.Tx):
        """A kind that exists for one test."""

        kind: Literal["gone_kind"] = "gone_kind"
        signer = "who"
        cli = "gone"
        who: str

        def rule(self, machine: txs.Machine) -> None:
            return None

    p = Protocol(Params(), {})
    assert p.gone_kind("x") is None  # type: ignore[attr-defined]
    assert txs.parse_tx({"kind": "gone_kind", "who": "x"}) == Gone(who="x")
    del txs.TX_KINDS["gone_kind"]
    assert not hasattr(p, "gone_kind")
    assert "gone" not in tx_kinds()
    with pytest.raises(ValidationError):
        txs.parse_tx({"kind": "gone_kind", "who": "x"})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tx", "gone", "--key", "alice"])


def test_a_kind_is_defined_once() -> None:
    with pytest.raises(TypeError, match="'bond': already defined"):

        class Bond2(txs.Tx):
            kind: Literal["bond"] = "bond"

    assert txs.TX_KINDS["bond"] is txs.Bond


# --- nothing else lists kinds ---------------------------------------------------------------


def _sources(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_nothing_outside_transactions_lists_kinds() -> None:
    """No literal collection of kind (or CLI) names, and no hand-written kind method."""
    names = set(txs.TX_KINDS) | {k.cli for k in txs.TX_KINDS.values() if k.cli}
    names -= {"signed", "genesis"}
    offenders = []
    for path in _sources("protocol", "cluster", "workers"):
        if path == ROOT / "protocol" / "transactions.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                items: list[Any] = list(node.keys)
            elif isinstance(node, ast.Set | ast.List | ast.Tuple):
                items = list(node.elts)
            else:
                continue
            listed = {
                n.value
                for n in items
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names
            }
            if len(listed) >= 3:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {sorted(listed)}")
        for name in ("ACTOR_FIELD", "TOKEN_FIELDS", "INT_FIELDS"):
            assert name not in path.read_text(), f"{path.relative_to(ROOT)} defines {name}"
    assert not offenders, offenders
    tree = ast.parse((ROOT / "protocol" / "protocol.py").read_text())
    (protocol_class,) = [
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Protocol"
    ]
    written = {n.name for n in protocol_class.body if isinstance(n, ast.FunctionDef)}
    public = {kind for kind, cls in txs.TX_KINDS.items() if cls.public}
    assert not written & public, "kind methods are generated from the table"


def _imports(path: Path) -> set[str]:
    """Return the modules of the ``protocol`` package that ``path`` imports (any scope)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "protocol":
                parts = node.module.split(".")
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "protocol" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_protocol_and_transactions_do_not_import_each_other() -> None:
    package = ROOT / "protocol"
    graph = {p.stem: _imports(p) for p in package.glob("*.py") if p.stem != "__init__"}
    assert "protocol" not in graph["transactions"]
    # Not through another module either.
    seen, todo = set(), ["transactions"]
    while todo:
        module = todo.pop()
        if module in seen or module not in graph:
            continue
        seen.add(module)
        todo.extend(graph[module])
    assert "protocol" not in seen, "protocol/transactions.py reaches protocol/protocol.py"
    assert "transactions" in graph["protocol"]


# --- the protocol API is what it was --------------------------------------------------------

# Every mutator: its parameters in order, with defaults (ARCHITECTURE.md's public API).
REQUIRED = inspect.Parameter.empty
API: dict[str, list[tuple[str, Any]]] = {
    "initialize_round": [],
    "transfer": [("sender", REQUIRED), ("to", REQUIRED), ("amount", REQUIRED)],
    "bond": [("delegator", REQUIRED), ("operator", REQUIRED), ("amount", REQUIRED)],
    "register_operator": [("operator", REQUIRED), ("reward_cut", 0), ("fee_share", 1_000_000)],
    "set_commission": [
        ("operator", REQUIRED),
        ("reward_cut", None),
        ("fee_share", None),
        ("sender", None),
    ],
    "unbond": [("delegator", REQUIRED), ("amount", REQUIRED)],
    "rebond": [("delegator", REQUIRED), ("lock_id", REQUIRED)],
    "withdraw_stake": [("delegator", REQUIRED), ("lock_id", REQUIRED)],
    "withdraw_fees": [("delegator", REQUIRED), ("amount", REQUIRED)],
    "claim_earnings": [("delegator", REQUIRED)],
    "reward": [("operator", REQUIRED)],
    "pay_fees": [("payer", REQUIRED), ("operator", REQUIRED), ("amount", REQUIRED)],
    "pay_fees_batch": [("payments", REQUIRED)],
    "slash_operator": [("operator", REQUIRED), ("fraction_ppm", REQUIRED), ("finder", None)],
    "propose": [("proposer", REQUIRED), ("changes", None), ("transfers", None)],
    "vote": [("voter", REQUIRED), ("proposal_id", REQUIRED), ("choice", REQUIRED)],
    "register_coprocessor": [
        ("coprocessor", REQUIRED),
        ("collateral", REQUIRED),
        ("capacity", REQUIRED),
    ],
    "top_up_collateral": [("coprocessor", REQUIRED), ("amount", REQUIRED)],
    "unbond_collateral": [("coprocessor", REQUIRED), ("amount", REQUIRED)],
    "withdraw_collateral": [("coprocessor", REQUIRED), ("lock_id", REQUIRED)],
    "escrow_tasks": [
        ("client", REQUIRED),
        ("tasks", REQUIRED),
        ("key", None),
        ("deadline_rounds", None),
    ],
    "assign_task": [
        ("task_id", REQUIRED),
        ("operator", REQUIRED),
        ("coprocessor", None),
        ("price", None),
    ],
    "settle_tasks": [("task_ids", REQUIRED)],
    "assign_tasks": [("orders", REQUIRED)],
    "settle_batch": [("settled", REQUIRED), ("safety", []), ("liveness", []), ("audited", [])],
    "refund_task": [("task_id", REQUIRED)],
    "fail_coprocessor": [("task_id", REQUIRED)],
    "miss_coprocessor": [("task_id", REQUIRED)],
    "expire_task": [("task_id", REQUIRED)],
    "fail_operator": [("task_id", REQUIRED), ("finder", None)],
    "audit_fault": [("task_id", REQUIRED), ("operator", REQUIRED), ("finder", None)],
}


@pytest.mark.parametrize("name", sorted(API))
def test_mutator_signatures_are_unchanged(name: str) -> None:
    method = getattr(Protocol, name)
    params = list(inspect.signature(method).parameters.values())
    assert params[0].name == "self"
    assert [(q.name, q.default) for q in params[1:]] == API[name]
    assert all(q.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for q in params)
    assert method.__doc__, f"Protocol.{name} has no docstring"
    assert method.__qualname__ == f"Protocol.{name}"


def test_the_public_kinds_are_exactly_the_mutators() -> None:
    public = {kind for kind, cls in txs.TX_KINDS.items() if cls.public}
    assert public == set(API)
    assert {k for k, c in txs.TX_KINDS.items() if not c.public} == {"genesis", "signed"}


def test_wrong_calls_fail_like_written_methods() -> None:
    p = Protocol(Params(), {"a": TOKEN})
    with pytest.raises(TypeError, match=r"Protocol\.bond\(\) missing 1 required positional"):
        p.bond("a", "a")
    with pytest.raises(TypeError, match="unexpected keyword argument 'amout'"):
        p.bond("a", "a", amout=1)
    with pytest.raises(AttributeError, match="'Protocol' object has no attribute 'bnod'"):
        p.bnod  # type: ignore[attr-defined]  # noqa: B018


def test_live_calls_are_checked_by_the_rules_not_coerced() -> None:
    p = Protocol(Params(), {"a": 10 * TOKEN})
    before = p.state_hash()
    for bad in (-1, 0, True, "5", 1.0, None):
        with pytest.raises(InvalidAmount, match="amount"):
            p.bond("a", "a", bad)  # type: ignore[arg-type]
    assert p.state_hash() == before
    # Decoding (replay, the signed edge) stays validated.
    with pytest.raises(ValidationError):
        txs.parse_tx({"kind": "bond", "delegator": "a", "operator": "a", "amount": "x"})


def test_cli_kinds_are_todays() -> None:
    """``stakeray tx`` offers the same names, signer fields and fields as before the table."""
    expected = {
        "transfer": ("transfer", "sender", ("to", "amount")),
        "bond": ("bond", "delegator", ("operator", "amount")),
        "unbond": ("unbond", "delegator", ("amount",)),
        "rebond": ("rebond", "delegator", ("lock_id",)),
        "withdraw": ("withdraw_stake", "delegator", ("lock_id",)),
        "withdraw-fees": ("withdraw_fees", "delegator", ("amount",)),
        "claim": ("claim_earnings", "delegator", ()),
        "register": ("register_operator", "operator", ("reward_cut", "fee_share")),
        "commission": ("set_commission", "operator", ("reward_cut", "fee_share")),
        "vote": ("vote", "voter", ("proposal_id", "choice")),
    }
    found = {name: (k.KIND, k.signer, tx_fields(k)) for name, k in tx_kinds().items()}
    assert found == expected
    assert build_tx("register", "op", ["fee_share=5", "reward_cut=7"]) == {
        "kind": "register_operator",
        "operator": "op",
        "fee_share": 5,
        "reward_cut": 7,
    }
    assert build_tx("commission", "op", ["reward_cut=7"]) == {
        "kind": "set_commission",
        "operator": "op",
        "reward_cut": 7,
    }
    assert build_tx("vote", "v", ["proposal_id=3", "choice=yes"])["proposal_id"] == 3
    assert build_tx("withdraw-fees", "d", ["amount=2"])["amount"] == 2 * TOKEN
    with pytest.raises(Exception, match="tx register: missing reward_cut=, fee_share="):
        build_tx("register", "op", [])
    with pytest.raises(Exception, match="tx rebond: lock_id: not a number: 'x'"):
        build_tx("rebond", "d", ["lock_id=x"])
    with pytest.raises(Exception, match=r"tx claim: 'a=1': expected one of \(none\)=VALUE"):
        build_tx("claim", "d", ["a=1"])


def test_signers_are_todays() -> None:
    signers = {k: c.signer for k, c in txs.TX_KINDS.items() if c.signer is not None}
    assert signers == {
        "transfer": "sender",
        "bond": "delegator",
        "unbond": "delegator",
        "rebond": "delegator",
        "withdraw_stake": "delegator",
        "withdraw_fees": "delegator",
        "claim_earnings": "delegator",
        "register_operator": "operator",
        "set_commission": "operator",
        "reward": "operator",
        "pay_fees": "payer",
        "propose": "proposer",
        "vote": "voter",
        "register_coprocessor": "coprocessor",
        "top_up_collateral": "coprocessor",
        "unbond_collateral": "coprocessor",
        "withdraw_collateral": "coprocessor",
        "escrow_tasks": "client",
    }


# --- logged frames, byte for byte ------------------------------------------------------------


def test_logged_frames_keep_their_encoding() -> None:
    p = Protocol(Params(), {"op": 100 * TOKEN, "c": 100 * TOKEN})
    frames: list[bytes] = []
    p.sink = lambda t: frames.append(txs.encode_tx(t))
    p.bond("op", "op", TOKEN)
    p.register_operator("op", 100_000)
    p.initialize_round()
    p.set_commission("op", fee_share=900_000)
    p.propose("op", None, {"c": 1})
    p.pay_fees_batch([("c", "op", 5)])
    p.escrow_tasks("c", [[7, 9]])
    p.assign_task(7, "op")
    p.settle_tasks((7,))
    p.apply_signed("c", 0, txs.Transfer(sender="c", to="op", amount=1))
    expected: list[dict[str, Any]] = [
        {"kind": "bond", "delegator": "op", "operator": "op", "amount": TOKEN},
        {"kind": "register_operator", "operator": "op", "reward_cut": 100_000, "fee_share": 10**6},
        {"kind": "initialize_round"},
        # Left-out values are logged as they were in force.
        {
            "kind": "set_commission",
            "operator": "op",
            "reward_cut": 100_000,
            "fee_share": 900_000,
            "sender": None,
        },
        {"kind": "propose", "proposer": "op", "changes": {}, "transfers": {"c": 1}},
        {"kind": "pay_fees_batch", "payments": [("c", "op", 5)]},
        {"kind": "escrow_tasks", "client": "c", "tasks": [(7, 9)]},
        {"kind": "assign_task", "task_id": 7, "operator": "op", "coprocessor": None, "price": None},
        {"kind": "settle_tasks", "task_ids": [7]},
        {
            "kind": "signed",
            "sender": "c",
            "nonce": 0,
            "tx": {"kind": "transfer", "sender": "c", "to": "op", "amount": 1},
        },
    ]
    assert frames == [codec.pack(e) for e in expected]


@pytest.mark.parametrize("value", [True, False, "1", 1.0])
def test_decoded_integers_are_never_coerced(value: object) -> None:
    """A transaction from outside (a signed mapping, a log frame) with a bool, a numeric
    string or a float where an integer belongs is refused, not read as that integer."""
    with pytest.raises(ValueError, match="lock_id"):
        txs.parse_tx({"kind": "rebond", "delegator": "a", "lock_id": value})
    with pytest.raises(ValueError, match="tasks"):
        txs.parse_tx({"kind": "escrow_tasks", "client": "c", "tasks": [[0, value]]})
    assert txs.parse_tx({"kind": "rebond", "delegator": "a", "lock_id": 1}).lock_id == 1


WRONG_TYPES = [True, False, 1.0, "1", None, -1, [], {}]
"""Values of the wrong type (or range) for some field of every kind."""

GOOD_CALLS: dict[str, dict[str, object]] = {
    "transfer": {"sender": "client", "to": "x", "amount": 5},
    "bond": {"delegator": "d", "operator": "op", "amount": 5},
    "register_operator": {"operator": "new", "reward_cut": 0, "fee_share": 1_000_000},
    "set_commission": {"operator": "op", "reward_cut": 50_000},
    "unbond": {"delegator": "d", "amount": 5},
    "rebond": {"delegator": "d", "lock_id": 0},
    "withdraw_stake": {"delegator": "d", "lock_id": 0},
    "withdraw_fees": {"delegator": "d", "amount": 0},
    "claim_earnings": {"delegator": "d"},
    "reward": {"operator": "op"},
    "pay_fees": {"payer": "client", "operator": "op", "amount": 5},
    "pay_fees_batch": {"payments": [("client", "op", 5)]},
    "slash_operator": {"operator": "op", "fraction_ppm": 1000},
    "propose": {"proposer": "op", "changes": {"finder_fee": 1}},
    "vote": {"voter": "op", "proposal_id": 0, "choice": "yes"},
    "register_coprocessor": {"coprocessor": "c9", "collateral": 10**18, "capacity": 2},
    "top_up_collateral": {"coprocessor": "cop", "amount": 5},
    "unbond_collateral": {"coprocessor": "cop", "amount": 5},
    "withdraw_collateral": {"coprocessor": "cop", "lock_id": 0},
    "escrow_tasks": {"client": "client", "tasks": [(3, 5)]},
    "assign_task": {"task_id": 1, "operator": "op"},
    "settle_tasks": {"task_ids": [2]},
    "assign_tasks": {"orders": [(1, "op", None, None)]},
    "settle_batch": {"settled": [2]},
    "refund_task": {"task_id": 1},
    "fail_coprocessor": {"task_id": 2},
    "miss_coprocessor": {"task_id": 2},
    "expire_task": {"task_id": 2},
    "fail_operator": {"task_id": 2},
    "audit_fault": {"task_id": 2, "operator": "op"},
}


def test_every_public_kind_has_a_good_call() -> None:
    public = {k for k, c in txs.TX_KINDS.items() if c.public and c.fields}
    assert public == set(GOOD_CALLS)


@pytest.mark.parametrize("kind", sorted(GOOD_CALLS))
def test_a_field_of_the_wrong_type_is_refused_or_logged_decodably(kind: str) -> None:
    """Every live call either refuses with a ``ProtocolError`` having changed nothing, or
    logs a frame that decodes (strict integers) to the same transaction: never a
    ``TypeError``, never a frame a replay would refuse."""
    from test_market import FEE, network

    for field in txs.TX_KINDS[kind].fields:
        for value in WRONG_TYPES:
            p = network()
            p.escrow_tasks("client", [(1, FEE), (2, FEE)])
            p.assign_task(2, "op", "cop", 5)
            logged: list[txs.Tx] = []
            p.sink = logged.append
            before = p.state_hash()
            try:
                getattr(p, kind)(**{**GOOD_CALLS[kind], field: value})
            except ProtocolError as exc:
                assert p.state_hash() == before and "\n" not in str(exc), (kind, field, value)
                continue
            for t in logged:
                assert txs.decode_tx(txs.encode_tx(t)) == t, (kind, field, value)
