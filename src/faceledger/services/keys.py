"""Access keys: create, list and revoke them, and authenticate a caller by one.

A key is ``FLAK`` + 16 base-32 characters (shaped like AWS's ``AKIA…``) with a 40-character
secret; it belongs to a principal and carries roles from ``faceledger.domain.principals``.
The secret is returned once, by ``create``; afterwards only the verifiers see it
(``credentials`` for SigV4, ``authenticate_bearer`` for the native API). Secrets are stored
in the data directory's database (see ``faceledger.store.keys``).
"""

from __future__ import annotations

import base64
import builtins
import hmac
import re
import secrets
import time
from collections.abc import Sequence

from faceledger.config import Settings
from faceledger.domain.errors import (
    IncompleteSignatureError,
    InvalidParameterError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    ResourceNotFoundError,
    UnrecognizedClientError,
)
from faceledger.domain.principals import ROLES, Principal
from faceledger.store.keys import AccessKey, KeyStore

__all__ = ["AccessKey", "KeyService"]

KEY_ID_PREFIX = "FLAK"
_PRINCIPAL = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")
_MAX_DESCRIPTION_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# AWS's wording for an access key id it does not know (or that was deactivated).
UNRECOGNIZED_KEY_MESSAGE = "The security token included in the request is invalid."
FIRST_ADMIN_DESCRIPTION = "created at first start"
FIRST_KEY_ROLES: tuple[str, ...] = ("admin", "enrol", "search")


def new_key_id() -> str:
    """``FLAK`` + 16 characters of A–Z2–7: 80 random bits, base-32 encoded without padding."""
    return KEY_ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode("ascii")


def new_secret() -> str:
    """40 characters of the URL-safe base-64 alphabet (240 random bits)."""
    return secrets.token_urlsafe(30)


def _check_principal(principal: str) -> str:
    if not _PRINCIPAL.fullmatch(principal):
        raise InvalidParameterError(
            f"principal {principal!r} is not valid: use 1–64 characters of A–Z a–z 0–9 _ . @ : -"
        )
    return principal


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    """The roles, each once and in the given order; every one must be a known role."""
    if isinstance(roles, str):  # a bare string is a sequence of letters, never meant
        roles = [roles]
    unique = tuple(dict.fromkeys(roles))
    if not unique:
        raise InvalidParameterError(f"give at least one role (one of: {', '.join(ROLES)})")
    unknown = [r for r in unique if r not in ROLES]
    if unknown:
        raise InvalidParameterError(
            f"unknown role(s) {', '.join(repr(r) for r in unknown)}: roles are {', '.join(ROLES)}"
        )
    return unique


def _check_description(description: str) -> str:
    if len(description) > _MAX_DESCRIPTION_CHARS:
        raise InvalidParameterError(
            f"description is {len(description)} characters; at most {_MAX_DESCRIPTION_CHARS}"
        )
    if _CONTROL.search(description):
        raise InvalidParameterError("description must not contain control characters")
    return description


class KeyService:
    """The access-key verbs, over the ``access_keys`` table of ``settings.data_dir``."""

    def __init__(self, settings: Settings) -> None:
        self.store = KeyStore(settings.data_dir / "faceledger.sqlite3")

    def close(self) -> None:
        self.store.close()

    # -- management -----------------------------------------------------------------------
    def _new_key(self, principal: str, roles: tuple[str, ...], description: str) -> AccessKey:
        return AccessKey(new_key_id(), principal, roles, time.time(), None, description)

    def create(
        self, principal: str, roles: Sequence[str], description: str = ""
    ) -> tuple[AccessKey, str]:
        """A new active key for ``principal`` with ``roles``, and its secret (shown once)."""
        name = _check_principal(principal)
        checked_roles = _check_roles(roles)
        text = _check_description(description)
        secret = new_secret()
        for _ in range(5):  # 80 random bits: a collision is astronomically unlikely
            key = self._new_key(name, checked_roles, text)
            if self.store.add(key, secret):
                return key, secret
        raise RuntimeError("could not allocate an unused access key id")

    def list(self, include_revoked: bool = False) -> builtins.list[AccessKey]:
        """Keys in creation order, without secrets; revoked keys only if asked for."""
        return self.store.list(include_revoked=include_revoked)

    def revoke(self, key_id: str) -> AccessKey:
        """Revoke a key now (revoking a revoked key keeps its first revocation time)."""
        key = self.store.revoke(key_id, time.time())
        if key is None:
            raise ResourceNotFoundError(f"access key {key_id!r} does not exist")
        return key

    def ensure_admin_key(self) -> tuple[AccessKey, str] | None:
        """Create the first admin key when no active key has role ``admin``.

        It also holds ``enrol`` and ``search`` so that a fresh installation works end to end
        with one key; production deployments give people keys with only the roles they need.

        Returns the new key and its secret (for the operator to see once), or None when an
        active admin key already exists. Safe against two processes starting at once.
        """
        if self.store.has_active_role("admin"):
            return None
        secret = new_secret()
        key = self._new_key("admin", FIRST_KEY_ROLES, FIRST_ADMIN_DESCRIPTION)
        if self.store.add_unless_role_active("admin", key, secret):
            return key, secret
        return None

    # -- authentication -------------------------------------------------------------------
    def credentials(self, key_id: str) -> tuple[Principal, str]:
        """The principal and secret of an active key (for SigV4 verification).

        Unknown and revoked keys are refused alike, with AWS's wording.
        """
        found = self.store.get(key_id)
        if found is None or not found[0].active:
            raise UnrecognizedClientError(UNRECOGNIZED_KEY_MESSAGE)
        key, secret = found
        return Principal(key.principal, key.roles, key.key_id), secret

    def authenticate_bearer(self, authorization: str | None) -> Principal:
        """The principal of a native-API ``Authorization: Bearer <key_id>:<secret>`` header."""
        if authorization is None or not authorization.strip():
            raise MissingAuthenticationTokenError("Missing Authentication Token")
        scheme, _, token = authorization.strip().partition(" ")
        key_id, colon, secret = token.strip().partition(":")
        if scheme.lower() != "bearer" or not colon or not key_id or not secret:
            raise IncompleteSignatureError(
                "The Authorization header must be 'Bearer <access key id>:<secret access key>'."
            )
        principal, expected = self.credentials(key_id)
        if not hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8")):
            raise InvalidSignatureError(
                "The secret access key does not match the access key id. Check your secret."
            )
        return principal
