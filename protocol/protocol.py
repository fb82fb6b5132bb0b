"""The public protocol API: one object that owns the state and applies transactions.

Every mutator either raises a :class:`ProtocolError` subclass having changed
nothing, or applies the change and hands the accepted transaction to
``sink`` (the durable ledger attaches itself there).

Where the mutators come from: they are not written here. Each transaction
kind in ``protocol/transactions.py`` (``transactions.TX_KINDS``) whose class is
``public`` becomes the method named after its ``kind``: ``p.bond(...)`` is
``transactions.Bond``, ``p.vote(...)`` is ``transactions.CastVote``, and so on
for every kind but ``genesis`` and ``signed`` (``python -c "from
protocol.transactions import TX_KINDS; print(*TX_KINDS)"`` lists them).
:func:`compute_method` writes it: its parameters are the class's fields after
``kind``, in order, with the fields' defaults (or their
:class:`~protocol.transactions.CallDefault`), its docstring is the class's,
and its body builds the transaction unvalidated (after any
:class:`~protocol.transactions.CallConvert`) and returns
:meth:`Protocol.apply` of it. :meth:`Protocol.apply` is the one path of every
change: the kind's ``resolve``, then its ``rule`` (which checks the values and
calls the state functions), then the sink, then the rule's result. Kinds
defined after this module was imported (a plugin, a test) are served by
``__getattr__``.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Callable, Mapping
from typing import Any

from . import codec, earnings, staking
from . import transactions as tx
from .errors import InvalidAmount, UnknownOperator
from .issuance import get_total_supply
from .params import Params
from .reputation import compute_reputation
from .rounds import check_invariants
from .state import State
from .units import Address, Amount, Ppm, Round

Sink = Callable[[tx.Tx], None]


class Protocol:
    """Staking, delegation, issuance, fees, commission, slashing and governance."""

    def __init__(
        self, params: Params | None = None, balances: Mapping[Address, Amount] | None = None
    ) -> None:
        self.params = params if params is not None else Params()
        self.state = State()
        self.sink: Sink | None = None
        genesis = dict(balances or {})
        for address, amount in genesis.items():
            if not isinstance(address, str) or not address:
                raise InvalidAmount(
                    f"balances: address must be a non-empty string, got {address!r}"
                )
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                raise InvalidAmount(f"balances.{address}: must be an integer >= 0, got {amount!r}")
        self.state.balances = genesis
        supply = sum(genesis.values())
        self.state.totals.genesis_supply = supply
        self.state.totals.liquid = supply
        self.state.minter.inflation = self.params.inflation

    # --- construction and replay ------------------------------------------

    def genesis(self) -> tx.Genesis:
        """Return the genesis transaction this protocol was built from (round 0 only)."""
        return tx.Genesis(params=self.params.model_dump(), balances=dict(self.state.balances))

    @classmethod
    def from_genesis(cls, genesis: tx.Genesis) -> Protocol:
        """Build the protocol a genesis transaction describes."""
        return cls(Params.build(**genesis.params), genesis.balances)

    def apply(self, transaction: tx.Tx) -> Any:
        """Apply a transaction: every mutator, replay, the ledger and signed submissions.

        The transaction's ``resolve`` gives the form that is applied and
        logged, its ``rule`` checks and applies it (a refusal raises having
        changed nothing), and the accepted transaction goes to ``sink``.
        Return what the rule returns.
        """
        transaction.check_shape()
        transaction = transaction.resolve(self)
        result = transaction.rule(self)
        if self.sink is not None:
            self.sink(transaction)
        return result

    def nonce(self, address: Address) -> int:
        """Return the nonce the next signed transaction of ``address`` must carry."""
        return self.state.nonces.get(address, 0)

    def apply_signed(self, sender: Address, nonce: int, transaction: tx.Tx) -> Any:
        """Apply an outside transaction that carries ``sender``'s next nonce, then consume it.

        The signature is the cluster's to check; here a used nonce is refused
        (a replay) and so is a gap, and a refused transaction consumes nothing.
        One ``Signed`` frame logs the transaction and its nonce together.
        """
        return self.apply(tx.Signed.wrap(sender, nonce, transaction))

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the class lacks: a kind defined after this module.
        kind = tx.TX_KINDS.get(name)
        if kind is None or not kind.public:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        method = _late_methods.get(kind)
        if method is None:
            method = _late_methods[kind] = compute_method(kind)
        return method.__get__(self, type(self))

    # --- reads --------------------------------------------------------------

    @property
    def round(self) -> Round:
        return self.state.round

    @property
    def total_supply(self) -> Amount:
        return get_total_supply(self.state)

    @property
    def inflation(self) -> int:
        return self.state.minter.inflation

    @property
    def mintable(self) -> Amount:
        return self.state.minter.mintable

    @property
    def minted_this_round(self) -> Amount:
        return self.state.minter.minted_in_round

    @property
    def treasury(self) -> Amount:
        return self.state.totals.treasury

    @property
    def total_active_stake(self) -> Amount:
        return self.state.total_active_stake

    @property
    def active_set(self) -> dict[Address, Amount]:
        """Return this round's active operators and their frozen stakes."""
        return dict(self.state.active)

    def balance(self, address: Address) -> Amount:
        return self.state.balances.get(address, 0)

    def is_active(self, operator: Address) -> bool:
        return staking.is_active(self.state, operator)

    def is_registered(self, operator: Address) -> bool:
        return staking.is_registered(self.state, operator)

    def pending_stake(self, address: Address) -> Amount:
        return earnings.get_pending_stake(self.state, address)

    def pending_fees(self, address: Address) -> Amount:
        return earnings.get_pending_fees(self.state, address)

    def operator_stake(self, operator: Address) -> Amount:
        """Return everything bonded to ``operator`` (its stake for the next round)."""
        pool = self.state.pools.get(operator)
        return pool.delegated if pool is not None else 0

    def commission(self, operator: Address) -> tuple[Ppm, Ppm]:
        """Return the (reward_cut, fee_share) in force this round."""
        pool = self.state.pools.get(operator)
        if pool is None or not pool.registered:
            raise UnknownOperator(f"operator {operator!r}: not a registered operator")
        return pool.reward_cut, pool.fee_share

    def delegate_of(self, address: Address) -> Address | None:
        d = self.state.delegators.get(address)
        return d.delegate if d is not None else None

    def locks(self, address: Address) -> dict[int, tuple[Amount, Round]]:
        """Return ``{lock_id: (amount, withdraw_round)}``."""
        d = self.state.delegators.get(address)
        if d is None:
            return {}
        return {i: (lock.amount, lock.withdraw_round) for i, lock in d.locks.items()}

    def state_hash(self) -> str:
        """Return the canonical hash of the whole state, parameters included."""
        return codec.state_hash((self.params.model_dump(), self.state))

    def unclaimable(self) -> tuple[Amount, Amount]:
        """Return (stake, fees) held by pools that no account can claim: rounding dust only.

        Negative would mean claims exceed what pools hold (a bug); a whole
        reward share here would be an orphaned share (SPEC 4). O(accounts).
        """
        pending = [earnings.get_pending(self.state, a) for a in self.state.delegators]
        stake = sum(s for s, _ in pending)
        fees = sum(f for _, f in pending)
        t = self.state.totals
        return t.bonded + t.escrow - stake, t.fees - fees

    def check_invariants(self) -> None:
        """Check every SPEC 11 invariant in full (raises ``InvariantViolation``)."""
        check_invariants(self.state)

    def reputation(self, address: Address) -> float:
        """Return the GAS reputation of a coprocessor or operator (SPEC 8)."""
        c = self.state.coprocessors.get(address)
        if c is not None:
            return compute_reputation(c.reputation_f)
        pool = self.state.pools.get(address)
        if pool is not None and pool.registered:
            return compute_reputation(pool.reputation_f)
        raise UnknownOperator(f"address {address!r}: neither a coprocessor nor an operator")

    def proposal_status(self, proposal_id: int) -> str:
        return self.state.proposals[proposal_id].status


# --- the mutators, from the transaction table ----------------------------------------------


def compute_method(kind: type[tx.Tx]) -> Callable[..., Any]:
    """Return the ``Protocol`` method of a transaction kind.

    ``def <kind>(self, <fields after kind, with their defaults>)``: pass the
    arguments with a :class:`~protocol.transactions.CallConvert` through it,
    build the transaction unvalidated (the rule checks the values) and return
    ``self.apply`` of it. Generated as source, so positional and keyword
    calls, and the errors for wrong ones, are those of a written method.
    """
    name = kind.KIND
    if not name.isidentifier() or keyword.iskeyword(name):
        raise TypeError(f"{kind.__name__}: kind {name!r} cannot name a method")
    env: dict[str, Any] = {
        "_cls": kind,
        "_new": tx._new,
        "_set_dict": tx._set_dict,
        "_set_fields_set": tx._set_fields_set,
        "_set_extra": tx._set_extra,
        "_set_private": tx._set_private,
    }
    params = ["self"]
    converts = ""
    optional = False
    for field, default, convert in kind.call_parameters():
        if field == "self" or keyword.iskeyword(field):
            raise TypeError(f"{kind.__name__}.{field}: cannot be a parameter name")
        if default is tx.REQUIRED:
            if optional:
                raise TypeError(f"{kind.__name__}.{field}: a required field after an optional one")
            params.append(field)
        else:
            optional = True
            env[f"_default_{field}"] = default
            params.append(f"{field}=_default_{field}")
        if convert is not None:
            env[f"_convert_{field}"] = convert
            converts += f"    {field} = _convert_{field}({field})\n"
    values = "".join(f", {field!r}: {field}" for field in kind.fields)
    names = "".join(f", {field!r}" for field in kind.fields)
    source = (
        f"def {name}({', '.join(params)}):\n"
        f"{converts}"
        f"    _tx = _new(_cls)\n"  # as Tx._from_dict, inline: this is every call's path
        f"    _set_dict(_tx, {{'kind': {name!r}{values}}})\n"
        f"    _set_fields_set(_tx, {{'kind'{names}}})\n"
        f"    _set_extra(_tx, None)\n"
        f"    _set_private(_tx, None)\n"
        f"    return self.apply(_tx)\n"
    )
    exec(compile(source, f"<Protocol.{name}: {kind.__module__}.{kind.__qualname__}>", "exec"), env)
    method = env[name]
    method.__code__ = method.__code__.replace(co_qualname=f"Protocol.{name}")
    method.__qualname__ = f"Protocol.{name}"
    method.__module__ = __name__
    method.__doc__ = inspect.getdoc(kind)
    method.__annotations__ = {f: kind.model_fields[f].annotation for f in kind.fields}
    method.__annotations__["return"] = kind.rule.__annotations__.get("return", "Any")
    return method


_late_methods: dict[type[tx.Tx], Callable[..., Any]] = {}

for _kind in tx.TX_KINDS.values():
    if _kind.public:
        if _kind.KIND in vars(Protocol):
            raise TypeError(f"transaction kind {_kind.KIND!r}: Protocol already has that name")
        setattr(Protocol, _kind.KIND, compute_method(_kind))
del _kind
