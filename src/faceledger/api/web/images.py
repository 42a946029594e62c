"""Kept face crops as ``image/jpeg`` answers, for an ``<img>`` a page fills on request (the
Review page's searched and enrolled faces): the gateway's verb runs (and ledgers the view); a
refusal is a short plain-text answer with the error's status, never a page."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response

from faceledger.api import run_blocking
from faceledger.api.web.views import SECURITY_HEADERS, describe_error, error_status
from faceledger.domain.errors import FaceLedgerError


async def jpeg_answer(request: Request, view: Callable[[], bytes]) -> Response:
    """The JPEG ``view`` returns (``Cache-Control: no-store``), or its refusal as text."""
    try:
        jpeg = await run_blocking(request, view)
    except FaceLedgerError as exc:
        return PlainTextResponse(
            describe_error(exc).message, status_code=error_status(exc), headers=SECURITY_HEADERS
        )
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return Response(jpeg, media_type="image/jpeg", headers=headers)
