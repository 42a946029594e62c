"""Bulk-enrolment worker for the kill -9 test (run as a script; prints one line per ack).

    python crash_worker.py DATA_DIR SEED FIRST_IMAGE_NUMBER

With ``FACELEDGER_DATABASE_URL`` set in its environment it writes to that PostgreSQL database.

Enrols synthetic faces (random unit vectors) one image at a time, deletes some of the faces it
enrolled earlier, and every few operations searches and writes the index snapshot, so a kill
can land inside any of these. A line ``ADD <ext> <face_id>`` or ``DEL <face_id>`` is printed
(and flushed) only after the call returned, i.e. after the write was acknowledged;
``DELETING <face_id>`` is printed before a delete starts (its outcome is unknown until DEL).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from faceledger.config import Settings
from faceledger.evaluation.synthetic import synthetic_image
from faceledger.services.collections import CollectionService

COLLECTION = "crash"


def main() -> None:
    data_dir, seed, first = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)
    service = CollectionService(Settings(data_dir=data_dir, workers=1))
    try:
        service.describe_collection(COLLECTION)
    except Exception:
        service.create_collection(COLLECTION)
    dim = service.store.embedding_dim(COLLECTION)
    mine: list[str] = []
    print("READY", flush=True)
    number = first
    while True:
        image = synthetic_image(rng, int(rng.integers(1, 4)), dim)
        result = service.enrol(
            COLLECTION, image, external_image_id=f"img-{number}", quality_filter="NONE"
        )
        for face, _ in result.face_records:
            print(f"ADD img-{number} {face.face_id}", flush=True)
            mine.append(face.face_id)
        number += 1
        if mine and rng.random() < 0.3:
            victim = mine.pop(int(rng.integers(len(mine))))
            print(f"DELETING {victim}", flush=True)  # in flight: may or may not commit
            deleted, _ = service.delete_faces(COLLECTION, [victim])
            if deleted:
                print(f"DEL {victim}", flush=True)
        if rng.random() < 0.2:
            probe = image.faces.embeddings
            assert probe is not None
            service.indexes.search(COLLECTION, probe[0], k=5, min_cosine=0.0)
            service.indexes.save_all()


if __name__ == "__main__":
    main()
