"""Signed transactions and the local keystore: forgeries, replays and gaps change nothing."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey
from pydantic import ValidationError

from cluster.cli.keys import KeystoreError, create_key, list_keys, load_key
from cluster.engine.signing import (
    MalformedTx,
    SignedTx,
    apply_signed,
    sign_tx,
    signing_message,
    verify_and_unwrap,
)
from protocol import TOKEN, Params, Protocol, codec
from protocol import transactions as txs
from protocol.errors import (
    BadSignature,
    DuplicateTransaction,
    InsufficientBalance,
    NonceError,
    NotOwner,
    WrongChain,
)
from protocol.ledger import Ledger, genesis_chain_id

FUNDS = 1_000 * TOKEN
CHAIN = "c0" * 32
"""The chain id of the network the unit tests sign for (any string works for a bare protocol)."""
ELSEWHERE = "e1" * 32


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
    p: Protocol, signed: SignedTx, error: type[Exception], chain: str = CHAIN
) -> pytest.ExceptionInfo[Exception]:
    """Assert ``signed`` is refused with ``error`` and the state (nonces included) did not move."""
    before, book = p.state_hash(), dict(p.state.nonces)
    with pytest.raises(error) as info:
        apply_signed(p, signed, chain)
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
    apply_signed(net, sign_tx(alice, 0, bond, CHAIN), CHAIN)
    transfer = txs.Transfer(sender=a, to=b, amount=5 * TOKEN)
    apply_signed(net, sign_tx(alice, 1, transfer, CHAIN), CHAIN)
    assert net.operator_stake(a) == 100 * TOKEN
    assert net.balance(a) == FUNDS - 105 * TOKEN
    assert net.balance(b) == FUNDS + 5 * TOKEN
    assert net.nonce(a) == 2 and net.nonce(b) == 0


def test_signed_tx_survives_a_json_round_trip(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, _ = keys
    a = addr(alice)
    signed = sign_tx(alice, 0, txs.Bond(delegator=a, operator=a, amount=TOKEN), CHAIN)
    wire = SignedTx.model_validate_json(signed.model_dump_json())
    apply_signed(net, wire, CHAIN)
    assert net.nonce(a) == 1


def test_forged_signature_is_refused(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, bob = keys
    a = addr(alice)
    signed = sign_tx(alice, 0, txs.Transfer(sender=a, to=addr(bob), amount=TOKEN), CHAIN)
    sig = bytearray(bytes.fromhex(signed.signature))
    sig[0] ^= 1
    flipped = signed.model_copy(update={"signature": sig.hex()})
    info = refused_unchanged(net, flipped, BadSignature)
    assert a in str(info.value)
    # Signed by bob but claiming to be alice.
    by_bob = sign_tx(bob, 0, txs.Transfer(sender=a, to=addr(bob), amount=TOKEN), CHAIN)
    refused_unchanged(net, by_bob.model_copy(update={"sender": a}), BadSignature)
    # A valid signature over different contents.
    tampered = signed.model_copy(update={"tx": {**signed.tx, "amount": 10 * TOKEN}})
    refused_unchanged(net, tampered, BadSignature)
    for junk in ("zz", "00" * 10):
        refused_unchanged(net, signed.model_copy(update={"signature": junk}), BadSignature)
    refused_unchanged(net, signed.model_copy(update={"sender": a.upper()}), BadSignature)
    assert net.nonce(a) == 0
    apply_signed(net, signed, CHAIN)  # the genuine one still works at nonce 0


def test_replay_is_refused(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, bob = keys
    a = addr(alice)
    signed = sign_tx(alice, 0, txs.Transfer(sender=a, to=addr(bob), amount=TOKEN), CHAIN)
    apply_signed(net, signed, CHAIN)
    info = refused_unchanged(net, signed, DuplicateTransaction)
    assert a in str(info.value) and "expected nonce 1" in str(info.value)


def test_future_nonce_is_refused(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, _ = keys
    a = addr(alice)
    signed = sign_tx(alice, 3, txs.Bond(delegator=a, operator=a, amount=TOKEN), CHAIN)
    info = refused_unchanged(net, signed, NonceError)
    assert a in str(info.value) and "expected nonce 0" in str(info.value)


def test_acting_for_another_account_is_refused(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, bob = keys
    a, b = addr(alice), addr(bob)
    # Alice signs correctly, but the bond spends bob's balance.
    signed = sign_tx(alice, 0, txs.Bond(delegator=b, operator=b, amount=TOKEN), CHAIN)
    info = refused_unchanged(net, signed, NotOwner)
    assert "delegator" in str(info.value)
    steal = sign_tx(alice, 0, txs.Transfer(sender=b, to=a, amount=TOKEN), CHAIN)
    refused_unchanged(net, steal, NotOwner)


def test_protocol_refusal_does_not_consume_the_nonce(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, _ = keys
    a = addr(alice)
    too_much = sign_tx(alice, 0, txs.Bond(delegator=a, operator=a, amount=FUNDS + 1), CHAIN)
    refused_unchanged(net, too_much, InsufficientBalance)
    assert net.nonce(a) == 0
    bond = txs.Bond(delegator=a, operator=a, amount=TOKEN)
    apply_signed(net, sign_tx(alice, 0, bond, CHAIN), CHAIN)
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
    info = refused_unchanged(net, sign_tx(alice, 0, tx, CHAIN), NotOwner)
    assert tx.kind in str(info.value)
    assert txs.TX_KINDS[tx.kind].signer is None


def test_malformed_tx_is_refused(net: Protocol, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, _ = keys
    a = addr(alice)
    plain = {"kind": "bond", "delegator": a, "operator": a, "amount": 1, "extra": 1}
    sig = alice.sign(signing_message(CHAIN, a, 0, plain)).signature.hex()
    signed = SignedTx(chain_id=CHAIN, sender=a, nonce=0, tx=plain, signature=sig)
    refused_unchanged(net, signed, MalformedTx)


def test_set_commission_uses_the_signed_sender(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, bob = keys
    a, b = addr(alice), addr(bob)
    bond = txs.Bond(delegator=a, operator=a, amount=TOKEN)
    apply_signed(net, sign_tx(alice, 0, bond, CHAIN), CHAIN)
    register = txs.RegisterOperator(operator=a, reward_cut=100_000, fee_share=900_000)
    apply_signed(net, sign_tx(alice, 1, register, CHAIN), CHAIN)
    change = txs.SetCommission(operator=a, reward_cut=150_000)
    unwrapped = verify_and_unwrap(sign_tx(alice, 2, change, CHAIN), CHAIN)
    assert unwrapped.sender == a  # type: ignore[attr-defined]
    # Bob cannot change alice's commission, whatever sender field he writes.
    forged = txs.SetCommission(operator=a, reward_cut=150_000, sender=a)
    refused_unchanged(net, sign_tx(bob, 0, forged, CHAIN), NotOwner)
    # Alice cannot name another sender either.
    other = txs.SetCommission(operator=a, reward_cut=150_000, sender=b)
    refused_unchanged(net, sign_tx(alice, 2, other, CHAIN), NotOwner)
    apply_signed(net, sign_tx(alice, 2, change, CHAIN), CHAIN)
    assert net.nonce(a) == 3


# --- the signed message ----------------------------------------------------------

SENDER = "ab" * 32
OTHER = "cd" * 32
amounts = st.integers(min_value=1, max_value=2**80)


@given(amount=amounts, nonce=st.integers(min_value=0, max_value=2**63))
def test_signing_message_is_deterministic(amount: int, nonce: int) -> None:
    plain = txs.Bond(delegator=SENDER, operator=OTHER, amount=amount).to_plain()
    reordered = dict(reversed(list(plain.items())))
    first = signing_message(CHAIN, SENDER, nonce, plain)
    assert first == signing_message(CHAIN, SENDER, nonce, dict(plain))
    assert first == signing_message(CHAIN, SENDER, nonce, reordered)
    assert first.startswith(b"stakeray-tx-v2\x00")


@given(a=amounts, b=amounts, nonce=st.integers(min_value=0, max_value=2**32))
def test_signing_message_changes_with_every_field(a: int, b: int, nonce: int) -> None:
    plain = txs.Bond(delegator=SENDER, operator=OTHER, amount=a).to_plain()
    base = signing_message(CHAIN, SENDER, nonce, plain)
    changed = [
        signing_message(ELSEWHERE, SENDER, nonce, plain),
        signing_message(CHAIN, OTHER, nonce, plain),
        signing_message(CHAIN, SENDER, nonce + 1, plain),
        signing_message(CHAIN, SENDER, nonce, {**plain, "operator": SENDER}),
        signing_message(CHAIN, SENDER, nonce, {**plain, "delegator": OTHER}),
        signing_message(CHAIN, SENDER, nonce, {**plain, "kind": "transfer"}),
    ]
    assert all(m != base for m in changed)
    other_amount = signing_message(CHAIN, SENDER, nonce, {**plain, "amount": b})
    assert (other_amount == base) == (a == b)


def test_sign_tx_round_trip(keys: tuple[SigningKey, SigningKey]) -> None:
    alice, _ = keys
    a = addr(alice)
    tx = txs.Transfer(sender=a, to=OTHER, amount=7)
    assert sign_tx(alice, 4, tx, CHAIN) == sign_tx(alice, 4, tx, CHAIN)  # Ed25519 is deterministic
    assert verify_and_unwrap(sign_tx(alice, 4, tx, CHAIN), CHAIN) == tx


def test_nonces_survive_the_durable_log(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey]
) -> None:
    """A replay stays refused after recovery: the nonce is logged with its transaction."""
    alice, bob = keys
    a = addr(alice)
    ledger = Ledger.create(tmp_path / "ledger", Params(), {a: FUNDS, addr(bob): FUNDS})
    chain = ledger.chain_id
    signed = sign_tx(alice, 0, txs.Transfer(sender=a, to=addr(bob), amount=TOKEN), chain)
    apply_signed(ledger.protocol, signed, chain)
    ledger.close()
    reopened = Ledger.open(tmp_path / "ledger")
    assert reopened.chain_id == chain  # recovered from the genesis frame, not from the state
    assert reopened.protocol.nonce(a) == 1
    refused_unchanged(reopened.protocol, signed, DuplicateTransaction, chain)
    assert Ledger.replay(tmp_path / "ledger").state_hash() == reopened.protocol.state_hash()
    reopened.close()


# --- the network a signature is for ------------------------------------------------------


def test_tx_signed_for_another_chain_is_refused(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, _ = keys
    a = addr(alice)
    bond = txs.Bond(delegator=a, operator=a, amount=TOKEN)
    elsewhere = sign_tx(alice, 0, bond, ELSEWHERE)
    info = refused_unchanged(net, elsewhere, WrongChain)
    assert str(info.value) == (
        f"chain_id: signed for network {ELSEWHERE[:12]}..., this is {CHAIN[:12]}..."
    )
    # Relabelling it for this network does not help: the id is under the signature.
    relabelled = elsewhere.model_copy(update={"chain_id": CHAIN})
    refused_unchanged(net, relabelled, BadSignature)
    # A client's junk id is refused in one line too.
    junk = elsewhere.model_copy(update={"chain_id": "x\ny" * 40})
    assert "'x\\ny" in str(refused_unchanged(net, junk, WrongChain).value)
    # Nothing was consumed: the same nonce signed for this network is accepted.
    assert net.nonce(a) == 0
    apply_signed(net, sign_tx(alice, 0, bond, CHAIN), CHAIN)
    assert net.nonce(a) == 1 and net.operator_stake(a) == TOKEN


def test_chain_id_is_the_genesis(tmp_path: Path, keys: tuple[SigningKey, SigningKey]) -> None:
    alice, bob = keys
    a, b = addr(alice), addr(bob)
    first = Ledger.create(tmp_path / "first", Params(), {a: FUNDS, b: FUNDS}, fsync=False)
    # The same genesis (the balances given in another order): the same network id.
    same = Ledger.create(tmp_path / "same", Params(), {b: FUNDS, a: FUNDS}, fsync=False)
    assert first.chain_id == same.chain_id
    assert len(first.chain_id) == 64 and int(first.chain_id, 16) >= 0
    assert first.chain_id == genesis_chain_id(Protocol(Params(), {a: FUNDS, b: FUNDS}).genesis())
    # Any other balance or parameter: another network.
    others = [
        Ledger.create(tmp_path / "richer", Params(), {a: FUNDS + 1, b: FUNDS}, fsync=False),
        Ledger.create(tmp_path / "fewer", Params(), {a: FUNDS}, fsync=False),
        Ledger.create(
            tmp_path / "params", Params(unbonding_period=8), {a: FUNDS, b: FUNDS}, fsync=False
        ),
    ]
    ids = {first.chain_id, *(o.chain_id for o in others)}
    assert len(ids) == 1 + len(others)

    # A transaction signed for one is refused by another, which logs nothing.
    other = others[0]
    signed = sign_tx(alice, 0, txs.Transfer(sender=a, to=b, amount=TOKEN), first.chain_id)
    frames = len(other.events)
    refused_unchanged(other.protocol, signed, WrongChain, other.chain_id)
    assert len(other.events) == frames and other.protocol.nonce(a) == 0
    apply_signed(first.protocol, signed, first.chain_id)
    assert first.protocol.nonce(a) == 1

    # The id is the genesis frame's: rounds and transactions after it do not change it.
    first.protocol.initialize_round()
    first.close()
    reopened = Ledger.open(tmp_path / "first")
    assert reopened.chain_id == same.chain_id
    for ledger in (reopened, same, *others):
        ledger.close()


def test_v1_signature_without_chain_is_refused(
    net: Protocol, keys: tuple[SigningKey, SigningKey]
) -> None:
    alice, _ = keys
    a = addr(alice)
    plain = txs.Bond(delegator=a, operator=a, amount=TOKEN).to_plain()
    v1 = b"stakeray-tx-v1\x00" + codec.encode({"nonce": 0, "sender": a, "tx": plain})
    sig = alice.sign(v1).signature.hex()
    # A v1 client's message has no chain id: it is not a SignedTx any more...
    with pytest.raises(ValidationError, match="chain_id"):
        SignedTx.model_validate({"sender": a, "nonce": 0, "tx": plain, "signature": sig})
    # ...and its signature, labelled with this network's id, does not verify.
    labelled = SignedTx(chain_id=CHAIN, sender=a, nonce=0, tx=plain, signature=sig)
    refused_unchanged(net, labelled, BadSignature)
    assert net.nonce(a) == 0


def network_config(accounts: dict[str, int]) -> Any:
    """A small network's config (a ``RunConfig``) funding ``accounts`` (tokens) at genesis."""
    from cluster.config.schema import RunConfig

    return RunConfig.model_validate(
        {
            "seed": 2,
            "network": {
                "operators": [{"name": "op-a", "stake": 500}],
                "coprocessors": [{"name": "cop-a", "collateral": 500, "capacity": 8}],
                "accounts": accounts,
            },
        }
    )


def test_coordinator_binds_signatures_to_its_network(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey]
) -> None:
    """``describe``, ``status`` and ``chain_id`` name the network; another's tx changes nothing."""
    from cluster.engine.coordinator import Coordinator

    alice, _ = keys
    a = addr(alice)
    here = Coordinator(network_config({a: 100}), str(tmp_path / "here"), fsync=False)
    there = Coordinator(network_config({a: 101}), str(tmp_path / "there"), fsync=False)
    try:
        chain = here.chain_id()
        assert chain == here.describe()["chain_id"] == here.status()["chain_id"]
        assert chain == here.ledger.chain_id != there.chain_id()
        bond = txs.Bond(delegator=a, operator="op-a", amount=TOKEN)
        before, frames = there.status(), len(there.ledger.events)
        receipt = there.submit_signed(sign_tx(alice, 0, bond, chain))
        assert isinstance(receipt.refusal, WrongChain), receipt
        refusal = f"WrongChain: chain_id: signed for network {chain[:12]}..., this is "
        assert receipt.describe().startswith(refusal)
        assert there.status() == before and len(there.ledger.events) == frames
        assert there.nonce(a) == 0
        assert here.submit_signed(sign_tx(alice, 0, bond, chain)).accepted
        assert here.nonce(a) == 1
    finally:
        here.close()
        there.close()


def test_cli_tx_signs_for_the_network_it_talks_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``stakeray tx`` asks the network for its chain id (as for the nonce) and signs with it."""
    from cluster.cli import app
    from cluster.engine.coordinator import Coordinator

    keystore = tmp_path / "keys"
    alice = create_key("alice", keystore)
    coordinators = {
        name: Coordinator(network_config({alice: tokens}), str(tmp_path / name), fsync=False)
        for name, tokens in (("here", 100), ("there", 101))
    }
    calls: list[str] = []

    class Net:
        def __init__(self, coordinator: Coordinator) -> None:
            self.coordinator = coordinator

        def call(self, method: str, *args: Any) -> Any:
            calls.append(method)
            return getattr(self.coordinator, method)(*args)

    @contextmanager
    def connected(address: str | None, directory: str | None) -> Iterator[Net]:
        assert directory is not None
        yield Net(coordinators[Path(directory).name])

    monkeypatch.setattr(app, "connected", connected)
    try:
        for name in coordinators:
            where = ["--dir", str(tmp_path / name), "--keystore", str(keystore), "--key", "alice"]
            assert app.main(["tx", "bond", "operator=op-a", "amount=1", *where]) == 0
            assert "accepted bond" in capsys.readouterr().out
            assert coordinators[name].nonce(alice) == 1
        assert calls.count("chain_id") == 2 and calls.count("submit_signed") == 2
    finally:
        for coordinator in coordinators.values():
            coordinator.close()
