"""Tests for the canonical msgpack codec."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path
from typing import NewType, Optional

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import (
    BIGINT_EXT,
    decode,
    encode,
    from_plain,
    state_hash,
    to_plain,
)

ROOT = Path(__file__).resolve().parents[1]

Amount = int
Address = str
LockId = NewType("LockId", int)


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


@dataclass(slots=True, frozen=True)
class Leaf:
    amount: Amount
    owner: Address
    lock: LockId
    flag: bool
    blob: bytes


@dataclass(slots=True)
class Node:
    leaf: Leaf
    maybe: Leaf | None = None
    also_maybe: Optional[Amount] = None  # noqa: UP045 - Optional must decode too
    by_round: dict[int, Leaf] = field(default_factory=dict)
    balances: dict[Address, Amount] = field(default_factory=dict)
    history: list[Amount] = field(default_factory=list)
    spans: tuple[int, ...] = ()
    pair: tuple[int, str] = (0, "")
    tags: set[str] = field(default_factory=set)
    ids: frozenset[LockId] = frozenset()
    nested: list[dict[int, list[Leaf | None]]] = field(default_factory=list)


@dataclass
class WithDerived:
    base: int
    derived: int = field(init=False, default=0)


@dataclass
class WithEnums:
    color: Color
    level: Level


# --- strategies --------------------------------------------------------------

_BOUNDARIES = [
    0,
    -1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    -(2**64),
    10**30,
    -(10**30),
    10**27 * 3**40,
    -(10**27 * 3**40),
]

big_ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.sampled_from(_BOUNDARIES),
)
texts = st.text(max_size=12)

leaves = st.builds(
    Leaf,
    amount=big_ints,
    owner=texts,
    lock=big_ints.map(LockId),
    flag=st.booleans(),
    blob=st.binary(max_size=16),
)

nodes = st.builds(
    Node,
    leaf=leaves,
    maybe=st.none() | leaves,
    also_maybe=st.none() | big_ints,
    by_round=st.dictionaries(big_ints, leaves, max_size=4),
    balances=st.dictionaries(texts, big_ints, max_size=6),
    history=st.lists(big_ints, max_size=6),
    spans=st.lists(big_ints, max_size=4).map(tuple),
    pair=st.tuples(big_ints, texts),
    tags=st.sets(texts, max_size=5),
    ids=st.frozensets(big_ints.map(LockId), max_size=5),
    nested=st.lists(
        st.dictionaries(big_ints, st.lists(st.none() | leaves, max_size=3), max_size=3),
        max_size=3,
    ),
)


# --- round trips -------------------------------------------------------------


@settings(max_examples=300)
@given(nodes)
def test_nested_dataclass_round_trip(node: Node) -> None:
    data = encode(node)
    assert decode(Node, data) == node
    # Decoding and re-encoding is a fixed point: the encoding is canonical.
    assert encode(decode(Node, data)) == data


@given(big_ints)
def test_int_round_trip(n: int) -> None:
    assert decode(int, encode(n)) == n


@given(st.dictionaries(big_ints, big_ints), st.randoms())
def test_dict_order_does_not_change_bytes(d: dict[int, int], rnd: random.Random) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    shuffled = dict(items)
    assert encode(shuffled) == encode(d)
    assert state_hash(shuffled) == state_hash(d)
    assert decode(dict[int, int], encode(d)) == d


@given(st.sets(texts), st.randoms())
def test_set_order_does_not_change_bytes(s: set[str], rnd: random.Random) -> None:
    items = list(s)
    rnd.shuffle(items)
    assert encode(set(items)) == encode(s)
    assert decode(set[str], encode(s)) == s


@given(st.sets(leaves, max_size=5), st.randoms())
def test_set_of_dataclasses_is_canonical(s: set[Leaf], rnd: random.Random) -> None:
    items = list(s)
    rnd.shuffle(items)
    assert encode(set(items)) == encode(s)
    assert decode(frozenset[Leaf], encode(s)) == s


def test_bytes_do_not_depend_on_hash_seed() -> None:
    # Set and dict iteration order of strings varies with PYTHONHASHSEED.
    script = (
        "from protocol.codec import state_hash;"
        "print(state_hash([{str(i) for i in range(50)}, {str(i): i for i in range(50)}]))"
    )
    hashes = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(hashes) == 1


def test_default_factory_fields_are_filled_from_data() -> None:
    leaf = Leaf(1, "a", LockId(2), True, b"x")
    node = Node(leaf=leaf, by_round={-3: leaf}, history=[10**30], tags={"t"})
    out = decode(Node, encode(node))
    assert out.by_round == {-3: leaf}
    assert out.history == [10**30]
    assert out.tags == {"t"}
    assert isinstance(out.ids, frozenset)
    assert isinstance(out.spans, tuple)


def test_init_false_fields_round_trip() -> None:
    obj = WithDerived(base=5)
    obj.derived = 10**40
    assert decode(WithDerived, encode(obj)) == obj


def test_enums_round_trip() -> None:
    obj = WithEnums(Color.BLUE, Level.HIGH)
    assert to_plain(obj) == ["blue", 2]
    out = decode(WithEnums, encode(obj))
    assert out == obj
    assert out.color is Color.BLUE


def test_fixed_and_variadic_tuples() -> None:
    assert decode(tuple[int, str], encode((10**40, "x"))) == (10**40, "x")
    assert decode(tuple[int, ...], encode((1, -(10**40), 3))) == (1, -(10**40), 3)
    with pytest.raises(ValueError):
        decode(tuple[int, str], encode((1, "x", 2)))


# --- wire format -------------------------------------------------------------


def test_dataclass_is_an_array_in_field_order() -> None:
    leaf = Leaf(7, "bob", LockId(3), False, b"\x00")
    assert to_plain(leaf) == [7, "bob", 3, False, b"\x00"]
    assert msgpack.unpackb(encode(leaf)) == [7, "bob", 3, False, b"\x00"]


@pytest.mark.parametrize("n", [2**64 - 1, -(2**63), 0, -1, 127, -32])
def test_64_bit_ints_are_native(n: int) -> None:
    assert encode(n) == msgpack.packb(n)


@pytest.mark.parametrize("n", [2**64, -(2**63) - 1, 10**30, -(10**30), -(2**71)])
def test_big_ints_use_ext_type(n: int) -> None:
    ext = msgpack.unpackb(encode(n))
    assert isinstance(ext, msgpack.ExtType)
    assert ext.code == BIGINT_EXT
    assert int.from_bytes(ext.data, "big", signed=True) == n
    # Minimal width: one byte less could not hold n.
    bits = 8 * (len(ext.data) - 1)
    assert not -(2 ** (bits - 1)) <= n < 2 ** (bits - 1)


def test_map_keys_are_sorted_on_the_wire() -> None:
    raw = msgpack.unpackb(encode({"b": 1, "a": 2, "c": 3}))
    assert list(raw) == ["a", "b", "c"]
    raw = msgpack.unpackb(encode({5: 0, -2: 0, 3: 0}), strict_map_key=False)
    assert list(raw) == [-2, 3, 5]


def test_str_and_bytes_stay_distinct() -> None:
    assert decode(list[bytes], encode([b"ab"])) == [b"ab"]
    assert decode(list[str], encode(["ab"])) == ["ab"]
    assert encode(b"ab") != encode("ab")


def test_state_hash() -> None:
    a = Node(leaf=Leaf(1, "a", LockId(0), False, b""))
    b = Node(leaf=Leaf(2, "a", LockId(0), False, b""))
    assert state_hash(a) == state_hash(Node(leaf=Leaf(1, "a", LockId(0), False, b"")))
    assert state_hash(a) != state_hash(b)
    assert len(state_hash(a)) == 64


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        ([1, {2: object()}], "object"),
        (bytearray(b"x"), "bytearray"),
    ],
)
def test_unsupported_types_raise(value: object, type_name: str) -> None:
    with pytest.raises(TypeError, match=type_name):
        encode(value)


def test_mixed_dict_keys_raise() -> None:
    with pytest.raises(TypeError, match="int or all str"):
        encode({1: 0, "a": 0})
    with pytest.raises(TypeError):
        encode({(1, 2): 0})


def test_decode_checks_types() -> None:
    with pytest.raises(TypeError):
        decode(int, encode(True))
    with pytest.raises(TypeError):
        decode(bool, encode(1))
    with pytest.raises(TypeError):
        decode(str, encode(b"x"))
    with pytest.raises(ValueError):
        from_plain(Leaf, [1, "a", 2, True])


def test_trailing_bytes_rejected() -> None:
    with pytest.raises(msgpack.ExtraData):
        decode(int, encode(1) + encode(2))


@dataclass
class Rep:
    f: float
    loads: dict[str, float]


def test_floats_round_trip_exactly() -> None:
    # Reputation and load are floats; the hash must not depend on the machine.
    value = Rep(f=0.1 + 0.2, loads={"b": -1e-300, "a": 2.5})
    assert decode(Rep, encode(value)) == value
    assert encode(value) == encode(Rep(f=0.30000000000000004, loads={"a": 2.5, "b": -1e-300}))
