"""The Ledger page (audit role): filtered records, the chain's status, a JSONL export.

Reading the ledger is the ``ReadLedger`` operation, verifying it ``VerifyLedger`` and exporting
it ``ExportLedger``, which only the audit role holds: each is a gateway verb, which checks the
role and ledgers the read itself (or its refusal). The filters are those of
``faceledger audit export``: a time range (UTC), principal, collection, operation, outcome.
The page shows the newest ``MAX_SHOWN`` matching records; the export holds every match,
oldest first, as JSON lines (``audit.export``). "Verify the chain" runs the same check as
``faceledger audit verify`` (every record's hash and the signed checkpoints).
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from faceledger.api import run_blocking
from faceledger.api.native.auth import GatewayDep
from faceledger.api.web.views import (
    SECURITY_HEADERS,
    WebUser,
    for_page,
    problem_of,
    render,
)
from faceledger.audit.export import entry_record
from faceledger.domain.errors import FaceLedgerError, InvalidParameterError
from faceledger.domain.principals import ROLE_OPERATIONS

router = APIRouter()

LedgerUser = Annotated[WebUser, Depends(for_page("ledger"))]
MAX_SHOWN = 200
EXPORT_CHUNK_BYTES = 256 * 1024
FILTERS = ("since", "until", "principal", "collection", "operation", "outcome")
KNOWN_OPERATIONS = sorted(set().union(*ROLE_OPERATIONS.values()) | {"PurgeExpiredFaces"})


def _time(text: str, label: str) -> float | None:
    """Epoch seconds from the page's ``datetime-local`` value (read as UTC) or ISO 8601."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameterError(
            f"{label} must be a date and time such as 2026-01-31T12:00, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _filters(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip()[:256] for name in FILTERS}


def _query(filters: dict[str, str]) -> dict[str, Any]:
    return {
        "since": _time(filters["since"], "From"),
        "until": _time(filters["until"], "Until"),
        "principal": filters["principal"] or None,
        "collection_id": filters["collection"] or None,
        "operation": filters["operation"] or None,
        "outcome": filters["outcome"] or None,
    }


def _summary(result: dict[str, Any]) -> str:
    parts = []
    for key, value in result.items():
        if isinstance(value, list | tuple):
            parts.append(f"{key}: {len(value)}")
        elif isinstance(value, dict):
            parts.append(f"{key}: …")
        elif value is not None:
            parts.append(f"{key}={value}")
    text = ", ".join(parts)
    return text if len(text) <= 90 else text[:89] + "…"


@router.get("/ledger", response_class=HTMLResponse)
async def ledger_page(request: Request, user: LedgerUser, gate: GatewayDep) -> HTMLResponse:
    filters = _filters(request)
    verify = request.query_params.get("verify") == "1"

    def load() -> dict[str, Any]:
        caller = user.caller()
        entries = gate.read_ledger(
            caller, **_query(filters), limit=MAX_SHOWN + 1, newest_first=True
        )
        rows = [
            {**entry_record(e), "summary": _summary(dict(e.payload.get("result") or {}))}
            for e in entries[:MAX_SHOWN]
        ]
        report = gate.verify_ledger(caller) if verify else None
        return {"rows": rows, "more": len(entries) > MAX_SHOWN, "report": report}

    try:
        data = await run_blocking(request, load)
    except FaceLedgerError as exc:
        return render(
            request,
            "ledger.html",
            user,
            **problem_of(exc),
            active="ledger",
            filters=filters,
            operations=KNOWN_OPERATIONS,
            rows=[],
        )
    # The last verification stays shown (with its time) while the records are filtered.
    if data["report"] is not None:
        user.session.ledger_check = {"report": data["report"], "at": time.time()}
    elif user.session.ledger_check is not None:
        data["report"] = user.session.ledger_check["report"]
        data["verified_at"] = user.session.ledger_check["at"]
    export_query = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "ledger.html",
        user,
        active="ledger",
        filters=filters,
        operations=KNOWN_OPERATIONS,
        export_query=export_query,
        shown=MAX_SHOWN,
        **data,
    )


@router.get("/ledger/export", response_model=None)
async def export(request: Request, user: LedgerUser, gate: GatewayDep) -> Response:
    """Every matching record, oldest first, as a JSON-lines download.

    The records are written, in one worker thread (the ledger's reader is per thread), to an
    anonymous temporary file, which is then streamed: memory stays small for any ledger.
    """
    filters = _filters(request)

    def build() -> BinaryIO:
        out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the streaming below
        try:
            text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
            gate.export_ledger(user.caller(), text, "jsonl", **_query(filters))
            text.flush()
            text.detach()  # keep ``out`` open
        except BaseException:
            out.close()
            raise
        out.seek(0)
        return out

    try:
        body = await run_blocking(request, build)
    except FaceLedgerError as exc:
        return render(
            request,
            "ledger.html",
            user,
            **problem_of(exc),
            active="ledger",
            filters=filters,
            operations=KNOWN_OPERATIONS,
            rows=[],
        )

    def chunks() -> Iterator[bytes]:
        with body:
            yield from iter(lambda: body.read(EXPORT_CHUNK_BYTES), b"")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks(),
        media_type="application/x-ndjson",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="faceledger-ledger-{stamp}.jsonl"',
        },
    )
