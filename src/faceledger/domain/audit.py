"""What the ledger records: one ``AuditEvent`` per call that reads or changes biometric data.

An event names who asked (principal, key, roles), why (purpose, case reference), what
(operation, collection, SHA-256 of each probe image) and what came of it (``outcome``: "ok" or
the error code; ``result``: matched FaceIds with Similarity, counts, the effective threshold).
It never holds image bytes or embeddings. The ledger adds the time, a sequence number and the
hash chain.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from faceledger.domain.principals import Principal

# The intent record the running biometric change was announced by (set by the gateway around
# the store call; the stores log it beside each face they add or delete, so that a change whose
# outcome record was never written can be attributed to its request at start-up).
CURRENT_INTENT: ContextVar[str | None] = ContextVar("faceledger_current_intent", default=None)

# What an event is, for a biometric change: the intent written before the store changes, the
# outcome after, or an outcome reconstructed at start-up from the store's change log.
PHASES = ("intent", "outcome", "recovered")


@dataclass(frozen=True)
class Caller:
    """Who is asking and why, carried from the adapter into the services."""

    principal: Principal
    source: str  # where the call came from: rekognition, native, cli, web, video or system
    request_id: str
    purpose: str | None = None
    case_reference: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    """One ledger record's content (the ledger adds ``seq``, ``time`` and the chain)."""

    operation: str
    principal: str
    key_id: str
    roles: tuple[str, ...]
    source: str
    request_id: str
    outcome: str  # "ok", or the error code (e.g. "AccessDeniedException")
    purpose: str | None = None
    case_reference: str | None = None
    collection_id: str | None = None
    probe_sha256: tuple[str, ...] = ()
    result: dict[str, Any] = field(default_factory=dict)
    phase: str | None = None  # one of PHASES for a biometric change, else None
    intent_id: str | None = None  # links an intent to its outcome

    @classmethod
    def of(
        cls,
        caller: Caller,
        operation: str,
        *,
        outcome: str = "ok",
        collection_id: str | None = None,
        probe_sha256: tuple[str, ...] = (),
        result: dict[str, Any] | None = None,
        phase: str | None = None,
        intent_id: str | None = None,
    ) -> AuditEvent:
        return cls(
            operation=operation,
            principal=caller.principal.name,
            key_id=caller.principal.key_id,
            roles=caller.principal.roles,
            source=caller.source,
            request_id=caller.request_id,
            outcome=outcome,
            purpose=caller.purpose,
            case_reference=caller.case_reference,
            collection_id=collection_id,
            probe_sha256=probe_sha256,
            result=dict(result or {}),
            phase=phase,
            intent_id=intent_id,
        )

    def to_dict(self) -> dict[str, Any]:
        extra = {"phase": self.phase, "intent_id": self.intent_id} if self.phase else {}
        return {
            **extra,
            "operation": self.operation,
            "principal": self.principal,
            "key_id": self.key_id,
            "roles": list(self.roles),
            "source": self.source,
            "request_id": self.request_id,
            "outcome": self.outcome,
            "purpose": self.purpose,
            "case_reference": self.case_reference,
            "collection_id": self.collection_id,
            "probe_sha256": list(self.probe_sha256),
            "result": self.result,
        }
