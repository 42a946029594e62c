"""The shapes a ledger backend and its readers share: committed records, queries, and the
write transaction and verification snapshot a backend supplies (``faceledger.audit.core``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faceledger.audit.chain import KIND_EVENT, body_payload
from faceledger.audit.intents import OpenIntent
from faceledger.audit.verify import Row
from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import LedgerTamperedError

# The filters ``entries`` accepts on an event's JSON fields (string equality).
FIELD_FILTERS = ("principal", "collection_id", "operation", "outcome")


@dataclass(frozen=True)
class LedgerEntry:
    """One committed record: ``seq``, ``time`` (epoch seconds), ``digest`` (SHA-256 hex of the
    body) and its decoded content (``payload``: ``kind``, ``time`` and the event's fields, or
    a checkpoint's ``covers_seq``, ``covers_digest``, ``ledger_id``, ``hmac``)."""

    seq: int
    time: float
    digest: str
    payload: Mapping[str, Any] = field(repr=False)

    @property
    def kind(self) -> str:
        return str(self.payload.get("kind", KIND_EVENT))

    @property
    def event(self) -> AuditEvent | None:
        """The event this record holds (None for a checkpoint)."""
        if self.kind != KIND_EVENT:
            return None
        p = self.payload
        return AuditEvent(
            operation=p["operation"],
            principal=p["principal"],
            key_id=p["key_id"],
            roles=tuple(p["roles"]),
            source=p["source"],
            request_id=p["request_id"],
            outcome=p["outcome"],
            purpose=p.get("purpose"),
            case_reference=p.get("case_reference"),
            collection_id=p.get("collection_id"),
            probe_sha256=tuple(p.get("probe_sha256", ())),
            result=dict(p.get("result", {})),
            phase=p.get("phase"),
            intent_id=p.get("intent_id"),
        )

    def to_dict(self) -> dict[str, Any]:
        """``seq``, ``digest`` and the payload's fields, flat (for JSON output)."""
        return {"seq": self.seq, "digest": self.digest, **self.payload}


@dataclass(frozen=True)
class EntryQuery:
    """What ``entries`` asks a backend for: rows whose event fields equal ``fields`` and whose
    time is in ``[since, until)``; events only unless ``include_checkpoints``; with
    ``contains``, only bodies holding those bytes (tested by the database, before decoding)."""

    fields: Mapping[str, str]
    since: float | None
    until: float | None
    limit: int | None
    newest_first: bool
    include_checkpoints: bool
    contains: bytes | None = None


class LedgerWrite(Protocol):
    """One open write transaction that holds the ledger's lock (one writer at a time, across
    processes); committed when the ``_writing`` block exits without error."""

    def head(self) -> tuple[int, bytes]:
        """``(seq, digest)`` of the newest record; ``(0, 32 zero bytes)`` when empty."""

    def checkpoint_state(self) -> tuple[int, float]:
        """``(seq, time)`` of the last checkpoint (seq 0 and the creation time if none)."""

    def digest_at(self, seq: int) -> bytes | None:
        """The stored digest of record ``seq`` (None if there is none)."""

    def rows_after(self, seq: int) -> Sequence[Row]:
        """``(seq, body, digest, mac)`` of every record after ``seq``, in order."""

    def insert(self, rows: Sequence[Row]) -> None:
        """Insert ``(seq, body, digest, mac)`` rows."""

    def mark_checkpoint(self, seq: int, when: float) -> None:
        """Remember that record ``seq``, at ``when``, is the last checkpoint."""

    def open_intent(self, intent: OpenIntent) -> None:
        """Note an intent record without an outcome yet."""

    def close_intent(self, intent_id: str) -> None:
        """Forget an intent (its outcome is recorded in the same transaction)."""


@dataclass(frozen=True)
class VerifySnapshot:
    """One consistent view of the rows for ``verify``: how many, the rows in seq order (in
    chunks) and a lookup of any record's digest."""

    total: int
    chunks: Iterable[Sequence[Row]]
    digest_at: Callable[[int], bytes | None]


def decode_rows(rows: Iterator[tuple[int, bytes, bytes]]) -> Iterator[LedgerEntry]:
    """``LedgerEntry``s of stored ``(seq, body, digest)`` rows; ``LedgerTamperedError`` for a
    body that does not decode."""
    for seq, body, digest in rows:
        try:
            payload = body_payload(bytes(body))
        except (ValueError, TypeError):
            raise LedgerTamperedError(
                f"ledger record {seq} cannot be decoded; run `faceledger audit verify`"
            ) from None
        when = float(payload.get("time", 0.0))
        yield LedgerEntry(int(seq), when, bytes(digest).hex(), payload)
