"""1:N identification on the LFW development split, through a real collection.

    .venv/bin/python bench/one_to_n.py [--people N]

Protocol (issue 3). People are taken in sorted name order; a person's images in sorted order.

* **Gallery** — the first image of every person with two or more images, plus the single
  image of every other one-image person (sorted names, indices 0, 2, 4, …: the distractors).
* **Mated probes** — the second image of every person with two or more images.
* **Non-mated probes** — the image of every one-image person not enrolled (indices 1, 3, 5, …).

Enrolment runs the real pipeline: ``FaceEngine.analyse_many`` (both cores) on the gallery
images, then ``CollectionService.enrol`` with QualityFilter NONE (so nobody silently drops out;
how many AUTO would refuse is reported aside). From each gallery image only the face the LFW
label refers to is enrolled — the one nearest the image centre, as everywhere in bench/ — so
that a candidate's ExternalImageId names the person it shows; the count of other faces that a
plain IndexFaces would also have enrolled is reported. Each probe file is searched with
``CollectionService.search_faces_by_image`` (its largest face, as the API does) at threshold 0
for the top 5 candidates, and every threshold is evaluated from those candidates: the rank-1
candidate is the best match, so "rank 1 at or above t" and "any match at or above t" follow.

Per threshold (80 = Rekognition's default, 90, 95, 97, 99, and the floor the product picks
for a collection of the gallery's size, with what the pack's open-set table expects there):
the hit rate (right person at rank 1 and at or above the threshold), mated probes whose
rank-1 candidate is a wrong person at or above it, and non-mated probes with any match, with
the offending pairs. Pairs that are listed
LFW label faults (``bench/lfw_exclusions.txt``) are marked, but every figure counts them (raw).
Note that the pack's calibration was fitted on all pairs of this same split (in-sample).
Writes ``bench/results/one_to_n.json`` (full runs only) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine, require_lfw, write_result

THRESHOLDS = (80.0, 90.0, 95.0, 97.0, 99.0)
# The default threshold floor is the lowest Similarity at which at most this many non-mated
# probes match anyone who is not the same person under another name (an LFW label fault).
FLOOR_MAX_FALSE_MATCHED_PROBES = 1
TOP_K = 5
COLLECTION = "lfw_one_to_n"
ACLU_2018 = {
    "source": "ACLU, 'Amazon's Face Recognition Falsely Matched 28 Members of Congress With "
    "Mugshots', 26 July 2018",
    "probes": 535,
    "gallery": 25_000,
    "threshold": 80,
    "false_matches": 28,
    "rate": round(28 / 535, 4),
    "note": "Members of Congress searched against 25,000 public arrest photos with Amazon "
    "Rekognition at its default FaceMatchThreshold 80. A different model, gallery and "
    "population: context only, not a comparison. At a fixed per-comparison false-match rate "
    "the chance that a non-mated probe finds some match grows with the gallery size "
    "(1 - (1 - FMR)^N), which is why 'expected_non_mated_rate_at_25000' is given.",
}


def relpath_of(external_image_id: str | None) -> str:
    """'Name:Name_0001.jpg' → 'Name/Name_0001.jpg' (the gallery image's LFW path)."""
    return (external_image_id or "").replace(":", "/")


def split(root: Path, people: int | None) -> dict[str, Any]:
    names = sorted(p.name for p in root.iterdir() if p.is_dir())[:people]
    images = {n: sorted(f"{n}/{f.name}" for f in (root / n).glob("*.jpg")) for n in names}
    multi = [n for n in names if len(images[n]) >= 2]
    single = [n for n in names if len(images[n]) == 1]
    distractors, non_mated = single[0::2], single[1::2]
    return {
        "people": len(names),
        "images": sum(len(v) for v in images.values()),
        "multi": multi,
        "single": single,
        "gallery": [images[n][0] for n in multi] + [images[n][0] for n in distractors],
        "mated": [images[n][1] for n in multi],
        "non_mated": [images[n][0] for n in non_mated],
    }


def enrol_gallery(service: Any, root: Path, gallery: list[str]) -> dict[str, Any]:
    from faceledger.cli.collections import external_id_for
    from faceledger.domain.errors import FaceLedgerError
    from faceledger.evaluation.lfw import central_face
    from faceledger.inference.imaging import load_image
    from faceledger.services.collections import quality_reasons

    engine = service.faces.engine
    paths = [root / rel for rel in gallery]
    no_face: list[str] = []
    errors: list[str] = []
    other_faces = 0
    auto_dropped: list[dict[str, Any]] = []
    auto_reasons: Counter[str] = Counter()
    start = time.perf_counter()
    for path, result in engine.analyse_many(paths, loader=load_image):
        rel = path.relative_to(root).as_posix()
        if isinstance(result, FaceLedgerError):
            errors.append(f"{rel}: {result.code}")
            continue
        k = central_face(result.faces, result.width_px, result.height_px)
        if k is None:
            no_face.append(rel)
            continue
        other_faces += len(result.faces) - 1
        central = replace(result, faces=result.faces[[k]])
        reasons = quality_reasons(central.faces, "AUTO")[0]
        if reasons:
            auto_dropped.append({"image": rel, "reasons": reasons})
            auto_reasons.update(reasons)
        enrolled = service.enrol(
            COLLECTION,
            central,
            external_image_id=external_id_for(path, root),
            quality_filter="NONE",
        )
        assert len(enrolled.face_records) == 1, rel
    seconds = time.perf_counter() - start
    engine.close()  # the probes run in this process; free the pool
    return {
        "images": len(gallery),
        "seconds": round(seconds, 1),
        "images_without_face": no_face,
        "errors": errors,
        "other_faces_not_enrolled": other_faces,
        "auto_quality_filter_would_drop": len(auto_dropped),
        "auto_quality_filter_reasons": dict(auto_reasons),
        "auto_quality_filter_dropped": auto_dropped,
    }


def probe(service: Any, root: Path, rels: list[str]) -> list[dict[str, Any]]:
    from faceledger.domain.errors import FaceLedgerError

    out = []
    for i, rel in enumerate(rels, 1):
        row: dict[str, Any] = {"probe": rel, "person": rel.split("/", 1)[0]}
        try:
            res = service.search_faces_by_image(
                COLLECTION, root / rel, max_faces=TOP_K, threshold=0.0
            )
        except FaceLedgerError as exc:
            row.update(error=f"{exc.code}: {exc.message}", candidates=[])
        else:
            box = res.searched_face.box_px.to_ratio(res.image.width_px, res.image.height_px)
            row["searched_face_is_central"] = (
                box.left <= 0.5 <= box.left + box.width and box.top <= 0.5 <= box.top + box.height
            )
            row["candidates"] = [
                (relpath_of(m.face.external_image_id), round(m.similarity, 3)) for m in res.matches
            ]
        out.append(row)
        if i % 500 == 0:
            print(f"  searched {i}/{len(rels)}", flush=True)
    return out


def evaluate(
    mated: list[dict[str, Any]],
    non_mated: list[dict[str, Any]],
    exclusions: Any,
    gallery_size: int,
    calibration: Any,
    published_fnmr: dict[float, float],
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> list[dict[str, Any]]:
    rows = []
    for t in thresholds:
        hits = 0
        wrong: list[dict[str, Any]] = []
        right_below_rank1 = 0
        for p in mated:
            cands = [c for c in p["candidates"] if c[1] >= t]
            if not cands:
                continue
            top, sim = cands[0]
            if top.split("/", 1)[0] == p["person"]:
                hits += 1
                continue
            if any(c[0].split("/", 1)[0] == p["person"] for c in cands[1:]):
                right_below_rank1 += 1
            wrong.append(
                {
                    "probe": p["probe"],
                    "rank1": top,
                    "similarity": sim,
                    "listed_label_fault": exclusions.excluded(p["probe"], top),
                    "searched_face_is_central": p["searched_face_is_central"],
                }
            )
        offending: list[dict[str, Any]] = []
        any_match = any_match_not_fault = 0
        for p in non_mated:
            cands = [c for c in p["candidates"] if c[1] >= t]
            if not cands:
                continue
            any_match += 1
            faults = [exclusions.excluded(p["probe"], c[0]) for c in cands]
            if not all(faults):
                any_match_not_fault += 1
            offending.append(
                {
                    "probe": p["probe"],
                    "rank1": cands[0][0],
                    "similarity": cands[0][1],
                    "matches_at_or_above": len(cands),
                    "listed_label_fault": faults[0],
                    "searched_face_is_central": p["searched_face_is_central"],
                }
            )
        offending.sort(key=lambda r: -r["similarity"])
        wrong.sort(key=lambda r: -r["similarity"])
        fmr = calibration.false_match_rate(t)
        published = published_fnmr.get(t)
        rows.append(
            {
                "threshold": t,
                "mated_probes": len(mated),
                "hits": hits,
                "hit_rate": round(hits / max(len(mated), 1), 4),
                "published_fnmr_all_pairs": published,
                "one_minus_published_fnmr": None if published is None else round(1 - published, 4),
                "mated_wrong_person_at_rank1": len(wrong),
                "mated_wrong_person_at_rank1_right_person_lower": right_below_rank1,
                "mated_wrong_person_pairs": wrong[:25],
                "non_mated_probes": len(non_mated),
                "non_mated_with_any_match": any_match,
                "non_mated_with_any_match_rate": round(any_match / max(len(non_mated), 1), 5),
                "non_mated_with_a_match_not_a_listed_label_fault": any_match_not_fault,
                "non_mated_offending_pairs": offending[:25],
                "calibrated_fmr_per_comparison": fmr,
                "expected_non_mated_rate_at_gallery": (
                    None if fmr is None else round(1 - (1 - fmr) ** gallery_size, 5)
                ),
                "expected_non_mated_rate_at_25000": (
                    None if fmr is None else round(1 - (1 - fmr) ** 25_000, 5)
                ),
                "gallery_size": gallery_size,
            }
        )
    return rows


def floor_sweep(
    mated: list[dict[str, Any]], non_mated: list[dict[str, Any]], exclusions: Any
) -> dict[str, Any]:
    """Hit rate and falsely matched non-mated probes at every 0.1 of Similarity from 80 to
    100, and the lowest threshold with at most ``FLOOR_MAX_FALSE_MATCHED_PROBES`` of them."""
    rows = []
    for tenth in range(800, 1001):
        t = tenth / 10
        hits = sum(
            1
            for p in mated
            if (c := [c for c in p["candidates"] if c[1] >= t])
            and c[0][0].split("/", 1)[0] == p["person"]
        )
        false_matched = sum(
            1
            for p in non_mated
            if not all(exclusions.excluded(p["probe"], c[0]) for c in p["candidates"] if c[1] >= t)
        )
        rows.append(
            {
                "threshold": t,
                "hit_rate": round(hits / max(len(mated), 1), 4),
                "non_mated_falsely_matched": false_matched,
            }
        )
    chosen = next(
        r for r in rows if r["non_mated_falsely_matched"] <= FLOOR_MAX_FALSE_MATCHED_PROBES
    )
    return {
        "rule": (
            f"lowest Similarity (0.1 steps) at which at most {FLOOR_MAX_FALSE_MATCHED_PROBES} "
            "non-mated probe matches someone who is not a listed LFW label fault"
        ),
        "floor": chosen["threshold"],
        "hit_rate_at_floor": chosen["hit_rate"],
        "non_mated_falsely_matched_at_floor": chosen["non_mated_falsely_matched"],
        "sweep": rows,
    }


def product_floor(scale: Any, gallery_size: int) -> dict[str, Any] | None:
    """The floor the product picks for a collection of ``gallery_size`` faces (its size
    floor, from the pack's open-set table) and what the table expects there."""
    if scale is None:
        return None
    floor, reachable = scale.floor(gallery_size)
    estimate = scale.estimate(floor, gallery_size)
    if estimate is None:
        return None
    return {
        "threshold": float(floor),
        "target_reachable": bool(reachable),
        "expected_fpir": estimate.fpir,
        "expected_fpir_upper": estimate.fpir_upper,
        "expected_hit_rate": estimate.hit_rate,
    }


def marks(pair: dict[str, Any]) -> str:
    out = []
    if pair["listed_label_fault"]:
        out.append("listed label fault")
    if pair["searched_face_is_central"] is False:
        out.append("probe's largest face is not the labelled one")
    return f"  ({'; '.join(out)})" if out else ""


def genuine_pair_weights(root: Path, people: int | None) -> dict[str, Any]:
    """How the all-pairs genuine set (the published FNMR) is spread over people."""
    names = sorted(p.name for p in root.iterdir() if p.is_dir())[:people]
    counts = {n: len(list((root / n).glob("*.jpg"))) for n in names}
    pairs = {n: c * (c - 1) // 2 for n, c in counts.items()}
    total = sum(pairs.values())
    top = sorted(pairs, key=lambda n: -pairs[n])[:3]
    return {
        "genuine_pairs": total,
        "largest_shares": [
            {
                "person": n,
                "images": counts[n],
                "pairs": pairs[n],
                "share": round(pairs[n] / total, 4),
            }
            for n in top
        ],
    }


def rank_summary(mated: list[dict[str, Any]]) -> dict[str, Any]:
    """Threshold-free identification rates (any similarity)."""
    n = max(len(mated), 1)
    rank1 = sum(
        bool(p["candidates"]) and p["candidates"][0][0].startswith(p["person"] + "/") for p in mated
    )
    rank5 = sum(any(c[0].split("/", 1)[0] == p["person"] for c in p["candidates"]) for p in mated)
    return {
        "rank1_any_similarity": rank1,
        "rank1_rate": round(rank1 / n, 4),
        "rank5_any_similarity": rank5,
        "rank5_rate": round(rank5 / n, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=None, help="first N people only (smoke)")
    args = parser.parse_args()
    root = require_lfw()

    from faceledger.config import Settings
    from faceledger.evaluation.calibration_fit import Exclusions
    from faceledger.services.collections import CollectionService

    total_start = time.perf_counter()
    load_before = os.getloadavg()
    s = split(root, args.people)
    print(
        f"{s['people']} people, {s['images']} images: {len(s['multi'])} with ≥ 2 images, "
        f"{len(s['single'])} with one; gallery {len(s['gallery'])} images, "
        f"{len(s['mated'])} mated and {len(s['non_mated'])} non-mated probes",
        flush=True,
    )
    exclusions = Exclusions.parse((REPO / "bench" / "lfw_exclusions.txt").read_text().splitlines())
    with tempfile.TemporaryDirectory(prefix="faceledger-1n-") as tmp:
        service = CollectionService(Settings(data_dir=Path(tmp), workers=2))
        service.create_collection(COLLECTION)
        print("enrolling the gallery (analyse_many on 2 workers + enrol) ...", flush=True)
        enrolment = enrol_gallery(service, root, s["gallery"])
        gallery_size = service.describe_collection(COLLECTION).face_count
        print(f"  {gallery_size} faces enrolled in {enrolment['seconds']} s", flush=True)
        print("searching mated probes ...", flush=True)
        start = time.perf_counter()
        mated = probe(service, root, s["mated"])
        print("searching non-mated probes ...", flush=True)
        non_mated = probe(service, root, s["non_mated"])
        search_s = time.perf_counter() - start
        calibration = service.faces.engine.calibration
        face_model_version = service.faces.engine.face_model_version
        manifest_calibration = service.faces.engine.manifest.calibration
        default_floor = product_floor(service.faces.engine.scale, gallery_size)
        service.close()
    published = {
        float(row["similarity"]): float(row["fnmr"])
        for row in (manifest_calibration.published if manifest_calibration else ())
    }
    thresholds = THRESHOLDS
    if default_floor is not None:
        thresholds = tuple(sorted({*THRESHOLDS, default_floor["threshold"]}))
    table = evaluate(mated, non_mated, exclusions, gallery_size, calibration, published, thresholds)
    weights = genuine_pair_weights(root, args.people)
    ranks = rank_summary(mated)
    probe_errors = [p for p in mated + non_mated if "error" in p]
    not_central = [
        p["probe"] for p in mated + non_mated if p.get("searched_face_is_central") is False
    ]

    print()
    print(
        f"gallery {gallery_size} faces; {len(mated)} mated, {len(non_mated)} non-mated probes; "
        f"rank-1 (any similarity) {ranks['rank1_rate']:.2%}, rank-5 {ranks['rank5_rate']:.2%}"
    )
    print(
        f"{'Sim':>4} {'hits':>6} {'hit rate':>8} {'1-FNMR':>7} {'wrong@1':>7} | "
        f"{'non-mated w/ match':>18} {'rate':>7} {'not fault':>9} {'expected':>8}"
    )
    for r in table:
        expected = r["expected_non_mated_rate_at_gallery"]
        one_minus = r["one_minus_published_fnmr"]
        pub = "-" if one_minus is None else f"{one_minus:.2%}"
        print(
            f"{r['threshold']:>4g} {r['hits']:>6} {r['hit_rate']:>8.2%} {pub:>7} "
            f"{r['mated_wrong_person_at_rank1']:>7} | "
            f"{r['non_mated_with_any_match']:>8} of {r['non_mated_probes']:<6} "
            f"{r['non_mated_with_any_match_rate']:>7.2%} "
            f"{r['non_mated_with_a_match_not_a_listed_label_fault']:>9} "
            f"{'-' if expected is None else f'{expected:.2%}':>8}"
        )
    print(
        "hit = right person at rank 1 and ≥ Sim; 1-FNMR = 1 - the pack's published FNMR (all "
        "genuine pairs); wrong@1 = mated probe, wrong person at rank 1 ≥ Sim; not fault = "
        "non-mated probes with a match that is not a listed label fault; expected = "
        "1 - (1 - calibrated FMR)^gallery"
    )
    top_share = weights["largest_shares"][0] if weights["largest_shares"] else None
    if top_share:
        print(
            f"(published FNMR weighting: {top_share['person']} alone holds "
            f"{top_share['share']:.0%} of the {weights['genuine_pairs']:,} genuine pairs)"
        )
    first = table[0]
    print(f"top non-mated matches at Similarity ≥ {first['threshold']:.0f}:")
    for o in first["non_mated_offending_pairs"][:10]:
        print(f"  {o['similarity']:7.3f}  {o['probe']}  →  {o['rank1']}{marks(o)}")
    print(f"mated probes with a wrong person at rank 1 at Similarity ≥ {first['threshold']:.0f}:")
    for o in first["mated_wrong_person_pairs"][:10]:
        print(f"  {o['similarity']:7.3f}  {o['probe']}  →  {o['rank1']}{marks(o)}")
    print(
        f"AUTO quality filter would refuse {enrolment['auto_quality_filter_would_drop']} of "
        f"{len(s['gallery'])} gallery faces ({enrolment['auto_quality_filter_reasons']}); "
        f"probes without a face: {len(probe_errors)}; probes whose largest face is not the "
        f"central one: {len(not_central)}"
    )
    if default_floor is not None:
        print(
            f"the product's default floor for {gallery_size:,} faces: "
            f"{default_floor['threshold']:g} (the open-set table expects FPIR "
            f"{default_floor['expected_fpir']:.3%}, hit rate "
            f"{default_floor['expected_hit_rate']:.1%} with one photo per person)"
        )
    sweep = floor_sweep(mated, non_mated, exclusions)
    print(
        f"for comparison, the lowest floor on these probes ({sweep['rule']}): "
        f"{sweep['floor']} — hit rate {sweep['hit_rate_at_floor']:.1%}, "
        f"{sweep['non_mated_falsely_matched_at_floor']} non-mated probe(s) falsely matched"
    )
    if args.people is not None:
        print("(--people run: results not written)")
        return
    payload = {
        "command": "python bench/one_to_n.py",
        "face_model_version": face_model_version,
        "protocol": {
            "split": "LFW development split (View 1, deep-funneled), sorted names and images",
            "gallery": "first image of each person with >= 2 images + the image of every other "
            "one-image person (sorted names, indices 0, 2, 4, ...)",
            "mated_probes": "second image of each person with >= 2 images",
            "non_mated_probes": "image of each one-image person not enrolled (indices 1, 3, ...)",
            "enrolment": "FaceEngine.analyse_many (workers=2) + CollectionService.enrol, "
            "QualityFilter NONE, the central (labelled) face of each image only",
            "search": f"CollectionService.search_faces_by_image (largest face), threshold 0, "
            f"MaxFaces {TOP_K}; each threshold evaluated on those candidates",
            "hit": "rank-1 candidate is the probe's person and Similarity >= threshold",
            "label_faults": "pairs listed in bench/lfw_exclusions.txt are marked, not removed",
            "calibration_note": "the pack's calibration was fitted on all pairs of this split",
        },
        "people": s["people"],
        "people_with_2_or_more_images": len(s["multi"]),
        "people_with_one_image": len(s["single"]),
        "gallery_images": len(s["gallery"]),
        "gallery_size": gallery_size,
        "mated_probes": len(mated),
        "non_mated_probes": len(non_mated),
        "enrolment": enrolment,
        "search_seconds": round(search_s, 1),
        "probes_without_face": [p["probe"] for p in probe_errors],
        "probes_whose_largest_face_is_not_central": not_central,
        "ranks": ranks,
        "table": table,
        "default_floor": default_floor,
        "threshold_floor": sweep,
        "published_fnmr_note": "The pack's published FNMR is over all genuine pairs of the "
        "split, where a few people with many images hold most pairs (genuine_pair_weights); "
        "the hit rate here counts each person once (first vs second image), so it sits below "
        "1 - published FNMR.",
        "genuine_pair_weights": weights,
        "aclu_2018_reference": ACLU_2018,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "total_seconds": round(time.perf_counter() - total_start, 1),
        "machine": machine(),
    }
    write_result("one_to_n.json", payload)


if __name__ == "__main__":
    main()
