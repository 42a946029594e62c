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
import tempfile
import time
from pathlib import Path

from _common import machine, require_lfw, write_result
from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway

COLLECTIONS = ("plain", "kept")


def _pairs(root: Path, people: int) -> list[tuple[bytes, bytes]]:
    """(enrolled photo, searched photo) of the first ``people`` people with ≥ 2 photos."""
    out = []
    for person in sorted(root.iterdir()):
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= 2:
            out.append((photos[0].read_bytes(), photos[1].read_bytes()))
        if len(out) == people:
            break
    return out


def _run(gate: Gateway, caller: Caller, pairs: list[tuple[bytes, bytes]]) -> dict[str, object]:
    for name in COLLECTIONS:
        gate.create_collection(caller, name)
    gate.put_policy(caller, "kept", CollectionPolicy(keep_face_crops=True))
    for enrolled, _ in pairs:
        for name in COLLECTIONS:
            gate.index_faces(caller, name, enrolled)
    gate.search_faces_by_image(caller, "plain", pairs[0][1])  # warm the models
    times: dict[str, list[float]] = {name: [] for name in COLLECTIONS}
    leads: list[str] = []
    for _, searched in pairs:
        for name in COLLECTIONS:
            start = time.perf_counter()
            found = gate.search_faces_by_image(caller, name, searched)
            times[name].append((time.perf_counter() - start) * 1000)
            if name == "kept" and found.lead_id is not None:
                leads.append(found.lead_id)
    sizes, sealed, views = [], [], []
    for lead_id in leads:
        start = time.perf_counter()
        sizes.append(len(gate.get_lead_probe_crop(caller, lead_id)))
        views.append((time.perf_counter() - start) * 1000)
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=40)
    args = parser.parse_args()
    pairs = _pairs(require_lfw(), args.people)
    caller = Caller(
        Principal("bench", ROLES, "BENCH"), "cli", "bench", purpose="bench", case_reference="B"
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            ledger_key_file=Path(tmp) / "keys" / "ledger.key",
            crop_key_file=Path(tmp) / "keys" / "crops.key",
            workers=1,
        )
        gate = Gateway(settings)
        try:
            payload = _run(gate, caller, pairs)
        finally:
            gate.close()
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
