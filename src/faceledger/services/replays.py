"""The SigV4 replay check every server process shares: a verified request is accepted once.

A SigV4 signature stays valid for ``max_clock_skew_seconds`` either side of its X-Amz-Date, so
without memory a captured request could be re-sent verbatim for up to twice that long (a
search answered again, an enrolment made twice), to any server process of the installation.
``ReplayGuard.admit`` remembers each verified request's key in the key store (``sigv4_seen``,
``store/key_tables.py``: SQLite's key-store database, or the PostgreSQL database every replica
shares) until its signature would have expired anyway, and refuses the same key again.

The key (the signature plus the SDK's unsigned invocation headers) is built by the adapter:
``api/rekognition/replay.py`` says why it is that.

Refusals, all before the key's rate limit:

- a replay: ``ReplayedRequestError`` (``InvalidSignatureException``), ``first`` set the first
  time a request comes back, so the adapter ledgers that one refusal and no more;
- a key that expires at or before the purge horizon (``KeyTables.purge_signatures``): "too old
  to be checked" (``InvalidSignatureException``), never accepted unchecked;
- the store failing (database down, SQLite locked past its busy timeout):
  ``ReplayCheckUnavailableError`` (``ThrottlingException``, HTTP 503, which SDKs retry): a
  request the check could not clear is not run.

Only signatures that verified reach ``admit`` (a stranger cannot fill the table). Expired rows
are purged by the maintenance pass (``purge``), ``PURGE_GRACE_SECONDS`` after they expire.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime

from faceledger.domain.errors import (
    FaceLedgerError,
    InvalidSignatureError,
    ReplayCheckUnavailableError,
    ReplayedRequestError,
)
from faceledger.store.base import KeyStore

logger = logging.getLogger(__name__)

REPLAY_MESSAGE = (
    "This request was already received: a signed request is accepted once. Sign each request "
    "anew (AWS SDKs do)."
)
TOO_OLD_MESSAGE = (
    "Signature too old to be checked for a replay (its record has been purged): sign the "
    "request anew."
)
UNAVAILABLE_MESSAGE = (
    "The request could not be checked against earlier ones (the key store did not answer) "
    "and was not run. Try again."
)
#: Rows are kept this long after their signatures expire, so that a server whose clock lags
#: the purging one by less than this never meets the horizon.
PURGE_GRACE_SECONDS = 60.0


class ReplayGuard:
    """Admits each verified request's key once, across every process on the key store."""

    def __init__(self, store: KeyStore, *, max_skew_seconds: int) -> None:
        self._store = store
        self._skew_s = float(max_skew_seconds)

    def admit(self, key: str, signed_at: datetime) -> None:
        """Accept ``key`` (the request signed at ``signed_at``) once; raise
        ``ReplayedRequestError`` for a key seen before, ``InvalidSignatureError`` for one too
        old to be checked, ``ReplayCheckUnavailableError`` when the store cannot say."""
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        expires_at = signed_at.timestamp() + self._skew_s
        try:
            verdict = self._store.remember_signature(digest, expires_at)
        except FaceLedgerError:
            raise
        except Exception as exc:  # any store failure: refuse, never run unchecked
            logger.warning("replay check failed, request refused: %s", exc)
            raise ReplayCheckUnavailableError(UNAVAILABLE_MESSAGE) from exc
        if verdict == "new":
            return
        if verdict == "too_old":
            raise InvalidSignatureError(TOO_OLD_MESSAGE)
        raise ReplayedRequestError(REPLAY_MESSAGE, first=verdict == "replay")

    def purge(self, now_s: float | None = None) -> int:
        """Forget keys whose signatures expired ``PURGE_GRACE_SECONDS`` before ``now_s``
        (default: now); how many went. Run by the maintenance pass."""
        now_s = time.time() if now_s is None else now_s
        return self._store.purge_signatures(now_s - PURGE_GRACE_SECONDS)
