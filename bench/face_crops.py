"""What keeping face crops costs: crop size on disk and IndexFaces time, crops kept vs not.

Enrols the same LFW photos into two collections of one gateway (embedded store), one whose
policy keeps face crops and one whose does not, alternating photo by photo so both see the
same machine load; then reads every crop back (GetFaceCrop) once. Prints and writes
``bench/results/face_crops.json``.

    python bench/face_crops.py [--photos 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine, require_lfw, write_result
from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    args = parser.parse_args()
    root = require_lfw()
    photos = [next(iter(sorted(p.glob("*.jpg")))) for p in sorted(root.iterdir())[: args.photos]]
    caller = Caller(Principal("bench", ROLES, "BENCH"), source="cli", request_id="bench")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            ledger_key_file=Path(tmp) / "keys" / "ledger.key",
            crop_key_file=Path(tmp) / "keys" / "crops.key",
            workers=1,
        )
        gate = Gateway(settings)
        try:
            gate.create_collection(caller, "plain")
            gate.create_collection(caller, "kept")
            gate.put_policy(caller, "kept", CollectionPolicy(keep_face_crops=True))
            gate.index_faces(caller, "plain", photos[0].read_bytes(), external_image_id="warm")
            times: dict[str, list[float]] = {"plain": [], "kept": []}
            kept_ids: list[str] = []
            for photo in photos:
                data = photo.read_bytes()
                for collection in ("plain", "kept"):
                    start = time.perf_counter()
                    result = gate.index_faces(caller, collection, data)
                    times[collection].append((time.perf_counter() - start) * 1000)
                    if collection == "kept":
                        kept_ids += [f.face_id for f, _ in result.face_records]
            sizes, views = [], []
            for face_id in kept_ids:
                start = time.perf_counter()
                sizes.append(len(gate.get_face_crop(caller, "kept", face_id)))
                views.append((time.perf_counter() - start) * 1000)
        finally:
            gate.close()
    payload = {
        "photos": len(photos),
        "crops": len(sizes),
        "crop_bytes": {
            "median": statistics.median(sizes),
            "min": min(sizes),
            "max": max(sizes),
        },
        "index_faces_ms_median": {k: statistics.median(v) for k, v in times.items()},
        "get_face_crop_ms_median": statistics.median(views),
        "machine": machine(),
    }
    plain, kept = payload["index_faces_ms_median"].values()
    print(
        f"{len(sizes)} crops: median {payload['crop_bytes']['median'] / 1000:.1f} KB "
        f"({min(sizes) / 1000:.1f}–{max(sizes) / 1000:.1f}); IndexFaces median "
        f"{plain:.1f} ms without crops, {kept:.1f} ms with; GetFaceCrop median "
        f"{payload['get_face_crop_ms_median']:.2f} ms; load {payload['machine']['load_average']}"
    )
    write_result("face_crops.json", payload)


if __name__ == "__main__":
    main()
