"""The wiring root: ``build_gateway(settings)`` is how an adapter gets its ``Gateway``.

It opens each backend once (``services/wiring.py``: on PostgreSQL one schema check and one
connection pool, shared by the face, key and video stores and the ledger), builds every
service with its store(s) as constructor arguments, and hands the services to the gateway.
Concrete classes are picked in ``store/factory.py`` and ``audit/ledger.py`` (by
``FACELEDGER_DATABASE_URL``); past this point everything is typed by the protocols of
``store/base.py``.
"""

from __future__ import annotations

from faceledger.audit.core import ChainLedger
from faceledger.config import Settings
from faceledger.services.faces import FaceService
from faceledger.services.gateway import Gateway
from faceledger.services.wiring import Backends, Services, build_services, open_backends

__all__ = ["Backends", "Services", "build_gateway", "build_services", "open_backends"]


def build_gateway(
    settings: Settings,
    *,
    faces: FaceService | None = None,
    ledger: ChainLedger | None = None,
) -> Gateway:
    """The gateway of ``settings``, over backends opened once (``faces``, ``ledger``: parts to
    share instead of building them). The caller closes it (``Gateway.close``)."""
    return Gateway(settings, services=build_services(settings, faces=faces, ledger=ledger))
