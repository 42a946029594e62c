"""The Streams page: stream processors, start/stop, live match events (server-sent events).

The page talks to ``streams_of(gate)``, an object with the ``Streams`` protocol below:
``GatewayStreams``, whose methods call the gateway's stream verbs with the ``Caller`` they are
given, so roles, policy (purpose, threshold floor) and the ledger apply as on every other
surface. (A gateway without video says that stream processors are not configured.)

Events reach the browser as ``text/event-stream`` (``GET /app/streams/{name}/events``): one
``event: match`` per match, its ``data`` a JSON object that ``app.js`` renders as a card
(ExternalImageId, Similarity, time, the best-shot crop as a ``data:`` URL when given).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from faceledger.api import run_blocking
from faceledger.api.native.auth import GatewayDep
from faceledger.api.web.views import (
    SECURITY_HEADERS,
    WebRefusal,
    WebUser,
    describe_error,
    error_status,
    for_page,
    problem_of,
    read_form,
    render,
    text_field,
)
from faceledger.domain.audit import Caller
from faceledger.domain.errors import AccessDeniedError, FaceLedgerError
from faceledger.domain.policy import MAX_CASE_CHARS, MAX_PURPOSE_CHARS
from faceledger.services.gateway import Gateway

router = APIRouter()

StreamsUser = Annotated[WebUser, Depends(for_page("streams"))]


class Streams(Protocol):
    """What the page needs from the video service (blocking calls run in worker threads)."""

    def list(self, caller: Caller) -> list[Mapping[str, Any]]:
        """Processors: ``name``, ``status`` and optionally ``collection_id``, ``source``,
        ``message``."""

    def start(self, caller: Caller, name: str) -> None: ...

    def stop(self, caller: Caller, name: str) -> None: ...

    def events(self, caller: Caller, name: str) -> AsyncIterator[Mapping[str, Any]]:
        """Live match events of one processor from now on until the client goes away (the
        caller states a purpose and a case reference): each has ``external_image_id``,
        ``similarity``, ``time`` and optionally ``face_id``, ``session_id`` (the processor's
        run), ``timestamp_ms`` (player time), ``best_shot`` (a ``data:image/jpeg;base64,…``
        URL)."""


class GatewayStreams:
    """``Streams`` over the gateway's stream-processor verbs."""

    def __init__(self, gate: Gateway) -> None:
        self.gate = gate

    def list(self, caller: Caller) -> list[Mapping[str, Any]]:
        rows, token = self.gate.list_stream_processors(caller)
        while token:
            more, token = self.gate.list_stream_processors(caller, next_token=token)
            rows += more
        return [
            {
                "name": r.name,
                "status": r.status,
                "message": r.status_message,
                "collection_id": r.settings.get("collection_id"),
                "source": r.source,
            }
            for r in rows
        ]

    def start(self, caller: Caller, name: str) -> None:
        self.gate.start_stream_processor(caller, name)

    def stop(self, caller: Caller, name: str) -> None:
        self.gate.stop_stream_processor(caller, name)

    async def events(self, caller: Caller, name: str) -> AsyncIterator[Mapping[str, Any]]:
        """Match events as the page shows them; an empty mapping every second without one
        (so the route notices a client that went away)."""
        subscription_cm = await anyio.to_thread.run_sync(self.gate.stream_events, caller, name)
        with subscription_cm as subscription:
            while True:
                event = await anyio.to_thread.run_sync(subscription.get, 1.0)
                if event is None or event.get("type") != "match":
                    yield {}
                    continue
                crop = event.get("crop_jpeg_base64")
                yield {
                    "session_id": event.get("session_id"),
                    "timestamp_ms": event.get("timestamp_ms"),
                    "external_image_id": event.get("external_image_id"),
                    "face_id": event.get("face_id"),
                    "similarity": round(float(event.get("similarity", 0.0)), 2),
                    "time": datetime.fromtimestamp(float(event["emitted_s"]), UTC).strftime(
                        "%Y-%m-%d %H:%M:%S UTC"
                    ),
                    "best_shot": f"data:image/jpeg;base64,{crop}" if crop else None,
                }


def streams_of(gate: Gateway) -> Streams | None:
    """The stream hook: one set on the gateway (tests), else the gateway's own verbs; None
    when the gateway has no video service."""
    hook: Streams | None = getattr(gate, "streams", None)
    if hook is None and hasattr(gate, "stream_events"):
        hook = GatewayStreams(gate)
    return hook


async def _page(
    request: Request, gate: Gateway, user: WebUser, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    hook = streams_of(gate)
    processors: list[Mapping[str, Any]] = []
    if hook is not None and "problem" not in extra:
        try:
            processors = await run_blocking(request, hook.list, user.caller())
        except FaceLedgerError as exc:
            extra["problem"] = describe_error(exc)
            status = error_status(exc)
    return render(
        request,
        "streams.html",
        user,
        status=status,
        active="streams",
        configured=hook is not None,
        processors=processors,
        **extra,
    )


@router.get("/streams", response_class=HTMLResponse)
async def streams_page(request: Request, user: StreamsUser, gate: GatewayDep) -> HTMLResponse:
    return await _page(request, gate, user)


@router.post("/streams/{name}/{action}", response_class=HTMLResponse)
async def start_or_stop(
    request: Request, name: str, action: str, user: StreamsUser, gate: GatewayDep
) -> HTMLResponse:
    form = await read_form(request, user)
    hook = streams_of(gate)
    if hook is None or action not in ("start", "stop"):
        raise WebRefusal(404, "Not found", "Stream processors are not configured on this server.")
    purpose, case_reference = text_field(form, "purpose"), text_field(form, "case_reference")
    caller = user.caller(purpose, case_reference)
    if action == "start" and not (purpose and case_reference):
        # Starting a processor starts searching: like Search, it needs both (a refusal is on
        # the record too); the page says what is missing, in place.
        message = (
            "Starting a stream processor starts a search: state a purpose and a case reference."
        )
        await run_blocking(
            request,
            gate.record_refusal,
            caller,
            "StartStreamProcessor",
            None,
            AccessDeniedError.code,
            message,
        )
        missing = [
            text
            for value, text in (
                (purpose, f"State the purpose of running {name}."),
                (case_reference, f"Give the case reference for {name}."),
            )
            if not value
        ]
        return await _page(request, gate, user, status=400, missing=missing)
    try:
        verb = hook.start if action == "start" else hook.stop
        await run_blocking(request, verb, caller, name)
    except FaceLedgerError as exc:
        return await _page(request, gate, user, **problem_of(exc))
    done = "started" if action == "start" else "stopped"
    return await _page(request, gate, user, message=f"Stream processor {name} {done}.")


@router.get("/streams/{name}/events", response_model=None)
async def events(
    request: Request, name: str, user: StreamsUser, gate: GatewayDep
) -> StreamingResponse:
    hook = streams_of(gate)
    if hook is None:
        raise WebRefusal(404, "Not found", "Stream processors are not configured on this server.")

    purpose = request.query_params.get("purpose", "").strip()[:MAX_PURPOSE_CHARS]
    case_reference = request.query_params.get("case_reference", "").strip()[:MAX_CASE_CHARS]
    caller = user.caller(purpose or None, case_reference or None)
    if not (purpose and case_reference):
        message = "Watching a stream's matches is a search: state a purpose and a case reference."
        await anyio.to_thread.run_sync(  # a refusal is on the record too
            gate.record_refusal, caller, "GetStreamEvents", None, AccessDeniedError.code, message
        )
        raise WebRefusal(400, "Purpose and case reference needed", message)

    async def stream() -> AsyncIterator[str]:
        yield ": connected\n\n"
        try:
            async for event in hook.events(caller, name):
                if await request.is_disconnected():
                    break
                if not event:
                    continue
                yield f"event: match\ndata: {json.dumps(dict(event), default=str)}\n\n"
        except FaceLedgerError as exc:
            described = describe_error(exc)
            problem = {"title": described.title, "message": described.message}
            yield f"event: problem\ndata: {json.dumps(problem)}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )
