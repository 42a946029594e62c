"""Open-set 1:N at the defaults: an ~8 K-photo gallery enrolled with `faceledger index`.

    .venv/bin/python bench/one_to_n_open_set.py [--people N]

Split of LFW DevTrain, fixed before any result was looked at (sorted names, sorted images):

* **Mated probes** — the last image of every person with ≥ 2 images; their other images go
  into the gallery.
* **Gallery distractors** — the image of every other one-image person (indices 0, 2, 4, …).
* **Non-mated probes** — the image of the remaining one-image people (indices 1, 3, 5, …):
  never enrolled.
* **Group photos** — enough composed photos to bring the gallery to ≥ 8,000 photos: each shows
  a gallery person's first image large (the subject, filed under that person's folder) and
  2–3 *non-mated* people smaller (bystanders). With subject-only enrolment the bystanders are
  skipped; enrolled under the subject's name they would be found under the wrong name.

The gallery folder (``<Name>/<file>``) is enrolled with the real CLI, ``faceledger index DIR
--collection C`` at its defaults (QualityFilter AUTO; subject-only since issue 14). Probes are
searched through the gateway (``Gateway.search_faces_by_image``, as every surface does) with
the collection's floor pinned to 0 and threshold 0, top 100; each candidate's cosine is kept,
so the default floor (the shipped table's floor at the enrolled face count) and any other
threshold are applied afterwards to the first 5 candidates — the same answers as searching at
them — and ``--report-only`` re-evaluates the cached searches after a re-calibration
(``--search-only`` searches the cached collection again without re-enrolling it).

More non-mated searches: every mated probe searched without its own person (its own faces
taken out of the answer: a gallery without that person), pooled with the non-mated probes.

Per-search normalisation (issue 14, deliverable 4): the best candidate's margin over the
probe's own k-th highest score in the collection (k = 10, 20, 50; mostly other people's
faces, so the margin says how far the candidate stands out of this probe's impostor scores).
The report compares, at equal numbers of false candidates, the hit rate of Similarity alone
with Similarity ≥ the default floor *and* a margin threshold, and where each false candidate
stands among the hits by either score.

Label faults (bench/lfw_exclusions.txt: ``same``/``image``/``photo``) are excluded as listed;
identical twins (``twins``) are counted, and reported separately. Writes
bench/results/one_to_n_open_set.json (with --all-faces, every face of each photo is enrolled,
as before issue 14: one_to_n_open_set_all_faces.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO, machine, require_lfw, write_result

COLLECTION = "open_set"
MIN_GALLERY_PHOTOS = 8_000
TOP_K = 100  # candidates kept per search (the per-search normalisation needs deep ranks)
REPORTED_K = 5  # candidates a search shows (hits and false candidates count these)
MARGIN_RANKS = (10, 20, 50)  # margins over the probe's k-th highest score in the collection
CANVAS = (360, 640)  # height, width: one detection scale (≤ 640 px), as a phone thumbnail
THRESHOLDS = (80.0, 85.0, 88.0, 90.0, 92.0, 95.0)


def split(root: Path, people: int | None) -> dict[str, Any]:
    names = sorted(p.name for p in root.iterdir() if p.is_dir())[:people]
    images = {n: sorted(f"{n}/{f.name}" for f in (root / n).glob("*.jpg")) for n in names}
    multi = [n for n in names if len(images[n]) >= 2]
    single = [n for n in names if len(images[n]) == 1]
    gallery = [i for n in multi for i in images[n][:-1]] + [images[n][0] for n in single[0::2]]
    return {
        "people": len(names),
        "multi": multi,
        "gallery": gallery,
        "mated": [images[n][-1] for n in multi],
        "non_mated": [images[n][0] for n in single[1::2]],
        "subjects": [images[n][0] for n in multi],
    }


def compose(
    root: Path, subject: str, bystanders: list[str], rng: np.random.Generator
) -> np.ndarray:
    """A 640×360 photo: the subject's LFW image large, bystanders' smaller beside it."""
    h, w = CANVAS
    base = rng.integers(60, 200, size=3)
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = base
    noise = rng.normal(0, 6, size=(h, w, 1))
    canvas = np.clip(canvas.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    big = int(rng.integers(220, 300))
    img = cv2.resize(cv2.imread(str(root / subject)), (big, big))
    x0, y0 = int(rng.integers(10, 40)), int(rng.integers(10, h - big - 10))
    canvas[y0 : y0 + big, x0 : x0 + big] = img
    x = x0 + big + 15
    for rel in bystanders:
        size = int(rng.integers(100, 130))
        y = int(rng.integers(10, h - size - 10))
        if x + size > w - 10:
            break
        canvas[y : y + size, x : x + size] = cv2.resize(cv2.imread(str(root / rel)), (size, size))
        x += size + int(rng.integers(5, 15))
    return canvas


def build_gallery(root: Path, s: dict[str, Any], folder: Path, smoke: bool) -> dict[str, Any]:
    rng = np.random.default_rng(14)
    for rel in s["gallery"]:
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(root / rel)
    groups = 20 if smoke else max(0, MIN_GALLERY_PHOTOS - len(s["gallery"]))
    bystander_pool = list(s["non_mated"])
    bystanders_used: set[str] = set()
    for k in range(groups):
        subject = s["subjects"][k % len(s["subjects"])]
        picks = [str(b) for b in rng.choice(bystander_pool, size=3, replace=False)]
        bystanders_used.update(picks)
        name = subject.split("/", 1)[0]
        out = folder / name / f"{name}_group_{k:04d}.jpg"
        cv2.imwrite(str(out), compose(root, subject, picks, rng))
    return {
        "gallery_lfw_photos": len(s["gallery"]),
        "group_photos": groups,
        "gallery_photos": len(s["gallery"]) + groups,
        "non_mated_people_shown_as_bystanders": len(bystanders_used),
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from faceledger.cli.main import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def person(external_image_id: str | None) -> str:
    return (external_image_id or "").split(":", 1)[0]


def search_all(gate: Any, caller: Any, root: Path, rels: list[str]) -> list[dict[str, Any]]:
    """Each probe through the gateway at threshold 0 (top 100): candidates as (person,
    ExternalImageId, cosine) — the cosine so that any calibration and floor can be applied."""
    from faceledger.domain.errors import FaceLedgerError

    calibration = gate._faces.engine.calibration
    out = []
    for i, rel in enumerate(rels, 1):
        row: dict[str, Any] = {"probe": rel, "person": rel.split("/", 1)[0]}
        try:
            res = gate.search_faces_by_image(
                caller,
                COLLECTION,
                gate._faces.read_file(root / rel),
                max_faces=TOP_K,
                threshold=0.0,
            )
        except FaceLedgerError as exc:
            row.update(error=exc.code, candidates=[])
        else:
            row["candidates"] = [
                (
                    person(m.face.external_image_id),
                    m.face.external_image_id,
                    float(calibration.cosine(m.similarity)),
                )
                for m in res.matches
            ]
        out.append(row)
        if i % 250 == 0:
            print(f"  searched {i}/{len(rels)}", flush=True)
    return out


def summarise(
    mated: list[dict[str, Any]],
    non_mated: list[dict[str, Any]],
    exclusions: Any,
    t: float,
    calibration: Any,
) -> dict[str, Any]:
    """Hits and false candidates at Similarity ``t`` (candidates' cosines re-mapped)."""

    def above(p: dict[str, Any]) -> list[tuple[str, str, float]]:
        shown = p["candidates"][:REPORTED_K]
        sims = [(c[0], c[1], float(calibration.similarity(c[2]))) for c in shown]
        return [c for c in sims if c[2] >= t]

    hits = 0
    for p in mated:
        c = above(p)
        hits += bool(c) and c[0][0] == p["person"]
    offending = []
    for p in non_mated:
        c = above(p)
        if not c:
            continue
        fault = all(
            exclusions.excluded(p["probe"], f"{x[0]}/x.jpg")
            or exclusions.excluded(p["probe"], (x[1] or "").replace(":", "/"))
            for x in c
        )
        twin = all(exclusions.excluded(p["probe"], f"{x[0]}/x.jpg", twins=True) for x in c)
        offending.append(
            {
                "probe": p["probe"],
                "candidate": c[0][1],
                "similarity": round(c[0][2], 2),
                "listed_label_fault": fault,
                "listed_twin": twin and not fault,
            }
        )
    counted = [o for o in offending if not o["listed_label_fault"]]
    no_twins = [o for o in counted if not o["listed_twin"]]
    n_nm = max(len(non_mated), 1)
    return {
        "threshold": t,
        "hit_rate": round(hits / max(len(mated), 1), 4),
        "hits": hits,
        "non_mated_with_candidate": len(offending),
        "non_mated_with_candidate_not_label_fault": len(counted),
        "fpir": round(len(counted) / n_nm, 5),
        "non_mated_with_candidate_not_fault_not_twin": len(no_twins),
        "fpir_without_twins": round(len(no_twins) / n_nm, 5),
        "offending": sorted(offending, key=lambda o: -o["similarity"])[:20],
    }


def other_people(p: dict[str, Any], exclusions: Any) -> list[Any]:
    """A mated probe's candidates without its own person's faces (nor listed label faults)."""
    return [
        c
        for c in p["candidates"]
        if c[0] != p["person"]
        and not exclusions.excluded(p["probe"], f"{c[0]}/x.jpg")
        and not exclusions.excluded(p["probe"], (c[1] or "").replace(":", "/"))
    ]


def leave_person_out(
    mated: list[dict[str, Any]], exclusions: Any, t: float, calibration: Any
) -> dict[str, Any]:
    """More non-mated searches from the mated probes: each probe's search with its own
    person's faces (and the names listed as the same person) taken out of the answer, i.e.
    a search of the gallery without that person (7,949 faces less the person's). Candidates
    that are listed label faults (the same photograph under another name, an image showing
    another person) are taken out too. A probe whose 100 kept candidates are all its own
    person's cannot be evaluated and is skipped."""
    cosine = float(calibration.cosine(t))
    searches, offending = 0, []
    for p in mated:
        others = other_people(p, exclusions)
        if not others:
            continue
        searches += 1
        if others[0][2] >= cosine:
            twin = exclusions.excluded(p["probe"], f"{others[0][0]}/x.jpg", twins=True)
            offending.append(
                {
                    "probe": p["probe"],
                    "candidate": others[0][1],
                    "similarity": round(float(calibration.similarity(others[0][2])), 2),
                    "listed_twin": twin,
                }
            )
    not_twins = [o for o in offending if not o["listed_twin"]]
    return {
        "threshold": t,
        "searches": searches,
        "with_candidate": len(offending),
        "fpir": round(len(offending) / max(searches, 1), 5),
        "with_candidate_not_twin": len(not_twins),
        "fpir_without_twins": round(len(not_twins) / max(searches, 1), 5),
        "offending": sorted(offending, key=lambda o: -o["similarity"]),
    }


def enrol(
    root: Path, s: dict[str, Any], work: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], float, Any]:
    """Build the gallery folder and enrol it with ``faceledger index`` (a fresh ``work``)."""
    if work.exists():
        shutil.rmtree(work)
    folder = work / "gallery"
    folder.mkdir(parents=True)
    gallery = build_gallery(root, s, folder, args.people is not None)
    print(
        f"gallery {gallery['gallery_photos']} photos ({gallery['group_photos']} group "
        f"photos); {len(s['mated'])} mated, {len(s['non_mated'])} non-mated probes",
        flush=True,
    )
    env = {
        **os.environ,
        "FACELEDGER_DATA_DIR": str(work / "data"),
        "FACELEDGER_LEDGER_KEY_FILE": str(work / "ledger.key"),
        "PYTHONPATH": str(REPO / "src"),
    }
    made = cli(env, "collections", "create", COLLECTION)
    assert made.returncode == 0, made.stderr
    t0 = time.perf_counter()
    extra = ["--all-faces"] if args.all_faces else []
    indexed = cli(env, "index", str(folder), "--collection", COLLECTION, *extra)
    index_s = time.perf_counter() - t0
    assert indexed.returncode == 0, indexed.stderr[-2000:]
    print(indexed.stdout[-1500:], flush=True)
    return gallery, index_s, json.loads(indexed.stdout)


def normalisation(
    mated: list[dict[str, Any]],
    non_mated: list[dict[str, Any]],
    exclusions: Any,
    floor: float,
    calibration: Any,
) -> dict[str, Any]:
    """Similarity alone against Similarity ≥ ``floor`` and a margin over the probe's k-th
    highest score in the collection: the hit rate when 0, 1, 2, … false candidates (not a
    listed label fault; twins counted) are let through, and where each false candidate of the
    default floor stands among the hits (the share of hits that score lower). False
    candidates: the non-mated probes' and the mated probes' searched without their own person
    (``leave_person_out``)."""
    cosine_floor = float(calibration.cosine(floor))

    def scores(candidates: list[Any]) -> dict[str, float]:
        c = [x[2] for x in candidates]
        out = {"similarity": c[0] if c else -np.inf}
        for k in MARGIN_RANKS:
            out[f"margin_{k}"] = c[0] - c[k - 1] if len(c) >= k else -np.inf
        return out

    hits = [
        scores(p["candidates"])
        for p in mated
        if p["candidates"]
        and p["candidates"][0][0] == p["person"]
        and p["candidates"][0][2] >= cosine_floor
    ]
    false = []
    for p in non_mated:
        shown = [c for c in p["candidates"][:REPORTED_K] if c[2] >= cosine_floor]
        if shown and not all(
            exclusions.excluded(p["probe"], f"{c[0]}/x.jpg")
            or exclusions.excluded(p["probe"], (c[1] or "").replace(":", "/"))
            for c in shown
        ):
            false.append((p["probe"], shown[0][1], scores(p["candidates"])))
    for p in mated:
        others = other_people(p, exclusions)
        if others and others[0][2] >= cosine_floor:
            false.append((p["probe"], others[0][1], scores(others)))
    rows = []
    for name in ("similarity", *(f"margin_{k}" for k in MARGIN_RANKS)):
        h = np.array([x[name] for x in hits])
        f = np.sort(np.array([x[2][name] for x in false]))[::-1]
        rows.append(
            {
                "score": name,
                "hit_rate_by_false_candidates": [
                    round(float(np.sum(h > f[n]) if n < len(f) else len(h)) / len(mated), 4)
                    for n in range(len(f) + 1)
                ],
                "false_candidates": [
                    {
                        "probe": probe,
                        "candidate": cand,
                        "value": round(float(x[name]), 4),
                        "share_of_hits_below": round(float(np.mean(h < x[name])), 4),
                    }
                    for probe, cand, x in false
                ],
            }
        )
    return {
        "floor": floor,
        "mated_probes": len(mated),
        "hits_at_floor": len(hits),
        "false_candidates_at_floor": len(false),
        "scores": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=None, help="first N people (smoke)")
    parser.add_argument(
        "--all-faces",
        action="store_true",
        help="enrol every face of each photo (faceledger index --all-faces), for comparison",
    )
    parser.add_argument(
        "--search-only",
        action="store_true",
        help="search the cached collection again (no re-enrolment)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-evaluate the cached searches with the current calibration and floor table",
    )
    args = parser.parse_args()
    root = require_lfw()
    from faceledger.config import Settings
    from faceledger.domain.audit import Caller
    from faceledger.domain.policy import CollectionPolicy
    from faceledger.domain.principals import Principal
    from faceledger.evaluation.calibration_fit import Exclusions
    from faceledger.inference.engine import FaceEngine
    from faceledger.services.gateway import Gateway

    load_before = os.getloadavg()
    start = time.perf_counter()
    s = split(root, args.people)
    exclusions = Exclusions.parse((REPO / "bench" / "lfw_exclusions.txt").read_text().splitlines())
    name = "open_set" + ("_all_faces" if args.all_faces else "")
    work = CACHE / (name if args.people is None else f"{name}_{args.people}")
    searched = work / "searches.json"
    if not args.report_only:
        if args.search_only:
            before = json.loads(searched.read_text())
            gallery, index_s = before["gallery"], before["index_seconds"]
            index_output = before["index_output"]
        else:
            gallery, index_s, index_output = enrol(root, s, work, args)
        settings = Settings(data_dir=work / "data", ledger_key_file=work / "ledger.key")
        gate = Gateway(settings)
        admin = Caller(
            Principal("bench", ("admin", "search"), "BENCH"), source="cli", request_id="",
            purpose="bench", case_reference="bench",
        )  # fmt: skip
        faces = gate._collections.indexes.face_count(COLLECTION)
        gate.put_policy(admin, COLLECTION, CollectionPolicy(threshold_floor=0.0))
        print(f"{faces} faces enrolled; searching at threshold 0 ...", flush=True)
        t0 = time.perf_counter()
        mated = search_all(gate, admin, root, s["mated"])
        non_mated = search_all(gate, admin, root, s["non_mated"])
        search_s = time.perf_counter() - t0
        gate.close()
        searched.write_text(
            json.dumps(
                {
                    "gallery": gallery,
                    "faces": faces,
                    "index_seconds": round(index_s, 1),
                    "index_output": index_output,
                    "search_seconds": round(search_s, 1),
                    "mated": mated,
                    "non_mated": non_mated,
                }
            )
        )
    cached = json.loads(searched.read_text())
    faces, mated, non_mated = cached["faces"], cached["mated"], cached["non_mated"]
    engine = FaceEngine()
    table = engine.scale
    floor, reachable = table.floor(faces) if table is not None else (80.0, True)
    estimate = table.estimate(floor, faces) if table is not None else None
    at_default = summarise(mated, non_mated, exclusions, floor, engine.calibration)
    sweep = [summarise(mated, non_mated, exclusions, t, engine.calibration) for t in THRESHOLDS]
    normalised = normalisation(mated, non_mated, exclusions, floor, engine.calibration)
    person_out = leave_person_out(mated, exclusions, floor, engine.calibration)
    counted = at_default["non_mated_with_candidate_not_label_fault"] + person_out["with_candidate"]
    counted_no_twins = (
        at_default["non_mated_with_candidate_not_fault_not_twin"]
        + person_out["with_candidate_not_twin"]
    )
    searches = len(non_mated) + person_out["searches"]
    pooled = {
        "searches": searches,
        "with_candidate": counted,
        "fpir": round(counted / searches, 5),
        "with_candidate_not_twin": counted_no_twins,
        "fpir_without_twins": round(counted_no_twins / searches, 5),
    }
    total_s = time.perf_counter() - start
    print(
        f"gallery {cached['gallery']['gallery_photos']} photos, {faces:,} faces; "
        f"{len(mated)} mated, {len(non_mated)} non-mated probes"
    )
    print(
        f"at the default floor {floor:g}: hit rate {at_default['hit_rate']:.2%}; non-mated "
        f"with a candidate {at_default['non_mated_with_candidate']} (not a listed label fault "
        f"{at_default['non_mated_with_candidate_not_label_fault']}: FPIR "
        f"{at_default['fpir']:.3%}; also not listed twins "
        f"{at_default['non_mated_with_candidate_not_fault_not_twin']}: "
        f"{at_default['fpir_without_twins']:.3%})"
    )
    if estimate is not None:
        print(
            f"expected by the pack's table: FPIR {estimate.fpir:.3%}, hit rate "
            f"{estimate.hit_rate:.2%}"
        )
    for o in at_default["offending"][:10]:
        print(
            f"  {o['similarity']:6.2f} {o['probe']} -> {o['candidate']}"
            f"{' (label fault)' if o['listed_label_fault'] else ''}"
            f"{' (twin)' if o['listed_twin'] else ''}"
        )
    print(
        f"mated probes searched without their own person: {person_out['searches']} searches, "
        f"{person_out['with_candidate']} with a candidate at {floor:g} "
        f"({person_out['with_candidate_not_twin']} not twins); with the non-mated probes: "
        f"{pooled['with_candidate']} / {searches} = {pooled['fpir']:.3%} "
        f"(without twins {pooled['with_candidate_not_twin']}: {pooled['fpir_without_twins']:.3%})"
    )
    for o in person_out["offending"]:
        print(
            f"  {o['similarity']:6.2f} {o['probe']} -> {o['candidate']}"
            f"{' (twin)' if o['listed_twin'] else ''}"
        )
    print(f"{'Sim':>5} {'hit rate':>8} {'FPIR':>7} {'no twins':>8}")
    for r in sweep:
        print(
            f"{r['threshold']:>5g} {r['hit_rate']:>8.2%} {r['fpir']:>7.2%} "
            f"{r['fpir_without_twins']:>8.2%}"
        )
    print(
        f"per-search normalisation at the default floor ({normalised['hits_at_floor']} hits, "
        f"{normalised['false_candidates_at_floor']} false candidates, not label faults, "
        "non-mated and leave-person-out):"
    )
    for row in normalised["scores"]:
        standing = ", ".join(
            f"{f['probe'].split('/')[0]} {f['share_of_hits_below']:.1%}"
            for f in row["false_candidates"]
        )
        rates = " / ".join(f"{r:.2%}" for r in row["hit_rate_by_false_candidates"])
        print(
            f"  {row['score']:11s} hit rate with 0 / 1 / … false candidates: {rates}; "
            f"hits scoring below each false candidate: {standing}"
        )
    if args.people is not None:
        print("(--people run: results not written)")
        return
    write_result(
        f"one_to_n_{name}.json",
        {
            "command": "python bench/one_to_n_open_set.py"
            + (" --all-faces" if args.all_faces else "")
            + (" --search-only" if args.search_only else "")
            + (" --report-only" if args.report_only else ""),
            "split": {
                "mated_probes": "last image of each person with >= 2 images",
                "gallery": "their other images + one-image people at indices 0, 2, 4, ... + "
                "group photos (subject = a gallery person's first image, bystanders = 3 "
                "non-mated people) up to 8,000 photos",
                "non_mated_probes": "one-image people at indices 1, 3, 5, ...",
                "enrolment": "faceledger index DIR --collection open_set"
                + (" --all-faces" if args.all_faces else " (defaults: the subject of each photo)"),
                "search": "Gateway.search_faces_by_image, threshold 0, top 100; every "
                "threshold applied to the first 5 candidates",
            },
            "gallery": cached["gallery"],
            "faces_enrolled": faces,
            "index_seconds": cached["index_seconds"],
            "index_output": cached["index_output"],
            "search_seconds": cached["search_seconds"],
            "mated_probes": len(mated),
            "non_mated_probes": len(non_mated),
            "default_floor": floor,
            "target_reachable": reachable,
            "expected_at_default": None
            if estimate is None
            else {
                "fpir": estimate.fpir,
                "fpir_upper": estimate.fpir_upper,
                "hit_rate": estimate.hit_rate,
            },
            "at_default": [at_default],
            "sweep": sweep,
            "normalisation": normalised,
            "leave_person_out_at_default": person_out,
            "pooled_non_mated_at_default": pooled,
            "probe_errors": [p for p in mated + non_mated if "error" in p][:50],
            "total_seconds": round(total_s, 1),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
