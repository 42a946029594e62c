"""Bulk-enrolment worker for the kill -9 test (run as a script; prints one line per ack).

    python crash_worker.py DATA_DIR SEED FIRST_IMAGE_NUMBER

With ``FACELEDGER_DATABASE_URL`` set in its environment it writes to that PostgreSQL database.

Enrols synthetic faces (random unit vectors) straight into the collection service (no ledger),
one image at a time, deletes some of the faces it enrolled earlier, and every few operations
searches and writes the index snapshot, so a kill can land inside any of these. Prints the
protocol of ``faceledger.evaluation.synthetic`` (``ADD <ext> <face_id>``, ``DELETING``, ``DEL``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from faceledger.config import Settings
from faceledger.domain.faces import AnalysedImage
from faceledger.evaluation.synthetic import enrol_and_delete_forever
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

    def enrol(image: AnalysedImage, external_image_id: str) -> list[str]:
        result = service.enrol(
            COLLECTION, image, external_image_id=external_image_id, quality_filter="NONE"
        )
        return [face.face_id for face, _ in result.face_records]

    def delete(face_id: str) -> bool:
        deleted, _ = service.delete_faces(COLLECTION, [face_id])
        return bool(deleted)

    def search_and_snapshot(image: AnalysedImage) -> None:
        if rng.random() < 0.2:
            probe = image.faces.embeddings
            assert probe is not None
            service.indexes.search(COLLECTION, probe[0], k=5, min_cosine=0.0)
            service.indexes.save_all()

    enrol_and_delete_forever(
        enrol,
        delete,
        rng=rng,
        dim=service.store.embedding_dim(COLLECTION),
        first_image=first,
        max_faces_per_image=3,
        after_step=search_and_snapshot,
    )


if __name__ == "__main__":
    main()
