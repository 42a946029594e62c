"""A stream match's lead keeps the match's best shot as its searched face when the collection
keeps face crops (``services/lead_probes.py``): re-encoded like a kept crop (≤ 160 px, JPEG 85)
and sealed for the lead; nothing when the collection keeps no crops; and a shot that cannot be
kept never costs the lead."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import ResourceNotFoundError
from faceledger.domain.leads import LeadCandidate
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.inference.face_crops import shrink_crop_jpeg
from faceledger.services.gateway import Gateway

ROOT = Caller(Principal("root", ROLES, "ROOT"), source="cli", request_id="setup")
STARTER = Caller(Principal("officer", ("search",), "K1"), "video", "s1")
REVIEWER = Caller(Principal("reviewer", ("review",), "K2"), "native", "r1")
CANDIDATE = (LeadCandidate("00000000-0000-4000-8000-000000000001", "face", 91.0, 0, "wanted"),)


def _shot() -> bytes:
    """A 240×320 JPEG (a best shot: bigger than a kept crop)."""
    pixels = np.random.default_rng(3).integers(0, 255, (320, 240, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()


def test_a_stream_matchs_best_shot_is_its_leads_searched_face(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", crop_key_file=tmp_path / "keys" / "k")
    gate = Gateway(settings)
    try:
        gate.create_collection(ROOT, "lobby")
        gate.put_policy(ROOT, "lobby", CollectionPolicy(keep_face_crops=True))
        gate.create_collection(ROOT, "plain")
        shot = _shot()

        def lead(collection_id: str, jpeg: bytes) -> str:
            made = gate._leads.open_lead(
                STARTER, "StreamFaceMatch", collection_id, 80.0, CANDIDATE, probe_jpeg=jpeg
            )
            assert made is not None
            return made

        kept = lead("lobby", shot)
        jpeg = gate.get_lead_probe_crop(REVIEWER, kept)
        assert jpeg == shrink_crop_jpeg(shot)
        pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert pixels.shape[:2] == (160, 120)
        probe = gate._leads.store.lead_probe(kept)
        assert probe is not None and probe.sealed is not None and jpeg[-64:] not in probe.sealed

        for collection_id, bad in (("plain", shot), ("lobby", b"not a jpeg"), ("lobby", b"")):
            lead_id = lead(collection_id, bad)
            assert gate._leads.store.lead(lead_id).lead_id == lead_id  # the lead is written
            assert gate._leads.store.lead_probe(lead_id) is None
            with pytest.raises(ResourceNotFoundError):
                gate.get_lead_probe_crop(REVIEWER, lead_id)
    finally:
        gate.close()
