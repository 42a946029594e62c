"""Deleting a lead deletes its searched face from the disk, as deleting a face deletes its crop
(``tests/unit/test_deletion.py``): after the retention purge of leads, or the deletion of the
collection (whose leads stay, without their probes), neither the sealed probe nor the plain
JPEG is in any file of the data folder (the SQLite file, its WAL: ``secure_delete`` and a
truncated WAL), while the probe of a lead not deleted stays. Real models on a real photo."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.faces import FaceService
from faceledger.services.gateway import Gateway

ROOT = Caller(Principal("root", ROLES, "ROOT"), source="cli", request_id="setup")
OFFICER = Caller(Principal("officer", ("search",), "K1"), "native", "s1")
REVIEWER = Caller(Principal("reviewer", ("review",), "K2"), "native", "r1")


@pytest.fixture(scope="module")
def face_service() -> Iterator[FaceService]:
    service = FaceService(Settings(workers=1))
    yield service
    service.close()


def _distinctive(blob: bytes, size: int = 32) -> bytes:
    """The ``size``-byte window of ``blob`` with the most distinct byte values."""
    best = max(range(0, len(blob) - size + 1, 2), key=lambda s: len(set(blob[s : s + size])))
    return blob[best : best + size]


def _needles(jpeg: bytes, sealed: bytes) -> dict[str, bytes]:
    """What a stored probe would leave: the sealed row (whole, and a 32-byte fragment: a row
    spans pages) and the plain JPEG (its scan data: the headers are alike in every crop)."""
    return {
        "sealed": sealed,
        "sealed[32 B]": _distinctive(sealed[12:]),
        "jpeg": jpeg,
        "jpeg[32 B]": _distinctive(jpeg[len(jpeg) // 2 :]),
    }


def _where(root: Path, jpeg: bytes, sealed: bytes) -> dict[str, list[str]]:
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return {
        name: [f for f, data in files.items() if needle in data]
        for name, needle in _needles(jpeg, sealed).items()
    }


@pytest.mark.parametrize("deletion", ["retention", "DeleteCollection"])
def test_deleting_a_lead_leaves_no_copy_of_its_searched_face(
    tmp_path: Path, face_service: FaceService, data_dir: Path, deletion: str
) -> None:
    couple = (data_dir / "photos" / "couple.jpg").read_bytes()
    data = tmp_path / "data"
    settings = Settings(data_dir=data, crop_key_file=tmp_path / "keys" / "crops.key", workers=1)
    gate = Gateway(settings, faces=face_service)
    try:
        for collection in ("gone", "kept"):
            gate.create_collection(ROOT, collection)
            gate.put_policy(ROOT, collection, CollectionPolicy(keep_face_crops=True))
            gate.index_faces(ROOT, collection, couple)
        probes = {}
        for collection in ("gone", "kept"):
            lead_id = gate.search_faces_by_image(OFFICER, collection, couple).lead_id
            assert lead_id is not None
            probe = gate._leads.store.lead_probe(lead_id)
            assert probe is not None and probe.sealed is not None
            probes[collection] = (gate.get_lead_probe_crop(REVIEWER, lead_id), probe.sealed)
        jpeg, sealed = probes["gone"]
        before = _where(data, jpeg, sealed)
        # the sealed probe is in the store's file; the plain JPEG in none, ever
        assert any(f.startswith("faceledger.sqlite3") for f in before["sealed[32 B]"]), before
        assert before["jpeg"] == [] and before["jpeg[32 B]"] == []

        if deletion == "retention":  # the purge's deletion: the leads made before a cutoff
            deleted = gate._leads.store.delete_leads("gone", created_before=time.time() + 1)
            assert len(deleted) == 1
        else:
            gate.delete_collection(ROOT, "gone")
        empty = {name: [] for name in _needles(jpeg, sealed)}
        assert _where(data, jpeg, sealed) == empty
        assert _where(data, *probes["kept"])["sealed[32 B]"]  # only what was deleted went
    finally:
        gate.close()
    assert _where(data, jpeg, sealed) == empty
