"""kill -9 during bulk enrolment: every acknowledged write survives, no deleted face returns,
and the vector index agrees with the store after each restart. On both store backends (with
PostgreSQL the process killed is the API-side worker; the database server keeps running)."""

from __future__ import annotations

import random
from pathlib import Path

from faceledger.config import Settings
from faceledger.services.collections import CollectionService
from faceledger.services.vectors import CollectionIndexes
from helpers import crash_worker
from helpers.processes import run_and_kill

WORKER = Path(crash_worker.__file__)
KILLS = {"sqlite": 10, "postgres": 5}


def test_acknowledged_writes_survive_kill_9_at_random_points(
    tmp_path: Path, store_backend: str, database_url: str | None
) -> None:
    rng = random.Random(20261123)
    acked: dict[str, str] = {}  # face_id → external image id
    deleted: set[str] = set()
    in_flight: set[str] = set()  # deletes started but not acknowledged when the kill landed
    next_image = 0
    for round_number in range(KILLS[store_backend]):
        args = [str(tmp_path), str(round_number), str(next_image)]
        lines = run_and_kill(WORKER, args, rng.uniform(0.05, 1.5), database_url)
        for line in lines:
            kind, *rest = line.split()
            if kind == "ADD":
                acked[rest[1]] = rest[0]
                next_image = max(next_image, int(rest[0].split("-")[1]) + 1)
            elif kind == "DELETING":
                in_flight.add(rest[0])
            elif kind == "DEL":
                deleted.add(rest[0])
                in_flight.discard(rest[0])
        # an image whose write was not acknowledged may still have committed: skip its number
        next_image += 1

        service = CollectionService(
            Settings(data_dir=tmp_path, workers=1, database_url=database_url)
        )
        store = service.store
        # an unacknowledged delete may have committed or not; the store says which
        survivors = set(store.faces_by_id("crash", sorted(in_flight)))
        deleted |= in_flight - survivors
        in_flight.clear()
        live = [f for f in acked if f not in deleted]
        present = store.faces_by_id("crash", live)
        assert set(present) == set(live), f"round {round_number}: acknowledged faces lost"
        assert not store.faces_by_id("crash", sorted(deleted)), "a deleted face came back"

        # the index (snapshot + change-log replay, or rebuild) agrees with the store exactly
        rows = [r.row_id for r in store.list_faces("crash", after_row=0, limit=10**6)]
        assert len(rows) == store.collection("crash").face_count
        assert isinstance(service.indexes, CollectionIndexes)  # either backend, by default
        index = service.indexes.get("crash")
        assert len(index) == len(rows)
        assert all(index.contains(r) for r in rows)
        # every acknowledged live face is searchable: its own vector finds it first
        for face_id in rng.sample(live, min(len(live), 15)):
            row_id, vector = store.embedding("crash", face_id)
            ids, cosines = service.indexes.search("crash", vector, k=1, min_cosine=0.0)
            assert int(ids[0]) == row_id and cosines[0] > 0.999
        # a search over the whole collection never returns a deleted face
        everything = service.search_faces("crash", live[0], threshold=0, max_faces=4096)
        assert not deleted & {m.face.face_id for m in everything}
        service.store.close()
    assert len(acked) > 50 and deleted, "the worker should have made progress between kills"
