"""Worker for the kill -9 test of intents (run as a script; prints one line per ack).

    python intent_worker.py DATA_DIR SEED FIRST_IMAGE_NUMBER

Enrols synthetic faces through the gateway (so every change writes an intent, the store change,
then an outcome) and deletes some of them, until it is killed. Prints the protocol of
``faceledger.evaluation.synthetic`` (``ADD <ext> <face_id>``, ``DELETING``, ``DEL``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from faceledger.config import Settings
from faceledger.evaluation.synthetic import enrol_and_delete_forever, gateway_verbs
from faceledger.services.gateway import Gateway, local_operator

COLLECTION = "crash"


def main() -> None:
    data_dir, seed, first = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    gate = Gateway(Settings(data_dir=data_dir, workers=1))
    caller = local_operator()
    try:
        gate.describe_collection(caller, COLLECTION)
    except Exception:
        gate.create_collection(caller, COLLECTION)

    enrol_and_delete_forever(
        *gateway_verbs(gate, caller, COLLECTION),
        rng=np.random.default_rng(seed),
        dim=gate._collections.store.embedding_dim(COLLECTION),
        first_image=first,
        max_faces_per_image=2,
    )


if __name__ == "__main__":
    main()
