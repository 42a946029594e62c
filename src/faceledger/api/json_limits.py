"""Limits on JSON request bodies, checked before a JSON parser sees them.

A few kilobytes of ``[[[[…]]]]`` make Python's JSON parser (and anything that walks the result
recursively) raise ``RecursionError``; a JSON route has no reason to accept megabytes. So:

* :func:`check_json_depth` refuses a body nesting arrays and objects deeper than
  ``MAX_JSON_DEPTH`` with a 400 ``SerializationException``, from a linear scan of the bytes
  (strings blanked out first), before any parse. The Rekognition endpoint calls it on the
  body it has read; ``JsonLimitsMiddleware`` does it for the native API.
* ``JsonLimitsMiddleware`` also caps a native JSON body at ``MAX_JSON_BODY_BYTES``, from its
  ``Content-Length`` or by counting while it streams in (never buffering more than the cap).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from faceledger.api.capped_body import read_capped, replaying
from faceledger.domain.errors import FaceLedgerError, SerializationError

MAX_JSON_DEPTH = 32  # Rekognition's deepest input shape nests 5 levels
MAX_JSON_BODY_BYTES = 1_048_576  # the largest native JSON request (4,096 FaceIds) is ~160 KB

# A JSON string: a quote, then runs of ordinary characters or escapes, then a quote (unrolled,
# so a megabyte of base64 is one fast character-class run).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (brackets inside strings ignored).

    Linear in the body's size; malformed JSON still gets a number (the parser refuses it later).
    """
    structure = np.frombuffer(_JSON_STRING.sub(b"", body), dtype=np.uint8)
    if structure.size == 0:
        return 0
    steps = np.isin(structure, _OPEN).astype(np.int32) - np.isin(structure, _CLOSE)
    return int(max(0, np.cumsum(steps).max()))


def check_json_depth(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ``SerializationError`` when ``body`` nests deeper than ``max_depth``."""
    depth = json_depth(body)
    if depth > max_depth:
        raise SerializationError(
            f"The JSON request body nests {depth} levels deep; at most {max_depth} are accepted."
        )


class JsonLimitsMiddleware:
    """Caps the size and nesting of request bodies on paths ``applies(path)`` selects.

    Bodies in ``multipart/form-data`` (uploads, capped per route by ``BodySizeLimitMiddleware``)
    pass untouched. Others are read up to ``max_bytes`` (refused from a larger Content-Length
    at once, or as soon as the count goes over), checked with :func:`check_json_depth` and
    replayed to the app. Refusals leave through ``respond(error)``, the API's serialiser.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        applies: Callable[[str], bool],
        respond: Callable[[FaceLedgerError], Response],
        max_bytes: int = MAX_JSON_BODY_BYTES,
        max_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.applies = applies
        self.respond = respond
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").lower().startswith("multipart/form-data"):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, self._too_large(int(declared)))
            return
        read = await read_capped(receive, self.max_bytes)
        if read.disconnected:
            return
        if read.body is None:
            await self._refuse(scope, receive, send, self._too_large(read.total, at_least=True))
            return
        try:
            check_json_depth(read.body, self.max_depth)
        except SerializationError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        await self.app(scope, replaying(read.body, receive), send)

    def _too_large(self, size: int, *, at_least: bool = False) -> SerializationError:
        more = "at least " if at_least else ""
        return SerializationError(
            f"The request body is {more}{size:,} bytes; a JSON request may have at most "
            f"{self.max_bytes:,} bytes."
        )

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, exc: FaceLedgerError
    ) -> None:
        response = self.respond(exc)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
