"""``POST /``: the Rekognition JSON 1.1 endpoint that boto3, the AWS CLI and AWS SDKs call.

One request: read the body (capped) → verify its SigV4 signature against ``faceledger keys``
(the target, content type, purpose and case headers must be signed when sent; an exact replay,
to any server process, is refused: ``services/replays.py``) → find the operation from
``X-Amz-Target`` → check the principal's roles → validate the body against botocore's input
shape → run the operation's handler in a worker thread → answer ``application/x-amz-json-1.1``
with ``x-amzn-RequestId``.

Errors leave from one place (``error_response``) as ``{"__type": Code, "message": …}`` with the
code also in ``X-Amzn-ErrorType``; anything unexpected is logged with the request id and
answered as ``InternalServerError`` (500), never as a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from faceledger.api import run_blocking
from faceledger.api.access_log import note_caller
from faceledger.api.rekognition import dispatch, labels, operations, video
from faceledger.api.rekognition.dispatch import Context
from faceledger.api.rekognition.protocol import (
    CONTENT_TYPE,
    operation_model,
    parse_body,
    validate,
)
from faceledger.api.rekognition.replay import replay_key
from faceledger.api.rekognition.sigv4 import verify_sigv4
from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import FaceLedgerError, ImageTooLargeError, ReplayedRequestError
from faceledger.domain.principals import INSECURE_DEV_PRINCIPAL, Principal
from faceledger.services.gateway import Gateway
from faceledger.services.gateway_keys import Authentication

logger = logging.getLogger("faceledger.api.rekognition")

router = APIRouter()

# The dispatch table: every handler of the three handler modules, by operation name.
OPERATIONS = dispatch.table(operations, labels, video)
IMPLEMENTED: frozenset[str] = frozenset(OPERATIONS)

T = TypeVar("T")

# Why a search is made (a collection's policy can require both): AWS SDKs send these headers.
PURPOSE_HEADER = "x-faceledger-purpose"
CASE_HEADER = "x-faceledger-case"
# Headers the service acts on or records: a signature must cover each one that arrives.
SIGNED_IF_PRESENT = ("x-amz-target", "content-type", PURPOSE_HEADER, CASE_HEADER)
# A refused request's operation name, as recorded, is cut to this length.
MAX_OPERATION_CHARS = 128
# JSON, base64 and the other members around the images a request may carry (CompareFaces: 2).
JSON_OVERHEAD_BYTES = 64 * 1024
IMAGES_PER_REQUEST = 2
# An over-limit body is read and discarded up to this many bytes before the error is sent.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


def body_limit(settings: Settings) -> int:
    """Largest accepted request body: two base64 images at the byte limit, plus JSON."""
    return IMAGES_PER_REQUEST * 4 * math.ceil(settings.max_image_bytes / 3) + JSON_OVERHEAD_BYTES


def error_response(exc: FaceLedgerError, request_id: str) -> Response:
    """The one place Rekognition errors are serialised."""
    body = json.dumps({"__type": exc.code, "message": exc.message})
    return Response(
        body,
        status_code=exc.http_status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "X-Amzn-ErrorType": exc.code},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (after draining the rest) one larger than ``limit``."""
    declared = request.headers.get("content-length", "")
    chunks: list[bytes] = []
    total = 0
    too_large = declared.isdigit() and int(declared) > limit
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            too_large = True
        if too_large:
            if total > DRAIN_LIMIT_BYTES:
                break
            continue
        chunks.append(chunk)
    if too_large:
        size = int(declared) if declared.isdigit() else total
        raise ImageTooLargeError(
            f"The request body is {size:,} bytes; at most {limit:,} are accepted "
            f"(images of at most {request.app.state.settings.max_image_bytes:,} bytes each, "
            "base64-encoded). Send a smaller or more compressed JPEG or PNG."
        )
    return b"".join(chunks)


def caller_of(request: Request, principal: Principal, request_id: str) -> Caller:
    """Who the request is from, and why (the purpose and case headers, signed when sent)."""
    return Caller(
        principal,
        source="rekognition",
        request_id=request_id,
        purpose=request.headers.get(PURPOSE_HEADER) or None,
        case_reference=request.headers.get(CASE_HEADER) or None,
    )


def _record_replay(
    request: Request, principal: Principal, body: bytes, request_id: str, exc: FaceLedgerError
) -> None:
    """Ledger a replay's refusal under the key that signed the request (everything the record
    names, the target, purpose, case and body, is covered by that signature)."""
    try:
        params = json.loads(body)
    except (ValueError, RecursionError):
        params = None
    gate: Gateway = request.app.state.gateway
    operation = _refused_operation(request.headers.get("x-amz-target"))
    caller = caller_of(request, principal, request_id)
    gate.record_refusal(caller, operation, collection_hint(params), exc.code, exc.message)


def authenticate(request: Request, body: bytes, settings: Settings, request_id: str) -> Principal:
    """The principal whose access key signed this request (SigV4), for this request only: a
    replay, to this or any other server process, is refused (and ledgered the first time it
    comes back) before the key's rate limit. Blocking (the key store): run it in a thread."""
    if settings.insecure_accept_any_signature:
        return INSECURE_DEV_PRINCIPAL
    now = datetime.now(UTC)
    keys: Authentication = request.app.state.keys

    def once(principal: Principal, signature: str, signed_at: datetime) -> None:
        try:
            keys.admit_signature(replay_key(signature, request.headers), signed_at)
        except ReplayedRequestError as exc:
            if exc.first:
                _record_replay(request, principal, body, request_id, exc)
            raise

    principal = verify_sigv4(
        method=request.method,
        # the path as sent (still percent-encoded), which is what the client signed
        path=request.scope.get("raw_path", b"/").decode("latin-1") or "/",
        query_string=request.url.query,
        headers=request.headers,
        body=body,
        credentials=keys.credentials,
        region=settings.region,
        service="rekognition",
        now=now,
        max_skew_seconds=settings.max_clock_skew_seconds,
        must_sign_if_present=SIGNED_IF_PRESENT,
        on_verified=once,
    )
    keys.admit(principal.key_id)  # rate limit, once the signature holds
    return principal


def _recorded(
    gate: Gateway,
    caller: Caller,
    operation: str,
    collection_id: str | None,
    step: Callable[[], T],
) -> T:
    """``step()``, ledgering its refusal (an ``InvalidParameterException``…) for ``caller``."""
    try:
        return step()
    except FaceLedgerError as exc:
        gate.record_refusal(caller, operation, collection_id, exc.code, exc.message)
        raise


def collection_hint(params: Any) -> str | None:
    """The collection a request names (``CollectionId``, a collection ``ResourceArn``, a stream
    processor's ``Settings.FaceSearch.CollectionId``), read before validation so that a
    refusal's record carries it; ``None`` when it names none."""
    if not isinstance(params, dict):
        return None
    collection_id = params.get("CollectionId")
    if isinstance(collection_id, str):
        return collection_id
    arn = params.get("ResourceArn")
    if isinstance(arn, str) and ":collection/" in arn:
        return arn.partition(":collection/")[2]
    search = params.get("Settings")
    search = search.get("FaceSearch") if isinstance(search, dict) else None
    if isinstance(search, dict) and isinstance(search.get("CollectionId"), str):
        return str(search["CollectionId"])  # CreateStreamProcessor
    return None


def _refused_operation(target: str | None) -> str:
    """The operation name to record for a target that names no implemented operation."""
    name = (target or "").rpartition(".")[2]
    return name[:MAX_OPERATION_CHARS] or "UnknownOperation"


@router.post("/", include_in_schema=False)
async def rekognition(request: Request) -> Response:
    request_id = str(uuid.uuid4())
    settings: Settings = request.app.state.settings
    target = request.headers.get("x-amz-target")
    try:
        body = await read_body(request, body_limit(settings))
        principal = await anyio.to_thread.run_sync(
            authenticate, request, body, settings, request_id
        )
        note_caller(request.state, principal.name, request_id)  # for the access log
        gate: Gateway = request.app.state.gateway
        caller = caller_of(request, principal, request_id)
        context = Context(settings=settings, gate=gate, caller=caller)

        def handle() -> dict[str, Any]:
            # Once the caller is known, every refusal is ledgered: an unknown operation, a body
            # that is not JSON, the roles (before any image is fetched), the input shape.
            operation = _recorded(
                gate,
                caller,
                _refused_operation(target),
                None,
                lambda: operation_model(target, IMPLEMENTED),
            )
            raw = _recorded(gate, caller, operation.name, None, lambda: parse_body(body))
            collection_id = collection_hint(raw)
            gate.authorise(caller, operation.name, collection_id=collection_id)
            params = _recorded(
                gate, caller, operation.name, collection_id, lambda: validate(operation, raw)
            )
            # (the same response headers; the operation and collection for the handler's own
            # refusals)
            named = dataclasses.replace(
                context, operation=operation.name, collection_id=collection_id
            )
            return OPERATIONS[operation.name](named, params)

        result: dict[str, Any] = await run_blocking(request, handle)
    except FaceLedgerError as exc:
        if exc.http_status >= 500:
            logger.error("request %s (%s) failed: %s: %s", request_id, target, exc.code, exc)
        return error_response(exc, request_id)
    except Exception:
        logger.exception("request %s (%s) failed", request_id, target)
        return error_response(
            FaceLedgerError(f"internal error; see the server log (request id {request_id})"),
            request_id,
        )
    return Response(
        json.dumps(result, separators=(",", ":")),
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, **context.headers},
    )
