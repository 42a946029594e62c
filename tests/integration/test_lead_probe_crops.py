"""A lead keeps its searched face when its collection keeps face crops (issue 18: "probe and
candidate side by side"), on both store backends, with real models on a real photo.

The searched photo's face (the largest: the one the search used) is cut like an enrolled
face's crop, sealed for the lead and stored with it; a search by FaceId keeps that face's id
(its own kept crop is shown). ``GetLeadProbeCrop`` shows it to search and review, one ledger
record per view; the search's record is unchanged; deleting the collection deletes the probes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import AccessDeniedError, CropKeyError, ResourceNotFoundError
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.inference.face_crops import face_crop_jpeg
from faceledger.services.crop_keys import CropCipher
from faceledger.services.faces import FaceService
from faceledger.services.gateway import Gateway
from helpers import services

ROOT = Caller(Principal("root", ROLES, "ROOT"), source="cli", request_id="setup")
REVIEWER = Caller(Principal("rita-reviewer", ("review",), "K-REVIEW"), "native", "r1")
SEARCHER = Caller(
    Principal("sam-searcher", ("search",), "K-SEARCH"),
    "native",
    "s1",
    purpose="identify a suspect",
    case_reference="CASE-7",
)
ENROLLER = Caller(Principal("eve-enroller", ("enrol",), "K-ENROL"), "native", "e1")
AUDITOR = Caller(Principal("al-auditor", ("audit",), "K-AUDIT"), "native", "a1")
SEARCH_RECORD_KEYS = {"requested_threshold", "threshold", "matches", "scale", "lead_id"}


@pytest.fixture(scope="module")
def face_service() -> Iterator[FaceService]:
    with services.face_service() as service:
        yield service


@pytest.fixture(scope="module")
def couple(data_dir: Path) -> bytes:
    """A real photo with two faces."""
    return (data_dir / "photos" / "couple.jpg").read_bytes()


@pytest.fixture
def gate(tmp_path: Path, database_url: str | None, face_service: FaceService) -> Iterator[Gateway]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        crop_key_file=tmp_path / "keys" / "crops.key",
        workers=1,
    )
    service = Gateway(settings, faces=face_service)
    yield service
    service.close()


def _records(gate: Gateway, operation: str) -> list[tuple[str, str, dict[str, object]]]:
    events = [e.event for e in gate._ledger.entries(operation=operation)]
    return [(e.principal, e.outcome, e.result) for e in events if e is not None]


def test_a_search_by_photo_keeps_the_searched_face_for_its_lead(
    gate: Gateway, couple: bytes
) -> None:
    gate.create_collection(ROOT, "kept")
    gate.put_policy(ROOT, "kept", CollectionPolicy(keep_face_crops=True))
    gate.index_faces(ROOT, "kept", couple)

    found = gate.search_faces_by_image(SEARCHER, "kept", couple)
    assert found.lead_id is not None and found.matches
    jpeg = gate.get_lead_probe_crop(REVIEWER, found.lead_id)
    # exactly the crop an enrolled face gets, of the face the search used (the largest)
    box = found.searched_face.box_px
    corners = (box.left_px, box.top_px, box.right_px, box.bottom_px)
    assert jpeg == face_crop_jpeg(gate.decode_image(couple), corners)
    assert gate.get_lead_probe_crop(SEARCHER, found.lead_id) == jpeg

    # sealed for this lead: the row is nonce || ciphertext || tag, not the JPEG
    probe = gate._leads.store.lead_probe(found.lead_id)
    assert probe is not None and probe.sealed is not None and probe.face_id is None
    assert len(probe.sealed) == 12 + len(jpeg) + 16 and jpeg[-64:] not in probe.sealed
    other = gate.search_faces_by_image(SEARCHER, "kept", couple)
    assert other.lead_id is not None
    with pytest.raises(CropKeyError, match="another lead"):
        gate._crops.view_probe(other.lead_id, probe.sealed)  # swapped onto another lead

    # the search's record is as before; each view is one record naming the lead
    [search, _] = [r for r in _records(gate, "SearchFacesByImage") if r[0] == "sam-searcher"]
    assert set(search[2]) == SEARCH_RECORD_KEYS and search[2]["lead_id"] == found.lead_id
    views = _records(gate, "GetLeadProbeCrop")
    assert [(p, o) for p, o, _ in views] == [("rita-reviewer", "ok"), ("sam-searcher", "ok")]
    assert views[0][2]["lead_id"] == found.lead_id and views[0][2]["as"] == "review"
    assert views[0][2]["lead_collection_id"] == "kept"
    assert views[0][2]["crop_bytes"] == len(jpeg)

    # the roles that may not see crops are refused, and the refusals are recorded
    for caller in (ENROLLER, AUDITOR):
        with pytest.raises(AccessDeniedError):
            gate.get_lead_probe_crop(caller, found.lead_id)
    refused = [(p, o) for p, o, _ in _records(gate, "GetLeadProbeCrop")][2:]
    assert refused == [
        ("eve-enroller", "AccessDeniedException"),
        ("al-auditor", "AccessDeniedException"),
    ]

    # deleting the collection deletes its leads' probes (the leads stay: the record of review)
    gate.delete_collection(ROOT, "kept")
    assert gate._leads.store.lead_probe(found.lead_id) is None
    with pytest.raises(ResourceNotFoundError, match="kept no searched face"):
        gate.get_lead_probe_crop(REVIEWER, found.lead_id)
    assert gate.get_lead(REVIEWER, found.lead_id).lead_id == found.lead_id


def test_searches_by_face_and_user_and_a_collection_that_keeps_no_crops(
    gate: Gateway, couple: bytes, store_backend: str
) -> None:
    gate.create_collection(ROOT, "kept")
    gate.put_policy(ROOT, "kept", CollectionPolicy(keep_face_crops=True))
    faces = [f.face_id for f, _ in gate.index_faces(ROOT, "kept", couple).face_records]
    pixels = cv2.imdecode(np.frombuffer(couple, np.uint8), 1)
    ok, copy = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok  # the same faces in another file (the same file is not enrolled twice)
    again = [f.face_id for f, _ in gate.index_faces(ROOT, "kept", copy.tobytes()).face_records]
    gate.create_user(ROOT, "kept", "person-1")
    gate.associate_faces(ROOT, "kept", "person-1", faces[:1])
    gate.create_user(ROOT, "kept", "person-1-again")  # the same face, enrolled twice
    gate.associate_faces(ROOT, "kept", "person-1-again", again[:1])

    # by FaceId: the probe is that enrolled face's own kept crop (not copied)
    by_face = gate.search_faces(SEARCHER, "kept", faces[0])
    assert by_face.lead_id is not None  # its copy matches
    probe = gate._leads.store.lead_probe(by_face.lead_id)
    assert probe is not None and probe.face_id == faces[0] and probe.sealed is None
    assert gate.get_lead_probe_crop(REVIEWER, by_face.lead_id) == gate.get_face_crop(
        REVIEWER, "kept", faces[0]
    )
    views = _records(gate, "GetLeadProbeCrop")
    assert views[-1][2]["searched_face_id"] == faces[0]
    users = gate.search_users(SEARCHER, "kept", face_id=faces[0])
    assert users.lead_id is not None
    assert gate.get_lead_probe_crop(REVIEWER, users.lead_id) == gate.get_face_crop(
        REVIEWER, "kept", faces[0]
    )
    # by UserId: no one face was searched, no probe
    by_user = gate.search_users(SEARCHER, "kept", user_id="person-1")
    assert by_user.lead_id is not None
    with pytest.raises(ResourceNotFoundError):
        gate.get_lead_probe_crop(REVIEWER, by_user.lead_id)
    # by photo, users: the searched face's crop
    by_photo = gate.search_users_by_image(SEARCHER, "kept", couple)
    assert by_photo.lead_id is not None and by_photo.searched_face is not None
    box = by_photo.searched_face.box_px
    corners = (box.left_px, box.top_px, box.right_px, box.bottom_px)
    expected = face_crop_jpeg(gate.decode_image(couple), corners)
    assert gate.get_lead_probe_crop(REVIEWER, by_photo.lead_id) == expected

    # a collection that keeps no crops: leads, but no probe
    gate.create_collection(ROOT, "plain")
    gate.index_faces(ROOT, "plain", couple)
    plain = gate.search_faces_by_image(SEARCHER, "plain", couple)
    assert plain.lead_id is not None
    with pytest.raises(ResourceNotFoundError, match="kept no searched face"):
        gate.get_lead_probe_crop(REVIEWER, plain.lead_id)
    assert gate._leads.store.lead_probe(plain.lead_id) is None


@pytest.mark.parametrize("store_backend", ["sqlite"], indirect=True)
def test_a_searcher_states_a_purpose_to_see_a_probe_when_the_policy_requires_one(
    gate: Gateway, couple: bytes
) -> None:
    gate.create_collection(ROOT, "strict")
    gate.put_policy(ROOT, "strict", CollectionPolicy(require_purpose=True, keep_face_crops=True))
    gate.index_faces(ROOT, "strict", couple)
    lead_id = gate.search_faces_by_image(SEARCHER, "strict", couple).lead_id
    assert lead_id is not None
    casual = Caller(Principal("sam-searcher", ("search",), "K-SEARCH"), "native", "s2")
    with pytest.raises(AccessDeniedError, match="purpose"):
        gate.get_lead_probe_crop(casual, lead_id)
    assert gate.get_lead_probe_crop(REVIEWER, lead_id)  # the lead is the reviewer's purpose
    with pytest.raises(ResourceNotFoundError):
        gate.get_lead_probe_crop(REVIEWER, "00000000-0000-4000-8000-000000000000")


def test_a_probe_seal_is_bound_to_its_lead(tmp_path: Path) -> None:
    cipher = CropCipher(os.urandom(32), tmp_path / "k")
    sealed = cipher.seal_probe("lead-a", b"\xff\xd8\xffjpeg")
    assert cipher.open_probe("lead-a", sealed) == b"\xff\xd8\xffjpeg"
    with pytest.raises(CropKeyError):
        cipher.open_probe("lead-b", sealed)  # another lead's row
    with pytest.raises(CropKeyError):
        cipher.open("lead-a", sealed)  # a face's crop whose FaceId is the lead id
    with pytest.raises(CropKeyError):
        cipher.open_probe("lead-a", cipher.seal("lead-a", b"a face crop"))


def test_the_native_api_serves_a_leads_probe(
    api: httpx.Client, live_server: str, make_key: object, couple: bytes
) -> None:
    assert api.post("/v1/collections", json={"collection_id": "probe-http"}).status_code == 201
    policy = api.put(
        "/v1/collections/probe-http/policy", json={"require_purpose": True, "keep_face_crops": True}
    )
    assert policy.status_code == 200, policy.text
    assert api.post("/v1/collections/probe-http/faces", files={"image": couple}).is_success
    key_id, secret = make_key("probe-searcher", ["search"])  # type: ignore[operator]
    searcher = {"Authorization": f"Bearer {key_id}:{secret}"}
    found = httpx.post(
        f"{live_server}/v1/collections/probe-http/search",
        files={"image": couple},
        data={"purpose": "probe test", "case_reference": "P-1"},
        headers=searcher,
        timeout=120,
    )
    assert found.status_code == 200, found.text
    lead_id = found.json()["lead_id"]
    assert lead_id

    key_id, secret = make_key("probe-reviewer", ["review"])  # type: ignore[operator]
    with httpx.Client(
        base_url=live_server, headers={"Authorization": f"Bearer {key_id}:{secret}"}
    ) as reviewer:
        got = reviewer.get(f"/v1/leads/{lead_id}/probe-crop")
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "image/jpeg"
        assert got.headers["cache-control"] == "no-store"
        assert got.content.startswith(b"\xff\xd8\xff")
        missing = reviewer.get("/v1/leads/00000000-0000-4000-8000-000000000000/probe-crop")
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "ResourceNotFoundException"
        bad = reviewer.get("/v1/leads/not-a-lead/probe-crop")
        assert bad.status_code in (400, 422) and "error" in bad.json()
        # its search was recorded: listed as work, not among the unrecorded
        listed = reviewer.get("/v1/leads", params={"collection_id": "probe-http"})
        assert [lead["lead_id"] for lead in listed.json()["leads"]] == [lead_id]
        hidden = reviewer.get(
            "/v1/leads", params={"collection_id": "probe-http", "unrecorded": "true"}
        )
        assert hidden.status_code == 200 and hidden.json()["leads"] == []
    key_id, secret = make_key("probe-enroller", ["enrol"])  # type: ignore[operator]
    denied = httpx.get(
        f"{live_server}/v1/leads/{lead_id}/probe-crop",
        headers={"Authorization": f"Bearer {key_id}:{secret}"},
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "AccessDeniedException"


@pytest.mark.parametrize("store_backend", ["sqlite"], indirect=True)
def test_a_server_refuses_to_start_when_only_probes_need_the_missing_key(
    gate: Gateway, couple: bytes, tmp_path: Path
) -> None:
    gate.create_collection(ROOT, "kept")
    gate.put_policy(ROOT, "kept", CollectionPolicy(keep_face_crops=True))
    faces = [f.face_id for f, _ in gate.index_faces(ROOT, "kept", couple).face_records]
    lead_id = gate.search_faces_by_image(SEARCHER, "kept", couple).lead_id
    assert lead_id is not None
    gate.delete_faces(ROOT, "kept", faces)  # no enrolled crop left; the lead keeps its probe
    assert not gate._crops._store.has_crops()
    gate.check_crop_key()  # the key is there
    key = tmp_path / "keys" / "crops.key"
    key.rename(tmp_path / "elsewhere.key")
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=gate.settings.database_url,
        crop_key_file=key,
        workers=1,
    )
    restarted = Gateway(settings, faces=gate._faces)
    try:
        with pytest.raises(CropKeyError, match="missing"):
            restarted.check_crop_key()
    finally:
        restarted.close()
