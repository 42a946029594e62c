"""What keeping a lead's searched face costs: SearchFacesByImage time with and without it, the
sealed probe's size, and a GetLeadProbeCrop (read, decrypt, ledger record).

Enrols the first photo of LFW people with two or more photos into two collections of one
gateway (embedded store), one whose policy keeps face crops and one whose does not; then
searches each collection with each person's second photo, alternating photo by photo so both
see the same machine load. Every search that finds a candidate makes a lead; in the collection
that keeps crops the lead keeps its searched face. Prints and writes
``bench/results/lead_probes.json``.

    python bench/lead_probes.py [--people 40]
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial

from _common import lfw_photos, machine, require_lfw, write_result
from _crop_policy import CALLER, COLLECTIONS, alternately, plain_and_kept, timed_ms
from faceledger.services.gateway import Gateway


def _run(gate: Gateway, pairs: list[tuple[bytes, bytes]]) -> dict[str, object]:
    for enrolled, _ in pairs:
        for name in COLLECTIONS:
            gate.index_faces(CALLER, name, enrolled)
    gate.search_faces_by_image(CALLER, "plain", pairs[0][1])  # warm the models
    searched = [photo for _, photo in pairs]
    times, found = alternately(searched, partial(gate.search_faces_by_image, CALLER))
    leads = [result.lead_id for result in found if result.lead_id is not None]
    sizes, sealed, views = [], [], []
    for lead_id in leads:
        crop, took_ms = timed_ms(partial(gate.get_lead_probe_crop, CALLER, lead_id))
        sizes.append(len(crop))
        views.append(took_ms)
        probe = gate._leads.store.lead_probe(lead_id)
        sealed.append(len(probe.sealed or b"") if probe is not None else 0)
    return {
        "searches_per_collection": len(pairs),
        "leads_with_probe": len(leads),
        "probe_jpeg_bytes": {"median": statistics.median(sizes), "max": max(sizes)},
        "sealed_bytes_median": statistics.median(sealed),
        "search_by_image_ms_median": {k: statistics.median(v) for k, v in times.items()},
        "get_lead_probe_crop_ms_median": statistics.median(views),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=40)
    args = parser.parse_args()
    people = lfw_photos(require_lfw(), args.people, min_photos=2)
    pairs = [(photos[0].read_bytes(), photos[1].read_bytes()) for photos in people]
    with plain_and_kept() as gate:
        payload = _run(gate, pairs)
    payload["machine"] = machine()
    plain, kept = payload["search_by_image_ms_median"].values()  # type: ignore[attr-defined]
    print(
        f"{payload['leads_with_probe']} leads with a probe of {len(pairs)} searches: probe "
        f"median {payload['probe_jpeg_bytes']['median'] / 1000:.1f} KB "  # type: ignore[index]
        f"(sealed +28 B); SearchFacesByImage median {plain:.1f} ms without, {kept:.1f} ms "
        f"with; GetLeadProbeCrop median {payload['get_lead_probe_crop_ms_median']:.2f} ms; "
        f"load {payload['machine']['load_average']}"  # type: ignore[index]
    )
    write_result("lead_probes.json", payload)


if __name__ == "__main__":
    main()
