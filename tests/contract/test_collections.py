"""Collections end to end on real faces: enrol, deduplicate, filter, search, page, delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.domain.errors import (
    InvalidPaginationTokenError,
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
)
from faceledger.domain.results import FaceFailure
from faceledger.inference.imaging import load_image
from faceledger.services.collections import CollectionService
from faceledger.services.faces import FaceService
from helpers import services
from helpers.data import lfw_people


@pytest.fixture(scope="module")
def face_service() -> Iterator[FaceService]:
    with services.face_service() as faces:
        yield faces


@pytest.fixture
def service(
    tmp_path: Path, face_service: FaceService, database_url: str | None
) -> Iterator[CollectionService]:
    """A collection service on each store backend (SQLite, PostgreSQL)."""
    with services.collection_service(tmp_path, face_service, database_url) as service:
        yield service


@pytest.fixture(scope="module")
def people(data_dir: Path) -> dict[str, list[Path]]:
    """Six LFW people with at least two images each."""
    return lfw_people(data_dir, 2, 6)


def test_collection_ids_and_lifecycle(service: CollectionService) -> None:
    created = service.create_collection("agency.bookings-2024")
    assert created.face_model_version.startswith("yunet-sface")
    with pytest.raises(ResourceAlreadyExistsError):
        service.create_collection("agency.bookings-2024")
    for bad in ("", "has space", "slash/no", "x" * 256):
        with pytest.raises(InvalidParameterError):
            service.create_collection(bad)
    with pytest.raises(ResourceNotFoundError):
        service.describe_collection("nope")
    service.delete_collection("agency.bookings-2024")
    with pytest.raises(ResourceNotFoundError):
        service.describe_collection("agency.bookings-2024")


def test_list_collections_pages_with_signed_tokens(service: CollectionService) -> None:
    for i in range(5):
        service.create_collection(f"c{i}")
    page1, token = service.list_collections(max_results=2)
    assert [c.collection_id for c in page1] == ["c0", "c1"] and token
    page2, token2 = service.list_collections(max_results=2, next_token=token)
    assert [c.collection_id for c in page2] == ["c2", "c3"]
    page3, token3 = service.list_collections(max_results=2, next_token=token2)
    assert [c.collection_id for c in page3] == ["c4"] and token3 is None
    with pytest.raises(InvalidPaginationTokenError):
        service.list_collections(next_token=token[:-2] + "xx")
    with pytest.raises(InvalidPaginationTokenError):
        service.list_faces("c0", next_token=token)  # a token of another listing


def test_index_search_and_delete(service: CollectionService, people: dict[str, list[Path]]) -> None:
    service.create_collection("g")
    enrolled = {}
    names = list(people)
    for name in names[:4]:
        result = service.index_faces("g", people[name][0], external_image_id=name)
        assert len(result.face_records) == 1 and not result.duplicate
        face, _ = result.face_records[0]
        box = face.bounding_box
        assert 0 <= box.left < 1 and 0 < box.width <= 1 and face.confidence > 60
        enrolled[name] = face.face_id
    again = service.index_faces("g", people[names[0]][0], external_image_id=names[0])
    assert again.duplicate and again.face_records[0][0].face_id == enrolled[names[0]]
    assert service.describe_collection("g").face_count == 4

    # a second photo of an enrolled person finds them first; an unenrolled person finds no one
    hit = service.search_faces_by_image("g", people[names[1]][1])
    assert hit.matches and hit.matches[0].face.external_image_id == names[1]
    assert hit.matches[0].similarity >= 80 and hit.threshold == 80
    assert all(m.similarity >= 80 for m in hit.matches)
    miss = service.search_faces_by_image("g", people[names[5]][0])
    assert miss.matches == ()
    low = service.search_faces_by_image("g", people[names[5]][0], threshold=0, max_faces=3)
    assert len(low.matches) == 3
    assert [m.similarity for m in low.matches] == sorted(
        (m.similarity for m in low.matches), reverse=True
    )

    # SearchFaces by FaceId never returns the face itself
    by_id = service.search_faces("g", enrolled[names[2]], threshold=0, max_faces=10)
    assert enrolled[names[2]] not in {m.face.face_id for m in by_id} and len(by_id) == 3

    deleted, failed = service.delete_faces(
        "g", [enrolled[names[1]], "00000000-0000-0000-0000-000000000000"]
    )
    assert deleted == [enrolled[names[1]]]
    assert failed == [FaceFailure("00000000-0000-0000-0000-000000000000", ("FACE_NOT_FOUND",))]
    after = service.search_faces_by_image("g", people[names[1]][1], threshold=0, max_faces=10)
    assert enrolled[names[1]] not in {m.face.face_id for m in after.matches}


def test_max_faces_and_quality_filter(
    service: CollectionService, data_dir: Path, tmp_path: Path
) -> None:
    service.create_collection("q")
    couple = data_dir / "photos" / "couple.jpg"
    result = service.index_faces("q", couple, max_faces=1, external_image_id="couple")
    assert len(result.face_records) == 1
    assert [u.reasons for u in result.unindexed] == [("EXCEEDS_MAX_FACES",)]
    # the face of best quality (detector confidence) is the one kept
    faces = service.faces.engine.detect(load_image(couple))
    assert result.face_records[0][1] == int(np.argmax(np.round(faces.scores, 2)))
    assert result.unindexed[0].face_index != result.face_records[0][1]
    blurred = tmp_path / "blurred.jpg"
    pixels = load_image(data_dir / "photos" / "img1.jpg").pixels_bgr
    cv2.imwrite(str(blurred), cv2.GaussianBlur(pixels, (0, 0), 12))
    rejected = service.index_faces("q", blurred, quality_filter="HIGH")
    assert rejected.face_records == () and "LOW_SHARPNESS" in rejected.unindexed[0].reasons
    accepted = service.index_faces("q", blurred, quality_filter="NONE")
    assert len(accepted.face_records) == 1
    with pytest.raises(InvalidParameterError):
        service.index_faces("q", couple, quality_filter="SUPER")


def test_no_face_and_bad_search_parameters(service: CollectionService, tmp_path: Path) -> None:
    service.create_collection("e")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    with pytest.raises(InvalidParameterError, match="no face"):
        service.search_faces_by_image("e", blank)
    assert service.index_faces("e", blank).face_records == ()
    with pytest.raises(InvalidParameterError):
        service.search_faces_by_image("e", blank, max_faces=0)
    with pytest.raises(InvalidParameterError):
        service.search_faces_by_image("e", blank, threshold=101)
    with pytest.raises(ResourceNotFoundError):
        service.search_faces_by_image("missing", blank)


def test_list_faces_pages(service: CollectionService, people: dict[str, list[Path]]) -> None:
    service.create_collection("p")
    ids = []
    for name, images in people.items():
        ids.append(service.index_faces("p", images[0], external_image_id=name).face_records[0][0])
    seen, token = [], None
    while True:
        page, token = service.list_faces("p", max_results=4, next_token=token)
        seen.extend(f.face_id for f in page)
        if token is None:
            break
    assert seen == [f.face_id for f in ids]
    only, _ = service.list_faces("p", face_ids=[ids[2].face_id])
    assert [f.face_id for f in only] == [ids[2].face_id]


def test_restart_keeps_faces_searchable(
    tmp_path: Path, face_service: FaceService, people: dict[str, list[Path]]
) -> None:
    settings = Settings(data_dir=tmp_path, workers=1)
    first = CollectionService(settings, faces=face_service)
    first.create_collection("r")
    names = list(people)
    for name in names[:3]:
        first.index_faces("r", people[name][0], external_image_id=name)
    first.search_faces_by_image("r", people[names[0]][1])  # builds the index
    first.close()  # writes the snapshot
    assert (tmp_path / "indexes" / "r.index").is_file()
    # a write after the snapshot must be replayed from the store's change log
    extra = CollectionService(settings, faces=face_service)
    extra.index_faces("r", people[names[3]][0], external_image_id=names[3])
    second = CollectionService(settings, faces=face_service)
    found = second.search_faces_by_image("r", people[names[3]][1])
    assert found.matches and found.matches[0].face.external_image_id == names[3]
    # a damaged snapshot is rebuilt from the store
    (tmp_path / "indexes" / "r.index").write_bytes(b"garbage")
    third = CollectionService(settings, faces=face_service)
    again = third.search_faces_by_image("r", people[names[0]][1])
    assert again.matches[0].face.external_image_id == names[0]


def test_longest_collection_ids_page(
    service: CollectionService, people: dict[str, list[Path]]
) -> None:
    """255-character CollectionIds (the longest valid) page through both listings, with
    tokens within Rekognition's 255 characters, even when the page's last id is deleted."""
    stem = "a" * 200
    ids = sorted([f"{stem}{i}" + "z" * 54 for i in range(6)] + ["b", "c" * 255])
    for collection_id in ids:
        service.create_collection(collection_id)
    for size in (1, 2, 3):
        seen: list[str] = []
        token: str | None = None
        while True:
            page, token = service.list_collections(max_results=size, next_token=token)
            seen.extend(c.collection_id for c in page)
            assert token is None or len(token) <= 255
            if token is None:
                break
        assert seen == ids
    page, token = service.list_collections(max_results=2)
    service.delete_collection(page[-1].collection_id)  # the id the token ends at
    rest, _ = service.list_collections(max_results=100, next_token=token)
    assert set(ids[2:]) <= {c.collection_id for c in rest}  # none skipped
    longest = ids[-1]
    faces = [
        service.index_faces(longest, images[0], external_image_id=name).face_records[0][0]
        for name, images in list(people.items())[:3]
    ]
    listed: list[str] = []
    token = None
    while True:
        face_page, token = service.list_faces(longest, max_results=1, next_token=token)
        listed.extend(f.face_id for f in face_page)
        assert token is None or len(token) <= 255
        if token is None:
            break
    assert listed == [f.face_id for f in faces]


def _pasted(canvas: np.ndarray, photo: Path, left_px: int, top_px: int, side_px: int) -> None:
    # the middle of an LFW photo: its face without the bystanders at the edges
    face = cv2.resize(load_image(photo).pixels_bgr[60:190, 60:190], (side_px, side_px))
    canvas[top_px : top_px + side_px, left_px : left_px + side_px] = face


def test_bulk_enrolment_enrols_the_subject_only(
    service: CollectionService, data_dir: Path, people: dict[str, list[Path]], tmp_path: Path
) -> None:
    service.create_collection("s")
    couple = data_dir / "photos" / "couple.jpg"
    result = service.index_faces("s", couple, external_image_id="couple", subject_only=True)
    faces = service.faces.engine.detect(load_image(couple))
    assert len(faces) == 2 and len(result.face_records) == 1
    # the largest face (clearly larger: no tie) is the subject, the other a bystander
    assert faces.areas_px[0] > faces.areas_px[1] / 0.9
    assert result.face_records[0][1] == 0
    assert [(u.face_index, u.reasons) for u in result.unindexed] == [(1, ("NOT_THE_SUBJECT",))]
    # IndexFaces keeps AWS semantics: both faces
    every = service.index_faces("s", couple, external_image_id="couple-all")
    assert len(every.face_records) == 2 and every.unindexed == ()

    # a group: two faces about as large (the same photo at 300 and 290 px: 93 % of the area)
    # and a small one; the face nearest the centre wins the tie although it is smaller
    names = sorted(people)
    canvas = np.full((600, 1200, 3), 128, dtype=np.uint8)
    _pasted(canvas, people[names[0]][0], 0, 0, 300)  # top-left corner, largest
    _pasted(canvas, people[names[0]][0], 455, 155, 290)  # centred
    _pasted(canvas, people[names[1]][0], 1000, 400, 180)  # small
    group = tmp_path / "group.jpg"
    cv2.imwrite(str(group), canvas)
    detected = service.faces.engine.detect(load_image(group))
    assert len(detected) == 3
    assert 0.9 < detected.areas_px[1] / detected.areas_px[0] < 1.0
    enrolled = service.index_faces("s", group, external_image_id="group", subject_only=True)
    assert len(enrolled.face_records) == 1
    index = enrolled.face_records[0][1]
    centre_x = float(detected.boxes_px[index][0] + detected.boxes_px[index][2]) / 2
    assert index == 1 and 500 < centre_x < 700  # not the largest face: the central one
    assert [(u.face_index, u.reasons) for u in enrolled.unindexed] == [
        (0, ("NOT_THE_SUBJECT",)),
        (2, ("NOT_THE_SUBJECT",)),
    ]


def test_auto_keeps_three_quarter_views_and_refuses_a_blurred_face(
    service: CollectionService, data_dir: Path, tmp_path: Path
) -> None:
    """AUTO rejects what hurts search (a blur), not a face turned 30–50° (sorted by eye)."""
    service.create_collection("auto")
    root = data_dir / "lfw-devtrain" / "images"
    for name in ("Paul_Bremer/Paul_Bremer_0002.jpg", "Jo_Joong-hyon/Jo_Joong-hyon_0001.jpg"):
        result = service.index_faces("auto", root / name, subject_only=True)
        assert len(result.face_records) == 1, result.unindexed
    pixels = load_image(root / "Paul_Bremer" / "Paul_Bremer_0002.jpg").pixels_bgr
    blurred = tmp_path / "blurred.jpg"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(pixels, (0, 0), 6))
    rejected = service.index_faces("auto", blurred, subject_only=True)
    assert rejected.face_records == ()
    assert "LOW_SHARPNESS" in rejected.unindexed[0].reasons
