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
from functools import partial

from _common import lfw_photos, machine, require_lfw, write_result
from _crop_policy import CALLER, alternately, plain_and_kept, timed_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    args = parser.parse_args()
    photos = [person[0].read_bytes() for person in lfw_photos(require_lfw(), args.photos)]
    with plain_and_kept() as gate:
        gate.index_faces(CALLER, "plain", photos[0], external_image_id="warm")
        times, indexed = alternately(photos, partial(gate.index_faces, CALLER))
        sizes, views = [], []
        for face_id in [face.face_id for result in indexed for face, _ in result.face_records]:
            crop, took_ms = timed_ms(partial(gate.get_face_crop, CALLER, "kept", face_id))
            sizes.append(len(crop))
            views.append(took_ms)
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
