"""Opaque, signed pagination tokens.

A token is ``base64url(json) + "." + HMAC-SHA256`` (truncated), signed with a secret kept in
the data directory (created 0600 on first use). A forged, edited or foreign token is refused
with InvalidPaginationTokenException; tokens stay under Rekognition's 255-character limit.

The listing a token belongs to (its ``scope``, e.g. a CollectionId of up to 255 characters) is
kept as a 64-bit digest, so its length never counts. A ``position`` must be short (a number,
a FaceId, a name); one too long for a token makes :meth:`TokenSigner.encode` raise
``ValueError`` and the caller keeps a shorter position instead (``fits`` tells in advance).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from faceledger.domain.errors import InvalidPaginationTokenError


def load_or_create_secret(path: Path) -> bytes:
    """The installation's token secret: 32 random bytes in ``path`` (0600)."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        return key


MAX_TOKEN_CHARS = 255  # Rekognition's PaginationToken


def scope_digest(scope: str) -> str:
    """A short, fixed-length stand-in for a listing's scope (64 bits of SHA-256, hex)."""
    return hashlib.sha256(scope.encode("utf-8")).hexdigest()[:16]


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, body: bytes) -> str:
        digest = hmac.new(self._secret, body, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def encode(self, kind: str, scope: str, position: Any) -> str:
        body = (
            base64.urlsafe_b64encode(
                json.dumps([kind, scope_digest(scope), position], separators=(",", ":")).encode()
            )
            .decode()
            .rstrip("=")
        )
        token = f"{body}.{self._mac(body.encode())}"
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError("pagination position too long for a token")
        return token

    def fits(self, kind: str, scope: str, position: Any) -> bool:
        """Whether ``position`` is short enough for a token."""
        try:
            self.encode(kind, scope, position)
        except ValueError:
            return False
        return True

    def decode(self, token: str, kind: str, scope: str) -> Any:
        """The position stored in ``token``; raises if it was not issued here for this listing."""
        try:
            body, mac = token.split(".", 1)
            if not hmac.compare_digest(mac, self._mac(body.encode())):
                raise ValueError("bad signature")
            padded = body + "=" * (-len(body) % 4)
            got_kind, got_scope, position = json.loads(base64.urlsafe_b64decode(padded))
        except (ValueError, TypeError, AttributeError):
            raise InvalidPaginationTokenError("the pagination token is invalid") from None
        if got_kind != kind or got_scope != scope_digest(scope):
            raise InvalidPaginationTokenError("the pagination token belongs to a different listing")
        return position
