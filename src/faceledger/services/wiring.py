"""The builders of the wiring root: open each backend once, build each service over them.

``open_backends`` opens a process's stores and ledger (on PostgreSQL: one schema check, one
connection pool shared by the face, key and video stores and the ledger); ``build_services``
builds every service with the stores it needs as constructor arguments. The gateway gets the
result (``services/container.py``: ``build_gateway``); ``Gateway(settings)`` builds it the
same way. Nothing here imports the gateway, so the gateway can use these builders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceledger.audit.core import ChainLedger
from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent, Caller
from faceledger.services.collections import CollectionService
from faceledger.services.crops import CropService
from faceledger.services.faces import FaceService
from faceledger.services.keys import KeyService
from faceledger.services.labels import LabelService
from faceledger.services.lead_probes import JpegProbes
from faceledger.services.leads import LeadService
from faceledger.services.objects import ImageObjects
from faceledger.services.users import UserService
from faceledger.services.video.common import Record
from faceledger.services.video.service import VideoService
from faceledger.store.factory import Stores, open_stores


@dataclass(frozen=True)
class Backends:
    """A process's stores and ledger, opened once; ``close`` closes them in order."""

    stores: Stores
    ledger: ChainLedger

    def close(self) -> None:
        self.ledger.close()
        self.stores.close()  # and the shared pool, after the ledger that used it


def open_backends(settings: Settings, *, ledger: ChainLedger | None = None) -> Backends:
    """The stores of ``settings`` and the ledger (``ledger`` if given, else the installation's,
    on the stores' shared pool)."""
    stores = open_stores(settings)
    try:
        return Backends(stores, ledger or Ledger.from_settings(settings, pool=stores.pool))
    except BaseException:
        stores.close()
        raise


def ledger_record(ledger: ChainLedger, leads: LeadService | None = None) -> Record:
    """Ledger something that happened after the call that caused it (a video job's end, a
    stream match), on behalf of the caller who started it; a record that names a lead puts
    the lead in the queue (``LeadService.recorded``)."""

    def record(
        caller: Caller,
        operation: str,
        collection_id: str | None,
        result: dict[str, Any],
        outcome: str,
    ) -> None:
        ledger.append(
            AuditEvent.of(
                caller, operation, outcome=outcome, collection_id=collection_id, result=result
            )
        )
        if leads is not None and outcome == "ok":
            leads.recorded(operation, result)

    return record


@dataclass(frozen=True)
class Services:
    """Every service of a gateway, over one set of backends."""

    backends: Backends
    faces: FaceService
    labels: LabelService
    collections: CollectionService
    users: UserService
    keys: KeyService
    objects: ImageObjects
    video: VideoService
    leads: LeadService
    crops: CropService

    @property
    def ledger(self) -> ChainLedger:
        return self.backends.ledger

    def close(self) -> None:
        """Stop the services, then close the backends they share."""
        try:
            self.video.close()
            self.crops.close()
            self.collections.close()
            self.objects.close()
            self.keys.close()
        finally:
            self.backends.close()


def build_services(
    settings: Settings,
    *,
    faces: FaceService | None = None,
    ledger: ChainLedger | None = None,
) -> Services:
    """Open the backends once and build every service over them (``faces``: a face service
    to share, e.g. one whose models are loaded; ``ledger``: a ledger to use instead of the
    installation's)."""
    backends = open_backends(settings, ledger=ledger)
    try:
        stores = backends.stores
        face_service = faces or FaceService(settings)
        collections = CollectionService(settings, face_service, store=stores.faces)
        objects = ImageObjects(settings)
        labels = LabelService(settings)
        crops = CropService(settings, store=stores.crops)
        leads = LeadService(stores.leads, jpeg_probes=JpegProbes(crops, stores.faces))
        return Services(
            backends=backends,
            faces=face_service,
            labels=labels,
            collections=collections,
            users=UserService(collections),
            keys=KeyService(settings, store=stores.keys),
            objects=objects,
            video=VideoService(
                settings,
                collections,
                objects,
                ledger_record(backends.ledger, leads),
                store=stores.video,
                labels=labels,
                leads=leads,
            ),
            leads=leads,
            crops=crops,
        )
    except BaseException:
        backends.close()
        raise
