"""Who is calling the native API: authentication and the ``Caller`` every route passes on.

Every native route depends on ``current_caller`` (``CallerDep``): it authenticates the request
and builds the ``Caller`` (principal, source "native", a new request id, purpose and case
reference) that the route hands to the gateway (``Gateway``, kept on
``app.state.gateway``; ``GatewayDep``). Role checks are not made here: the gateway makes them, with
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

A request refused before any gateway verb ran — by validation (a body, path, query or header
that breaks its schema; it never reaches the route) or by the route itself (an upload over the
limit, contradictory fields) — is ledgered by the app's error handlers through
``record_adapter_refusal``: for a known caller (authenticated here if the route's dependency
did not run), the gateway's ``record_refusal`` writes it under the route's operation
(``route_operation``) and path collection. Refusals by a verb are ledgered by the verb.

``settings.insecure_accept_any_signature`` (development only) skips the check and authenticates
every request as ``INSECURE_DEV_PRINCIPAL`` (an admin).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from faceledger.api.access_log import note_caller
from faceledger.domain.audit import Caller
from faceledger.domain.errors import AuthError, FaceLedgerError
from faceledger.domain.policy import MAX_CASE_CHARS, MAX_PURPOSE_CHARS
from faceledger.domain.principals import INSECURE_DEV_PRINCIPAL, Principal
from faceledger.services.gateway import Gateway

logger = logging.getLogger("faceledger.api.native")

PURPOSE_HEADER = "X-FaceLedger-Purpose"
# Where ``api.pre_auth`` keeps the principal it authenticated before reading the body.
PRINCIPAL_STATE = "faceledger_principal"
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

# Routes whose operation is not their function's name in CamelCase (``list_faces`` → ListFaces).
ROUTE_OPERATIONS = {
    "detect": "DetectFaces",
    "compare": "CompareFaces",
    "search_users_by_face": "SearchUsers",
    "get_collection_policy": "DescribeCollection",
    "put_collection_policy": "PutCollectionPolicy",
    "start_job": "StartVideoJob",  # the kind is in the body, which failed validation
    "get_job": "GetVideoJob",
    "create_processor": "CreateStreamProcessor",
    "list_processors": "ListStreamProcessors",
    "describe_processor": "DescribeStreamProcessor",
    "update_processor": "UpdateStreamProcessor",
    "delete_processor": "DeleteStreamProcessor",
    "start_processor": "StartStreamProcessor",
    "stop_processor": "StopStreamProcessor",
    "processor_events": "GetStreamEvents",
}

BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def authenticate(request: Request) -> Principal:
    """The principal whose API key signs this request (raises an ``AuthError`` otherwise).

    A request with a body was authenticated before its body was read (``api.pre_auth``); its
    principal is taken from the request's state rather than checked (and rate-limited) twice.
    """
    if request.app.state.settings.insecure_accept_any_signature:
        return INSECURE_DEV_PRINCIPAL
    checked: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
    if checked is not None:
        return checked
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
    caller = Caller(
        principal,
        source="native",
        request_id=request_id,
        purpose=purpose or None,
        case_reference=case_reference or None,
    )
    request.state.caller = caller  # for ledgering a refusal by validation after this
    return caller


def with_purpose(caller: Caller, purpose: str | None, case_reference: str | None) -> Caller:
    """``caller`` with a search's ``purpose`` / ``case_reference`` fields, which win over the
    headers (a field that is absent or empty leaves the header's value)."""
    return dataclasses.replace(
        caller,
        purpose=purpose or caller.purpose,
        case_reference=case_reference or caller.case_reference,
    )


def get_gateway(request: Request) -> Gateway:
    """The process's gateway (created by the app's lifespan)."""
    gate: Gateway = request.app.state.gateway
    return gate


CallerDep = Annotated[Caller, Depends(current_caller)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def route_operation(request: Request) -> str:
    """The operation a /v1 request's route performs, as the ledger names operations."""
    route = request.scope.get("route")
    name = str(getattr(route, "name", "") or "")
    return ROUTE_OPERATIONS.get(name) or "".join(part.title() for part in name.split("_"))


async def record_adapter_refusal(request: Request, exc: FaceLedgerError) -> None:
    """Ledger a /v1 request refused before any verb ran, once its caller is authenticated.

    Not recorded: an unauthenticated request (there is no one to record), an error that left a
    verb (the verb recorded it: ``run_blocking`` marks it), an authentication failure, and a
    server error. Recording runs in a worker thread (the key check and the ledger write
    block). A ledger failure is logged and the refusal still answered: nothing was done.
    """
    if not request.url.path.startswith("/v1/") or exc.http_status >= 500:
        return
    if isinstance(exc, AuthError) or getattr(request.state, "ledgered_error", None) is exc:
        return
    code, message = exc.code, exc.message
    gate: Gateway | None = getattr(request.app.state, "gateway", None)
    if gate is None:
        return

    def record() -> None:
        caller: Caller | None = getattr(request.state, "caller", None)
        if caller is None:  # the headers failed validation before ``current_caller`` ran
            try:
                principal = authenticate(request)
            except FaceLedgerError:
                return
            caller = Caller(
                principal,
                source="native",
                request_id=str(uuid.uuid4()),
                purpose=request.headers.get(PURPOSE_HEADER) or None,
                case_reference=request.headers.get(CASE_HEADER) or None,
            )
        collection_id = request.path_params.get("collection_id")
        gate.record_refusal(caller, route_operation(request), collection_id, code, message)

    try:
        await anyio.to_thread.run_sync(record)
    except FaceLedgerError as exc:
        logger.error("could not ledger a refused request (%s): %s", code, exc.message)
