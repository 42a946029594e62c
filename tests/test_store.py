"""The SQLite store: collections, faces, change log, durability, real deletion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import ResourceAlreadyExistsError, ResourceNotFoundError
from faceledger.store.sqlite import NewFace, SQLiteStore


def _face(rng: np.random.Generator, sha: str = "a" * 64, ext: str | None = "img-1") -> NewFace:
    v = rng.normal(size=8).astype(np.float32)
    return NewFace(sha, ext, BoundingBox(0.1, 0.2, 0.3, 0.4), 99.0, v / np.linalg.norm(v))


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "db.sqlite3")
    s.create_collection("c1", "pack-1", 8)
    return s


def test_collections_lifecycle(store: SQLiteStore) -> None:
    with pytest.raises(ResourceAlreadyExistsError):
        store.create_collection("c1", "pack-1", 8)
    store.create_collection("c0", "pack-1", 8)
    assert [c.collection_id for c in store.list_collections(after=None, limit=10)] == ["c0", "c1"]
    assert [c.collection_id for c in store.list_collections(after="c0", limit=10)] == ["c1"]
    store.delete_collection("c0")
    with pytest.raises(ResourceNotFoundError):
        store.collection("c0")
    with pytest.raises(ResourceNotFoundError):
        store.delete_collection("c0")


def test_faces_round_trip_and_change_log(store: SQLiteStore) -> None:
    rng = np.random.default_rng(0)
    rows = store.add_faces("c1", [_face(rng), _face(rng)])
    assert len({r.face.face_id for r in rows}) == 2
    assert rows[0].face.image_id == rows[1].face.image_id  # one image, one ImageId
    assert store.collection("c1").face_count == 2
    assert [r.row_id for r in store.faces_of_image("c1", "a" * 64, "img-1")] == [
        r.row_id for r in rows
    ]
    assert store.faces_of_image("c1", "a" * 64, None) == []
    _, vec = store.embedding("c1", rows[0].face.face_id)
    ids, vecs, deleted, seq = store.changes_since("c1", 0)
    assert list(ids) == [r.row_id for r in rows] and len(deleted) == 0 and seq == 2
    assert np.allclose(vecs[0], vec)
    assert store.delete_faces("c1", [rows[0].face.face_id, "missing"]) == [rows[0].face.face_id]
    ids, vecs, deleted, seq2 = store.changes_since("c1", seq)
    assert list(deleted) == [rows[0].row_id] and len(ids) == 0 and seq2 == 3
    page = store.list_faces("c1", after_row=0, limit=10)
    assert [r.face.face_id for r in page] == [rows[1].face.face_id]


def test_acknowledged_writes_survive_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "db.sqlite3"
    first = SQLiteStore(path)
    first.create_collection("c", "p", 8)
    added = first.add_faces("c", [_face(rng)])
    # no close(): a new process opening the file sees the committed write
    second = SQLiteStore(path)
    assert second.collection("c").face_count == 1
    assert second.faces_by_id("c", [added[0].face.face_id])


def test_deleted_data_is_overwritten_in_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "db.sqlite3"
    store = SQLiteStore(path)
    store.create_collection("secret-case", "p", 8)
    rows = store.add_faces("secret-case", [_face(rng, ext="suspect-4711") for _ in range(3)])
    store.delete_collection("secret-case")
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("db.sqlite3"))
    assert b"suspect-4711" not in raw
    for row in rows:
        assert row.face.face_id.encode() not in raw
