"""Signed transactions: Ed25519 signatures and per-account nonces at the cluster edge.

Every state change that enters the cluster from outside is a :class:`SignedTx`:
the plain mapping of a protocol transaction, the sender's address (hex public
key), the sender's next nonce, the chain id of the network it is meant for, and
an Ed25519 signature over :func:`signing_message`. :func:`apply_signed` refuses
a transaction signed for another network (``WrongChain``), a forged signature, a
replayed or out-of-order nonce, a transaction acting for another account, or a
kind only the cluster issues, and in every refusal changes nothing: the
protocol consumes the nonce (``State.nonces``, logged with the transaction in
one ``Signed`` frame) only when it accepted the transaction, so a replay stays
refused after a coordinator restart.

The chain id (``Ledger.chain_id``, the hash of the network's genesis
transaction) is part of the signed message, so a signature made for one
network does not verify on another whose genesis differs, even where the
sender's nonce is the same there.

Which kinds are accepted from outside, and which field must name the signer,
is the transaction table's (``Tx.signer`` in ``protocol.transactions``; a kind
without one is issued by the cluster only). A kind with a ``filled_by_signer``
field (``set_commission``'s ``sender``) gets it set to the signed sender by
:func:`verify_and_unwrap` (a different value is refused), so the protocol's
own ownership check (``NotOwner``) sees the authenticated signer.
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
    WrongChain,
)
from protocol.protocol import Protocol
from protocol.transactions import TX_KINDS, Tx, parse_tx

__all__ = [
    "DOMAIN",
    "MalformedTx",
    "SignedTx",
    "apply_signed",
    "sign_tx",
    "signing_message",
    "verify_and_unwrap",
]

DOMAIN = b"stakeray-tx-v2\x00"
"""Prefix of every signed message, so a stakeray signature means nothing elsewhere."""


class MalformedTx(ProtocolError):
    """A correctly signed mapping is not a valid protocol transaction."""


class SignedTx(BaseModel):
    """A protocol transaction signed by ``sender`` with the sender's next ``nonce``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    chain_id: str
    sender: str
    nonce: int = Field(ge=0)
    tx: dict[str, Any]
    signature: str


def signing_message(chain_id: str, sender: str, nonce: int, tx: dict[str, Any]) -> bytes:
    """Return the exact bytes that are signed: domain prefix + canonical msgpack.

    ``codec.encode`` sorts map keys and lowers tuples to arrays, so the bytes do
    not depend on dict order or on a JSON round trip of ``tx``. ``chain_id``
    binds the signature to one network (``Ledger.chain_id``).
    """
    return DOMAIN + codec.encode({"chain_id": chain_id, "nonce": nonce, "sender": sender, "tx": tx})


def sign_tx(key: SigningKey, nonce: int, tx: Tx, chain_id: str) -> SignedTx:
    """Sign ``tx`` with ``key`` as that key's account, using ``nonce``, for network ``chain_id``."""
    sender = bytes(key.verify_key).hex()
    plain = tx.to_plain()
    signature = key.sign(signing_message(chain_id, sender, nonce, plain)).signature
    return SignedTx(
        chain_id=chain_id, sender=sender, nonce=nonce, tx=plain, signature=signature.hex()
    )


def _short(chain_id: str) -> str:
    # Enough of an id to tell networks apart in a one-line message; anything that is
    # not hex (a client's mistake) is shown quoted, so the message stays one line.
    if chain_id and all(c in "0123456789abcdef" for c in chain_id[:64]):
        return chain_id[:12] + "..."
    return repr(chain_id[:16])


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


def verify_and_unwrap(signed: SignedTx, chain_id: str) -> Tx:
    """Check network, signature and actor; return the transaction to apply (the nonce
    is the protocol's to check, see :func:`apply_signed`).

    ``chain_id`` is this network's; a transaction signed for another is ``WrongChain``.
    """
    if signed.chain_id != chain_id:
        raise WrongChain(
            f"chain_id: signed for network {_short(signed.chain_id)}, this is {_short(chain_id)}"
        )
    sender = signed.sender
    verify_key = _verify_key(sender)
    try:
        signature = bytes.fromhex(signed.signature)
        # The message is built with this network's id, not the one the client claims.
        verify_key.verify(signing_message(chain_id, sender, signed.nonce, signed.tx), signature)
    except (ValueError, TypeError, BadSignatureError):
        # ValueError/TypeError: not hex, or not 64 bytes; both are just a bad signature.
        raise BadSignature(f"sender {sender}: signature does not verify") from None

    kind = signed.tx.get("kind")
    kind_class = TX_KINDS.get(kind) if isinstance(kind, str) else None
    field = kind_class.signer if kind_class is not None else None
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
    bound = tx.filled_by_signer
    if bound is not None:
        # The protocol checks ownership against this field, so it must be the signer.
        claimed = getattr(tx, bound)
        if claimed is not None and claimed != sender:
            raise NotOwner(f"sender {sender}: {kind} names another {bound} {claimed!r}")
        tx = tx.model_copy(update={bound: sender})
    return tx


def apply_signed(protocol: Protocol, signed: SignedTx, chain_id: str) -> Any:
    """Verify ``signed`` for network ``chain_id`` and apply it with its nonce; return
    what the protocol returns.

    A refusal (another network, bad signature, wrong actor, used or future nonce,
    or the protocol's own refusal) leaves the state, nonces included, unchanged.
    """
    transaction = verify_and_unwrap(signed, chain_id)
    return protocol.apply_signed(signed.sender, signed.nonce, transaction)
