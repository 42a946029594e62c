"""API-key authentication and role checks for the native API (``Authorization: Bearer …``).

Every native route declares ``dependencies=[Depends(require("<Operation>"))]`` with the
Rekognition name of what it does, so one role table (``faceledger.domain.principals``) governs
the native API, the Rekognition API and the CLI alike.

The bearer value is ``<key_id>:<secret>`` (``faceledger keys create`` prints it). Checking it is
the ``KeyService`` kept on ``app.state.keys``; this module only asks it and applies the role
table. Errors are ``FaceLedgerError`` subclasses, serialised by the app's one handler: an
``AuthError`` (no header, malformed, unknown key, wrong secret) as 401 with
``WWW-Authenticate: Bearer``, ``AccessDeniedError`` as 403.

``settings.insecure_accept_any_signature`` (development only) skips the check and authenticates
every request as ``INSECURE_DEV_PRINCIPAL`` (an admin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from faceledger.domain.errors import AccessDeniedError
from faceledger.domain.principals import INSECURE_DEV_PRINCIPAL, Principal

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


def authorise(principal: Principal, operation: str) -> None:
    """Raise ``AccessDeniedError`` unless one of the principal's roles allows ``operation``."""
    if not principal.may(operation):
        roles = ", ".join(principal.roles) or "none"
        raise AccessDeniedError(
            f"principal {principal.name!r} (roles {roles}) may not call {operation}"
        )


def require(operation: str) -> Callable[[Request, HTTPAuthorizationCredentials | None], Principal]:
    """A dependency that authenticates the request and authorises ``operation``.

    ``operation`` is a Rekognition operation name (``"IndexFaces"``, ``"ListFaces"``…). The
    principal is returned and also kept on ``request.state.principal`` (for the ledger). The
    dependency is a plain function, so FastAPI runs it in a worker thread: the key check may
    read the key store and hash the secret without blocking the event loop.
    """

    def dependency(request: Request, _credentials: BearerCredentials) -> Principal:
        principal = authenticate(request)
        authorise(principal, operation)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{operation}"
    return dependency
