"""Canonical msgpack encoding of plain state.

``to_plain`` lowers dataclasses and containers to msgpack-ready values and
``encode`` packs them; the same logical state always gives the same bytes, so
``state_hash`` can be compared across processes and machines.

Encoding rules:

* dataclass instance -> array of its field values in declaration order
  (field names are not stored; the class is given again on decode);
* dict -> map with keys sorted (keys must be all ``int`` or all ``str``);
* list / tuple -> array; set / frozenset -> array, sorted;
* ``Enum`` -> its value;
* ``str``, ``bytes`` (as msgpack bin), ``bool``, ``None`` -> themselves;
* ``int`` in the signed/unsigned 64-bit range -> native msgpack int; larger
  ones -> ``ExtType(1, minimal signed big-endian two's-complement bytes)``.

Floats are rejected on purpose: state is exact integer arithmetic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from enum import Enum
from typing import Any, TypeVar

import msgpack

__all__ = ["BIGINT_EXT", "decode", "encode", "from_plain", "state_hash", "to_plain"]

BIGINT_EXT = 1
"""msgpack extension code carrying an int outside the 64-bit range."""

T = TypeVar("T")

_SORTABLE_SCALARS = (str, bytes)


def _pack_default(obj: object) -> msgpack.ExtType:
    # msgpack calls this only for what it cannot pack natively; after
    # to_plain that is exactly an int overflowing 64 bits.
    if isinstance(obj, int) and not isinstance(obj, bool):
        n = obj
        # ~n is the magnitude for negatives, giving the minimal signed width.
        length = ((n if n >= 0 else ~n).bit_length() + 8) // 8
        return msgpack.ExtType(BIGINT_EXT, n.to_bytes(length, "big", signed=True))
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> object:
    if code == BIGINT_EXT:
        return int.from_bytes(data, "big", signed=True)
    return msgpack.ExtType(code, data)


_field_names_cache: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _field_names_cache.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        _field_names_cache[cls] = names
    return names


def _sort_set(items: list[Any]) -> list[Any]:
    # Homogeneous ints or strings sort naturally. Anything else (mixed types,
    # tuples, dataclasses) sorts by its own encoding: a total order that never
    # depends on iteration (i.e. hash-seed) order.
    if all(type(x) is int for x in items) or any(
        all(isinstance(x, t) for x in items) for t in _SORTABLE_SCALARS
    ):
        return sorted(items)
    return sorted(items, key=_packb)


_PLAIN_TYPES = frozenset({int, str, bool, bytes, type(None)})
"""Types that are their own plain form (exactly these: a subclass such as an enum is not)."""


def to_plain(obj: Any) -> Any:
    """Lower ``obj`` to canonical msgpack-ready values (see module docstring)."""
    kind = type(obj)
    # The common cases first (a frame is mostly ints, strings and lists of them).
    if kind in _PLAIN_TYPES:
        return obj
    if kind is list or kind is tuple:
        plain = _PLAIN_TYPES
        return [x if type(x) in plain else to_plain(x) for x in obj]
    # Order matters: bool and IntEnum are ints, so test them first.
    if isinstance(obj, Enum):  # first: a StrEnum is a str, but its plain form is its value
        return to_plain(obj.value)
    if obj is None or isinstance(obj, bool | str | bytes):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        # Reputation and load are floats (never money): IEEE doubles encode the same everywhere.
        return float(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [to_plain(getattr(obj, name)) for name in _field_names(type(obj))]
    if isinstance(obj, dict):
        items = [(to_plain(k), to_plain(v)) for k, v in obj.items()]
        if all(type(k) is int for k, _ in items) or all(type(k) is str for k, _ in items):
            items.sort(key=lambda kv: kv[0])
            return dict(items)
        key_types = sorted({type(k).__name__ for k in obj})
        raise TypeError(f"dict keys must be all int or all str, got {', '.join(key_types)}")
    if isinstance(obj, list | tuple):
        return [to_plain(x) for x in obj]
    if isinstance(obj, set | frozenset):
        return _sort_set([to_plain(x) for x in obj])
    raise TypeError(f"cannot encode {type(obj).__name__}")


def pack(plain: Any) -> bytes:
    """Return msgpack bytes of an already plain value, in its own order (big ints allowed)."""
    return msgpack.packb(plain, use_bin_type=True, default=_pack_default)


_packb = pack


def encode(obj: Any) -> bytes:
    """Return the canonical msgpack bytes of ``obj``."""
    return _packb(to_plain(obj))


def unpack(data: bytes) -> Any:
    """Return the plain value encoded in ``data`` (big ints restored)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook)


_unpackb = unpack


_hints_cache: dict[type, tuple[tuple[str, Any, bool], ...]] = {}


def _dataclass_plan(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """Return ``(name, resolved type, init)`` per field, cached per class."""
    plan = _hints_cache.get(cls)
    if plan is None:
        # get_type_hints resolves string annotations (from __future__ import
        # annotations) against the class's module globals.
        hints = typing.get_type_hints(cls)
        plan = tuple((f.name, hints[f.name], f.init) for f in dataclasses.fields(cls))
        _hints_cache[cls] = plan
    return plan


def _mismatch(tp: Any, plain: Any) -> TypeError:
    name = getattr(tp, "__name__", repr(tp))
    return TypeError(f"expected {name}, got {type(plain).__name__}: {plain!r:.80}")


def _from_dataclass(cls: type[T], plain: Any) -> T:
    if not isinstance(plain, list):
        raise _mismatch(cls, plain)
    plan = _dataclass_plan(cls)
    if len(plain) != len(plan):
        raise ValueError(f"{cls.__name__}: expected {len(plan)} fields, got {len(plain)}")
    kwargs: dict[str, Any] = {}
    late: list[tuple[str, Any]] = []
    for (name, hint, init), value in zip(plan, plain, strict=True):
        if init:
            kwargs[name] = from_plain(hint, value)
        else:
            late.append((name, from_plain(hint, value)))
    obj = cls(**kwargs)
    # init=False fields are state too; object.__setattr__ also works on frozen classes.
    for name, value in late:
        object.__setattr__(obj, name, value)
    return obj


def from_plain(tp: Any, plain: Any) -> Any:
    """Rebuild a value of annotation ``tp`` from its plain (unpacked) form."""
    if tp is Any:
        return plain
    if isinstance(tp, typing.NewType):
        return from_plain(tp.__supertype__, plain)
    origin = typing.get_origin(tp)
    if origin is None:
        if tp is None or tp is type(None):
            if plain is not None:
                raise _mismatch(type(None), plain)
            return None
        if tp is bool:
            if type(plain) is not bool:
                raise _mismatch(tp, plain)
            return plain
        if tp is int:
            if not isinstance(plain, int) or isinstance(plain, bool):
                raise _mismatch(tp, plain)
            return plain
        if tp is float:
            if not isinstance(plain, float):
                raise _mismatch(tp, plain)
            return plain
        if tp is str or tp is bytes:
            if not isinstance(plain, tp):
                raise _mismatch(tp, plain)
            return plain
        if isinstance(tp, type):
            if dataclasses.is_dataclass(tp):
                return _from_dataclass(tp, plain)
            if issubclass(tp, Enum):
                return tp(plain)
            # Bare containers: no element type to rebuild, keep plain values.
            if tp in (list, tuple, set, frozenset, dict):
                return tp(plain)
        raise TypeError(f"cannot decode into {tp!r}")

    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        if plain is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return from_plain(options[0], plain)
        # A general union is only decodable when the plain value picks a member.
        for option in options:
            if option in (bool, int, str, bytes) and type(plain) is option:
                return plain
        raise TypeError(f"cannot decode {type(plain).__name__} into ambiguous {tp!r}")
    if origin is list:
        if not isinstance(plain, list):
            raise _mismatch(list, plain)
        (item,) = args
        return [from_plain(item, x) for x in plain]
    if origin is set or origin is frozenset:
        if not isinstance(plain, list):
            raise _mismatch(origin, plain)
        (item,) = args
        return origin(from_plain(item, x) for x in plain)
    if origin is tuple:
        if not isinstance(plain, list):
            raise _mismatch(tuple, plain)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], x) for x in plain)
        if len(plain) != len(args):
            raise ValueError(f"expected {len(args)} items for {tp!r}, got {len(plain)}")
        return tuple(from_plain(a, x) for a, x in zip(args, plain, strict=True))
    if origin is dict:
        if not isinstance(plain, dict):
            raise _mismatch(dict, plain)
        key_tp, value_tp = args
        return {from_plain(key_tp, k): from_plain(value_tp, v) for k, v in plain.items()}
    raise TypeError(f"cannot decode into {tp!r}")


@typing.overload
def decode(cls: type[T], data: bytes) -> T: ...
@typing.overload
def decode(cls: Any, data: bytes) -> Any: ...
def decode(cls: Any, data: bytes) -> Any:
    """Decode ``data`` (from ``encode``) into an instance of annotation ``cls``."""
    return from_plain(cls, _unpackb(data))


def state_hash(obj: Any) -> str:
    """Return the hex BLAKE2b-256 of ``encode(obj)``."""
    return hashlib.blake2b(encode(obj), digest_size=32).hexdigest()
