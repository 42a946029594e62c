"""What the gateway's verb modules share: ``GatewayParts`` and the ledger-summary helpers.

``Gateway`` (``services/gateway.py``) is assembled from one mixin per area —
``gateway_collections`` (collections, tags, faces), ``gateway_crops`` (kept face crops),
``gateway_search`` (face and user
searches), ``gateway_users``, ``gateway_images`` (detection, comparison, labels, text, and what
adapters may use without a record), ``gateway_video``, ``gateway_ledger`` (reading, verifying
and signing the ledger), ``gateway_policy``, ``gateway_keys`` and ``gateway_upkeep`` (the
maintenance pass). Each mixin subclasses ``GatewayParts``, which declares what ``Gateway``
provides: its settings, its inner services (built in ``Gateway.__init__``) and the one audited
wrapper ``_run`` with the intent helpers (defined in ``services/gateway.py`` only; the
declarations here exist for the type checker).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from faceledger.domain.collections import CollectionMatch
from faceledger.domain.faces import AnalysedImage, Image
from faceledger.domain.scale import SearchScale

if TYPE_CHECKING:
    from faceledger.audit.core import ChainLedger
    from faceledger.config import Settings
    from faceledger.domain.audit import Caller
    from faceledger.domain.policy import CollectionPolicy
    from faceledger.services.collections import CollectionService
    from faceledger.services.crops import CropService
    from faceledger.services.faces import FaceService
    from faceledger.services.keys import KeyService
    from faceledger.services.labels import LabelService
    from faceledger.services.leads import LeadService
    from faceledger.services.objects import ImageObjects
    from faceledger.services.users import UserService
    from faceledger.services.video.common import Record
    from faceledger.services.video.service import VideoService

R = TypeVar("R")

MAX_LEDGERED_MATCHES = 4096


def ledgered_ids(face_ids: Any) -> list[str]:
    """FaceIds as an intent record names them (strings only, at most 4,096)."""
    if not isinstance(face_ids, list | tuple):
        return []
    return [f for f in face_ids if isinstance(f, str)][:MAX_LEDGERED_MATCHES]


def ledgered_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """A ledger read's filters as its record states them (the ones given, sorted by name)."""
    return {name: value for name, value in sorted(filters.items()) if value is not None}


def ledgered_matches(matches: tuple[CollectionMatch, ...]) -> list[list[Any]]:
    """``[[FaceId, Similarity], …]`` of a search, for its record (at most 4,096)."""
    return [[m.face.face_id, round(m.similarity, 3)] for m in matches[:MAX_LEDGERED_MATCHES]]


def scale_summary(scale: SearchScale | None) -> dict[str, Any]:
    """A search's scale, for its ledger record (rates rounded; no biometrics)."""
    if scale is None:
        return {}
    return {
        "face_count": scale.face_count,
        "floor": scale.floor,
        "floor_source": scale.floor_source,
        "fpir": None if scale.fpir is None else float(f"{scale.fpir:.3g}"),
        "hit_rate": None if scale.hit_rate is None else round(scale.hit_rate, 4),
        "fmr": None if scale.fmr is None else float(f"{scale.fmr:.3g}"),
        "target_reachable": scale.target_reachable,
    }


def probe_sha256(*images: bytes | Image | AnalysedImage) -> tuple[str, ...]:
    """The SHA-256 of each probe image, as its record names it (never the image)."""
    out = []
    for image in images:
        if isinstance(image, Image | AnalysedImage):
            out.append(image.sha256)
        else:
            out.append(hashlib.sha256(image).hexdigest())
    return tuple(out)


class GatewayParts:
    """What the verb mixins use of the ``Gateway`` they are mixed into (see the module
    docstring); nothing here runs."""

    settings: Settings
    _faces: FaceService
    _labels: LabelService
    _collections: CollectionService
    _users: UserService
    _keys: KeyService
    _objects: ImageObjects
    _ledger: ChainLedger
    _video: VideoService
    _leads: LeadService
    _crops: CropService
    # Ledgers what happens after the call that caused it (a video job's end, a stream match,
    # the first admin key), for the caller who started it.
    _record: Record

    if TYPE_CHECKING:

        def _run(
            self,
            caller: Caller,
            operation: str,
            work: Callable[[], R],
            *,
            collection_id: str | None = None,
            probes: tuple[str, ...] = (),
            summary: Callable[[R], dict[str, Any]] | None = None,
            intent: dict[str, Any] | None = None,
        ) -> R: ...

        def _announce(
            self,
            caller: Caller,
            operation: str,
            collection_id: str | None,
            probes: tuple[str, ...],
            about: dict[str, Any] | None = None,
        ) -> str: ...

        def _settled(self, intent_id: str) -> None: ...

        def _policy_of(self, collection_id: str) -> CollectionPolicy: ...

        def reconcile(self) -> list[str]: ...

        def record_refusal(
            self,
            caller: Caller,
            operation: str,
            collection_id: str | None,
            code: str,
            message: str,
        ) -> None: ...
