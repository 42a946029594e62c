"""A stream match's searched face, kept for its lead when the collection keeps face crops.

A live match carries the track's best shot (``MatchEvent.best_shot_jpeg``: the face box with
a margin, as a JPEG). When the match's collection keeps face crops, its lead keeps that shot
re-encoded like a kept crop (≤ 160 px, JPEG 85: ``inference/face_crops.py``) and sealed for
the lead (``CropCipher.seal_probe``). The searches keep their probes in
``services/gateway_search.py``; a stored-video face-search job keeps none (its lead is opened
after the analysis, with no frame at hand).
"""

from __future__ import annotations

import logging

from faceledger.domain.errors import FaceLedgerError
from faceledger.domain.policy import CollectionPolicy
from faceledger.inference.face_crops import shrink_crop_jpeg
from faceledger.services.crops import CropService
from faceledger.store.base import FaceStore
from faceledger.store.records import LeadProbe

logger = logging.getLogger(__name__)


class JpegProbes:
    """Makes a lead's probe of a face crop that is already a JPEG (``LeadService`` asks)."""

    def __init__(self, crops: CropService, faces: FaceStore) -> None:
        self._crops = crops
        self._faces = faces

    def keeps(self, collection_id: str) -> bool:
        """Whether the collection's stored policy keeps face crops (off by default)."""
        stored = self._faces.policy(collection_id)
        return stored is not None and CollectionPolicy.from_json(stored).keep_face_crops

    def seal(self, collection_id: str, lead_id: str, jpeg: bytes) -> LeadProbe | None:
        """The sealed probe, or None (nothing kept: the collection keeps no crops, no shot, or
        it could not be sealed: logged, the lead is written without it)."""
        if not jpeg:
            return None
        try:
            if not self.keeps(collection_id):
                return None
            small = shrink_crop_jpeg(jpeg)
            return LeadProbe(sealed=self._crops.probe_sealer()(lead_id, small))
        except (FaceLedgerError, ValueError):
            logger.exception("lead %s: its searched face could not be kept", lead_id)
            return None
