"""Server-side sessions of the web app: who is signed in, their CSRF token, idle expiry.

A browser holds only a random session id, in an ``HttpOnly``, ``SameSite=Strict`` cookie
scoped to ``/app``. The access key's secret is checked once, at sign-in, and kept nowhere
(not in the session, the browser, a URL or local storage); the session keeps the principal
(name, roles, key id). Every later request re-checks that the key is still active (a revoked
key ends its sessions at their next request) and spends one of its rate-limit tokens.

Sessions live in the server process's memory (``SessionStore`` on ``app.state``): a restart
signs everybody out, and several server processes do not share them. A session ends after
``idle_seconds`` without a request, after ``max_age_seconds`` in any case, or at sign-out.
Each session has its own CSRF token, sent back in a hidden field of every form (and checked
on every POST). The sign-in form, which has no session yet, carries a token signed by the
server (``LoginCsrf``: a nonce and its issue time under an HMAC key that only this server
process holds), sent both in the form and in a ``SameSite=Strict`` cookie: a pair an attacker
made up, however well it matches, is refused, and so is a token older than an hour.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faceledger.domain.principals import Principal

SESSION_COOKIE = "faceledger_session"
LOGIN_CSRF_COOKIE = "faceledger_login_csrf"
COOKIE_PATH = "/app"
IDLE_TIMEOUT_SECONDS = 15 * 60
MAX_AGE_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000
LOGIN_CSRF_MAX_AGE_SECONDS = 3600
PROBE_KEEP_SECONDS = 10 * 60


def new_token() -> str:
    """256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two tokens; absent or empty never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class LoginCsrf:
    """Sign-in form tokens: ``<nonce>.<issued, epoch s>.<HMAC-SHA256>`` under a key of this
    process (random, never stored). ``clock``: epoch seconds."""

    def __init__(
        self,
        key: bytes | None = None,
        *,
        max_age_seconds: float = LOGIN_CSRF_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.max_age_seconds = max_age_seconds
        self._clock = clock

    def _mac(self, nonce: str, issued_s: str) -> str:
        message = f"login-csrf.{nonce}.{issued_s}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self) -> str:
        nonce, issued_s = secrets.token_urlsafe(16), str(int(self._clock()))
        return f"{nonce}.{issued_s}.{self._mac(nonce, issued_s)}"

    def valid(self, given: str | None, cookie: str | None) -> bool:
        """Whether the form's token equals the cookie's and is one this server issued lately."""
        if not same_token(given, cookie) or given is None:
            return False
        nonce, _, rest = given.partition(".")
        issued_s, _, mac = rest.partition(".")
        if not nonce or not issued_s.isdigit() or not same_token(mac, self._mac(nonce, issued_s)):
            return False
        return 0 <= self._clock() - int(issued_s) <= self.max_age_seconds


@dataclass
class WebSession:
    """One signed-in browser. ``principal`` is the key's owner; the secret is not kept."""

    session_id: str
    principal: Principal
    csrf_token: str
    created_s: float
    last_seen_s: float
    # The last searched photo, kept in memory only (never on disk) so that another of its faces
    # can be searched without sending it again; replaced by the next search, gone at sign-out.
    probe: KeptProbe | None = None
    # The last chain verification shown on the ledger page (kept across filtering).
    ledger_check: dict[str, Any] | None = None  # {"report": VerifyReport, "at": epoch s}


@dataclass(frozen=True)
class KeptProbe:
    """A searched photo held for ``PROBE_KEEP_SECONDS`` under an unguessable token."""

    token: str
    data: bytes
    kept_until_s: float

    def usable(self, token: str, now_s: float) -> bool:
        return same_token(token, self.token) and now_s <= self.kept_until_s


class SessionStore:
    """Sessions by id, in memory, safe to share by threads. ``clock``: monotonic seconds."""

    def __init__(
        self,
        *,
        idle_seconds: float = IDLE_TIMEOUT_SECONDS,
        max_age_seconds: float = MAX_AGE_SECONDS,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, WebSession] = {}

    def _expired(self, session: WebSession, now: float) -> bool:
        return (
            now - session.last_seen_s > self.idle_seconds
            or now - session.created_s > self.max_age_seconds
        )

    def create(self, principal: Principal) -> WebSession:
        """A new session (a new id: sign-in never reuses an id the browser already had)."""
        now = self._clock()
        session = WebSession(new_token(), principal, new_token(), now, now)
        with self._lock:
            for sid in [s for s, v in self._sessions.items() if self._expired(v, now)]:
                del self._sessions[sid]
            while len(self._sessions) >= self.max_sessions:  # the oldest goes first
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session with this id (its idle clock restarts), or None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[session_id]
                return None
            session.last_seen_s = now
            return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def drop_key(self, key_id: str) -> None:
        """End every session signed in with this access key (it was revoked)."""
        with self._lock:
            for sid in [s for s, v in self._sessions.items() if v.principal.key_id == key_id]:
                del self._sessions[sid]

    def keep_probe(self, session: WebSession, data: bytes) -> str:
        """Hold ``data`` (the photo just searched) in the session; returns its token."""
        kept = KeptProbe(new_token(), data, self._clock() + PROBE_KEEP_SECONDS)
        session.probe = kept
        return kept.token

    def kept_probe(self, session: WebSession, token: str) -> bytes | None:
        """The photo kept under ``token`` if it is still held, else None."""
        kept = session.probe
        if kept is None or not kept.usable(token, self._clock()):
            return None
        return kept.data

    def __len__(self) -> int:
        return len(self._sessions)
