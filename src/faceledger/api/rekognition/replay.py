"""A replay cache for SigV4 requests: a signed request is accepted once within the skew window.

A SigV4 signature stays valid for ``max_clock_skew_seconds`` either side of its X-Amz-Date, so
without memory a captured request could be re-sent verbatim for up to twice that long (a
search answered again, an enrolment made twice). ``ReplayCache.admit`` remembers each accepted
request's key until its signature would have expired anyway and refuses the same key again
with ``InvalidSignatureException``.

What the key is. boto3 and the AWS CLI sign with one-second resolution and no signed nonce:
two identical calls in the same second (a polling loop, two threads reading the same
collection) carry the same signature. They differ in ``amz-sdk-invocation-id`` and
``amz-sdk-request``, which botocore adds after signing. The router's key is therefore the
signature plus those two headers: an exact replay is refused and boto3 keeps working; a replay
that also rewrites the unsigned invocation id is not detected (a client that needs that must
sign a nonce header of its own, e.g. from a ``before-sign`` hook, and then every request has a
unique signature).

Memory is bounded: at most ``max_entries`` keys, each kept as a 16-byte digest with its
expiry (100,000 keys ≈ 27 MB, measured). When full, the entry that expires first is dropped
and its expiry becomes the cache's *horizon*: a request whose signature expires at or before
the horizon is refused as too old to check (never accepted unchecked). Under a flood the
accepted window shrinks instead of memory growing.

The cache is per process: with several server processes (uvicorn workers, replicas on one
PostgreSQL database) a replay sent to another process is not detected. Route a client to one
process (sticky sessions) or keep the skew window short there.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from datetime import datetime, timedelta

from faceledger.domain.errors import InvalidSignatureError

# 100,000 keys live up to 600 s (a signature dated 300 s ahead): ≈ 166 requests/s sustained
# before the accepted window starts to shrink.
DEFAULT_MAX_ENTRIES = 100_000
REPLAY_MESSAGE = (
    "This request was already received: a signed request is accepted once. Sign each request "
    "anew (AWS SDKs do)."
)


class ReplayCache:
    """Keys of accepted requests until their signatures expire (thread-safe, bounded)."""

    def __init__(self, *, max_skew_seconds: int, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._skew = timedelta(seconds=max_skew_seconds)
        self._max_entries = max_entries
        self._expiry: dict[bytes, datetime] = {}
        self._heap: list[tuple[datetime, bytes]] = []
        self._horizon: datetime | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def admit(self, key: str, signed_at: datetime, now: datetime) -> None:
        """Accept ``key`` (signed at ``signed_at``) once; raise ``InvalidSignatureError`` for a
        key seen before, or one too old to be checked after the cache overflowed."""
        expires = signed_at + self._skew
        digest = hashlib.sha256(key.encode("utf-8")).digest()[:16]  # bounded size per entry
        with self._lock:
            self._drop_expired(now)
            if digest in self._expiry:
                raise InvalidSignatureError(REPLAY_MESSAGE)
            if self._horizon is not None and expires <= self._horizon:
                raise InvalidSignatureError(
                    "Signature too old to be checked for a replay while the server is busy: "
                    "sign the request anew."
                )
            while len(self._expiry) >= self._max_entries:
                evicted_at, evicted = heapq.heappop(self._heap)
                del self._expiry[evicted]
                self._horizon = evicted_at
            self._expiry[digest] = expires
            heapq.heappush(self._heap, (expires, digest))

    def _drop_expired(self, now: datetime) -> None:
        while self._heap and self._heap[0][0] < now:
            _, key = heapq.heappop(self._heap)
            del self._expiry[key]
