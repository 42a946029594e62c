"""Authentication before any request body is read, spooled or drained.

FastAPI parses a route's body (multipart uploads are spooled to temporary files beyond 1 MiB)
before it runs the route's dependencies, authentication included; an unauthenticated client
could so make the server write gigabytes to disk before its 401. ``PreReadAuthMiddleware``
runs first and, for a request that may carry a body (any method but GET, HEAD, OPTIONS), asks
the check registered for its path:

* ``/v1/…``: the bearer key (``KeyService.authenticate_bearer``: the secret checked, one of the
  key's rate-limit tokens spent); the principal is kept in the request's state, where
  ``native.auth`` takes it instead of authenticating again.
* ``/`` (Rekognition): what SigV4 shows before the body (``rekognition.pre_auth``).

A refusal is answered at once, serialised by the API it belongs to, with
``Connection: close``; the body is discarded unread when its ``Content-Length`` exceeds
``DRAIN_LIMIT_BYTES`` (or is absent), otherwise read and thrown away in memory so that the
client, still sending, gets the answer rather than a reset. The web app's pages check their
session in a dependency before ``read_form`` reads anything, so ``/app`` is not listed here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

# A refused body up to this size is read and discarded (never stored), so that the client
# reads the answer; a larger or undeclared one is not read at all.
DRAIN_LIMIT_BYTES = 1_048_576
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# check(scope) → None to go on, or the refusal to send.
Check = Callable[[Scope], Awaitable[Response | None]]


@dataclass(frozen=True)
class PathCheck:
    """A check for the paths ``applies`` selects."""

    applies: Callable[[str], bool]
    check: Check


class PreReadAuthMiddleware:
    def __init__(self, app: ASGIApp, *, checks: Sequence[PathCheck]) -> None:
        self.app = app
        self.checks = list(checks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") in BODILESS_METHODS:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        for entry in self.checks:
            if entry.applies(path):
                refusal = await entry.check(scope)
                if refusal is not None:
                    await self._refuse(scope, receive, send, refusal)
                    return
                break
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        declared = Headers(scope=scope).get("content-length", "").strip()
        if declared.isdigit() and int(declared) <= DRAIN_LIMIT_BYTES:
            seen = 0
            while seen <= DRAIN_LIMIT_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    break
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
