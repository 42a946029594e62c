"""Per-record MACs: the ledger keys (current and retired) and the MAC of one record.

Every record written since per-record MACs exist carries ``mac`` = a 4-byte key id followed by
HMAC-SHA256(key, body). The body holds the previous record's digest, so the MAC is chained: a
writer without the key can neither append a record that verifies, nor rewrite one and
recompute the chain (the rewritten record's MAC, and every later one's, would have to change).

**Keys.** The current key is the ledger key file (``signing.load_or_create_key``). Rotating it
(``faceledger audit rotate-key``) keeps the old key beside it as
``<key file>.<key id>.retired`` (0600), so records and checkpoints signed before the rotation
still verify; the rotation itself is a record MAC'd with the *old* key that names the new key's
id, and every later record must use the new key (a leaked retired key cannot extend the
ledger). ``Keyring`` is the set a verifier knows, by key id.

The MAC is computed from precomputed inner/outer SHA-256 states (HMAC's definition), which is
about three times faster in Python than ``hmac.new`` per record.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceledger.audit.signing import KEY_BYTES, load_key

KEY_ID_BYTES = 4
MAC_BYTES = KEY_ID_BYTES + 32
_BLOCK = 64  # SHA-256's block size


def key_id(key: bytes) -> bytes:
    """The 4-byte public id of ``key`` (a domain-separated hash: reveals nothing of the key)."""
    return hashlib.sha256(b"faceledger ledger key id\x00" + key).digest()[:KEY_ID_BYTES]


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file ``path`` durably (replacing a leftover)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def stage_key(key_file: Path, new_key: bytes) -> Path:
    """Keep ``new_key`` beside ``key_file`` as a retired key (so verifiers know it before any
    record uses it) while a rotation to it is being recorded; returns the staged file."""
    staged = retired_key_file(key_file, key_id(new_key))
    _write_private(staged, new_key)
    return staged


def install_key(key_file: Path, new_key: bytes, *, old_key: bytes, staged: Path) -> None:
    """After a rotation is recorded: keep ``old_key`` as a retired key, and the key the file
    holds now as well (another ledger sharing this key folder may have rotated to it since
    this one loaded its key: its records must still verify), make ``new_key`` the key file
    (atomically) and remove the staged copy."""
    for key in (old_key, load_key(key_file)):
        if key is None or key == new_key:
            continue
        retired = retired_key_file(key_file, key_id(key))
        if not retired.exists():
            _write_private(retired, key)
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.rotating")
    _write_private(tmp, new_key)
    os.replace(tmp, key_file)
    staged.unlink(missing_ok=True)


def retired_key_file(key_file: Path, kid: bytes) -> Path:
    return key_file.with_name(f"{key_file.name}.{kid.hex()}.retired")


@dataclass(frozen=True)
class RecordSigner:
    """MACs records with one key (``mac(body)`` → key id + HMAC-SHA256)."""

    key: bytes
    kid: bytes = field(init=False)
    _inner: Any = field(init=False, repr=False)
    _outer: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a ledger key is {KEY_BYTES} bytes")
        padded = self.key.ljust(_BLOCK, b"\x00")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        object.__setattr__(self, "kid", key_id(self.key))
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_outer", outer)

    def hmac(self, message: bytes) -> bytes:
        """HMAC-SHA256(key, message), 32 bytes."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest

    def mac(self, body: bytes) -> bytes:
        """The ``mac`` column of a record with ``body``: key id + HMAC over key id and body."""
        return self.kid + self.hmac(self.kid + body)

    def record_states(self) -> tuple[Any, Any]:
        """HMAC's inner state already fed the key id, and its outer state: what a loop that
        checks many records' MACs copies per record instead of calling ``mac`` (the same
        HMAC-SHA256 over key id + body, without concatenating the body or a call per record).
        Copy both before updating them."""
        inner = self._inner.copy()
        inner.update(self.kid)
        return inner, self._outer.copy()


class Keyring:
    """Every key a verifier knows, by key id: the current one and the retired ones."""

    def __init__(self, keys: Iterable[bytes], current: bytes | None) -> None:
        self._signers = {s.kid: s for s in (RecordSigner(k) for k in keys)}
        self.current = RecordSigner(current) if current is not None else None
        if self.current is not None:
            self._signers[self.current.kid] = self.current

    @classmethod
    def load(cls, key_file: Path) -> Keyring:
        """The key in ``key_file`` (if any) and every ``<key file>.<id>.retired`` beside it."""
        current = load_key(key_file)
        retired = []
        for path in sorted(key_file.parent.glob(f"{key_file.name}.*.retired")):
            key = load_key(path)
            if key is not None:
                retired.append(key)
        return cls(retired, current)

    def __bool__(self) -> bool:
        return bool(self._signers)

    def signer(self, kid: bytes) -> RecordSigner | None:
        return self._signers.get(bytes(kid))

    def all(self) -> list[RecordSigner]:
        return list(self._signers.values())

    def ids(self) -> frozenset[bytes]:
        """The ids of every key known."""
        return frozenset(self._signers)
