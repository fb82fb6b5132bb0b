"""Transactions: one pydantic model per accepted state change, with a msgpack encoding.

The durable log stores exactly these; replaying them from genesis rebuilds
the state bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from . import codec

if TYPE_CHECKING:
    from .protocol import Protocol


class Tx(BaseModel):
    """Base of every transaction."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    method: ClassVar[str] = ""

    def args(self) -> dict[str, Any]:
        """Return the keyword arguments of the protocol method."""
        return {k: v for k, v in self.__dict__.items() if k != "kind"}

    def apply(self, protocol: Protocol) -> Any:
        """Apply to ``protocol`` through its public method (same checks as a live call)."""
        return getattr(protocol, self.method)(**self.args())

    def to_plain(self) -> dict[str, Any]:
        """Return the plain mapping that is encoded."""
        return self.model_dump()


class Genesis(Tx):
    kind: Literal["genesis"] = "genesis"
    params: dict[str, Any]
    balances: dict[str, int]

    def apply(self, protocol: Protocol) -> Any:
        raise TypeError("genesis starts a log; build the protocol with Protocol.from_genesis")


class InitializeRound(Tx):
    kind: Literal["initialize_round"] = "initialize_round"
    method: ClassVar[str] = "initialize_round"


class Transfer(Tx):
    kind: Literal["transfer"] = "transfer"
    method: ClassVar[str] = "transfer"
    sender: str
    to: str
    amount: int


class Bond(Tx):
    kind: Literal["bond"] = "bond"
    method: ClassVar[str] = "bond"
    delegator: str
    operator: str
    amount: int


class RegisterOperator(Tx):
    kind: Literal["register_operator"] = "register_operator"
    method: ClassVar[str] = "register_operator"
    operator: str
    reward_cut: int
    fee_share: int


class SetCommission(Tx):
    kind: Literal["set_commission"] = "set_commission"
    method: ClassVar[str] = "set_commission"
    operator: str
    reward_cut: int | None = None
    fee_share: int | None = None
    sender: str | None = None


class Unbond(Tx):
    kind: Literal["unbond"] = "unbond"
    method: ClassVar[str] = "unbond"
    delegator: str
    amount: int


class Rebond(Tx):
    kind: Literal["rebond"] = "rebond"
    method: ClassVar[str] = "rebond"
    delegator: str
    lock_id: int


class WithdrawStake(Tx):
    kind: Literal["withdraw_stake"] = "withdraw_stake"
    method: ClassVar[str] = "withdraw_stake"
    delegator: str
    lock_id: int


class WithdrawFees(Tx):
    kind: Literal["withdraw_fees"] = "withdraw_fees"
    method: ClassVar[str] = "withdraw_fees"
    delegator: str
    amount: int


class ClaimEarnings(Tx):
    kind: Literal["claim_earnings"] = "claim_earnings"
    method: ClassVar[str] = "claim_earnings"
    delegator: str


class Reward(Tx):
    kind: Literal["reward"] = "reward"
    method: ClassVar[str] = "reward"
    operator: str


class PayFees(Tx):
    kind: Literal["pay_fees"] = "pay_fees"
    method: ClassVar[str] = "pay_fees"
    payer: str
    operator: str
    amount: int


class PayFeesBatch(Tx):
    kind: Literal["pay_fees_batch"] = "pay_fees_batch"
    method: ClassVar[str] = "pay_fees_batch"
    payments: list[tuple[str, str, int]]

    def to_plain(self) -> dict[str, Any]:
        # Settlement batches are the hot path: rows go to msgpack as they are.
        return {"kind": self.kind, "payments": self.payments}


class SlashOperator(Tx):
    kind: Literal["slash_operator"] = "slash_operator"
    method: ClassVar[str] = "slash_operator"
    operator: str
    fraction_ppm: int
    finder: str | None = None


class Propose(Tx):
    kind: Literal["propose"] = "propose"
    method: ClassVar[str] = "propose"
    proposer: str
    changes: dict[str, Any] = Field(default_factory=dict)
    transfers: dict[str, int] = Field(default_factory=dict)


class CastVote(Tx):
    kind: Literal["vote"] = "vote"
    method: ClassVar[str] = "vote"
    voter: str
    proposal_id: int
    choice: str


class RegisterCoprocessor(Tx):
    kind: Literal["register_coprocessor"] = "register_coprocessor"
    method: ClassVar[str] = "register_coprocessor"
    coprocessor: str
    collateral: int
    capacity: int


class TopUpCollateral(Tx):
    kind: Literal["top_up_collateral"] = "top_up_collateral"
    method: ClassVar[str] = "top_up_collateral"
    coprocessor: str
    amount: int


class UnbondCollateral(Tx):
    kind: Literal["unbond_collateral"] = "unbond_collateral"
    method: ClassVar[str] = "unbond_collateral"
    coprocessor: str
    amount: int


class WithdrawCollateral(Tx):
    kind: Literal["withdraw_collateral"] = "withdraw_collateral"
    method: ClassVar[str] = "withdraw_collateral"
    coprocessor: str
    lock_id: int


class EscrowTasks(Tx):
    kind: Literal["escrow_tasks"] = "escrow_tasks"
    method: ClassVar[str] = "escrow_tasks"
    client: str
    tasks: list[tuple[int, int]]

    def to_plain(self) -> dict[str, Any]:
        return {"kind": self.kind, "client": self.client, "tasks": self.tasks}


class AssignTask(Tx):
    kind: Literal["assign_task"] = "assign_task"
    method: ClassVar[str] = "assign_task"
    task_id: int
    operator: str
    coprocessor: str | None = None
    price: int | None = None


class SettleTasks(Tx):
    kind: Literal["settle_tasks"] = "settle_tasks"
    method: ClassVar[str] = "settle_tasks"
    task_ids: list[int]

    def to_plain(self) -> dict[str, Any]:
        return {"kind": self.kind, "task_ids": self.task_ids}


class RefundTask(Tx):
    kind: Literal["refund_task"] = "refund_task"
    method: ClassVar[str] = "refund_task"
    task_id: int


class FailCoprocessor(Tx):
    kind: Literal["fail_coprocessor"] = "fail_coprocessor"
    method: ClassVar[str] = "fail_coprocessor"
    task_id: int


class FailOperator(Tx):
    kind: Literal["fail_operator"] = "fail_operator"
    method: ClassVar[str] = "fail_operator"
    task_id: int
    finder: str | None = None


class AuditFault(Tx):
    kind: Literal["audit_fault"] = "audit_fault"
    method: ClassVar[str] = "audit_fault"
    task_id: int
    operator: str
    finder: str | None = None


class Signed(Tx):
    """An outside transaction and the sender nonce it consumed (the signature is checked
    at the cluster's edge; logging the nonce keeps replays refused after a restart)."""

    kind: Literal["signed"] = "signed"
    sender: str
    nonce: int
    tx: dict[str, Any]

    def apply(self, protocol: Protocol) -> Any:
        return protocol.apply_signed(self.sender, self.nonce, parse_tx(self.tx))


AnyTx = Annotated[
    Genesis
    | InitializeRound
    | Transfer
    | Bond
    | RegisterOperator
    | SetCommission
    | Unbond
    | Rebond
    | WithdrawStake
    | WithdrawFees
    | ClaimEarnings
    | Reward
    | PayFees
    | PayFeesBatch
    | SlashOperator
    | Propose
    | CastVote
    | RegisterCoprocessor
    | TopUpCollateral
    | UnbondCollateral
    | WithdrawCollateral
    | EscrowTasks
    | AssignTask
    | SettleTasks
    | RefundTask
    | FailCoprocessor
    | FailOperator
    | AuditFault
    | Signed,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyTx)


def encode_tx(tx: Tx) -> bytes:
    """Return the msgpack encoding of a transaction (fields in declaration order)."""
    return codec.pack(tx.to_plain())


def decode_tx(data: bytes) -> Tx:
    """Rebuild a transaction from :func:`encode_tx` bytes."""
    return parse_tx(codec.unpack(data))


def parse_tx(obj: Any) -> Tx:
    """Validate a plain mapping as a transaction (the ``kind`` field picks the type)."""
    return _ADAPTER.validate_python(obj)


__all__ = ["AnyTx", "Tx", "decode_tx", "encode_tx", "parse_tx"]
