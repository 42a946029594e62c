"""The accuracy and fairness report on LFW devtrain, grouped by apparent skin tone (ITA proxy).

    .venv/bin/python bench/fairness_report.py [--face central|largest] [--regroup]

Embeds all 9,525 images with the default pack, keeping the face nearest the image centre
(LFW's labelled person; ``--face largest`` keeps the largest face, as the API would, and
writes to bench/results/fairness/largest_face/), cached in .cache/ and shared with
bench/lfw_groups.py; builds the groups with bench/lfw_groups.py unless
bench/results/fairness/lfw_groups.csv exists (or --regroup), applies
bench/lfw_exclusions.txt, scores all ≈45 M impostor and ≈218 K genuine pairs, and writes
bench/results/fairness/report.html, report.json, det.png, bars.png and histograms.npz — the
same as ``faceledger eval report --data … --groups … --exclusions … --out …``. Prints the
summary table (overall and per group at Similarity 80 and 90).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO, machine, require_lfw, scrub_file
from faceledger.evaluation.report import (
    ReportRequest,
    run_report,
    sources_summary,
    summary_table,
)
from faceledger.inference.engine import FaceEngine
from lfw_groups import DEFAULT_MIN_IDENTITIES, OUT, make_groups, print_counts

LFW_NOTES = (
    "LFW (Labeled Faces in the Wild) development-training split, deep-funneled 250×250 "
    "images: news photographs of public figures collected around 2007. Its authors note that "
    "children, old people, women and many ethnicities are under-represented (estimates: ≈78% "
    "male, ≈84% White; Han & Jain, 2014). It is not a sample of any population an operator "
    "will serve.",
    "Groups are an automatic proxy of apparent skin tone (ITA, bench/lfw_groups.py), not "
    "ethnicity or self-identified race: see Groups above. LFW has no demographic labels.",
    "A spot check by eye of the aligned crops of 12 random identities per group (not stored: "
    "the images stay outside the repository) found the lighter groups plausible, but about "
    "half of the 'brown+dark' sample and many of the 'tan' sample were light-skinned people "
    "photographed under warm or dim light. Read those groups as 'darker-appearing photos', "
    "not as darker-skinned people; the ITA proxy is not fit for stronger claims.",
    "The default pack's calibration was fitted on all pairs of this same split, so the overall "
    "FMR at Similarity 50/80/90/99 is in-sample (≈ its 1e-3/1e-5/1e-6/1e-7 target by "
    "construction). Group differences are the point of this report.",
    "bench/lfw_exclusions.txt keeps look-alike relatives on purpose (e.g. George W. and Jeb "
    "Bush, Serena and Venus Williams): they are real false matches, but one such pair with "
    "many photos can make most of a group's false matches - see 'Where the false matches "
    "come from' before reading a group's FMR as a property of the group.",
    "Genuine pairs are dominated by a few much-photographed people (George W. Bush alone has "
    "530 images, ≈140 K of the genuine pairs): the identity-weighted FNMR counts every "
    "identity once.",
)


def largest_face_note(path: Path) -> str | None:
    """What keeping the largest face did, from an earlier ``--face largest`` run, if any."""
    if not path.is_file():
        return None
    old: dict[str, Any] = json.loads(path.read_text())
    at = old["overall"]["at"]
    top = old["top_impostors"][0] if old["top_impostors"] else None
    example = (
        f" The top 'impostor' pair there was {top['image_a']} vs {top['image_b']} "
        f"(Similarity {top['similarity']:.1f})."
        if top
        else ""
    )
    return (
        "Faces: this report keeps the face nearest the image centre, the person LFW labels. "
        "With the largest face instead (what the API compares; "
        f"{path.parent.relative_to(REPO)}/report.html), overall FMR at Similarity 80 was "
        f"{at['80']['fmr']['display']} and at 90 {at['90']['fmr']['display']}: in some photos "
        "a larger bystander is the face chosen, and their pairs count as errors." + example
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regroup", action="store_true", help="rebuild lfw_groups.csv")
    parser.add_argument("--min-identities", type=int, default=DEFAULT_MIN_IDENTITIES)
    parser.add_argument("--face", choices=("central", "largest"), default="central")
    args = parser.parse_args()
    out_dir = OUT if args.face == "central" else OUT / "largest_face"
    notes = list(LFW_NOTES)
    if args.face == "central":
        note = largest_face_note(OUT / "largest_face" / "report.json")
        notes += [note] if note else []
    root = require_lfw()
    print("machine:", machine())
    engine = FaceEngine()
    start = time.perf_counter()
    try:
        groups_csv = OUT / "lfw_groups.csv"
        if args.regroup or not groups_csv.is_file():
            groups_csv, counts = make_groups(engine, root, args.min_identities, "central")
            print_counts(counts)
        request = ReportRequest(
            data_dir=root,
            out_dir=out_dir,
            groups_file=groups_csv,
            exclusions_file=REPO / "bench" / "lfw_exclusions.txt",
            cache_dir=CACHE,
            face=args.face,
            title="FaceLedger on LFW devtrain: accuracy by apparent skin tone (ITA proxy)"
            + ("" if args.face == "central" else ", largest face per image"),
            notes=tuple(notes),
        )
        report = run_report(engine, request)
    finally:
        engine.close()
    print(f"done in {time.perf_counter() - start:.0f} s")
    print(summary_table(report))
    print(sources_summary(report))
    for key, diff in report["differentials"].items():
        fmr = diff["fmr"]["max_over_min"]
        fnmr = diff["fnmr"]["max_over_min"]
        print(
            f"Similarity {key}: FMR max/min "
            f"{'–' if fmr is None else f'{fmr:.2f}'}, FNMR max/min "
            f"{'–' if fnmr is None else f'{fnmr:.2f}'}"
        )
    for written in (out_dir / "report.html", out_dir / "report.json"):
        scrub_file(written)
    print(f"wrote {(out_dir / 'report.html').relative_to(REPO)} and report.json")


if __name__ == "__main__":
    main()
