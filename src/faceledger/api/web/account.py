"""Sign-in, sign-out and ``GET /app`` (to the first page the signed-in roles may use).

The sign-in form takes an access key id and its secret (as ``faceledger keys create`` prints
them; ``<key id>:<secret>`` pasted into the first field works too). The server checks them as
the native API checks a bearer token (``KeyService.authenticate_bearer``), starts a
server-side session and sets only its random id in the browser (see ``sessions``). The form,
which has no session yet, carries a CSRF token signed by the server (``sessions.LoginCsrf``)
that must also match a ``SameSite=Strict`` cookie.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.api import run_blocking
from faceledger.api.web.sessions import (
    COOKIE_PATH,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginCsrf,
)
from faceledger.api.web.views import (
    LoginRequired,
    Problem,
    WebUser,
    check_body_size,
    describe_error,
    first_page,
    read_form,
    render,
    session_of,
    sessions,
    signed_in,
)
from faceledger.domain.errors import AuthError, FaceLedgerError
from faceledger.domain.principals import INSECURE_DEV_PRINCIPAL, Principal

router = APIRouter()

MAX_KEY_FIELD_CHARS = 256
# What the sign-in page may say when it is sent there (fixed texts: a link cannot make the
# page say anything else).
LOGIN_MESSAGES = {
    "signin": "Sign in to continue.",
    "signed-out": "You are signed out.",
    "expired": "Your session ended. Sign in again.",
    "revoked": "Your access key is no longer valid. Sign in with another key.",
}


def login_csrf(request: Request) -> LoginCsrf:
    """The process's sign-in CSRF signer (``mount_web`` creates it)."""
    signer: LoginCsrf = request.app.state.login_csrf
    return signer


def _secure(request: Request) -> bool:
    """Cookies are ``Secure`` over HTTPS (the server's TLS, or a trusted proxy's)."""
    return request.url.scheme == "https" or request.app.state.settings.tls


def _login_page(
    request: Request, *, status: int = 200, problem: Problem | None = None, key_id: str = ""
) -> HTMLResponse:
    """The sign-in form; after a refusal it keeps the key id typed (never the secret)."""
    token = login_csrf(request).issue()
    response = render(
        request,
        "login.html",
        None,
        status=status,
        csrf_token=token,
        problem=problem,
        key_id=key_id,
        message=LOGIN_MESSAGES.get(request.query_params.get("m", ""), ""),
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login", response_model=None)
async def login_page(request: Request) -> Response:
    if session_of(request) is not None:  # already signed in
        return RedirectResponse("/app", status_code=303)
    return _login_page(request)


def _verify(request: Request, key_id: str, secret: str) -> Principal:
    """The key's principal, checked as a native bearer token is (``auth.authenticate``)."""
    if request.app.state.settings.insecure_accept_any_signature:
        return INSECURE_DEV_PRINCIPAL
    principal: Principal = request.app.state.keys.authenticate_bearer(f"Bearer {key_id}:{secret}")
    return principal


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    check_body_size(request, 0)
    form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    token = form.get("csrf_token")
    if not login_csrf(request).valid(
        token if isinstance(token, str) else None, request.cookies.get(LOGIN_CSRF_COOKIE)
    ):
        problem = Problem("This form has expired", "The sign-in form expired; please try again.")
        return _login_page(request, status=403, problem=problem)
    key_id = str(form.get("key_id") or "").strip()[:MAX_KEY_FIELD_CHARS]
    secret = str(form.get("secret") or "").strip()[:MAX_KEY_FIELD_CHARS]
    if not secret and ":" in key_id:  # "<key id>:<secret>" pasted into one field
        key_id, _, secret = key_id.partition(":")
    if not key_id or not secret:
        problem = Problem("Not signed in", "Enter your access key id and its secret.")
        return _login_page(request, status=400, problem=problem, key_id=key_id)
    try:
        principal = await run_blocking(request, _verify, request, key_id, secret)
    except AuthError:
        problem = Problem(
            "Not signed in",
            "That access key id and secret were not accepted. Check both and try again.",
        )
        return _login_page(request, status=401, problem=problem, key_id=key_id)
    except FaceLedgerError as exc:  # e.g. ThrottlingException
        return _login_page(request, status=429, problem=describe_error(exc), key_id=key_id)
    sessions(request).drop(request.cookies.get(SESSION_COOKIE))
    session = sessions(request).create(principal)
    page = first_page(principal)
    response = RedirectResponse(page.path if page else "/app/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.session_id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request, user: Annotated[WebUser, Depends(signed_in)]) -> Response:
    await read_form(request, user)
    sessions(request).drop(user.session.session_id)
    response = RedirectResponse("/app/login?m=signed-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


@router.get("", response_model=None)
@router.get("/", response_model=None, include_in_schema=False)
async def home(request: Request, user: Annotated[WebUser, Depends(signed_in)]) -> Response:
    page = first_page(user.principal)
    if page is None:
        return render(request, "home.html", user)
    return RedirectResponse(page.path, status_code=303)


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    """Where ``LoginRequired`` sends the browser (the session cookie is cleared)."""
    response = RedirectResponse(f"/app/login?m={exc.reason}", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
