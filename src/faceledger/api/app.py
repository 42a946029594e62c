"""The app factory: ``create_app(settings)`` → FastAPI, with a lifespan and one error format.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``:

* a ``FaceLedgerError`` with its ``code`` and ``http_status`` (one handler);
* request validation problems (missing field, bad ``max_faces``) as 400
  ``InvalidParameterException``, all problems in one sentence;
* other HTTP errors (404, 405, unparsable multipart) with a code derived from the status;
* anything else as 500 ``InternalServerError`` with a request id; the traceback goes to the
  server log, never to the client.

Request bodies are capped per route before they are parsed (see ``BodySizeLimitMiddleware``);
native JSON bodies are capped in size and nesting depth (``json_limits.JsonLimitsMiddleware``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http import HTTPStatus
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from faceledger import __version__
from faceledger.api.access_log import AccessLogMiddleware
from faceledger.api.capped_body import read_capped, replaying
from faceledger.api.health import router as health_router
from faceledger.api.json_limits import JsonLimitsMiddleware
from faceledger.api.metrics import install_metrics, serve_port
from faceledger.api.native.auth import PRINCIPAL_STATE, GatewayDep, record_adapter_refusal
from faceledger.api.native.collections import router as native_collections_router
from faceledger.api.native.labels import router as native_labels_router
from faceledger.api.native.leads import router as native_leads_router
from faceledger.api.native.routes import IMAGES_PER_REQUEST
from faceledger.api.native.routes import router as native_router
from faceledger.api.native.video import router as native_video_router
from faceledger.api.pre_auth import PathCheck, PreReadAuthMiddleware
from faceledger.api.rekognition.pre_auth import check_before_body
from faceledger.api.rekognition.router import error_response as rekognition_error_response
from faceledger.api.rekognition.router import router as rekognition_router
from faceledger.api.transport import HstsMiddleware
from faceledger.api.web import mount_web
from faceledger.config import Settings
from faceledger.domain.errors import (
    AccessDeniedError,
    AuthError,
    CropKeyError,
    FaceLedgerError,
    ImageTooLargeError,
    InvalidParameterError,
    LedgerError,
)
from faceledger.services.container import build_gateway
from faceledger.services.gateway import Gateway
from faceledger.services.lifecycle import observe_stages, record_shutdown
from faceledger.services.private_files import make_installation_private
from faceledger.store.migrations import SchemaNotCurrentError

logger = logging.getLogger("faceledger.api")

# Room for multipart boundaries, part headers and small form fields, on top of the images.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# An over-limit body is read and discarded up to this many bytes before the error is sent, so
# that the client, still sending, reads the response instead of a connection reset.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


INSECURE_WARNING = (
    "!" * 78,
    "INSECURE: FACELEDGER_INSECURE_ACCEPT_ANY_SIGNATURE is on. Any signature and any bearer",
    "token is accepted and every caller is an admin. Never run this outside development.",
    "!" * 78,
)


# -- error serialisation (the one place) -----------------------------------------------------
def error_response(
    code: str, message: str, status: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _native_status(exc: FaceLedgerError) -> tuple[int, dict[str, str] | None]:
    """The native API's status (and headers) for an error.

    Rekognition answers 400 for authentication and authorisation errors (botocore expects
    it); the native API answers as HTTP does: 401 with a ``WWW-Authenticate: Bearer``
    challenge for an ``AuthError``, 403 for ``AccessDeniedError``.
    """
    if isinstance(exc, AuthError):
        return 401, {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, AccessDeniedError):
        return 403, None
    return exc.http_status, None


async def _faceledger_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FaceLedgerError)
    if exc.http_status >= 500:
        logger.error(
            "%s %s failed: %s: %s", request.method, request.url.path, exc.code, exc.message
        )
    await record_adapter_refusal(request, exc)  # (a refusal by the route itself, on /v1)
    status, headers = _native_status(exc)
    return error_response(exc.code, exc.message, status, headers=headers)


def _describe_validation_error(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "form")]
    name = ".".join(loc) or "request"
    if error.get("type") == "missing":
        return f"'{name}' is required"
    msg = str(error.get("msg", "is invalid"))
    msg = msg[:1].lower() + msg[1:]
    text = f"'{name}': {msg}"
    value = error.get("input")
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        text += f" (got {shown})"
    return text


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = list(dict.fromkeys(_describe_validation_error(e) for e in exc.errors()))
    message = "Invalid request: " + "; ".join(problems) + "."
    await record_adapter_refusal(request, InvalidParameterError(message))
    return error_response("InvalidParameterException", message, 400)


_HTTP_CODES = {400: "InvalidParameterException", 413: "ImageTooLargeException"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    code = _HTTP_CODES.get(exc.status_code, phrase.title().replace(" ", "").replace("-", ""))
    message = str(exc.detail) if exc.detail else phrase
    return error_response(code, message, exc.status_code, headers=exc.headers)


# -- ASGI middleware -------------------------------------------------------------------------
class InternalErrorMiddleware:
    """Turns any unhandled exception into a 500 JSON error with a request id (logged once)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            request_id = uuid.uuid4().hex[:16]
            logger.exception(
                "request %s: %s %s failed", request_id, scope.get("method"), scope.get("path")
            )
            if started:
                raise
            response = error_response(
                "InternalServerError",
                f"internal error; see the server log (request id {request_id})",
                500,
                headers={"X-Request-ID": request_id},
            )
            await response(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuses request bodies larger than a per-path cap before anything parses them.

    A declared ``Content-Length`` over the cap is refused at once; a chunked body is buffered
    up to the cap (never more) and refused when it goes over. Either way the excess is read
    and discarded (up to ``DRAIN_LIMIT_BYTES``) before the 400 ``ImageTooLargeException`` is
    sent, unless the client asked ``Expect: 100-continue`` and so has sent nothing yet.
    ``limits`` (and ``what``, the wording of the refusal) are keyed by exact paths or by path
    templates such as ``/v1/collections/{collection_id}/faces``, where each ``{name}`` matches
    one non-empty path segment. Paths matching no key pass through untouched.
    """

    def __init__(self, app: ASGIApp, limits: Mapping[str, int], what: Mapping[str, str]) -> None:
        self.app = app
        self.limits = dict(limits)
        self.what = dict(what)
        self._templates = [
            (re.compile(self._template_regex(key)), key) for key in self.limits if "{" in key
        ]

    @staticmethod
    def _template_regex(template: str) -> str:
        """A regex for a path template: each ``{name}`` is one path segment, the rest literal."""
        parts = re.split(r"\{[^{}/]*\}", template)
        return "[^/]+".join(re.escape(part) for part in parts)

    def _key(self, path: str) -> str | None:
        """The ``limits`` key that ``path`` matches: itself, else the first matching template."""
        if path in self.limits:
            return path
        return next((key for pattern, key in self._templates if pattern.fullmatch(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._key(scope.get("path", "")) if scope["type"] == "http" else None
        if key is None:
            await self.app(scope, receive, send)
            return
        limit = self.limits[key]
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit():
            size = int(declared)
            if size <= limit:
                await self.app(scope, receive, send)
                return
            if headers.get("expect", "").lower() != "100-continue":
                await self._drain(receive, 0)
            await self._refuse(scope, receive, send, key, size, limit)
            return
        # No usable Content-Length (chunked): buffer up to the cap, then replay.
        read = await read_capped(receive, limit)
        if read.disconnected:
            return
        if read.body is None:
            total, complete = read.total, True
            if read.more:
                total, complete = await self._drain(receive, total)
            await self._refuse(scope, receive, send, key, total, limit, at_least=not complete)
            return
        await self.app(scope, replaying(read.body, receive), send)

    @staticmethod
    async def _drain(receive: Receive, total: int) -> tuple[int, bool]:
        """Read and discard the rest of the body; (bytes seen, whether the body ended)."""
        while total <= DRAIN_LIMIT_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return total, False
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return total, True
        return total, False

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        size: int,
        limit: int,
        *,
        at_least: bool = False,
    ) -> None:
        what = self.what.get(key, "the upload")
        exc = ImageTooLargeError(
            f"The request body is {'at least ' if at_least else ''}{size:,} bytes; "
            f"this endpoint accepts at most {limit:,} bytes ({what}). "
            "Send a smaller or more compressed JPEG or PNG."
        )
        response = error_response(
            exc.code, exc.message, exc.http_status, headers={"Connection": "close"}
        )
        await response(scope, receive, send)


# -- authentication before the body (see ``pre_auth``) ---------------------------------------
async def _native_pre_auth(scope: Scope) -> Response | None:
    """The bearer key of a native request; its principal is kept for ``native.auth``."""
    state = scope["app"].state
    if state.settings.insecure_accept_any_signature:
        return None
    authorization = Headers(scope=scope).get("authorization")
    try:
        principal = await anyio.to_thread.run_sync(state.keys.authenticate_bearer, authorization)
    except FaceLedgerError as exc:
        status, headers = _native_status(exc)
        return error_response(exc.code, exc.message, status, headers=headers)
    scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
    return None


async def _rekognition_pre_auth(scope: Scope) -> Response | None:
    """What SigV4 shows before the body: a well-formed Authorization naming an active key."""
    state = scope["app"].state
    if state.settings.insecure_accept_any_signature:
        return None
    try:
        await anyio.to_thread.run_sync(
            check_before_body, Headers(scope=scope), state.keys.credentials
        )
    except FaceLedgerError as exc:
        return rekognition_error_response(exc, str(uuid.uuid4()))
    return None


PRE_READ_CHECKS = (
    PathCheck(lambda path: path.startswith("/v1/"), _native_pre_auth),
    PathCheck(lambda path: path == "/", _rekognition_pre_auth),
)


async def _maintenance(gate: Gateway, every_s: float) -> None:
    """Retention purges and index snapshots, every ``every_s`` seconds, off the event loop."""
    while True:
        await anyio.sleep(every_s)
        try:
            done = await anyio.to_thread.run_sync(gate.maintain)
            if done["purged"]:
                logger.info("retention purged faces: %s", done["purged"])
        except Exception:
            logger.exception("maintenance run failed (will retry)")


# -- the app ---------------------------------------------------------------------------------
async def _open_gateway(settings: Settings) -> Gateway:
    """The gateway, once the installation is private, the database schema current and the
    ledger verified since its last checkpoint; start-up is refused otherwise."""
    # Before anything is created: new files 0600, and an older installation tightened.
    await anyio.to_thread.run_sync(make_installation_private, settings)
    # One schema check (a database not at this release's schema is refused before anything
    # touches it) and one pool per process: the container opens each backend once.
    try:
        gate = build_gateway(settings)
    except SchemaNotCurrentError as exc:
        logger.error("refusing to start: %s", exc.message)
        raise
    try:  # a ledger that does not verify since its last checkpoint: refuse to serve
        await anyio.to_thread.run_sync(gate.open_ledger)
        # kept face crops whose key is missing could never be shown: refuse to serve too
        await anyio.to_thread.run_sync(gate.check_crop_key)
    except (LedgerError, CropKeyError) as exc:
        logger.error("refusing to start: %s", exc.message)
        gate.close()
        raise
    return gate


def _start_metrics(app: FastAPI, gate: Gateway, settings: Settings) -> Any:
    """Observe the gateway's stages; returns the metrics port's server (None without one)."""
    metrics = getattr(app.state, "metrics", None)
    if metrics is None:
        return None
    observe_stages(gate, metrics.observe_stage)
    if settings.metrics != "port":
        return None
    return serve_port(metrics, settings.metrics_host, settings.metrics_port)


async def _load_models(gate: Gateway) -> None:
    """Verify and load the pack now so the first request is fast; a broken pack stops start-up."""
    health = gate.health()
    logger.info("loading model pack %r", health["pack"])
    await anyio.to_thread.run_sync(gate.load_models)
    logger.info("model pack %r loaded (%s)", health["pack"], health["face_model_version"])


async def _stop(app: FastAPI, gate: Gateway, settings: Settings, metrics_server: Any) -> None:
    """Graceful stop: refuse new work, record ``ServerShutdown``, close the gateway."""
    app.state.stopping = True
    if metrics_server is not None:
        metrics_server.shutdown()
    done = await anyio.to_thread.run_sync(
        lambda: record_shutdown(gate, grace_s=settings.shutdown_grace_seconds)
    )
    logger.info("shutting down: %s", done)
    await anyio.to_thread.run_sync(gate.close)
    await anyio.to_thread.run_sync(gate.close_models)


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: open and load everything at start, stop gracefully at the end."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gate = await _open_gateway(settings)
        app.state.gateway = gate
        app.state.keys = gate.authentication
        if settings.insecure_accept_any_signature:
            for line in INSECURE_WARNING:
                logger.warning(line)
        app.state.engine_limiter = anyio.CapacityLimiter(settings.workers)
        metrics_server = _start_metrics(app, gate, settings)
        await _load_models(gate)
        gate.start_video_workers()  # and re-queue jobs a previous run left unfinished
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_maintenance, gate, settings.maintenance_seconds)
                try:
                    yield
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            await _stop(app, gate, settings, metrics_server)

    return lifespan


def _document_400s(app: FastAPI) -> None:
    """FastAPI documents a 422 HTTPValidationError for every route with parameters, but request
    validation problems leave as 400 InvalidParameterException (``_validation_error``). The
    spec drops those 422s (and their schemas) and documents the 400 ErrorResponse wherever a
    route does not already. FastAPI caches the spec it builds, so this edits it in place;
    the edit is idempotent, and FastAPI rebuilds (and this re-edits) when routes change."""
    generate_openapi = app.openapi

    def openapi_without_422() -> dict[str, Any]:
        spec = generate_openapi()
        schemas = spec.get("components", {}).get("schemas", {})
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is None or "400" in responses:
                    continue
                responses["400"] = {
                    "description": "InvalidParameterException: a parameter is missing or invalid."
                }
                if "ErrorResponse" in schemas:
                    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
                    responses["400"]["content"] = {"application/json": {"schema": error_ref}}
        for name in ("HTTPValidationError", "ValidationError"):  # only the 422s used them
            schemas.pop(name, None)
        return spec

    app.openapi = openapi_without_422  # type: ignore[method-assign]


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The middleware stack; each ``add_middleware`` wraps the ones before it, so the last
    added runs first (see docs/ARCHITECTURE.md for the order)."""
    max_bytes = settings.max_image_bytes
    limits = {
        path: count * max_bytes + MULTIPART_OVERHEAD_BYTES
        for path, count in IMAGES_PER_REQUEST.items()
    }
    what = {
        path: f"{count} image{'s' if count > 1 else ''} of at most {max_bytes:,} bytes"
        for path, count in IMAGES_PER_REQUEST.items()
    }
    app.add_middleware(
        JsonLimitsMiddleware,
        applies=lambda path: path.startswith("/v1/"),
        respond=lambda exc: error_response(exc.code, exc.message, exc.http_status),
    )
    app.add_middleware(BodySizeLimitMiddleware, limits=limits, what=what)
    app.add_middleware(PreReadAuthMiddleware, checks=PRE_READ_CHECKS)  # before any body
    app.add_middleware(InternalErrorMiddleware)  # catches the rest
    app.add_middleware(AccessLogMiddleware)  # one structured record per request
    install_metrics(app, settings.metrics, settings.metrics_key)  # counts the 500s too
    app.add_middleware(HstsMiddleware, max_age_seconds=settings.hsts_seconds)
    if settings.trusted_proxies:  # outermost: the scheme and client are settled first
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FaceLedger HTTP app. Nothing loads here; the lifespan loads the default pack.

    ``settings`` defaults to ``Settings()`` (the ``FACELEDGER_*`` environment).
    """
    settings = settings if settings is not None else Settings()
    app = FastAPI(
        title="FaceLedger",
        version=__version__,
        summary="Self-hosted face detection, comparison and search with an audit ledger.",
        description=(
            "Native REST API. Boxes and landmarks are in pixels of the orientation-corrected "
            "image; `similarity` is the model pack's calibrated 0–100 Similarity. Errors are "
            '`{"error": {"code": ..., "message": ...}}`.'
        ),
        lifespan=_lifespan(settings),
    )
    app.state.settings = settings
    _document_400s(app)
    app.add_exception_handler(FaceLedgerError, _faceledger_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    _add_middleware(app, settings)

    @app.get("/healthz", tags=["health"], summary="Liveness and model status")
    async def healthz(gate: GatewayDep) -> dict[str, Any]:
        """`status` is always "ok" when the server answers; `loaded` says whether the model
        pack is in memory."""
        return {"status": "ok", **gate.health()}

    app.include_router(health_router)
    app.include_router(native_router)
    app.include_router(native_collections_router)
    app.include_router(native_labels_router)
    app.include_router(native_video_router)
    app.include_router(native_leads_router)
    app.include_router(rekognition_router)
    mount_web(app)  # the web app under /app (after the error handlers it wraps)
    return app
