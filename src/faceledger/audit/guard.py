"""The privacy guard: no image bytes and no embeddings ever reach the ledger.

The ledger keeps what an ``AuditEvent`` carries, and an event's ``result`` is a free-form dict
filled by the services. A mistake there (a probe's bytes, an embedding as a numpy array or a
float list, a base64 image) would write biometric data into an append-only file that is meant
to be kept for years and cannot be edited. So ``check_event`` refuses, with ``LedgerError``
(the operation then fails rather than leak), any event whose content holds:

- ``bytes`` / ``bytearray`` / ``memoryview``;
- an array object (anything exposing ``__array__`` or ``__array_interface__``: numpy, torch…);
- a list of more than ``MAX_FLOAT_LIST`` numbers containing a float (an embedding);
- a probe digest that is not 64 lowercase hex characters.

A long string (base64 of an image or a vector, or over-long *text* from a caller: a purpose, a
case reference, a collection id in a path, an error message quoting them) is never kept whole,
and never a reason to lose the record of a refused call: ``bound_event`` cuts every string over
its bound (``MAX_FIELD_CHARS`` for the event's own fields,
``MAX_STRING_CHARS`` inside ``result``) and notes, in ``result["bounded"]``, each cut field's
full length and SHA-256 — so the record still proves what was sent, without holding it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import Any

from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import LedgerError

MAX_FLOAT_LIST = 64
MAX_STRING_CHARS = 4096
MAX_FIELD_CHARS = 1024  # the event's own text fields (purpose, case, collection id, …)
KEPT_CHARS = 256  # what a cut string keeps of its start
MAX_DEPTH = 16
# The encoded record (JSON) may not exceed this (a search returning 4,096 matches fits).
MAX_RECORD_BYTES = 1 << 20

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _refuse(where: str, what: str) -> LedgerError:
    return LedgerError(
        f"refusing to write {what} at {where} to the audit ledger "
        "(it never holds image bytes or embeddings)"
    )


def _check_value(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _refuse(where, f"content nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str | bool | int | float) or value is None:
        return
    elif isinstance(value, bytes | bytearray | memoryview):
        raise _refuse(where, f"{type(value).__name__} ({len(value)} bytes)")
    elif hasattr(value, "__array_interface__") or hasattr(value, "__array__"):
        kind = type(value).__module__ + "." + type(value).__name__
        if getattr(value, "shape", None) == ():
            raise _refuse(where, f"an array scalar ({kind}; convert it with float() or int())")
        raise _refuse(where, f"an array ({kind})")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        if len(value) > MAX_FLOAT_LIST and any(isinstance(v, float) for v in value):
            numbers = sum(
                1 for v in value if isinstance(v, int | float) and not isinstance(v, bool)
            )
            if numbers > MAX_FLOAT_LIST:
                raise _refuse(where, f"a list of {numbers} numbers (an embedding?)")
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)
    # Anything else (sets, objects) is caught by the JSON encoder.


_TEXT_FIELDS = (
    "operation",
    "principal",
    "key_id",
    "source",
    "request_id",
    "outcome",
    "purpose",
    "case_reference",
    "collection_id",
    "intent_id",
)


def _cut(value: str, where: str, notes: dict[str, Any]) -> str:
    notes[where] = {
        "chars": len(value),
        "sha256": hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest(),
    }
    return value[:KEPT_CHARS] + "…"


def _bound_value(value: Any, where: str, notes: dict[str, Any], depth: int) -> Any:
    if isinstance(value, str):
        return _cut(value, where, notes) if len(value) > MAX_STRING_CHARS else value
    if depth > MAX_DEPTH:
        return value  # check_event refuses it
    if isinstance(value, dict):
        return {k: _bound_value(v, f"{where}.{k}", notes, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple) and any(isinstance(v, str) for v in value):
        return [_bound_value(v, f"{where}[{i}]", notes, depth + 1) for i, v in enumerate(value)]
    return value


def bound_event(event: AuditEvent) -> AuditEvent:
    """``event`` with every over-long string cut to its first ``KEPT_CHARS`` characters and
    noted in ``result["bounded"]`` (its length and SHA-256); ``event`` itself if none is."""
    notes: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        value = getattr(event, name)
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            changes[name] = _cut(value, name, notes)
    result = event.result
    if isinstance(result, dict):
        result = _bound_value(result, "result", notes, 0)
    if not notes:
        return event
    return replace(event, **changes, result={**result, "bounded": notes})


def check_event(event: AuditEvent) -> None:
    """Raise ``LedgerError`` if ``event`` could carry image bytes or an embedding."""
    for digest in event.probe_sha256:
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise _refuse("probe_sha256", "a value that is not a lowercase hex SHA-256")
    if not isinstance(event.result, dict):
        raise _refuse("result", f"a {type(event.result).__name__} instead of a dict")
    for name in _TEXT_FIELDS:
        _check_value(getattr(event, name), name, 0)
    _check_value(list(event.roles), "roles", 0)
    _check_value(event.result, "result", 0)
