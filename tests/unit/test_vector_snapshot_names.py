"""A collection with the longest id Rekognition allows still snapshots its index."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceledger.domain.collections import BoundingBox
from faceledger.services.vectors import CollectionIndexes, snapshot_stem
from faceledger.store.sqlite.faces import NewFace, SQLiteStore

LONGEST = "L" * 255  # CollectionId: [a-zA-Z0-9_.\-]+, 1–255 characters


def test_long_ids_get_short_distinct_file_names() -> None:
    assert snapshot_stem("faces") == "faces"
    assert snapshot_stem("a" * 128) == "a" * 128
    long_a, long_b = snapshot_stem(LONGEST), snapshot_stem("L" * 254 + "M")
    assert long_a != long_b
    assert len(f".{long_a}.index.0123456789ab.tmp") < 255


def test_index_of_a_255_character_collection_round_trips(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.create_collection(LONGEST, "p", 16)
    vectors = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.add_faces(
        LONGEST, [NewFace("x" * 64, None, BoundingBox(0, 0, 1, 1), 99, v) for v in vectors]
    )
    indexes = CollectionIndexes(store, tmp_path / "indexes")
    assert len(indexes.get(LONGEST)) == 5
    indexes.save(LONGEST)  # raised OSError (file name too long) before
    assert len(list((tmp_path / "indexes").glob("*.index"))) == 1
    reopened = CollectionIndexes(store, tmp_path / "indexes")
    ids, cos = reopened.search(LONGEST, vectors[3], k=1, min_cosine=0.0)
    assert int(ids[0]) == 4 and cos[0] > 0.999
