"""Signed transactions: Ed25519 signatures and per-account nonces at the cluster edge.

Every state change that enters the cluster from outside is a :class:`SignedTx`:
the plain mapping of a protocol transaction, the sender's address (hex public
key), the sender's next nonce, and an Ed25519 signature over
:func:`signing_message`. :func:`apply_signed` refuses a forged signature, a
replayed or out-of-order nonce, a transaction acting for another account, or a
kind only the cluster issues, and in every refusal changes nothing: the
protocol consumes the nonce (``State.nonces``, logged with the transaction in
one ``Signed`` frame) only when it accepted the transaction, so a replay stays
refused after a coordinator restart.

``set_commission`` carries its own ``sender`` field; :func:`verify_and_unwrap`
fills it with the signed sender (a different value is refused), so the
protocol's own ownership check (``NotOwner``) sees the authenticated signer.
"""

from __future__ import annotations

from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol import codec
from protocol.errors import (
    BadSignature,
    NotOwner,
    ProtocolError,
)
from protocol.protocol import Protocol
from protocol.transactions import Tx, parse_tx

__all__ = [
    "ACTOR_FIELD",
    "DOMAIN",
    "MalformedTx",
    "SignedTx",
    "apply_signed",
    "sign_tx",
    "signing_message",
    "verify_and_unwrap",
]

DOMAIN = b"stakeray-tx-v1\x00"
"""Prefix of every signed message, so a stakeray signature means nothing elsewhere."""

ACTOR_FIELD: dict[str, str] = {
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
"""Kind -> the field naming the account that acts; it must equal the signer.

Kinds not listed (genesis, initialize_round, pay_fees_batch, slash_operator,
assign_task, settle_tasks, refund_task, fail_*, audit_fault) are issued by the
cluster itself and are refused from outside.
"""


class MalformedTx(ProtocolError):
    """A correctly signed mapping is not a valid protocol transaction."""


class SignedTx(BaseModel):
    """A protocol transaction signed by ``sender`` with the sender's next ``nonce``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sender: str
    nonce: int = Field(ge=0)
    tx: dict[str, Any]
    signature: str


def signing_message(sender: str, nonce: int, tx: dict[str, Any]) -> bytes:
    """Return the exact bytes that are signed: domain prefix + canonical msgpack.

    ``codec.encode`` sorts map keys and lowers tuples to arrays, so the bytes do
    not depend on dict order or on a JSON round trip of ``tx``.
    """
    return DOMAIN + codec.encode({"nonce": nonce, "sender": sender, "tx": tx})


def sign_tx(key: SigningKey, nonce: int, tx: Tx) -> SignedTx:
    """Sign ``tx`` with ``key`` as that key's account, using ``nonce``."""
    sender = bytes(key.verify_key).hex()
    plain = tx.to_plain()
    signature = key.sign(signing_message(sender, nonce, plain)).signature
    return SignedTx(sender=sender, nonce=nonce, tx=plain, signature=signature.hex())


def _verify_key(sender: str) -> VerifyKey:
    # Only the canonical lowercase form is an address, so "AB.." and "ab.." cannot
    # be two accounts for the same key.
    try:
        raw = bytes.fromhex(sender)
        if len(raw) != 32 or raw.hex() != sender:
            raise ValueError
        return VerifyKey(raw)
    except (ValueError, TypeError):
        raise BadSignature(
            f"sender {sender!r}: not an address (64 lowercase hex characters)"
        ) from None


def verify_and_unwrap(signed: SignedTx) -> Tx:
    """Check signature and actor; return the transaction to apply (the nonce is the
    protocol's to check, see :func:`apply_signed`)."""
    sender = signed.sender
    verify_key = _verify_key(sender)
    try:
        signature = bytes.fromhex(signed.signature)
        verify_key.verify(signing_message(sender, signed.nonce, signed.tx), signature)
    except (ValueError, TypeError, BadSignatureError):
        # ValueError/TypeError: not hex, or not 64 bytes; both are just a bad signature.
        raise BadSignature(f"sender {sender}: signature does not verify") from None

    kind = signed.tx.get("kind")
    field = ACTOR_FIELD.get(kind) if isinstance(kind, str) else None
    if field is None:
        raise NotOwner(f"sender {sender}: transaction kind {kind!r} is not accepted from outside")
    try:
        tx = parse_tx(signed.tx)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "tx"
        raise MalformedTx(f"sender {sender}: tx.{where}: {first['msg']}") from None
    actor = getattr(tx, field)
    if actor != sender:
        raise NotOwner(f"sender {sender}: cannot act as {field} {actor!r} in {kind}")
    if kind == "set_commission":
        # The protocol checks ownership against this field, so it must be the signer.
        claimed = tx.sender  # type: ignore[attr-defined]
        if claimed is not None and claimed != sender:
            raise NotOwner(f"sender {sender}: set_commission names another sender {claimed!r}")
        tx = tx.model_copy(update={"sender": sender})
    return tx


def apply_signed(protocol: Protocol, signed: SignedTx) -> Any:
    """Verify ``signed`` and apply it with its nonce; return what the protocol returns.

    A refusal (bad signature, wrong actor, used or future nonce, or the
    protocol's own refusal) leaves the state, nonces included, unchanged.
    """
    return protocol.apply_signed(signed.sender, signed.nonce, verify_and_unwrap(signed))
