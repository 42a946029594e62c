"""Each stored face keeps the size of the image it was indexed from (both stores), and a SQLite
data file from before the size was kept is upgraded in place (its faces read back with None)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np

from faceledger.config import Settings
from faceledger.domain.collections import BoundingBox
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
