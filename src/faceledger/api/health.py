"""``/readyz``: whether this server should receive traffic (``/healthz`` is liveness only).

200 ``{"ready": true, "checks": {...}}`` when the model pack is loaded, the store answers and
the ledger is writable; 503 with the failing checks otherwise (and while starting or stopping).
A load balancer or Kubernetes readiness probe polls it; a liveness probe polls ``/healthz``.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from faceledger.services.lifecycle import readiness

router = APIRouter()


@router.get("/readyz", tags=["health"], summary="Readiness: models, store and ledger")
async def readyz(request: Request) -> JSONResponse:
    """200 when ready to serve; 503 naming each failing check."""
    gate = getattr(request.app.state, "gateway", None)
    if gate is None or getattr(request.app.state, "stopping", False):
        state = "stopping" if gate is not None else "starting"
        return JSONResponse({"ready": False, "checks": {"server": state}}, status_code=503)
    report = await anyio.to_thread.run_sync(readiness, gate)
    return JSONResponse(report, status_code=200 if report["ready"] else 503)
