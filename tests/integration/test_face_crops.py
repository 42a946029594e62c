"""Kept face crops (issue 18 item 2, docs/REVIEW.md "Face crops"), on both store backends.

A collection whose policy has ``keep_face_crops`` stores, for each face it enrols, a small JPEG
of the face sealed with AES-256-GCM under a key file outside the data folder; it is shown
(``GetFaceCrop``) to the roles search and review only, every view is ledgered, and it goes with
its face. Real models on real photos, real SQLite and PostgreSQL, the real HTTP server.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import (
    AccessDeniedError,
    CropKeyError,
    ResourceNotFoundError,
)
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.inference.face_crops import face_crop_jpeg
from faceledger.services.crop_keys import CropCipher
from faceledger.services.faces import FaceService
from faceledger.services.gateway import Gateway
from helpers import services
from helpers.postgres import database_files

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
JPEG_START = b"\xff\xd8\xff"


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def face_service() -> Iterator[FaceService]:
    with services.face_service() as service:
        yield service


@pytest.fixture(scope="module")
def couple(data_dir: Path) -> bytes:
    """A real photo with two faces."""
    return (data_dir / "photos" / "couple.jpg").read_bytes()


def _settings(root: Path, database_url: str | None, key_file: Path | None = None) -> Settings:
    return Settings(
        data_dir=root / "data",
        database_url=database_url,
        crop_key_file=key_file or root / "keys" / "crops.key",
        workers=1,
    )


@pytest.fixture
def gate(tmp_path: Path, database_url: str | None, face_service: FaceService) -> Iterator[Gateway]:
    service = Gateway(_settings(tmp_path, database_url), faces=face_service)
    yield service
    service.close()


def _records(gate: Gateway, principal: str) -> list[tuple[str, str, dict[str, object]]]:
    events = [e.event for e in gate._ledger.entries(principal=principal)]
    return [(e.operation, e.outcome, e.result) for e in events if e is not None]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _slices(blob: bytes, size: int = 32) -> list[bytes]:
    """Three ``size``-byte windows of ``blob`` (start, middle, end)."""
    return [blob[:size], blob[len(blob) // 2 : len(blob) // 2 + size], blob[-size:]]


# -- kept, sealed, shown -------------------------------------------------------------------------
def test_crops_are_kept_only_when_the_policy_says_so_and_sealed_at_rest(
    gate: Gateway, couple: bytes, tmp_path: Path, store_backend: str
) -> None:
    gate.create_collection(ROOT, "plain")
    gate.create_collection(ROOT, "kept")
    gate.put_policy(ROOT, "kept", CollectionPolicy(keep_face_crops=True))
    assert gate.get_policy(ROOT, "kept").keep_face_crops
    assert not gate.get_policy(ROOT, "plain").keep_face_crops

    plain = gate.index_faces(ROOT, "plain", couple)
    with pytest.raises(ResourceNotFoundError, match="no kept crop"):
        gate.get_face_crop(REVIEWER, "plain", plain.face_records[0][0].face_id)
    key_file = tmp_path / "keys" / "crops.key"
    assert not key_file.exists()  # nothing kept yet: no key made

    kept = gate.index_faces(ROOT, "kept", couple)
    faces = [f for f, _ in kept.face_records]
    assert len(faces) == 2
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 32

    image = gate.decode_image(couple)
    crops = {}
    for face in faces:
        jpeg = gate.get_face_crop(REVIEWER, "kept", face.face_id)
        assert jpeg.startswith(JPEG_START)
        pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert pixels is not None and max(pixels.shape[:2]) == 160
        # it is this face's box (+25 %): the same crop cut again from the stored box
        box = face.bounding_box
        w, h = image.width_px, image.height_px
        box_px = (box.left * w, box.top * h, (box.left + box.width) * w, (box.top + box.height) * h)
        again = cv2.imdecode(np.frombuffer(face_crop_jpeg(image, box_px), np.uint8), 1)
        assert abs(again.shape[0] - pixels.shape[0]) <= 2
        assert abs(again.shape[1] - pixels.shape[1]) <= 2
        crops[face.face_id] = jpeg
    a, b = crops.values()
    assert a != b

    # sealed at rest: nonce || ciphertext || tag, the plaintext in no row and no data file
    store = gate._crops._store
    for face_id, jpeg in crops.items():
        sealed = store.crop("kept", face_id)
        assert sealed is not None and len(sealed) == 12 + len(jpeg) + 16
        assert not any(s in sealed for s in _slices(jpeg))
    files = _files(tmp_path / "data")
    for jpeg in crops.values():
        assert not any(s in data for s in _slices(jpeg) for data in files.values())
    if store_backend == "sqlite":  # the ciphertext is there (so the search above can fail)
        sealed = store.crop("kept", faces[0].face_id)
        assert sealed is not None
        assert any(sealed[20:52] in data for name, data in files.items() if "sqlite3" in name)

    # the roles: search and review may view (each view one record), enrol may not (recorded)
    assert gate.get_face_crop(SEARCHER, "kept", faces[1].face_id) == crops[faces[1].face_id]
    with pytest.raises(AccessDeniedError):
        gate.get_face_crop(ENROLLER, "kept", faces[0].face_id)
    viewed = [r for r in _records(gate, "rita-reviewer") if r[0] == "GetFaceCrop"]
    assert [(op, out) for op, out, _ in viewed] == [
        ("GetFaceCrop", "ResourceNotFoundException")
    ] + [("GetFaceCrop", "ok")] * 2
    assert [r["face_id"] for _, _, r in viewed[1:]] == [f.face_id for f in faces]
    assert [r[:2] for r in _records(gate, "sam-searcher")] == [("GetFaceCrop", "ok")]
    assert [r[:2] for r in _records(gate, "eve-enroller")] == [
        ("GetFaceCrop", "AccessDeniedException")
    ]
    with pytest.raises(ResourceNotFoundError):
        gate.get_face_crop(REVIEWER, "kept", "00000000-0000-4000-8000-000000000000")


def test_deleting_a_face_or_its_collection_deletes_its_crop(
    gate: Gateway, couple: bytes, store_backend: str
) -> None:
    gate.create_collection(ROOT, "kept")
    gate.put_policy(ROOT, "kept", CollectionPolicy(keep_face_crops=True))
    first, second = (f.face_id for f, _ in gate.index_faces(ROOT, "kept", couple).face_records)
    store = gate._crops._store
    assert store.crop("kept", first) is not None and store.crop("kept", second) is not None

    assert gate.delete_faces(ROOT, "kept", [first])[0] == [first]
    assert store.crop("kept", first) is None
    with pytest.raises(ResourceNotFoundError):
        gate.get_face_crop(REVIEWER, "kept", first)
    assert gate.get_face_crop(REVIEWER, "kept", second).startswith(JPEG_START)

    gate.delete_collection(ROOT, "kept")
    assert store.crop("kept", second) is None and not store.has_crops()
    gate.create_collection(ROOT, "kept")  # the same id again: nothing of the old one
    with pytest.raises(ResourceNotFoundError):
        gate.get_face_crop(REVIEWER, "kept", second)


@pytest.mark.parametrize("store_backend", ["sqlite"], indirect=True)
def test_a_searcher_states_a_purpose_when_the_policy_requires_one(
    gate: Gateway, couple: bytes
) -> None:
    gate.create_collection(ROOT, "strict")
    gate.put_policy(ROOT, "strict", CollectionPolicy(require_purpose=True, keep_face_crops=True))
    (face, _), _ = gate.index_faces(ROOT, "strict", couple).face_records
    casual = Caller(Principal("sam-searcher", ("search",), "K-SEARCH"), "native", "s2")
    with pytest.raises(AccessDeniedError, match="purpose"):
        gate.get_face_crop(casual, "strict", face.face_id)
    assert gate.get_face_crop(SEARCHER, "strict", face.face_id).startswith(JPEG_START)
    # a reviewer's purpose is the lead under review
    assert gate.get_face_crop(REVIEWER, "strict", face.face_id).startswith(JPEG_START)
    outcomes = [r[:2] for r in _records(gate, "sam-searcher")]
    assert outcomes == [("GetFaceCrop", "AccessDeniedException"), ("GetFaceCrop", "ok")]


# -- keys ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("store_backend", ["sqlite"], indirect=True)
def test_a_wrong_or_missing_key_is_a_clear_error(
    tmp_path: Path, database_url: str | None, face_service: FaceService, couple: bytes
) -> None:
    first = Gateway(_settings(tmp_path, database_url), faces=face_service)
    first.create_collection(ROOT, "kept")
    first.put_policy(ROOT, "kept", CollectionPolicy(keep_face_crops=True))
    face = first.index_faces(ROOT, "kept", couple).face_records[0][0].face_id
    first.check_crop_key()  # crops and their key: fine
    first.close()

    other = tmp_path / "other" / "crops.key"
    other.parent.mkdir()
    other.write_bytes(os.urandom(32))
    wrong = Gateway(_settings(tmp_path, database_url, other), faces=face_service)
    with pytest.raises(CropKeyError, match="does not open with the crop key"):
        wrong.get_face_crop(REVIEWER, "kept", face)
    assert _records(wrong, "rita-reviewer")[-1][:2] == ("GetFaceCrop", "InternalServerError")
    wrong.close()

    missing = Gateway(_settings(tmp_path, database_url, tmp_path / "gone.key"), faces=face_service)
    with pytest.raises(CropKeyError, match="is missing"):
        missing.check_crop_key()  # what a server checks before it serves
    with pytest.raises(CropKeyError, match="is missing"):
        missing.get_face_crop(REVIEWER, "kept", face)
    assert not (tmp_path / "gone.key").exists()  # never created to read
    missing.close()
    from fastapi.testclient import TestClient

    from faceledger.api.app import create_app

    app = create_app(_settings(tmp_path, database_url, tmp_path / "gone.key"))
    with pytest.raises(CropKeyError, match="is missing"), TestClient(app):
        pass  # the server refuses to start: stored crops it could never show

    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 16)
    broken = Gateway(_settings(tmp_path, database_url, short), faces=face_service)
    with pytest.raises(CropKeyError, match="not 32 bytes"):
        broken.get_face_crop(REVIEWER, "kept", face)
    broken.close()

    inside = Gateway(
        _settings(tmp_path, database_url, tmp_path / "data" / "crops.key"), faces=face_service
    )
    before = inside.describe_collection(ROOT, "kept").face_count
    with pytest.raises(CropKeyError, match="inside the data directory"):
        inside.index_faces(ROOT, "kept", couple, external_image_id="again")
    assert inside.describe_collection(ROOT, "kept").face_count == before  # nothing stored
    inside.close()


def test_a_seal_is_bound_to_its_face_id(tmp_path: Path) -> None:
    cipher = CropCipher(os.urandom(32), tmp_path / "k")
    sealed = cipher.seal("face-a", b"\xff\xd8\xffjpeg bytes")
    assert cipher.open("face-a", sealed) == b"\xff\xd8\xffjpeg bytes"
    assert cipher.seal("face-a", b"same") != cipher.seal("face-a", b"same")  # random nonces
    with pytest.raises(CropKeyError):
        cipher.open("face-b", sealed)  # copied onto another face's row: does not open
    with pytest.raises(CropKeyError):
        cipher.open("face-a", sealed[:-1] + bytes([sealed[-1] ^ 1]))


# -- the surfaces ----------------------------------------------------------------------------------
def test_the_native_api_sets_the_policy_and_serves_the_crop(
    api: httpx.Client, live_server: str, make_key: object, couple: bytes
) -> None:
    assert api.post("/v1/collections", json={"collection_id": "crops-http"}).status_code == 201
    policy = api.put(
        "/v1/collections/crops-http/policy",
        json={"require_purpose": False, "keep_face_crops": True},
    )
    assert policy.status_code == 200 and policy.json()["keep_face_crops"] is True
    assert api.get("/v1/collections/crops-http/policy").json()["keep_face_crops"] is True
    indexed = api.post("/v1/collections/crops-http/faces", files={"image": couple})
    assert indexed.is_success, indexed.text
    face = indexed.json()["faces"][0]["face_id"]

    key_id, secret = make_key("http-reviewer", ["review"])  # type: ignore[operator]
    with httpx.Client(
        base_url=live_server, headers={"Authorization": f"Bearer {key_id}:{secret}"}
    ) as reviewer:
        got = reviewer.get(f"/v1/collections/crops-http/faces/{face}/crop")
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "image/jpeg"
        assert got.headers["cache-control"] == "no-store"
        assert got.content.startswith(JPEG_START)
        missing = reviewer.get(
            "/v1/collections/crops-http/faces/00000000-0000-4000-8000-000000000000/crop"
        )
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "ResourceNotFoundException"
        bad = reviewer.get("/v1/collections/crops-http/faces/not-a-face-id/crop")
        assert bad.status_code in (400, 422) and "error" in bad.json()
    key_id, secret = make_key("http-enroller", ["enrol"])  # type: ignore[operator]
    denied = httpx.get(
        f"{live_server}/v1/collections/crops-http/faces/{face}/crop",
        headers={"Authorization": f"Bearer {key_id}:{secret}"},
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "AccessDeniedException"


@pytest.mark.parametrize("store_backend", ["sqlite"], indirect=True)
def test_the_cli_sets_the_policy_and_bulk_enrolment_keeps_crops(
    tmp_path: Path,
    database_url: str | None,
    face_service: FaceService,
    couple: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from faceledger.cli.main import main

    settings = _settings(tmp_path, database_url)
    monkeypatch.setenv("FACELEDGER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FACELEDGER_CROP_KEY_FILE", str(settings.crop_key_file))
    monkeypatch.setenv("FACELEDGER_WORKERS", "1")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "couple.jpg").write_bytes(couple)

    def cli(*args: str) -> str:
        with pytest.raises(SystemExit) as stopped:
            main(list(args))
        assert stopped.value.code in (0, None), capsys.readouterr()
        return capsys.readouterr().out

    cli("collections", "create", "bulk")
    assert '"keep_face_crops": true' in cli("collections", "policy", "bulk", "--keep-face-crops")
    cli("index", str(photos), "--collection", "bulk", "--all-faces")
    gate = Gateway(settings, faces=face_service)
    try:
        faces = gate.list_faces(ROOT, "bulk").faces
        assert len(faces) == 2
        for face in faces:
            assert gate.get_face_crop(REVIEWER, "bulk", face.face_id).startswith(JPEG_START)
    finally:
        gate.close()
    assert '"keep_face_crops": false' in cli(
        "collections", "policy", "bulk", "--no-keep-face-crops"
    )


# -- PostgreSQL: deletion on disk ------------------------------------------------------------------


def test_postgres_deletion_leaves_no_copy_of_a_kept_crop(migrated_database: str) -> None:
    """A deleted face's sealed crop is out of every database file after ``faceledger db vacuum
    --full`` (plain VACUUM, run after each deletion, prunes the rows but may leave bytes in
    free space: see ``PostgresStore.vacuum``); a deleted collection's crops too."""
    from faceledger.cli.db import VACUUM_TABLES
    from faceledger.domain.collections import BoundingBox
    from faceledger.store.postgres.faces import PostgresStore
    from faceledger.store.records import NewFace

    store = PostgresStore(migrated_database)
    try:
        rng = np.random.default_rng(5)
        box = BoundingBox(0.1, 0.1, 0.5, 0.5)
        store.create_collection("case", "p", 8)
        store.create_collection("gone", "p", 8)
        sealed = {f"0000000{i}-0000-4000-8000-000000000000": os.urandom(6000) for i in range(3)}
        ids = list(sealed)
        for collection, face_ids in (("case", ids[:2]), ("gone", ids[2:])):
            store.add_faces(
                collection,
                [
                    NewFace(
                        "a" * 64,
                        None,
                        box,
                        99.0,
                        rng.normal(size=8).astype(np.float32),
                        face_id=f,
                        sealed_crop=sealed[f],
                    )
                    for f in face_ids
                ],
            )
        raw = database_files(migrated_database)
        assert all(s[100:132] in raw for s in sealed.values())  # stored: the search can fail

        assert store.delete_faces("case", [ids[0]]) == [ids[0]]
        store.delete_collection("gone")
        store.vacuum(*VACUUM_TABLES, full=True)
        raw = database_files(migrated_database)
        assert sealed[ids[0]][100:132] not in raw and sealed[ids[2]][100:132] not in raw
        assert sealed[ids[1]][100:132] in raw  # the face not deleted keeps its crop
    finally:
        store.close()
