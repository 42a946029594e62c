"""Who is calling the native API: authentication and the ``Caller`` every route passes on.

Every native route depends on ``current_caller`` (``CallerDep``): it authenticates the request
and builds the ``Caller`` (principal, source "native", a new request id, purpose and case
reference) that the route hands to the accountable gateway (``FaceLedger``, kept on
``app.state.ledger``; ``GateDep``). Role checks are not made here: the gateway makes them, with
the same role table (``faceledger.domain.principals``) for the native API, the Rekognition API
and the CLI, and writes a refusal to the ledger like any other call.

The bearer value is ``<key_id>:<secret>`` (``faceledger keys create`` prints it). Checking it is
the ``KeyService`` kept on ``app.state.keys``; this module only asks it. Errors are
``FaceLedgerError`` subclasses, serialised by the app's one handler: an ``AuthError`` (no header,
malformed, unknown key, wrong secret) as 401 with ``WWW-Authenticate: Bearer``,
``AccessDeniedError`` (raised by the gateway) as 403.

Why a call is made travels in the headers ``X-FaceLedger-Purpose`` and ``X-FaceLedger-Case`` on
every route; search routes also take the fields ``purpose`` and ``case_reference`` (form fields
of uploads, query parameters of GET searches), which win over the headers (``with_purpose``).

``settings.insecure_accept_any_signature`` (development only) skips the check and authenticates
every request as ``INSECURE_DEV_PRINCIPAL`` (an admin).
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from faceledger.api.access_log import note_caller
from faceledger.domain.audit import Caller
from faceledger.domain.policy import MAX_CASE_CHARS, MAX_PURPOSE_CHARS
from faceledger.domain.principals import INSECURE_DEV_PRINCIPAL, Principal
from faceledger.services.accountable import FaceLedger

PURPOSE_HEADER = "X-FaceLedger-Purpose"
CASE_HEADER = "X-FaceLedger-Case"
PURPOSE_DOC = (
    "Why the call is made (kept in the audit ledger). A collection whose policy requires a "
    "purpose refuses searches without a purpose and a case reference."
)
CASE_DOC = "The case, investigation or ticket the call belongs to (kept in the audit ledger)."

# Declares the scheme for OpenAPI (/docs' "Authorize" button); the check itself is ours, so a
# missing or non-bearer header is not refused here (auto_error=False) but by ``authenticate``.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="<key_id>:<secret>",
    description="An access key: `Authorization: Bearer <key_id>:<secret>`.",
)

BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def authenticate(request: Request) -> Principal:
    """The principal whose API key signs this request (raises an ``AuthError`` otherwise)."""
    if request.app.state.settings.insecure_accept_any_signature:
        return INSECURE_DEV_PRINCIPAL
    principal: Principal = request.app.state.keys.authenticate_bearer(
        request.headers.get("authorization")
    )
    return principal


def current_caller(
    request: Request,
    _credentials: BearerCredentials,
    purpose: Annotated[
        str | None,
        Header(alias=PURPOSE_HEADER, max_length=MAX_PURPOSE_CHARS, description=PURPOSE_DOC),
    ] = None,
    case_reference: Annotated[
        str | None, Header(alias=CASE_HEADER, max_length=MAX_CASE_CHARS, description=CASE_DOC)
    ] = None,
) -> Caller:
    """A dependency: the authenticated ``Caller`` of this request (source "native").

    A plain function, so FastAPI runs it in a worker thread: the key check may read the key
    store and hash the secret without blocking the event loop. Empty headers count as absent.
    """
    principal = authenticate(request)
    request_id = str(uuid.uuid4())
    note_caller(request.state, principal.name, request_id)  # for the access log
    return Caller(
        principal,
        source="native",
        request_id=request_id,
        purpose=purpose or None,
        case_reference=case_reference or None,
    )


def with_purpose(caller: Caller, purpose: str | None, case_reference: str | None) -> Caller:
    """``caller`` with a search's ``purpose`` / ``case_reference`` fields, which win over the
    headers (a field that is absent or empty leaves the header's value)."""
    return dataclasses.replace(
        caller,
        purpose=purpose or caller.purpose,
        case_reference=case_reference or caller.case_reference,
    )


def get_gate(request: Request) -> FaceLedger:
    """The process's accountable gateway (created by the app's lifespan)."""
    gate: FaceLedger = request.app.state.ledger
    return gate


CallerDep = Annotated[Caller, Depends(current_caller)]
GateDep = Annotated[FaceLedger, Depends(get_gate)]
