"""What every web page shares: templates, the signed-in user, navigation, forms and errors.

Pages are Jinja2 templates rendered on the server (``templates/``, autoescaped); the only
assets are ``static/app.css``, ``static/app.js`` and one placeholder image, served by the app.
Every verb goes through the gateway (``app.state.gateway``) with a ``Caller`` whose
source is "web" (``WebUser.caller``), as the native API calls it.

Errors never reach the browser as JSON: a ``FaceLedgerError`` (the gateway's refusals, bad
images, missing resources) is shown as a titled sentence on the page (``describe_error``);
``LoginRequired`` sends the browser to the sign-in page; ``WebRefusal`` is a page refused
before any verb runs (a role that may not use it, a stale form).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi import UploadFile as ApiUploadFile
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData, UploadFile

from faceledger.api.native.routes import read_upload
from faceledger.api.web.sessions import (
    SESSION_COOKIE,
    SessionStore,
    WebSession,
    same_token,
)
from faceledger.domain.audit import Caller
from faceledger.domain.errors import (
    AuthError,
    FaceLedgerError,
    ImageTooLargeError,
    InvalidParameterError,
)
from faceledger.domain.principals import Principal
from faceledger.inference.calibration import Calibration

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
# Room for multipart boundaries, part headers and the small text fields of a form.
FORM_OVERHEAD_BYTES = 64 * 1024
TEXT_FIELD_MAX_BYTES = 64 * 1024

# Served with every page: nothing from elsewhere, no inline script or style; images may be
# data: (probe previews rendered by the server) or blob: (the photo being chosen, in-browser).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

MATCH_NOTICE = "A match is a lead for human review, not an identification."


# -- pages and who may use them --------------------------------------------------------------
@dataclass(frozen=True)
class Page:
    """A top-level page, offered to principals whose roles allow any of ``operations``."""

    key: str
    title: str
    path: str
    operations: tuple[str, ...]

    def allows(self, principal: Principal) -> bool:
        return any(principal.may(op) for op in self.operations)


PAGES: tuple[Page, ...] = (
    Page("search", "Search", "/app/search", ("SearchFacesByImage",)),
    Page("compare", "Compare", "/app/compare", ("CompareFaces",)),
    Page("collections", "Collections", "/app/collections", ("CreateCollection", "IndexFaces")),
    Page(
        "streams",
        "Streams",
        "/app/streams",
        ("SearchFacesByImage", "CreateStreamProcessor", "ListStreamProcessors"),
    ),
    # the ledger before the review queue: an auditor (who may read leads) starts at the ledger
    Page("ledger", "Ledger", "/app/ledger", ("ReadLedger",)),
    Page("review", "Review", "/app/review", ("ReviewLead", "ListLeads")),
)
PAGES_BY_KEY = {page.key: page for page in PAGES}


class LoginRequired(Exception):
    """No live session: the browser goes to the sign-in page, which says why (``reason``: a
    key of ``account.LOGIN_MESSAGES``)."""

    def __init__(self, reason: str = "signin") -> None:
        super().__init__(reason)
        self.reason = reason


class WebRefusal(Exception):
    """A page or form refused before any verb ran, shown as a readable page."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass(frozen=True)
class WebUser:
    """The signed-in principal of a request and its session (for the CSRF token)."""

    session: WebSession

    @property
    def principal(self) -> Principal:
        return self.session.principal

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    def caller(self, purpose: str | None = None, case_reference: str | None = None) -> Caller:
        """The ``Caller`` the gateway gets: source "web", a new request id."""
        return Caller(
            self.principal,
            source="web",
            request_id=str(uuid.uuid4()),
            purpose=purpose or None,
            case_reference=case_reference or None,
        )

    def may(self, operation: str) -> bool:
        return self.principal.may(operation)


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.web_sessions
    return store


def session_of(request: Request) -> WebUser | None:
    """The request's live session, without re-checking its key (for error pages)."""
    session = sessions(request).get(request.cookies.get(SESSION_COOKIE))
    return WebUser(session) if session is not None else None


def signed_in(request: Request) -> WebUser:
    """A dependency: the signed-in user, whose access key must still be active.

    A plain function, so FastAPI runs it in a worker thread (it reads the key store). Each
    request spends one of the key's rate-limit tokens, as a native API request does.
    """
    store = sessions(request)
    session = store.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired("expired" if SESSION_COOKIE in request.cookies else "signin")
    if not request.app.state.settings.insecure_accept_any_signature:
        try:
            request.app.state.keys.admit(session.principal.key_id)
        except AuthError:
            store.drop_key(session.principal.key_id)
            raise LoginRequired("revoked") from None
    return WebUser(session)


UserDep = Annotated[WebUser, Depends(signed_in)]


def for_page(key: str) -> Callable[[WebUser], WebUser]:
    """A dependency: the signed-in user, refused (403) when their roles may not use page
    ``key``. The gateway would refuse each verb anyway; this refuses the page itself."""
    page = PAGES_BY_KEY[key]

    def check(user: UserDep) -> WebUser:
        if not page.allows(user.principal):
            roles = ", ".join(user.principal.roles) or "none"
            raise WebRefusal(
                403,
                "Not allowed",
                f"Your access key (principal {user.principal.name}, roles: {roles}) may not "
                f"use {page.title}.",
            )
        return user

    return check


def first_page(principal: Principal) -> Page | None:
    return next((page for page in PAGES if page.allows(principal)), None)


# -- rendering -------------------------------------------------------------------------------
@functools.cache
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = utc
    env.filters["utc_short"] = utc_short
    env.filters["thousands"] = lambda n: f"{n:,}"
    return env


def utc(epoch_s: float | None) -> str:
    if epoch_s is None:
        return ""
    return datetime.fromtimestamp(float(epoch_s), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def utc_short(epoch_s: float | None) -> str:
    """For a column headed "(UTC)": no zone suffix, so the time stays on one line."""
    if epoch_s is None:
        return ""
    return datetime.fromtimestamp(float(epoch_s), UTC).strftime("%Y-%m-%d %H:%M:%S")


def render(
    request: Request,
    template: str,
    user: WebUser | None,
    *,
    status: int = 200,
    active: str = "",
    **context: Any,
) -> HTMLResponse:
    """A page from ``template`` with the navigation the user's roles allow."""
    nav = [page for page in PAGES if user is not None and page.allows(user.principal)]
    html = (
        templates()
        .get_template(template)
        .render(
            user=user,
            nav=nav,
            active=active,
            csrf_token=user.csrf_token if user is not None else context.pop("csrf_token", ""),
            notice=MATCH_NOTICE,
            max_image_bytes=request.app.state.settings.max_image_bytes,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


# -- errors ----------------------------------------------------------------------------------
ERROR_TITLES: dict[str, str] = {
    "AccessDeniedException": "Not allowed",
    "InvalidImageFormatException": "That file is not a usable image",
    "ImageTooLargeException": "That image is too large",
    "InvalidParameterException": "That could not be done",
    "ResourceNotFoundException": "Not found",
    "ResourceAlreadyExistsException": "Already exists",
    "ConflictException": "Already exists",
    "ThrottlingException": "Too many requests",
    "InvalidPaginationTokenException": "That page link is no longer valid",
    "ServiceQuotaExceededException": "Limit reached",
}


@dataclass(frozen=True)
class Problem:
    """An error as a person reads it: a title, a sentence, and the API's code (small print)."""

    title: str
    message: str
    code: str = ""


def error_status(exc: FaceLedgerError) -> int:
    """The page's status for an error: the error's own 4xx, else 500."""
    return exc.http_status if 400 <= exc.http_status < 500 else 500


def problem_of(exc: FaceLedgerError) -> dict[str, Any]:
    """What ``render`` takes to show a page again with an error in place: its status and the
    readable problem (``render(…, **problem_of(exc))``)."""
    return {"status": error_status(exc), "problem": describe_error(exc)}


def describe_error(exc: FaceLedgerError) -> Problem:
    title = ERROR_TITLES.get(exc.code, "Something went wrong")
    if exc.http_status >= 500:
        return Problem(title, "The server could not complete the request; see its log.", exc.code)
    message = exc.message.strip()
    if message and message[0].islower():
        message = message[0].upper() + message[1:]
    if message and not message.endswith((".", "!", "?")):
        message += "."
    return Problem(title, message, exc.code)


# -- forms -----------------------------------------------------------------------------------
def check_body_size(request: Request, images: int) -> None:
    """Refuse a body larger than ``images`` uploads (and small fields) before parsing it."""
    max_bytes: int = request.app.state.settings.max_image_bytes
    limit = images * max_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise InvalidParameterError("The form was sent without a Content-Length; send it again.")
    if int(declared) > limit:
        per = f"{max_bytes / 1_048_576:.1f} MiB"
        what = f"one photo of at most {per}" if images == 1 else f"{images} photos of {per}"
        raise ImageTooLargeError(
            f"The upload is {int(declared):,} bytes; this form takes {what}. "
            "Send a smaller or more compressed JPEG or PNG."
        )


async def read_form(request: Request, user: WebUser, *, images: int = 0) -> FormData:
    """The POSTed form, after its size and CSRF token have been checked."""
    check_body_size(request, images)
    # Two more file parts than images: empty file inputs (the search page's camera and file
    # inputs share one name) are sent as empty parts; the body cap above still holds.
    form = await request.form(
        max_files=images + 2, max_fields=200, max_part_size=TEXT_FIELD_MAX_BYTES
    )
    token = form.get("csrf_token")
    if not same_token(token if isinstance(token, str) else None, user.csrf_token):
        raise WebRefusal(
            403,
            "This form has expired",
            "The form's security token did not match your session. Reload the page and try again.",
        )
    return form


def text_field(form: FormData, name: str, *, max_chars: int = 256) -> str:
    """A text field, stripped; "" when absent. Longer than ``max_chars`` is refused."""
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > max_chars:
        raise InvalidParameterError(f"{name.replace('_', ' ')} is longer than {max_chars} chars")
    return text


def number_field(
    form: FormData, name: str, label: str, *, default: float | None, low: float, high: float
) -> float | None:
    text = text_field(form, name, max_chars=32)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameterError(f"{label} must be a number, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidParameterError(f"{label} must be from {low:g} to {high:g}, got {text}")
    return value


def uploads(form: FormData, name: str) -> list[UploadFile]:
    """The files sent under ``name`` (an empty file input sends one nameless empty part)."""
    return [
        f
        for f in form.getlist(name)
        if isinstance(f, UploadFile) and (f.filename or (f.size or 0) > 0)
    ]


async def read_image(request: Request, upload: UploadFile, label: str) -> bytes:
    """An uploaded photo's bytes, capped at ``settings.max_image_bytes`` (the native API's
    ``read_upload``)."""
    max_bytes: int = request.app.state.settings.max_image_bytes
    return await read_upload(cast(ApiUploadFile, upload), label, max_bytes)


# -- Similarity and what it means -------------------------------------------------------------
def false_match_text(calibration: Calibration, similarity: float) -> str:
    """The published false-match rate a Similarity stands for, as a sentence."""
    if not calibration.calibrated:
        return "This model pack has no calibration: no false-match rate is known."
    rows = [r for r in calibration.published if float(r["similarity"]) <= similarity]
    if not rows:
        return "Below Similarity 50: more than 1 in 1,000 pairs of different people score this."
    row = max(rows, key=lambda r: float(r["similarity"]))
    fmr = float(row["fmr"])
    one_in = f"about 1 in {round(1 / fmr):,}" if fmr > 0 else "none measured"
    return (
        f"Similarity ≥ {float(row['similarity']):g}: false-match rate {fmr:.1e} "
        f"({one_in} pairs of different people)"
    )
