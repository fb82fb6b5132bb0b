"""Transactions: one class per accepted state change, its rule, and its msgpack encoding.

Each kind is defined once, here, as a subclass of :class:`Tx`; defining it
registers it in :data:`TX_KINDS` (``kind -> class``) and everything else reads
that table:

* the pydantic fields are the transaction's contents, in log order (``kind``
  first); :func:`encode_tx` packs ``tx.to_plain()``, so the durable log stores
  exactly these and replaying them from genesis rebuilds the state bit for bit;
* :meth:`Tx.rule` applies it: it checks the values (raising the typed
  :class:`ProtocolError` subclasses) and calls the state functions directly;
  :meth:`Tx.resolve` first gives the form that is applied and logged (values a
  live call leaves to the state, as ``set_commission``'s);
* ``Protocol`` gets one method per kind (``kind`` is the method name, the
  fields after ``kind`` its parameters in order; see ``protocol/protocol.py``),
  unless the class sets ``public = False`` (genesis, signed);
* ``signer`` names the field holding the account that acts (the cluster's
  edge requires it to equal the signed sender; ``None``: only the cluster
  issues the kind), ``filled_by_signer`` a field the edge sets to the signer
  (``set_commission``'s ``sender``), ``cli`` the kind's name for
  ``stakeray tx`` (``None``: not offered there);
* field markers: :data:`Tokens` (``Annotated[int, TOKENS]``) is a token amount
  users type in tokens; :class:`CallDefault` is the ``Protocol`` method's
  default for a field the log requires; :class:`CallConvert` is what the
  method does to an argument first (copies of the caller's sequences).

A transaction built for a live call (``Protocol.bond(...)``) is not validated
by pydantic (:meth:`Tx.unvalidated`): the rule refuses bad values with the
protocol's own one-line errors. Decoded ones (:func:`parse_tx`) are validated.

This module never imports ``protocol.protocol``: a rule sees only a
:class:`Machine` (the state and the parameters).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, Strict, TypeAdapter
from pydantic_core import PydanticUndefined

from . import codec, earnings, governance, market, staking
from .commission import get_commission, register_operator, request_commission_change
from .errors import (
    AlreadyCheckpointed,
    DuplicateTransaction,
    InsufficientBalance,
    InvalidAmount,
    InvalidArgument,
    NonceError,
    OperatorNotActive,
    ProtocolError,
    UnknownOperator,
)
from .params import Params
from .rounds import initialize_round as _initialize_round
from .slashing import slash_operator as _slash_operator
from .state import State

__all__ = [
    "TOKENS",
    "TX_KINDS",
    "AnyTx",
    "CallConvert",
    "CallDefault",
    "Machine",
    "Tokens",
    "Tx",
    "decode_tx",
    "encode_tx",
    "parse_tx",
]


class Machine(typing.Protocol):
    """What a rule works on: the state and the parameters in force (``Protocol`` is one).

    ``initialize_round`` replaces ``params`` (governance may have changed them).
    """

    state: State
    params: Params


class Applier(typing.Protocol):
    """Something that applies transactions (``Protocol``)."""

    def apply(self, transaction: Tx) -> Any: ...


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


Int = Annotated[int, Strict()]
"""An integer field that refuses bools and numeric strings when decoded (never coerced)."""

TOKENS = _Marker("TOKENS")
"""Field marker: a token amount (base units) that users type in tokens (``stakeray tx``)."""

Tokens = Annotated[Int, TOKENS]


@dataclass(frozen=True, slots=True)
class CallDefault:
    """Field marker: the ``Protocol`` method's default for a field the log requires."""

    value: Any


@dataclass(frozen=True, slots=True)
class CallConvert:
    """Field marker: the ``Protocol`` method passes its argument through ``convert`` first.

    For a copy the caller cannot change once it is logged, or a normal form;
    ``convert`` must not refuse anything the rule would refuse with its own error.
    """

    convert: Callable[[Any], Any]


# Converters copy what the caller passed; a value of the wrong type passes through as it
# is, so that the shape check refuses it in one line (``Tx.check_shape``).


def _dict_or_empty(value: Any) -> Any:
    return {} if value is None else dict(value) if isinstance(value, dict) else value


def _list(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def _rows(value: Any) -> Any:
    if not isinstance(value, list | tuple):
        return value
    return [tuple(r) if isinstance(r, tuple | list) else r for r in value]


Shape = tuple[tuple[type, ...], str]
"""The Python types a field's value may have, and how to name them in a refusal."""

_SHAPES: dict[Any, Shape] = {
    int: ((int,), "an integer"),
    str: ((str,), "a string"),
    bool: ((bool,), "a boolean"),
    list: ((list, tuple), "a list"),
    tuple: ((list, tuple), "a list"),
    dict: ((dict,), "a mapping"),
}


def _shape_of(annotation: Any) -> Shape:
    """Return the shape of a field's annotation (its outer type; rules check the inside)."""
    if typing.get_origin(annotation) is Annotated:
        return _shape_of(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [_shape_of(a) for a in typing.get_args(annotation)]
        return tuple(t for p in parts for t in p[0]), " or ".join(p[1] for p in parts)
    if annotation is None or annotation is type(None):
        return (type(None),), "null"
    if annotation is Any:
        return (object,), "anything"
    origin = typing.get_origin(annotation) or annotation
    return _SHAPES[origin]


REQUIRED: Any = object()
"""The default of a required parameter in :meth:`Tx.call_parameters`."""

TX_KINDS: dict[str, type[Tx]] = {}
"""Every transaction kind: ``kind`` -> its class, in definition order (filled by :class:`Tx`)."""

# Building a model without validation, as model_construct does for a complete field dict,
# at a fraction of its cost: the instance slots of every pydantic model, set directly.
_new = object.__new__
_set_dict = vars(BaseModel)["__dict__"].__set__
_set_fields_set = vars(BaseModel)["__pydantic_fields_set__"].__set__
_set_extra = vars(BaseModel)["__pydantic_extra__"].__set__
_set_private = vars(BaseModel)["__pydantic_private__"].__set__


class Tx(BaseModel):
    """Base of every transaction; a subclass with a ``kind: Literal[...]`` default is a kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str

    KIND: ClassVar[str] = ""
    """The kind (the ``kind`` field's value; the ``Protocol`` method's name)."""
    signer: ClassVar[str | None] = None
    """The field naming the account that acts (``None``: only the cluster issues the kind)."""
    filled_by_signer: ClassVar[str | None] = None
    """A field the cluster's edge sets to the signed sender (a different value is refused)."""
    cli: ClassVar[str | None] = None
    """The kind's name for ``stakeray tx`` (``None``: not offered there)."""
    public: ClassVar[bool] = True
    """Whether ``Protocol`` has a method named after the kind."""
    fields: ClassVar[tuple[str, ...]] = ()
    """The fields after ``kind``, in order (the ``Protocol`` method's parameters)."""
    token_fields: ClassVar[frozenset[str]] = frozenset()
    """The fields marked :data:`TOKENS`."""
    shapes: ClassVar[tuple[tuple[str, Shape], ...]] = ()
    """Per field but the integers: the Python types its value may have (:meth:`check_shape`)."""

    def check_shape(self) -> None:
        """Refuse a field of the wrong type before any rule sees it (a live call is not
        validated by pydantic): a bool for an integer, a list for an address, ..."""
        values = self.__dict__
        for name, (allowed, what) in self.shapes:
            value = values[name]
            if not isinstance(value, allowed) or (value.__class__ is bool and bool not in allowed):
                raise InvalidArgument(f"{self.KIND}.{name}: expected {what}, got {value!r:.60}")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.model_fields["kind"].default
        if not isinstance(kind, str) or not kind:
            return  # an abstract base, not a kind
        if kind in TX_KINDS:
            raise TypeError(f"transaction kind {kind!r}: already defined by {TX_KINDS[kind]!r}")
        names = tuple(n for n in cls.model_fields if n != "kind")
        for role in ("signer", "filled_by_signer"):
            field = getattr(cls, role)
            if field is not None and field not in names:
                raise TypeError(f"{cls.__name__}.{role}: {field!r} is not a field")
        if cls.cli is not None and cls.signer is None:
            raise TypeError(f"{cls.__name__}: a kind users send (cli) needs a signer field")
        cls.KIND = kind
        cls.fields = names
        cls.token_fields = frozenset(
            n for n in names if any(m is TOKENS for m in cls.model_fields[n].metadata)
        )
        # Integers are the rules' to check: each refuses a bool or a float with its own error
        # (an amount's InvalidAmount, a lock id's UnknownLock, ...).
        shapes = ((n, _shape_of(cls.model_fields[n].annotation)) for n in names)
        cls.shapes = tuple((n, shape) for n, shape in shapes if int not in shape[0])
        TX_KINDS[kind] = cls

    # --- building -------------------------------------------------------------------

    @classmethod
    def call_parameters(cls) -> tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]:
        """Return ``(field, default, convert)`` per field after ``kind``: the ``Protocol``
        method's parameters (``default`` is :data:`REQUIRED` for a required one)."""
        found = []
        for name in cls.fields:
            info = cls.model_fields[name]
            default: Any = REQUIRED if info.is_required() else info.default
            convert = None
            for marker in info.metadata:
                if isinstance(marker, CallDefault):
                    default = marker.value
                elif isinstance(marker, CallConvert):
                    convert = marker.convert
            if default is PydanticUndefined:  # a default_factory: no single value to show
                raise TypeError(f"{cls.__name__}.{name}: a default_factory needs a CallDefault")
            found.append((name, default, convert))
        return tuple(found)

    @classmethod
    def unvalidated(cls, **fields: Any) -> Self:
        """Return this kind as the ``Protocol`` method builds it from these arguments.

        Defaults and conversions are the method's; nothing is coerced or
        refused here: the rule checks the values.
        """
        values: dict[str, Any] = {"kind": cls.KIND}
        for name, default, convert in cls.call_parameters():
            if name in fields:
                value = fields.pop(name)
            elif default is REQUIRED:
                raise TypeError(f"{cls.KIND}: missing field {name!r}")
            else:
                value = default
            values[name] = value if convert is None else convert(value)
        if fields:
            raise TypeError(f"{cls.KIND}: unknown fields {sorted(fields)}")
        return cls._from_dict(values)

    @classmethod
    def _from_dict(cls, values: dict[str, Any]) -> Self:
        tx = _new(cls)
        _set_dict(tx, values)
        _set_fields_set(tx, set(values))
        _set_extra(tx, None)
        _set_private(tx, None)
        return tx

    def replace(self, **changes: Any) -> Self:
        """Return a copy with ``changes`` (unvalidated, like :meth:`unvalidated`)."""
        return self._from_dict({**self.__dict__, **changes})

    # --- applying -------------------------------------------------------------------

    def resolve(self, machine: Machine) -> Tx:
        """Return the transaction as it is applied and logged (this one, unless overridden).

        It never refuses: a value it cannot normalise stays for :meth:`rule` to refuse.
        """
        return self

    def rule(self, machine: Machine) -> Any:
        """Check and apply to ``machine``; return the ``Protocol`` method's result.

        A refusal raises a :class:`ProtocolError` subclass and changes nothing.
        """
        raise NotImplementedError(f"{type(self).__name__}: no rule")

    def apply(self, protocol: Applier) -> Any:
        """Apply through ``protocol.apply`` (checked, and logged if accepted)."""
        return protocol.apply(self)

    def args(self) -> dict[str, Any]:
        """Return the keyword arguments of the ``Protocol`` method."""
        return {k: v for k, v in self.__dict__.items() if k != "kind"}

    def to_plain(self) -> dict[str, Any]:
        """Return the plain mapping that is encoded."""
        return self.model_dump()


# --- frames that are not Protocol methods ---------------------------------------------


class Genesis(Tx):
    """The first frame of a log: the parameters and the balances at round 0."""

    kind: Literal["genesis"] = "genesis"
    public = False
    params: dict[str, Any]
    balances: dict[str, Int]

    def rule(self, machine: Machine) -> Any:
        raise TypeError("genesis starts a log; build the protocol with Protocol.from_genesis")


# --- rounds ----------------------------------------------------------------------------


class InitializeRound(Tx):
    """Go to the next round and initialize it (SPEC 2); return its number."""

    kind: Literal["initialize_round"] = "initialize_round"

    def rule(self, machine: Machine) -> int:
        machine.params = _initialize_round(machine.state, machine.params)
        return machine.state.round


# --- staking and fees -------------------------------------------------------------------


class Transfer(Tx):
    """Move liquid tokens between accounts."""

    kind: Literal["transfer"] = "transfer"
    signer = "sender"
    cli = "transfer"
    sender: str
    to: str
    amount: Tokens

    def rule(self, machine: Machine) -> None:
        state, sender, to, amount = machine.state, self.sender, self.to, self.amount
        staking.check_amount(amount)
        staking.check_account(state, sender)
        if not isinstance(to, str) or not to:
            raise InvalidAmount(f"to: must be a non-empty address, got {to!r}")
        if state.balances.get(sender, 0) < amount:
            raise InsufficientBalance(f"amount: {amount} exceeds the liquid balance of {sender!r}")
        state.balances[sender] -= amount
        state.balances[to] = state.balances.get(to, 0) + amount


class Bond(Tx):
    """Bond liquid balance; a self-bond when ``delegator == operator`` (SPEC 5)."""

    kind: Literal["bond"] = "bond"
    signer = "delegator"
    cli = "bond"
    delegator: str
    operator: str
    amount: Tokens

    def rule(self, machine: Machine) -> None:
        staking.bond(machine.state, self.delegator, self.operator, self.amount)


class RegisterOperator(Tx):
    """Register an operator with its commission (PPM)."""

    kind: Literal["register_operator"] = "register_operator"
    signer = "operator"
    cli = "register"
    operator: str
    reward_cut: Annotated[Int, CallDefault(0)]
    fee_share: Annotated[Int, CallDefault(1_000_000)]

    def rule(self, machine: Machine) -> None:
        register_operator(
            machine.state, machine.params, self.operator, self.reward_cut, self.fee_share
        )


class SetCommission(Tx):
    """Request a commission change, effective next round (SPEC 4).

    A value left ``None`` keeps the latest requested one; the log holds both.
    """

    kind: Literal["set_commission"] = "set_commission"
    signer = "operator"
    filled_by_signer = "sender"
    cli = "commission"
    operator: str
    reward_cut: Int | None = None
    fee_share: Int | None = None
    sender: str | None = None

    def resolve(self, machine: Machine) -> SetCommission:
        state, operator = machine.state, self.operator
        if operator in state.pools and state.pools[operator].registered:
            current = get_commission(state, operator)
            if self.reward_cut is None or self.fee_share is None:
                return self.replace(
                    reward_cut=current[0] if self.reward_cut is None else self.reward_cut,
                    fee_share=current[1] if self.fee_share is None else self.fee_share,
                )
        return self

    def rule(self, machine: Machine) -> None:
        request_commission_change(
            machine.state,
            machine.params,
            self.operator,
            self.reward_cut,  # type: ignore[arg-type]
            self.fee_share,  # type: ignore[arg-type]
            self.sender,  # type: ignore[arg-type]
        )


class Unbond(Tx):
    """Unbond ``amount`` into a new lock; return its id."""

    kind: Literal["unbond"] = "unbond"
    signer = "delegator"
    cli = "unbond"
    delegator: str
    amount: Tokens

    def rule(self, machine: Machine) -> int:
        return staking.unbond(machine.state, machine.params, self.delegator, self.amount)


class Rebond(Tx):
    """Return an unbonding lock to the delegator's current operator."""

    kind: Literal["rebond"] = "rebond"
    signer = "delegator"
    cli = "rebond"
    delegator: str
    lock_id: Int

    def rule(self, machine: Machine) -> None:
        staking.rebond(machine.state, self.delegator, self.lock_id)


class WithdrawStake(Tx):
    """Pay out a withdrawable unbonding lock; return the amount."""

    kind: Literal["withdraw_stake"] = "withdraw_stake"
    signer = "delegator"
    cli = "withdraw"
    delegator: str
    lock_id: Int

    def rule(self, machine: Machine) -> int:
        return staking.withdraw_stake(machine.state, self.delegator, self.lock_id)


class WithdrawFees(Tx):
    """Pay out ``amount`` of earned fees."""

    kind: Literal["withdraw_fees"] = "withdraw_fees"
    signer = "delegator"
    cli = "withdraw-fees"
    delegator: str
    amount: Tokens

    def rule(self, machine: Machine) -> None:
        staking.withdraw_fees(machine.state, self.delegator, self.amount)


class ClaimEarnings(Tx):
    """Settle the delegator's rewards and fees into its bond and fee balance."""

    kind: Literal["claim_earnings"] = "claim_earnings"
    signer = "delegator"
    cli = "claim"
    delegator: str

    def rule(self, machine: Machine) -> None:
        staking.claim_earnings(machine.state, self.delegator)


class Reward(Tx):
    """Checkpoint the round for ``operator``; return the amount minted (treasury included)."""

    kind: Literal["reward"] = "reward"
    signer = "operator"
    operator: str

    def rule(self, machine: Machine) -> int:
        state, operator = machine.state, self.operator
        if operator not in state.active:
            raise OperatorNotActive(f"operator {operator!r}: not active in round {state.round}")
        if state.pools[operator].last_reward_round == state.round:
            raise AlreadyCheckpointed(
                f"operator {operator!r}: already rewarded round {state.round}"
            )
        return earnings.process_reward(state, machine.params, operator)


class PayFees(Tx):
    """Pay ``amount`` of fees from ``payer`` into ``operator``'s pool."""

    kind: Literal["pay_fees"] = "pay_fees"
    signer = "payer"
    payer: str
    operator: str
    amount: Tokens

    def rule(self, machine: Machine) -> None:
        state, payer, operator, amount = machine.state, self.payer, self.operator, self.amount
        staking.check_amount(amount)
        staking.check_account(state, payer)
        if not staking.is_registered(state, operator):
            raise UnknownOperator(f"operator {operator!r}: not a registered operator")
        if state.balances.get(payer, 0) < amount:
            raise InsufficientBalance(f"amount: {amount} exceeds the liquid balance of {payer!r}")
        state.balances[payer] -= amount
        state.totals.liquid -= amount
        state.totals.fees += amount
        earnings.process_fees(state, operator, amount)


class PayFeesBatch(Tx):
    """Pay many ``(payer, operator, amount)`` fees at once; all or nothing.

    Each pool is credited once with its batch total, so a batch of
    settlements costs one factor update per operator. Return the total.
    """

    kind: Literal["pay_fees_batch"] = "pay_fees_batch"
    payments: Annotated[list[tuple[str, str, Int]], CallConvert(_list)]

    def rule(self, machine: Machine) -> int:
        state = machine.state
        owed, earned = staking.check_fee_batch(state, self.payments)
        balances = state.balances
        for payer, amount in owed.items():
            balances[payer] -= amount
        total = sum(owed.values())
        state.totals.liquid -= total
        state.totals.fees += total
        earnings.credit_fees(state, earned)
        return total

    def to_plain(self) -> dict[str, Any]:
        # Settlement batches are the hot path: rows go to msgpack as they are.
        return {"kind": self.kind, "payments": self.payments}


class SlashOperator(Tx):
    """Slash ``fraction_ppm`` of the operator's stake (SPEC 7); return the amount taken now."""

    kind: Literal["slash_operator"] = "slash_operator"
    operator: str
    fraction_ppm: Int
    finder: str | None = None

    def rule(self, machine: Machine) -> int:
        return _slash_operator(
            machine.state, machine.params, self.operator, self.fraction_ppm, self.finder
        )


# --- governance -----------------------------------------------------------------------


class Propose(Tx):
    """Open a governance proposal; return its id (SPEC 10)."""

    kind: Literal["propose"] = "propose"
    signer = "proposer"
    proposer: str
    changes: Annotated[dict[str, Any], CallDefault(None), CallConvert(_dict_or_empty)] = Field(
        default_factory=dict
    )
    transfers: Annotated[dict[str, Int], CallDefault(None), CallConvert(_dict_or_empty)] = Field(
        default_factory=dict
    )

    def rule(self, machine: Machine) -> int:
        return governance.propose(
            machine.state, machine.params, self.proposer, dict(self.changes), dict(self.transfers)
        )


class CastVote(Tx):
    """Vote ``choice`` on a proposal with the voter's stake."""

    kind: Literal["vote"] = "vote"
    signer = "voter"
    cli = "vote"
    voter: str
    proposal_id: Int
    choice: str

    def rule(self, machine: Machine) -> None:
        governance.vote(machine.state, self.voter, self.proposal_id, self.choice)


# --- the market (SPEC 6-9) ---------------------------------------------------------------


class RegisterCoprocessor(Tx):
    """Register a coprocessor with collateral and a capacity of concurrent tasks."""

    kind: Literal["register_coprocessor"] = "register_coprocessor"
    signer = "coprocessor"
    coprocessor: str
    collateral: Int
    capacity: Int

    def rule(self, machine: Machine) -> None:
        market.register_coprocessor(
            machine.state, machine.params, self.coprocessor, self.collateral, self.capacity
        )


class TopUpCollateral(Tx):
    """Add liquid balance to a coprocessor's collateral."""

    kind: Literal["top_up_collateral"] = "top_up_collateral"
    signer = "coprocessor"
    coprocessor: str
    amount: Tokens

    def rule(self, machine: Machine) -> None:
        market.top_up_collateral(machine.state, self.coprocessor, self.amount)


class UnbondCollateral(Tx):
    """Start withdrawing free collateral; return the lock id."""

    kind: Literal["unbond_collateral"] = "unbond_collateral"
    signer = "coprocessor"
    coprocessor: str
    amount: Tokens

    def rule(self, machine: Machine) -> int:
        state, params = machine.state, machine.params
        return market.unbond_collateral(state, params, self.coprocessor, self.amount)


class WithdrawCollateral(Tx):
    """Pay out a withdrawable collateral lock; return the amount."""

    kind: Literal["withdraw_collateral"] = "withdraw_collateral"
    signer = "coprocessor"
    coprocessor: str
    lock_id: Int

    def rule(self, machine: Machine) -> int:
        return market.withdraw_collateral(machine.state, self.coprocessor, self.lock_id)


class EscrowTasks(Tx):
    """Escrow the fees of new ``(task_id, fee)`` tasks, all or nothing; return the total."""

    kind: Literal["escrow_tasks"] = "escrow_tasks"
    signer = "client"
    client: str
    tasks: Annotated[list[tuple[Int, Int]], CallConvert(_rows)]
    key: str | None = None
    deadline_rounds: Int | None = None

    def rule(self, machine: Machine) -> int:
        return market.escrow_tasks(
            machine.state, machine.params, self.client, self.tasks, self.key, self.deadline_rounds
        )

    def to_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = {"kind": self.kind, "client": self.client, "tasks": self.tasks}
        # Optional fields only when given: older escrows keep the frames they always had.
        if self.key is not None:
            plain["key"] = self.key
        if self.deadline_rounds is not None:
            plain["deadline_rounds"] = self.deadline_rounds
        return plain


class AssignTask(Tx):
    """Record the operator (and the auction's winner and clock price) running a task."""

    kind: Literal["assign_task"] = "assign_task"
    task_id: Int
    operator: str
    coprocessor: str | None = None
    price: Int | None = None

    def rule(self, machine: Machine) -> None:
        market.assign_task(
            machine.state, machine.params, self.task_id, self.operator, self.coprocessor, self.price
        )


class AssignTasks(Tx):
    """Apply a batch of ``(task_id, operator, coprocessor, price)`` assignments in order;
    return the refused ones (``{task_id: refusal}``); the others stand."""

    kind: Literal["assign_tasks"] = "assign_tasks"
    orders: Annotated[list[tuple[Int, str, str | None, Int | None]], CallConvert(_rows)]

    def rule(self, machine: Machine) -> dict[int, ProtocolError]:
        return market.assign_tasks(machine.state, machine.params, self.orders)

    def to_plain(self) -> dict[str, Any]:
        return {"kind": self.kind, "orders": self.orders}


class SettleBatch(Tx):
    """Settle a batch in one transaction: safety faults (slashed), liveness faults (unpaid),
    the verified tasks, then the audit faults among them; all or nothing. Return how many
    settled."""

    kind: Literal["settle_batch"] = "settle_batch"
    settled: Annotated[list[Int], CallConvert(_list)]
    safety: Annotated[list[Int], CallDefault([]), CallConvert(_list)]
    liveness: Annotated[list[Int], CallDefault([]), CallConvert(_list)]
    # Absent from frames without audit faults (and from logs written before it existed).
    audited: Annotated[list[Int], CallConvert(_list)] = []

    def rule(self, machine: Machine) -> int:
        return market.settle_batch(
            machine.state, machine.params, self.settled, self.safety, self.liveness, self.audited
        )

    def to_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = {
            "kind": self.kind,
            "settled": self.settled,
            "safety": self.safety,
            "liveness": self.liveness,
        }
        if self.audited:
            plain["audited"] = self.audited
        return plain


class SettleTasks(Tx):
    """Settle verified tasks exactly once (finished ids are skipped); return how many."""

    kind: Literal["settle_tasks"] = "settle_tasks"
    task_ids: Annotated[list[Int], CallConvert(_list)]

    def rule(self, machine: Machine) -> int:
        return market.settle_tasks(machine.state, self.task_ids)

    def to_plain(self) -> dict[str, Any]:
        return {"kind": self.kind, "task_ids": self.task_ids}


class RefundTask(Tx):
    """Refund an unassigned task's fee to its client (expiry)."""

    kind: Literal["refund_task"] = "refund_task"
    task_id: Int

    def rule(self, machine: Machine) -> None:
        market.refund_task(machine.state, self.task_id)


class FailCoprocessor(Tx):
    """Slash the coprocessor that failed a task; re-offer or refund it. Return the slash."""

    kind: Literal["fail_coprocessor"] = "fail_coprocessor"
    task_id: Int

    def rule(self, machine: Machine) -> int:
        return market.fail_coprocessor(machine.state, machine.params, self.task_id)


class MissCoprocessor(Tx):
    """Record a coprocessor's liveness fault (no result in time); re-offer or refund the task.

    Return the liveness penalty (``liveness_penalty``, default 0).
    """

    kind: Literal["miss_coprocessor"] = "miss_coprocessor"
    task_id: Int

    def rule(self, machine: Machine) -> int:
        return market.miss_coprocessor(machine.state, machine.params, self.task_id)


class ExpireTask(Tx):
    """Refund an assigned task past its deadline: its operator's liveness fault.

    Return the liveness penalty taken from the operator's own bond (default 0).
    """

    kind: Literal["expire_task"] = "expire_task"
    task_id: Int

    def rule(self, machine: Machine) -> int:
        return market.expire_task(machine.state, machine.params, self.task_id)


class FailOperator(Tx):
    """Slash an operator that missed a task's deadline and refund the client."""

    kind: Literal["fail_operator"] = "fail_operator"
    task_id: Int
    finder: str | None = None

    def rule(self, machine: Machine) -> int:
        return market.fail_operator(machine.state, machine.params, self.task_id, self.finder)


class AuditFault(Tx):
    """Slash an operator whose settled result an audit found wrong."""

    kind: Literal["audit_fault"] = "audit_fault"
    task_id: Int
    operator: str
    finder: str | None = None

    def rule(self, machine: Machine) -> int:
        return market.audit_fault(
            machine.state, machine.params, self.task_id, self.operator, self.finder
        )


# --- signed submissions ---------------------------------------------------------------


class Signed(Tx):
    """An outside transaction and the sender nonce it consumed (the signature is checked
    at the cluster's edge; logging the nonce keeps replays refused after a restart)."""

    kind: Literal["signed"] = "signed"
    public = False
    sender: str
    nonce: Int
    tx: dict[str, Any]
    _inner: Tx | None = PrivateAttr(default=None)

    @classmethod
    def wrap(cls, sender: str, nonce: int, transaction: Tx) -> Signed:
        """Return the frame applying ``transaction`` as ``sender`` with ``nonce`` (unvalidated)."""
        signed = cls._from_dict(
            {"kind": "signed", "sender": sender, "nonce": nonce, "tx": transaction.to_plain()}
        )
        _set_private(signed, {"_inner": transaction})
        return signed

    def rule(self, machine: Machine) -> Any:
        """Apply the inner transaction if it carries the sender's next nonce, then consume it.

        A used nonce is refused (a replay) and so is a gap; a refused
        transaction consumes nothing.
        """
        private = self.__pydantic_private__
        inner = private["_inner"] if private else None
        if inner is None:
            inner = parse_tx(self.tx)
        sender, nonce = self.sender, self.nonce
        nonces = machine.state.nonces
        expected = nonces.get(sender, 0)
        if nonce < expected:
            raise DuplicateTransaction(
                f"sender {sender}: nonce {nonce} already used, expected nonce {expected}"
            )
        if nonce > expected:
            raise NonceError(f"sender {sender}: nonce {nonce} is ahead, expected nonce {expected}")
        inner = inner.resolve(machine)
        result = inner.rule(machine)
        nonces[sender] = expected + 1
        if private:
            private["_inner"] = None  # the logged frame equals its decoded self
        return result


# --- the table and the codec --------------------------------------------------------------


def _union(kinds: tuple[type[Tx], ...]) -> Any:
    return Annotated[typing.Union[kinds], Field(discriminator="kind")]  # noqa: UP007


AnyTx = _union(tuple(TX_KINDS.values()))
"""The union of the kinds defined in this module, told apart by ``kind``."""

_adapter: tuple[tuple[type[Tx], ...], TypeAdapter[Any]] = (
    tuple(TX_KINDS.values()),
    TypeAdapter(AnyTx),
)


def _validator() -> TypeAdapter[Any]:
    global _adapter
    kinds = tuple(TX_KINDS.values())
    if kinds != _adapter[0]:  # a kind was defined (or removed) since
        _adapter = (kinds, TypeAdapter(_union(kinds)))
    return _adapter[1]


def encode_tx(tx: Tx) -> bytes:
    """Return the msgpack encoding of a transaction (fields in declaration order)."""
    return codec.pack(tx.to_plain())


def decode_tx(data: bytes) -> Tx:
    """Rebuild a transaction from :func:`encode_tx` bytes."""
    return parse_tx(codec.unpack(data))


def parse_tx(obj: Mapping[str, Any] | Any) -> Tx:
    """Validate a plain mapping as a transaction (the ``kind`` field picks the type)."""
    return _validator().validate_python(obj)
