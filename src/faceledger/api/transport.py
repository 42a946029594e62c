"""HTTPS-related transport concerns: HSTS, and which proxies' forwarded headers count.

* ``HstsMiddleware`` adds ``Strict-Transport-Security`` to every response sent over HTTPS
  (the server's own TLS, or a trusted proxy that says the client used HTTPS), so browsers
  never fall back to plain HTTP for this host.
* ``create_app`` wraps the app in uvicorn's ``ProxyHeadersMiddleware`` when
  ``settings.trusted_proxies`` names proxies: only requests arriving from those addresses
  may set the client address (``X-Forwarded-For``) and scheme (``X-Forwarded-Proto``).
  ``faceledger serve`` turns uvicorn's own handling off, so no other address is ever believed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS_HEADER = b"strict-transport-security"


class HstsMiddleware:
    def __init__(self, app: ASGIApp, *, max_age_seconds: int) -> None:
        self.app = app
        self.value = f"max-age={max_age_seconds}".encode()
        self.enabled = max_age_seconds > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != HSTS_HEADER]
                message = {**message, "headers": [*headers, (HSTS_HEADER, self.value)]}
            await send(message)

        await self.app(scope, receive, send_with_hsts)
