"""One structured log record per HTTP request (replacing uvicorn's access log).

Logger ``faceledger.access``, message ``"<operation> <outcome>"``, fields ``request_id`` (the
id the ledger records for the call, or a new one for requests that never reach a verb),
``principal`` (the authenticated principal's name, "-" before authentication), ``operation``
(a Rekognition operation or the route template — never a raw path with ids), ``outcome``
(ok / client_error / server_error), ``status``, ``method`` and ``duration_ms``. Headers, query
strings and bodies are never logged. The adapters put the principal and request id in
``request.state`` (``note_caller``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from faceledger.api.metrics import observe_request, operation_of, outcome_of

logger = logging.getLogger("faceledger.access")


def note_caller(state: Any, principal: str, request_id: str) -> None:
    """Remember who made this request and its ledger request id (for the access log)."""
    state.principal = principal
    state.request_id = request_id


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in ("/healthz", "/readyz", "/metrics"):
            await self.app(scope, receive, send)
            return
        await observe_request(self.app, scope, receive, send, lambda *done: _log(scope, *done))


def _log(scope: Scope, status: int, seconds: float) -> None:
    """The access record of one finished request."""
    state = scope.get("state") or {}
    operation = operation_of(scope)
    outcome = outcome_of(status)
    level = logging.ERROR if status >= 500 else logging.INFO
    logger.log(
        level,
        "%s %s",
        operation,
        outcome,
        extra={
            "request_id": state.get("request_id") or uuid.uuid4().hex,
            "principal": state.get("principal") or "-",
            "operation": operation,
            "outcome": outcome,
            "status": status,
            "method": scope.get("method"),
            "duration_ms": round(seconds * 1000, 2),
        },
    )
