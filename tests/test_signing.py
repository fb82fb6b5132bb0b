"""Signed transactions and the local keystore: forgeries, replays and gaps change nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from cluster.cli.keys import KeystoreError, create_key, list_keys, load_key
from cluster.engine.signing import (
    ACTOR_FIELD,
    MalformedTx,
    SignedTx,
    apply_signed,
    sign_tx,
    signing_message,
    verify_and_unwrap,
)
from protocol import TOKEN, Params, Protocol
from protocol import transactions as txs
from protocol.errors import (
    BadSignature,
    DuplicateTransaction,
    InsufficientBalance,
    NonceError,
    NotOwner,
)

FUNDS = 1_000 * TOKEN


def addr(key: SigningKey) -> str:
    return bytes(key.verify_key).hex()


@pytest.fixture
def keys() -> tuple[SigningKey, SigningKey]:
    # Fixed seeds keep failures reproducible.
    return SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)


@pytest.fixture
def net(keys: tuple[SigningKey, SigningKey]) -> Protocol:
    alice, bob = keys
    return Protocol(Params(), {addr(alice): FUNDS, addr(bob): FUNDS})


def refused_unchanged(
    p: Protocol, signed: SignedTx, error: type[Exception]
) -> pytest.ExceptionInfo[Exception]:
    """Assert ``signed`` is refused with ``error`` and the state (nonces included) did not move."""
    before, book = p.state_hash(), dict(p.state.nonces)
    with pytest.raises(error) as info:
        apply_signed(p, signed)
    assert p.state_hash() == before
    assert p.state.nonces == book
    assert "\n" not in str(info.value)
    return info


# --- keystore -----------------------------------------------------------------


def test_keystore_create_load_list(tmp_path: Path) -> None:
    a = create_key("alice", tmp_path)
    b = create_key("bob", tmp_path)
    assert len(a) == 64 and a == a.lower() and a != b
    assert list_keys(tmp_path) == {"alice": a, "bob": b}
    assert addr(load_key("alice", tmp_path)) == a
    assert addr(load_key(b, tmp_path)) == b  # by address too
    assert addr(load_key(b.upper(), tmp_path)) == b


def test_keystore_file_is_owner_only(tmp_path: Path) -> None:
    create_key("alice", tmp_path)
    mode = stat.S_IMODE((tmp_path / "alice.key").stat().st_mode)
    assert mode == 0o600


def test_keystore_refuses_overwrite(tmp_path: Path) -> None:
    a = create_key("alice", tmp_path)
    with pytest.raises(KeystoreError, match="'alice': already exists") as info:
        create_key("alice", tmp_path)
    assert "\n" not in str(info.value)
    assert list_keys(tmp_path) == {"alice": a}  # the original key survives


def test_keystore_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="'carol': not found"):
        load_key("carol", tmp_path)
    with pytest.raises(KeystoreError, match="no key with that address"):
        load_key("ab" * 32, tmp_path)
    for bad in ("../evil", ".hidden", "", "a/b", "ab" * 32):
        with pytest.raises(KeystoreError):
            create_key(bad, tmp_path)


def test_keystore_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAKERAY_KEYSTORE", str(tmp_path / "env-store"))
    a = create_key("alice")
    assert list_keys() == {"alice": a}
    assert list_keys(tmp_path / "env-store") == {"alice": a}
    assert list_keys(tmp_path / "elsewhere") == {}


# --- signing and applying -------------------------------------------------------


def test_signed_bond_and_transfer_apply(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, bob = keys
    a, b = addr(alice), addr(bob)
    bond = txs.Bond(delegator=a, operator=a, amount=100 * TOKEN)
    apply_signed(net, sign_tx(alice, 0, bond))
    transfer = txs.Transfer(sender=a, to=b, amount=5 * TOKEN)
    apply_signed(net, sign_tx(alice, 1, transfer))
    assert net.operator_stake(a) == 100 * TOKEN
    assert net.balance(a) == FUNDS - 105 * TOKEN
    assert net.balance(b) == FUNDS + 5 * TOKEN
    assert net.nonce(a) == 2 and net.nonce(b) == 0


def test_signed_tx_survives_a_json_round_trip(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, _ = keys
    a = addr(alice)
    signed = sign_tx(alice, 0, txs.Bond(delegator=a, operator=a, amount=TOKEN))
    wire = SignedTx.model_validate_json(signed.model_dump_json())
    apply_signed(net, wire)
    assert net.nonce(a) == 1


def test_forged_signature_is_refused(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, bob = keys
    a = addr(alice)
    signed = sign_tx(alice, 0, txs.Transfer(sender=a, to=addr(bob), amount=TOKEN))
    sig = bytearray(bytes.fromhex(signed.signature))
    sig[0] ^= 1
    flipped = signed.model_copy(update={"signature": sig.hex()})
    info = refused_unchanged(net, flipped, BadSignature)
    assert a in str(info.value)
    # Signed by bob but claiming to be alice.
    by_bob = sign_tx(bob, 0, txs.Transfer(sender=a, to=addr(bob), amount=TOKEN))
    refused_unchanged(net, by_bob.model_copy(update={"sender": a}), BadSignature)
    # A valid signature over different contents.
    tampered = signed.model_copy(update={"tx": {**signed.tx, "amount": 10 * TOKEN}})
    refused_unchanged(net, tampered, BadSignature)
    for junk in ("zz", "00" * 10):
        refused_unchanged(net, signed.model_copy(update={"signature": junk}), BadSignature)
    refused_unchanged(net, signed.model_copy(update={"sender": a.upper()}), BadSignature)
    assert net.nonce(a) == 0
    apply_signed(net, signed)  # the genuine one still works at nonce 0


def test_replay_is_refused(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, bob = keys
    a = addr(alice)
    signed = sign_tx(alice, 0, txs.Transfer(sender=a, to=addr(bob), amount=TOKEN))
    apply_signed(net, signed)
    info = refused_unchanged(net, signed, DuplicateTransaction)
    assert a in str(info.value) and "expected nonce 1" in str(info.value)


def test_future_nonce_is_refused(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, _ = keys
    a = addr(alice)
    signed = sign_tx(alice, 3, txs.Bond(delegator=a, operator=a, amount=TOKEN))
    info = refused_unchanged(net, signed, NonceError)
    assert a in str(info.value) and "expected nonce 0" in str(info.value)


def test_acting_for_another_account_is_refused(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, bob = keys
    a, b = addr(alice), addr(bob)
    # Alice signs correctly, but the bond spends bob's balance.
    signed = sign_tx(alice, 0, txs.Bond(delegator=b, operator=b, amount=TOKEN))
    info = refused_unchanged(net, signed, NotOwner)
    assert "delegator" in str(info.value)
    steal = sign_tx(alice, 0, txs.Transfer(sender=b, to=a, amount=TOKEN))
    refused_unchanged(net, steal, NotOwner)


def test_protocol_refusal_does_not_consume_the_nonce(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, _ = keys
    a = addr(alice)
    too_much = sign_tx(alice, 0, txs.Bond(delegator=a, operator=a, amount=FUNDS + 1))
    refused_unchanged(net, too_much, InsufficientBalance)
    assert net.nonce(a) == 0
    apply_signed(net, sign_tx(alice, 0, txs.Bond(delegator=a, operator=a, amount=TOKEN)))
    assert net.nonce(a) == 1 and net.operator_stake(a) == TOKEN


@pytest.mark.parametrize(
    "tx",
    [
        txs.InitializeRound(),
        txs.SettleTasks(task_ids=[1]),
        txs.PayFeesBatch(payments=[]),
        txs.RefundTask(task_id=0),
    ],
)
def test_cluster_only_kinds_are_refused(
    net: Protocol, keys: tuple[SigningKey, SigningKey], tx: txs.Tx
) -> None:
    alice, _ = keys
    info = refused_unchanged(net, sign_tx(alice, 0, tx), NotOwner)
    assert tx.kind in str(info.value)
    assert tx.kind not in ACTOR_FIELD


def test_malformed_tx_is_refused(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, _ = keys
    a = addr(alice)
    plain = {"kind": "bond", "delegator": a, "operator": a, "amount": 1, "extra": 1}
    sig = alice.sign(signing_message(a, 0, plain)).signature.hex()
    signed = SignedTx(sender=a, nonce=0, tx=plain, signature=sig)
    refused_unchanged(net, signed, MalformedTx)


def test_set_commission_uses_the_signed_sender(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, bob = keys
    a, b = addr(alice), addr(bob)
    apply_signed(net, sign_tx(alice, 0, txs.Bond(delegator=a, operator=a, amount=TOKEN)))
    register = txs.RegisterOperator(operator=a, reward_cut=100_000, fee_share=900_000)
    apply_signed(net, sign_tx(alice, 1, register))
    change = txs.SetCommission(operator=a, reward_cut=150_000)
    unwrapped = verify_and_unwrap(sign_tx(alice, 2, change))
    assert unwrapped.sender == a  # type: ignore[attr-defined]
    # Bob cannot change alice's commission, whatever sender field he writes.
    forged = txs.SetCommission(operator=a, reward_cut=150_000, sender=a)
    refused_unchanged(net, sign_tx(bob, 0, forged), NotOwner)
    # Alice cannot name another sender either.
    other = txs.SetCommission(operator=a, reward_cut=150_000, sender=b)
    refused_unchanged(net, sign_tx(alice, 2, other), NotOwner)
    apply_signed(net, sign_tx(alice, 2, change))
    assert net.nonce(a) == 3


# --- the signed message ----------------------------------------------------------

SENDER = "ab" * 32
OTHER = "cd" * 32
amounts = st.integers(min_value=1, max_value=2**80)


@given(amount=amounts, nonce=st.integers(min_value=0, max_value=2**63))
def test_signing_message_is_deterministic(amount: int, nonce: int) -> None:
    plain = txs.Bond(delegator=SENDER, operator=OTHER, amount=amount).to_plain()
    reordered = dict(reversed(list(plain.items())))
    first = signing_message(SENDER, nonce, plain)
    assert first == signing_message(SENDER, nonce, dict(plain))
    assert first == signing_message(SENDER, nonce, reordered)
    assert first.startswith(b"stakeray-tx-v1")


@given(a=amounts, b=amounts, nonce=st.integers(min_value=0, max_value=2**32))
def test_signing_message_changes_with_every_field(a: int, b: int, nonce: int) -> None:
    plain = txs.Bond(delegator=SENDER, operator=OTHER, amount=a).to_plain()
    base = signing_message(SENDER, nonce, plain)
    changed = [
        signing_message(OTHER, nonce, plain),
        signing_message(SENDER, nonce + 1, plain),
        signing_message(SENDER, nonce, {**plain, "operator": SENDER}),
        signing_message(SENDER, nonce, {**plain, "delegator": OTHER}),
        signing_message(SENDER, nonce, {**plain, "kind": "transfer"}),
    ]
    assert all(m != base for m in changed)
    other_amount = signing_message(SENDER, nonce, {**plain, "amount": b})
    assert (other_amount == base) == (a == b)


def test_sign_tx_round_trip(keys: tuple[SigningKey, SigningKey]) -> None:
    alice, _ = keys
    a = addr(alice)
    tx = txs.Transfer(sender=a, to=OTHER, amount=7)
    assert sign_tx(alice, 4, tx) == sign_tx(alice, 4, tx)  # Ed25519 is deterministic
    assert verify_and_unwrap(sign_tx(alice, 4, tx)) == tx


def test_nonces_survive_the_durable_log(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey]
) -> None:
    """A replay stays refused after recovery: the nonce is logged with its transaction."""
    from protocol.ledger import Ledger

    alice, bob = keys
    a = addr(alice)
    ledger = Ledger.create(tmp_path / "ledger", Params(), {a: FUNDS, addr(bob): FUNDS})
    signed = sign_tx(alice, 0, txs.Transfer(sender=a, to=addr(bob), amount=TOKEN))
    apply_signed(ledger.protocol, signed)
    ledger.close()
    reopened = Ledger.open(tmp_path / "ledger")
    assert reopened.protocol.nonce(a) == 1
    refused_unchanged(reopened.protocol, signed, DuplicateTransaction)
    assert Ledger.replay(tmp_path / "ledger").state_hash() == reopened.protocol.state_hash()
    reopened.close()
