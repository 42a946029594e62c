"""The stores (SQLite and PostgreSQL): collections, faces, change log, durability, real
deletion. Tests taking ``store`` or ``database_url`` run once per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import ResourceAlreadyExistsError, ResourceNotFoundError
from faceledger.store.base import FaceStore as Store
from faceledger.store.factory import open_store
from faceledger.store.sqlite.faces import NewFace, SQLiteStore


def _face(rng: np.random.Generator, sha: str = "a" * 64, ext: str | None = "img-1") -> NewFace:
    v = rng.normal(size=8).astype(np.float32)
    return NewFace(sha, ext, BoundingBox(0.1, 0.2, 0.3, 0.4), 99.0, v / np.linalg.norm(v))


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> Iterator[Store]:
    s = open_store(Settings(data_dir=tmp_path, database_url=database_url))
    s.create_collection("c1", "pack-1", 8)
    yield s
    s.close()


def test_collections_lifecycle(store: Store) -> None:
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


def test_faces_round_trip(store: Store) -> None:
    rng = np.random.default_rng(0)
    new = [_face(rng), _face(rng)]
    rows = store.add_faces("c1", new)
    assert len({r.face.face_id for r in rows}) == 2
    assert rows[0].face.image_id == rows[1].face.image_id  # one image, one ImageId
    assert store.collection("c1").face_count == 2
    assert [r.row_id for r in store.faces_of_image("c1", "a" * 64, "img-1")] == [
        r.row_id for r in rows
    ]
    assert store.faces_of_image("c1", "a" * 64, None) == []
    row_id, vec = store.embedding("c1", rows[0].face.face_id)
    assert row_id == rows[0].row_id
    assert np.allclose(vec, new[0].embedding, atol=1e-3)  # PostgreSQL keeps fp16 (halfvec)
    assert store.delete_faces("c1", [rows[0].face.face_id, "missing"]) == [rows[0].face.face_id]
    page = store.list_faces("c1", after_row=0, limit=10)
    assert [r.face.face_id for r in page] == [rows[1].face.face_id]
    assert store.collection("c1").face_count == 1
    with pytest.raises(ResourceNotFoundError):
        store.embedding("c1", rows[0].face.face_id)
    (ids, vecs), *rest = list(store.all_embeddings("c1"))
    assert not rest and list(ids) == [rows[1].row_id]
    assert np.allclose(vecs[0], new[1].embedding, atol=1e-3)


def test_change_log(store: Store) -> None:
    """The change log the in-memory indexes replay: additions with their vectors, deletions,
    sequence numbers, and a new generation when a collection is deleted and made again."""
    rng = np.random.default_rng(0)
    start = store.change_position("c1")
    assert start.seq == 0
    rows = store.add_faces("c1", [_face(rng), _face(rng)])
    _, vec = store.embedding("c1", rows[0].face.face_id)
    changes = store.changes_since("c1", 0)
    assert list(changes.ids) == [r.row_id for r in rows] and len(changes.deleted) == 0
    assert changes.last == 2 and changes.generation == start.generation
    assert np.allclose(changes.vectors[0], vec)
    assert store.change_position("c1").seq == 2
    assert store.delete_faces("c1", [rows[0].face.face_id, "missing"]) == [rows[0].face.face_id]
    later = store.changes_since("c1", changes.last)
    assert list(later.deleted) == [rows[0].row_id] and len(later.ids) == 0 and later.last == 3
    # replayed from the start, a face added then deleted is not offered as an addition
    assert list(store.changes_since("c1", 0).ids) == [rows[1].row_id]
    nothing = store.changes_since("c1", 3)
    assert nothing.last == 3 and len(nothing.ids) == len(nothing.deleted) == 0
    store.delete_collection("c1")
    store.create_collection("c1", "pack-1", 8)
    again = store.change_position("c1")
    assert again.generation != start.generation and again.seq == 0


def test_acknowledged_writes_survive_reopen(tmp_path: Path, database_url: str | None) -> None:
    rng = np.random.default_rng(1)
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    first = open_store(settings)
    first.create_collection("c", "p", 8)
    added = first.add_faces("c", [_face(rng)])
    # no close(): a new process opening the database sees the committed write
    second = open_store(settings)
    assert second.collection("c").face_count == 1
    assert second.faces_by_id("c", [added[0].face.face_id])
    for opened in (first, second):
        opened.close()


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
