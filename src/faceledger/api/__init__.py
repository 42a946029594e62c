"""Layer 8: HTTP adapters over ``services`` (the only layer that imports FastAPI).

``create_app(settings)`` (in ``faceledger.api.app``) is the app factory. This module also holds
``run_blocking``, which every router uses to run engine work off the event loop. Every verb goes
through the accountable ``Gateway`` at ``app.state.gateway`` (``native.auth.GatewayDep``).
``create_app`` is imported lazily so that routers can import these without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio.to_thread
from fastapi import Request

if TYPE_CHECKING:
    from faceledger.api.app import create_app

__all__ = ["create_app", "run_blocking"]

P = ParamSpec("P")
R = TypeVar("R")


async def run_blocking(
    request: Request, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run blocking engine work in a worker thread, at most ``settings.workers`` at a time.

    Routes call the gateway's verbs through here, and a verb ledgers its own refusals: an
    error leaving here is remembered on ``request.state.ledgered_error`` so that the error
    handler does not record it again (``native.auth.record_adapter_refusal``)."""
    limiter: anyio.CapacityLimiter = request.app.state.engine_limiter

    def call() -> R:
        return func(*args, **kwargs)

    try:
        return await anyio.to_thread.run_sync(call, limiter=limiter)
    except Exception as exc:
        request.state.ledgered_error = exc
        raise


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from faceledger.api.app import create_app

        return create_app
    raise AttributeError(name)
