"""Each stored face keeps the size of the image it was indexed from (both stores), and a SQLite
data file from before the size was kept is upgraded in place (its faces read back with None);
the native API gives pixel boxes from that size, or from the upload for older faces."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np

from faceledger.api.native.collections.mappers import index_faces_out
from faceledger.config import Settings
from faceledger.domain.collections import BoundingBox, IndexFacesResult, StoredFace
from faceledger.domain.faces import AnalysedImage, Faces
from faceledger.inference.imaging import load_image
from faceledger.services.collections import CollectionService
from faceledger.store.factory import open_store
from faceledger.store.sqlite.faces import SCHEMA, NewFace, SQLiteStore

BOX = BoundingBox(0.1, 0.2, 0.3, 0.4)


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)


def test_faces_keep_their_image_size(tmp_path: Path, database_url: str | None) -> None:
    store = open_store(Settings(data_dir=tmp_path, database_url=database_url))
    try:
        store.create_collection("c", "pack-1", 8)
        sized = NewFace("a" * 64, "sized", BOX, 99.0, _vector(1), 640, 480)
        unsized = NewFace("b" * 64, "unsized", BOX, 99.0, _vector(2))
        added = store.add_faces("c", [sized, unsized])
        assert [(r.face.image_width_px, r.face.image_height_px) for r in added] == [
            (640, 480),
            (None, None),
        ]
        read = store.faces_by_id("c", [r.face.face_id for r in added])
        assert read[added[0].face.face_id].face.image_width_px == 640
        assert read[added[0].face.face_id].face.image_height_px == 480
        assert read[added[1].face.face_id].face.image_width_px is None
        listed = store.list_faces("c", after_row=0, limit=10)
        assert [(r.face.image_width_px, r.face.image_height_px) for r in listed] == [
            (640, 480),
            (None, None),
        ]
    finally:
        store.close()


def test_a_data_file_from_before_image_sizes_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "faceledger.db"
    old_schema = SCHEMA.replace(",\n    image_width_px INTEGER,\n    image_height_px INTEGER", "")
    assert old_schema != SCHEMA
    with sqlite3.connect(path) as db:
        db.executescript(old_schema)
        db.execute("INSERT INTO collections VALUES ('c', 'pack-1', 8, ?)", (time.time(),))
        db.execute(
            "INSERT INTO faces (collection_id, face_id, image_id, image_sha256, "
            "external_image_id, bbox_left, bbox_top, bbox_width, bbox_height, confidence, "
            "user_id, embedding, created_at) VALUES ('c', 'old-face', 'old-image', ?, 'old', "
            "0.1, 0.2, 0.3, 0.4, 99.0, NULL, ?, ?)",
            ("c" * 64, _vector(3).astype("<f4").tobytes(), time.time()),
        )
    db.close()
    store = SQLiteStore(path)
    try:
        (old,) = store.list_faces("c", after_row=0, limit=10)
        assert old.face.face_id == "old-face"
        assert (old.face.image_width_px, old.face.image_height_px) == (None, None)
        (new,) = store.add_faces("c", [NewFace("d" * 64, "new", BOX, 99.0, _vector(4), 80, 90)])
        again = store.faces_by_id("c", [new.face.face_id])[new.face.face_id]
        assert (again.face.image_width_px, again.face.image_height_px) == (80, 90)
    finally:
        store.close()
    # Opening the upgraded file again changes nothing.
    SQLiteStore(path).close()


def test_index_faces_stores_the_size_of_the_image(tmp_path: Path, data_dir: Path) -> None:
    photo = data_dir / "photos" / "couple.jpg"
    image = load_image(photo)
    service = CollectionService(Settings(data_dir=tmp_path, workers=1))
    try:
        service.create_collection("c")
        result = service.index_faces("c", photo)
        assert len(result.face_records) == 2
        faces, _ = service.list_faces("c")
        assert [(f.image_width_px, f.image_height_px) for f in faces] == [
            (image.width_px, image.height_px)
        ] * 2
    finally:
        service.close()


def _indexed(face: StoredFace, width_px: int, height_px: int) -> IndexFacesResult:
    empty = Faces.empty()
    analysed = AnalysedImage("e" * 64, "jpeg", width_px, height_px, 1000, empty)
    return IndexFacesResult(((face, -1),), (), "pack-1", duplicate=True, analysed=analysed)


def test_native_pixel_boxes_come_from_the_stored_size_or_else_the_upload() -> None:
    box = BoundingBox(0.25, 0.5, 0.5, 0.25)
    sized = StoredFace("f1", "i1", None, box, 99.0, None, "pack-1", 400, 200)
    [face] = index_faces_out(_indexed(sized, 800, 600)).faces
    assert face.bbox_px.model_dump() == {"left": 100.0, "top": 100.0, "width": 200.0, "height": 50}
    unsized = StoredFace("f2", "i1", None, box, 99.0, None, "pack-1")  # stored before 0006
    [face] = index_faces_out(_indexed(unsized, 800, 600)).faces
    assert face.bbox_px.model_dump() == {"left": 200.0, "top": 300.0, "width": 400.0, "height": 150}
