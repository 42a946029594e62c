"""Access keys: create, list and revoke them, and authenticate a caller by one.

A key is ``FLAK`` + 16 base-32 characters (shaped like AWS's ``AKIA…``) with a 40-character
secret; it belongs to a principal and carries roles from ``faceledger.domain.principals``.
The secret is returned once, by ``create``; afterwards only the verifiers see it
(``credentials`` for SigV4, ``authenticate_bearer`` for the native API). Secrets are stored
in the data directory's database (see ``faceledger.store.key_tables``).

**Rate limits.** Every authenticated request takes a token from its key's bucket
(:class:`RateLimiter`): ``rate_per_second`` tokens a second refill a bucket of ``burst`` tokens,
so a key may send ``burst`` requests at once and ``rate_per_second`` a second on average. An
empty bucket answers ``ThrottlingException``, which boto3 and the AWS CLI retry with backoff. A
key's own limits (set at creation) win over ``Settings.default_rate_per_second`` /
``default_burst``; a rate of 0 means unlimited. Buckets live in memory, per server process
(several workers each allow the full rate; a restart refills them).

The bucket is consulted once per request, where the key is looked up: in ``credentials``
(SigV4; the signature is verified afterwards by the caller, so a request with a bad signature
still spends a token of the key it names) and in ``authenticate_bearer`` (after the secret has
been checked, so only holders of the secret spend tokens).
"""

from __future__ import annotations

import base64
import builtins
import hmac
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from faceledger.config import Settings
from faceledger.domain.errors import (
    IncompleteSignatureError,
    InvalidParameterError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    ResourceNotFoundError,
    ThrottlingError,
    UnrecognizedClientError,
)
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.replays import ReplayGuard
from faceledger.store.base import KeyStore
from faceledger.store.factory import open_key_store
from faceledger.store.records import AccessKey

__all__ = ["AccessKey", "KeyService", "RateLimiter"]

KEY_ID_PREFIX = "FLAK"
_PRINCIPAL = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")
_MAX_DESCRIPTION_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# AWS's wording for an access key id it does not know (or that was deactivated).
UNRECOGNIZED_KEY_MESSAGE = "The security token included in the request is invalid."
FIRST_ADMIN_DESCRIPTION = "created at first start"
FIRST_KEY_ROLES: tuple[str, ...] = ("admin", "enrol", "search")
#: Upper bounds for a key's own limits (beyond them a limit means nothing).
MAX_RATE_PER_SECOND = 1_000_000.0
MAX_BURST = 1_000_000


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


def _check_rate(rate_per_second: float | None) -> float | None:
    if rate_per_second is None:
        return None
    if (
        isinstance(rate_per_second, bool)
        or not isinstance(rate_per_second, int | float)
        or not math.isfinite(rate_per_second)
        or not 0 <= rate_per_second <= MAX_RATE_PER_SECOND
    ):
        raise InvalidParameterError(
            f"rate_per_second must be a number from 0 (unlimited) to {MAX_RATE_PER_SECOND:g}, "
            f"got {rate_per_second!r}"
        )
    return float(rate_per_second)


def _check_burst(burst: int | None) -> int | None:
    if burst is None:
        return None
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
        raise InvalidParameterError(
            f"burst must be an integer from 1 to {MAX_BURST}, got {burst!r}"
        )
    return burst


@dataclass(slots=True)
class _Bucket:
    """One key's token bucket: ``tokens`` left at clock time ``at_s``."""

    rate_per_second: float
    burst: int
    tokens: float
    at_s: float

    def take(self, now_s: float) -> bool:
        """Refill for the time elapsed since the last request, then take one token if any."""
        elapsed_s = max(0.0, now_s - self.at_s)
        self.tokens = min(float(self.burst), self.tokens + elapsed_s * self.rate_per_second)
        self.at_s = now_s
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class RateLimiter:
    """Token buckets per access key id, in memory; safe to share by threads.

    ``clock`` returns monotonic seconds (``time.monotonic``; tests pass a fake one). A bucket
    starts full and is replaced, full, when the key's limits change.
    """

    def __init__(
        self,
        default_rate_per_second: float,
        default_burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_rate_per_second = float(default_rate_per_second)
        self.default_burst = int(default_burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def limits(self, key: AccessKey) -> tuple[float, int]:
        """The key's effective (requests per second, burst): its own, else the defaults."""
        rate = self.default_rate_per_second if key.rate_per_second is None else key.rate_per_second
        burst = self.default_burst if key.burst is None else key.burst
        return rate, burst

    def admit(self, key: AccessKey) -> None:
        """Spend one of the key's tokens; ThrottlingError when its bucket is empty."""
        rate, burst = self.limits(key)
        if rate <= 0:
            return  # unlimited
        with self._lock:
            now_s = self._clock()
            bucket = self._buckets.get(key.key_id)
            if bucket is None or (bucket.rate_per_second, bucket.burst) != (rate, burst):
                bucket = _Bucket(rate, burst, float(burst), now_s)
                self._buckets[key.key_id] = bucket
            allowed = bucket.take(now_s)
        if not allowed:
            raise ThrottlingError(
                f"Rate exceeded for key {key.key_id}: at most {rate:g} requests per second "
                f"(burst {burst})"
            )


class KeyService:
    """The access-key verbs, over the ``access_keys`` table of ``settings.data_dir``."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        store: KeyStore | None = None,
    ) -> None:
        """``store``: the process's key store (``services/container.py``); without one the
        service opens (and closes) its own from ``settings`` (SQLite in data_dir, or
        PostgreSQL)."""
        self._owns_store = store is None
        self.store: KeyStore = store if store is not None else open_key_store(settings)
        self.limiter = RateLimiter(
            settings.default_rate_per_second, settings.default_burst, clock=clock
        )
        self.replays = ReplayGuard(self.store, max_skew_seconds=settings.max_clock_skew_seconds)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    # -- management -----------------------------------------------------------------------
    def _new_key(
        self,
        principal: str,
        roles: tuple[str, ...],
        description: str,
        rate_per_second: float | None = None,
        burst: int | None = None,
    ) -> AccessKey:
        return AccessKey(
            new_key_id(), principal, roles, time.time(), None, description, rate_per_second, burst
        )

    def create(
        self,
        principal: str,
        roles: Sequence[str],
        description: str = "",
        *,
        rate_per_second: float | None = None,
        burst: int | None = None,
    ) -> tuple[AccessKey, str]:
        """A new active key for ``principal`` with ``roles``, and its secret (shown once).

        ``rate_per_second`` (0 = unlimited) and ``burst`` set the key's own rate limit; None
        leaves it to the installation's defaults (``Settings.default_rate_per_second``,
        ``default_burst``), read at each request.
        """
        name = _check_principal(principal)
        checked_roles = _check_roles(roles)
        text = _check_description(description)
        rate, size = _check_rate(rate_per_second), _check_burst(burst)
        secret = new_secret()
        for _ in range(5):  # 80 random bits: a collision is astronomically unlikely
            key = self._new_key(name, checked_roles, text, rate, size)
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
    def _active_key(self, key_id: str) -> tuple[AccessKey, str]:
        """The active key and its secret; unknown and revoked keys are refused alike, with
        AWS's wording."""
        found = self.store.get(key_id)
        if found is None or not found[0].active:
            raise UnrecognizedClientError(UNRECOGNIZED_KEY_MESSAGE)
        return found

    def credentials(self, key_id: str) -> tuple[Principal, str]:
        """The principal and secret of an active key (for SigV4 verification).

        Unknown and revoked keys are refused alike, with AWS's wording. Spends no token: the
        caller calls :meth:`admit` once the signature has been verified, so that requests with
        a wrong signature cannot throttle someone else's key.
        """
        key, secret = self._active_key(key_id)
        return Principal(key.principal, key.roles, key.key_id), secret

    def admit(self, key_id: str) -> None:
        """Spend one of a verified key's tokens (ThrottlingError when over its rate)."""
        key, _ = self._active_key(key_id)
        self.limiter.admit(key)

    def admit_signature(self, key: str, signed_at: datetime) -> None:
        """Accept a verified request's replay key once across every server process
        (``services/replays.py``); called before :meth:`admit`."""
        self.replays.admit(key, signed_at)

    def purge_signatures(self) -> int:
        """Forget the replay keys of expired signatures (the maintenance pass)."""
        return self.replays.purge()

    def preference(self, principal: str, name: str) -> str | None:
        """A principal's stored preference (``principal_preferences``), or None."""
        return self.store.preference(principal, name)

    def set_preference(self, principal: str, name: str, value: str) -> None:
        """Store a principal's preference (shared by every process of the installation)."""
        self.store.set_preference(principal, name, value, time.time())

    def authenticate_bearer(self, authorization: str | None) -> Principal:
        """The principal of a native-API ``Authorization: Bearer <key_id>:<secret>`` header.

        Called once per native request: a correct secret spends one of the key's tokens
        (ThrottlingError when the key is over its rate)."""
        if authorization is None or not authorization.strip():
            raise MissingAuthenticationTokenError("Missing Authentication Token")
        scheme, _, token = authorization.strip().partition(" ")
        key_id, colon, secret = token.strip().partition(":")
        if scheme.lower() != "bearer" or not colon or not key_id or not secret:
            raise IncompleteSignatureError(
                "The Authorization header must be 'Bearer <access key id>:<secret access key>'."
            )
        key, expected = self._active_key(key_id)
        if not hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8")):
            raise InvalidSignatureError(
                "The secret access key does not match the access key id. Check your secret."
            )
        self.limiter.admit(key)  # after the secret check: only its holders spend tokens
        return Principal(key.principal, key.roles, key.key_id)
