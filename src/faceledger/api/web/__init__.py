"""The field web app under ``/app``: sign-in, search, compare, collections, streams, ledger.

``mount_web(app)`` (called by ``create_app``) adds the pages, the static assets at
``/app/static`` and the handlers that turn errors on ``/app`` paths into readable pages (the
API's JSON errors elsewhere are untouched). Pages call the gateway
(``app.state.gateway``) server-side with source "web"; sessions are server-side
(``sessions.SessionStore`` on ``app.state.web_sessions``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from faceledger.api.web import account, ledger, manage, review, search, streams
from faceledger.api.web.sessions import LoginCsrf, SessionStore
from faceledger.api.web.views import (
    STATIC_DIR,
    LoginRequired,
    Problem,
    WebRefusal,
    describe_error,
    error_status,
    render,
    session_of,
)
from faceledger.domain.errors import FaceLedgerError

__all__ = ["mount_web"]

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]


def _on_web_path(request: Request) -> bool:
    path = request.url.path
    return path == "/app" or path.startswith("/app/")


def _error_page(request: Request, problem: Problem, status: int) -> Response:
    return render(request, "error.html", session_of(request), status=status, problem=problem)


def mount_web(app: FastAPI) -> None:
    """Add the web app to ``app`` (after the API's own error handlers are registered)."""
    app.state.web_sessions = SessionStore()
    app.state.login_csrf = LoginCsrf()
    app.mount("/app/static", StaticFiles(directory=STATIC_DIR), name="web-static")
    for module in (account, search, manage, streams, review, ledger):
        app.include_router(module.router, prefix="/app", include_in_schema=False)

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return account.login_redirect(request, exc)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebRefusal)
        return _error_page(request, Problem(exc.title, exc.message), exc.status)

    api_error: Handler | None = app.exception_handlers.get(FaceLedgerError)
    api_http_error: Handler | None = app.exception_handlers.get(StarletteHTTPException)

    async def faceledger_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FaceLedgerError)
        if _on_web_path(request) or api_error is None:
            return _error_page(request, describe_error(exc), error_status(exc))
        return await _call(api_error, request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _on_web_path(request) or api_http_error is None:
            title = "Not found" if exc.status_code == 404 else "That could not be done"
            message = "There is no such page." if exc.status_code == 404 else str(exc.detail or "")
            return _error_page(request, Problem(title, message), exc.status_code)
        return await _call(api_http_error, request, exc)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(WebRefusal, refused)
    app.add_exception_handler(FaceLedgerError, faceledger_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


async def _call(handler: Handler, request: Request, exc: Exception) -> Response:
    response = handler(request, exc)
    if isinstance(response, Response):
        return response
    return await response
