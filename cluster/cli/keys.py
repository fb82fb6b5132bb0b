"""Local Ed25519 keystore: one file per named key, readable by its owner only.

An account's address is the lowercase hex of its Ed25519 public key (SPEC). A key
file ``<name>.key`` holds JSON ``{"name", "address", "seed"}``; the seed is the
32-byte private seed in hex, so the file is created with mode 0600.

The keystore directory is, in order: the ``keystore`` argument, the
``STAKERAY_KEYSTORE`` environment variable, ``~/.stakeray/keys``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from nacl.signing import SigningKey

from protocol.errors import StakerayError

__all__ = [
    "DEFAULT_KEYSTORE",
    "KEYSTORE_ENV",
    "KeystoreError",
    "create_key",
    "keystore_dir",
    "list_keys",
    "load_key",
]

KEYSTORE_ENV = "STAKERAY_KEYSTORE"
DEFAULT_KEYSTORE = Path("~/.stakeray/keys")
_SUFFIX = ".key"
# Plain file names only: no path separators, no hidden files, no traversal.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# A name that looks like an address would make load_key ambiguous.
_ADDRESS = re.compile(r"[0-9a-fA-F]{64}")


class KeystoreError(StakerayError):
    """A keystore operation failed; the message is one line naming the key."""


def keystore_dir(keystore: str | os.PathLike[str] | None = None) -> Path:
    """Return the keystore directory (argument, then env, then the default)."""
    if keystore is None:
        keystore = os.environ.get(KEYSTORE_ENV) or DEFAULT_KEYSTORE
    return Path(keystore).expanduser()


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KeystoreError(
            f"key {name!r}: name must be 1-64 of letters, digits, '_', '.', '-' "
            "and not start with '.' or '-'"
        )
    if _ADDRESS.fullmatch(name):
        raise KeystoreError(f"key {name!r}: a name cannot look like an address")


def address_of(key: SigningKey) -> str:
    """Return the address (lowercase hex public key) of ``key``."""
    return bytes(key.verify_key).hex()


def create_key(name: str, keystore: str | os.PathLike[str] | None = None) -> str:
    """Create a new key called ``name``; return its address. Never overwrites."""
    _check_name(name)
    directory = keystore_dir(keystore)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SigningKey.generate()
    address = address_of(key)
    body = json.dumps({"name": name, "address": address, "seed": bytes(key).hex()})
    path = directory / f"{name}{_SUFFIX}"
    try:
        # O_EXCL makes "refuse to overwrite" atomic; 0600 from the first byte on.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"key {name!r}: already exists in {directory}") from None
    try:
        # The umask can only remove bits, but be explicit about the mode anyway.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return address


def _read(path: Path) -> tuple[str, SigningKey]:
    """Return (name, key) of a key file, checking it is consistent."""
    name = path.name.removesuffix(_SUFFIX)
    try:
        data = json.loads(path.read_text())
        key = SigningKey(bytes.fromhex(data["seed"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeystoreError(f"key {name!r}: unreadable key file {path} ({exc})") from None
    if data.get("address") != address_of(key):
        raise KeystoreError(f"key {name!r}: stored address does not match its seed in {path}")
    return name, key


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"*{_SUFFIX}") if p.is_file())


def load_key(name_or_address: str, keystore: str | os.PathLike[str] | None = None) -> SigningKey:
    """Return the signing key with that name, or else with that address."""
    directory = keystore_dir(keystore)
    if _ADDRESS.fullmatch(name_or_address or ""):
        wanted = name_or_address.lower()
        for path in _files(directory):
            _, key = _read(path)
            if address_of(key) == wanted:
                return key
        raise KeystoreError(f"key {name_or_address!r}: no key with that address in {directory}")
    _check_name(name_or_address)
    path = directory / f"{name_or_address}{_SUFFIX}"
    if not path.is_file():
        raise KeystoreError(f"key {name_or_address!r}: not found in {directory}")
    return _read(path)[1]


def list_keys(keystore: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Return ``{name: address}`` of every key in the keystore, sorted by name."""
    return {name: address_of(key) for name, key in map(_read, _files(keystore_dir(keystore)))}
