"""The record format of the hash chain: how one ledger record becomes bytes and a digest.

A record's ``body`` is a fixed-width ASCII prefix followed by canonical JSON::

    b"00000000000000000042 <prev digest, 64 hex> E " + b'{"kind":"event","time":...}'
      seq (20 digits)        previous record's SHA-256   kind (E event, C checkpoint,
                                                        K key rotation)

and its ``digest`` is ``sha256(body)`` (32 raw bytes). The first record's "previous digest" is
64 zeros (``GENESIS_HEX``). Because seq, the link and the kind sit at fixed offsets,
verification slices bytes and hashes; it never parses JSON except for the rare checkpoint.

The JSON is canonical (sorted keys, compact separators, ASCII only, no NaN), so the same
content always yields the same bytes; readers decode it with ``json.loads``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SEQ_DIGITS = 20
# b"%020d %s %c " -> 20 + 1 + 64 + 1 + 1 + 1 bytes before the JSON.
SEQ_END = SEQ_DIGITS
PREV_START = SEQ_DIGITS + 1
PREV_END = PREV_START + 64
KIND_AT = PREV_END + 1
PREFIX_LEN = KIND_AT + 2

GENESIS_HEX = b"0" * 64

KIND_EVENT = "event"
KIND_CHECKPOINT = "checkpoint"
KIND_ROTATION = "rotation"  # the ledger key was rotated: later records use the key it names
# The one-byte kind marker in the prefix, and back.
KIND_CODES: dict[str, bytes] = {KIND_EVENT: b"E", KIND_CHECKPOINT: b"C", KIND_ROTATION: b"K"}
CODE_KINDS: dict[bytes, str] = {v: k for k, v in KIND_CODES.items()}


def canonical_json(payload: dict[str, Any]) -> bytes:
    """The one byte encoding of ``payload`` (sorted keys, compact, ASCII, no NaN/Infinity).

    Raises ``TypeError`` / ``ValueError`` for content JSON cannot hold.
    """
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def make_body(seq: int, prev_digest: bytes, kind: str, payload_json: bytes) -> bytes:
    """The body of record ``seq`` chained to the record whose digest is ``prev_digest``."""
    return b"%020d %s %s " % (seq, prev_digest.hex().encode("ascii"), KIND_CODES[kind]) + (
        payload_json
    )


def link(seq: int, prev_digest: bytes, kind: str, payload_json: bytes) -> tuple[bytes, bytes]:
    """``(body, digest)`` of record ``seq``: what gets inserted into ``records``."""
    body = make_body(seq, prev_digest, kind, payload_json)
    return body, hashlib.sha256(body).digest()


def body_seq(body: bytes) -> int | None:
    """The seq a body's prefix names (None if the prefix is not 20 digits)."""
    head = body[:SEQ_END]
    return int(head) if len(head) == SEQ_DIGITS and head.isdigit() else None


def body_kind(body: bytes) -> str | None:
    """``"event"`` or ``"checkpoint"`` from the prefix (None if malformed)."""
    return CODE_KINDS.get(body[KIND_AT : KIND_AT + 1])


def body_payload(body: bytes) -> dict[str, Any]:
    """The decoded JSON of a body (raises ``ValueError`` if it is not a JSON object)."""
    payload = json.loads(body[PREFIX_LEN:])
    if not isinstance(payload, dict):
        raise ValueError("record payload is not a JSON object")
    return payload
