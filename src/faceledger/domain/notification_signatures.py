"""Signed completion notifications: what FaceLedger sends with each, how a receiver checks it.

A stored-video job's completion notification (an SNS-style JSON envelope) is posted with three
headers:

* ``X-FaceLedger-Timestamp``: epoch seconds when this attempt was signed (every retry is
  signed again, so a message retried after a restart is not stale on arrival);
* ``X-FaceLedger-Key-Id``: which notification key signed it (16 hex digits derived from the
  key: a receiver that holds an old and a new key during a rotation picks the right one);
* ``X-FaceLedger-Signature``: ``v1=<hex HMAC-SHA256>`` over
  ``b"v1:" + key_id + b":" + timestamp + b":" + body``, the exact bytes of the POST body.

A receiver calls ``verify_notification(body, headers, key)`` with the raw body bytes (before any
JSON parsing) and the notification key (``faceledger video notification-key`` prints it; or a
``{key_id: key}`` mapping during a rotation); it raises ``NotificationRejected`` with the reason
when the body was changed, another key signed it, or the timestamp is older (or further in the
future) than ``max_age_s``. Within that window a receiver that must not act twice on one
message keeps the envelope's ``MessageId`` (a retry carries the same one).

Pure functions over bytes: no I/O, nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-FaceLedger-Timestamp"
KEY_ID_HEADER = "X-FaceLedger-Key-Id"
SIGNATURE_HEADER = "X-FaceLedger-Signature"
SCHEME = "v1"
# How old (or how far ahead of the receiver's clock) a signed timestamp may be.
DEFAULT_MAX_AGE_S = 300.0


class NotificationRejected(ValueError):
    """A notification that does not verify; ``reason`` says why (safe to log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def key_id_of(key: bytes) -> str:
    """The id a notification key is known by: 16 hex digits of a SHA-256 of the key (the
    key cannot be recovered from it)."""
    return hashlib.sha256(b"faceledger notification key id\x00" + key).hexdigest()[:16]


def _mac(key: bytes, key_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{SCHEME}:{key_id}:{timestamp}:".encode("ascii") + body
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def sign_notification(body: bytes, key: bytes, *, now_s: float | None = None) -> dict[str, str]:
    """The three headers that sign ``body`` (the exact bytes posted) with ``key`` at ``now_s``
    (epoch seconds; the current time by default)."""
    key_id = key_id_of(key)
    timestamp = str(int(time.time() if now_s is None else now_s))
    return {
        TIMESTAMP_HEADER: timestamp,
        KEY_ID_HEADER: key_id,
        SIGNATURE_HEADER: f"{SCHEME}={_mac(key, key_id, timestamp, body)}",
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    raise NotificationRejected(
        f"the {name} header is missing: not a signed FaceLedger notification"
    )


def _key_for(key: bytes | Mapping[str, bytes], key_id: str) -> bytes:
    if isinstance(key, bytes | bytearray):
        if not hmac.compare_digest(key_id_of(bytes(key)), key_id):
            raise NotificationRejected(
                f"signed with key {key_id!r}, not with the key given ({key_id_of(bytes(key))})"
            )
        return bytes(key)
    found = key.get(key_id)
    if found is None:
        raise NotificationRejected(f"signed with key {key_id!r}, which is not among the keys given")
    return found


def verify_notification(
    body: bytes,
    headers: Mapping[str, str],
    key: bytes | Mapping[str, bytes],
    *,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    now_s: float | None = None,
) -> None:
    """Check a received notification; ``NotificationRejected`` (with the reason) unless ``body``
    is exactly what FaceLedger signed, with ``key`` (or the key of ``key``, a ``{key_id: key}``
    mapping, that the headers name), at most ``max_age_s`` seconds from ``now_s`` (the current
    time by default). ``headers``: the request's headers, any letter case."""
    timestamp = _header(headers, TIMESTAMP_HEADER)
    key_id = _header(headers, KEY_ID_HEADER)
    scheme, _, signature = _header(headers, SIGNATURE_HEADER).partition("=")
    if scheme != SCHEME or not signature:
        raise NotificationRejected(f"unknown signature scheme {scheme!r} (expected {SCHEME}=…)")
    if not timestamp.isdigit():
        raise NotificationRejected(f"the timestamp {timestamp!r} is not epoch seconds")
    expected = _mac(_key_for(key, key_id), key_id, timestamp, body)
    if not hmac.compare_digest(expected, signature.lower()):
        raise NotificationRejected("the signature does not match the body: changed or forged")
    age_s = (time.time() if now_s is None else now_s) - int(timestamp)
    if abs(age_s) > max_age_s:
        when = f"{age_s:.0f} s ago" if age_s > 0 else f"{-age_s:.0f} s ahead of this clock"
        raise NotificationRejected(
            f"signed {when}, outside the {max_age_s:.0f} s window: a stale replay (or a clock "
            "far off)"
        )
