"""Reading a request body up to a cap inside ASGI middleware, then replaying it to the app
(``BodySizeLimitMiddleware`` in ``app``, ``JsonLimitsMiddleware`` in ``json_limits``)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Message, Receive


@dataclass(frozen=True)
class CappedBody:
    """What ``read_capped`` got: the whole ``body`` (None when it went over the cap or the
    client left), the bytes seen, whether more was still coming when it stopped, and whether
    the client disconnected."""

    body: bytes | None
    total: int
    more: bool = False
    disconnected: bool = False


async def read_capped(receive: Receive, limit: int) -> CappedBody:
    """Read the body (never buffering more than ``limit`` bytes); stops as soon as the count
    goes over ``limit``."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return CappedBody(None, total, disconnected=True)
        body = message.get("body", b"")
        total += len(body)
        if total > limit:
            return CappedBody(None, total, more=bool(message.get("more_body", False)))
        chunks.append(body)
        if not message.get("more_body", False):
            return CappedBody(b"".join(chunks), total)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` (already read) in one message, then goes on
    with ``receive`` (disconnects)."""
    replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay_receive() -> Message:
        if replay:
            return replay.pop()
        return await receive()

    return replay_receive
