"""A collection's index follows the store and switches backend as the collection grows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceledger.domain.collections import BoundingBox
from faceledger.index import ANNIndex, ExactIndex, IndexPolicy
from faceledger.services.vectors import CollectionIndexes
from faceledger.store.sqlite.faces import NewFace, SQLiteStore


def test_index_grows_from_exact_to_ann_and_stays_in_step(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.create_collection("c", "p", 16)
    indexes = CollectionIndexes(store, tmp_path / "indexes")
    indexes._policy = IndexPolicy(exact_max_size=200)  # limit at 16-d: 1,600 faces
    rng = np.random.default_rng(0)
    vectors = []

    def add(n: int) -> None:
        v = rng.normal(size=(n, 16)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        vectors.extend(v)
        store.add_faces("c", [NewFace("x" * 64, None, BoundingBox(0, 0, 1, 1), 99, x) for x in v])

    add(100)
    assert isinstance(indexes.get("c"), ExactIndex)
    for _ in range(40):
        add(100)
    index = indexes.get("c")
    assert isinstance(index, ANNIndex) and len(index) == 4100
    # every stored vector finds itself
    for row in rng.choice(4100, 20, replace=False):
        ids, cos = indexes.search("c", vectors[row], k=1, min_cosine=0.0)
        assert int(ids[0]) == row + 1 and cos[0] > 0.999
    # the snapshot round-trips and catches up with later writes
    indexes.save("c")
    add(50)
    reopened = CollectionIndexes(store, tmp_path / "indexes")
    assert len(reopened.get("c")) == 4150
