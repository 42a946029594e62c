"""Layer 8: HTTP adapters over ``services`` (the only layer that imports FastAPI).

``create_app(settings)`` (in ``faceledger.api.app``) is the app factory. This module also holds
the request-scoped dependencies that every router shares: the ``FaceService`` kept on
``app.state`` by the lifespan (health only: every verb goes through the accountable
``FaceLedger`` at ``app.state.ledger``), and ``run_blocking`` to run engine work off the event
loop.
``create_app`` is imported lazily so that routers can import these without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import anyio.to_thread
from fastapi import Depends, Request

from faceledger.services.faces import FaceService

if TYPE_CHECKING:
    from faceledger.api.app import create_app

__all__ = ["ServiceDep", "create_app", "get_service", "run_blocking"]

P = ParamSpec("P")
R = TypeVar("R")


def get_service(request: Request) -> FaceService:
    """The process's ``FaceService`` (created by the app's lifespan)."""
    service: FaceService = request.app.state.service
    return service


ServiceDep = Annotated[FaceService, Depends(get_service)]


async def run_blocking(
    request: Request, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run blocking engine work in a worker thread, at most ``settings.workers`` at a time."""
    limiter: anyio.CapacityLimiter = request.app.state.engine_limiter

    def call() -> R:
        return func(*args, **kwargs)

    return await anyio.to_thread.run_sync(call, limiter=limiter)


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from faceledger.api.app import create_app

        return create_app
    raise AttributeError(name)
