"""Worker for the kill -9 test of intents (run as a script; prints one line per ack).

    python intent_worker.py DATA_DIR SEED FIRST_IMAGE_NUMBER

Enrols synthetic faces through the gateway (so every change writes an intent, the
store change, then an outcome) and deletes some of them, until it is killed. ``ADD <face_id>``
and ``DEL <face_id>`` are printed after the call returned (acknowledged).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from faceledger.config import Settings
from faceledger.services.gateway import Gateway, local_operator

sys.path.insert(0, str(Path(__file__).parent))
from crash_worker import COLLECTION, synthetic_image


def main() -> None:
    data_dir, seed, first = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)
    gate = Gateway(Settings(data_dir=data_dir, workers=1))
    caller = local_operator()
    try:
        gate.describe_collection(caller, COLLECTION)
    except Exception:
        gate.create_collection(caller, COLLECTION)
    dim = gate._collections.store.embedding_dim(COLLECTION)
    mine: list[str] = []
    print("READY", flush=True)
    number = first
    while True:
        image = synthetic_image(rng, int(rng.integers(1, 3)), dim)
        result = gate.index_faces(
            caller, COLLECTION, image, external_image_id=f"img-{number}", quality_filter="NONE"
        )
        for face, _ in result.face_records:
            print(f"ADD {face.face_id}", flush=True)
            mine.append(face.face_id)
        number += 1
        if mine and rng.random() < 0.3:
            victim = mine.pop(int(rng.integers(len(mine))))
            deleted, _ = gate.delete_faces(caller, COLLECTION, [victim])
            if deleted:
                print(f"DEL {victim}", flush=True)


if __name__ == "__main__":
    main()
