"""Fit the Similarity calibration of a pack on all pairs of the LFW development split.

    .venv/bin/python bench/calibrate.py [--pack yunet-sface] [--write-manifest]

Embeds all 9,525 images (cached in .cache/), scores all ≈45 M impostor and ≈218 K genuine
pairs, excludes the label faults listed in bench/lfw_exclusions.txt, fits the anchors
(Similarity 50/70/80/90/99 ↔ FMR 1e-3/1e-4/1e-5/1e-6/1e-7), and writes
bench/results/calibration_<pack>.json with the table measured with and without the
exclusions. --write-manifest stores the anchors and table in the pack's manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO, machine, require_lfw, write_result
from faceledger.evaluation.calibration_fit import (
    ANCHOR_FMR,
    Exclusions,
    PairScores,
    fit_anchors,
    published_table,
    score_all_pairs,
)
from faceledger.evaluation.lfw import all_images, embed_images
from faceledger.inference.calibration import Calibration
from faceledger.inference.engine import FaceEngine
from faceledger.inference.manifest import CalibrationTable

THRESHOLDS = (50.0, 80.0, 90.0, 95.0, 99.0)


def embeddings(
    engine: FaceEngine, root: Path, refresh: bool
) -> tuple[list[str], np.ndarray, np.ndarray]:
    CACHE.mkdir(exist_ok=True)
    digest = hashlib.sha256(repr(engine.options).encode()).hexdigest()[:10]
    key = f"lfw_{engine.face_model_version}_{digest}.npz"
    cache = CACHE / key
    paths = all_images(root)
    if cache.is_file() and not refresh:
        data = np.load(cache)
        if list(data["paths"]) == paths:
            print(f"using cached embeddings {cache.relative_to(REPO)}")
            return paths, data["embeddings"], data["found"]
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 1000 == 0 or done == total:
            print(f"  embedded {done}/{total}", flush=True)

    emb = embed_images(engine, root, paths, progress)
    print(f"embedded {len(paths)} images in {time.perf_counter() - start:.0f} s")
    np.savez(cache, paths=np.array(paths), embeddings=emb.embeddings, found=emb.found)
    return paths, emb.embeddings, emb.found


def summary(scores: PairScores, cal: Calibration) -> list[dict[str, object]]:
    cosine_at = {s: float(cal.cosine(s)) for s in THRESHOLDS}
    return published_table(scores, cosine_at, THRESHOLDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default="yunet-sface")
    parser.add_argument("--write-manifest", action="store_true")
    parser.add_argument("--refresh", action="store_true", help="re-embed even if cached")
    args = parser.parse_args()
    root = require_lfw()
    engine = FaceEngine(args.pack)
    paths, emb, found = embeddings(engine, root, args.refresh)
    print(f"face found in {int(found.sum())}/{len(paths)} images ({found.mean():.4%})")
    exclusions = Exclusions.parse((REPO / "bench" / "lfw_exclusions.txt").read_text().splitlines())
    raw = score_all_pairs(emb, paths, valid=found)
    clean = score_all_pairs(emb, paths, valid=found, exclusions=exclusions)
    anchors = fit_anchors(clean)
    cal = Calibration.from_table(CalibrationTable(anchors=tuple((a, b) for a, b in anchors)))
    table_clean, table_raw = summary(clean, cal), summary(raw, cal)
    print(
        f"impostor pairs {clean.impostor_pairs:,} (raw {raw.impostor_pairs:,}), "
        f"genuine pairs {clean.genuine_pairs:,}"
    )
    print("anchors (cosine, Similarity):", anchors)
    print(
        f"{'Sim':>5} {'cosine':>7} {'FMR':>10} {'#FM':>5} {'FNMR':>7} | "
        f"{'FMR raw':>10} {'#FM raw':>7}"
    )
    for a, b in zip(table_clean, table_raw, strict=True):
        print(
            f"{a['similarity']:>5.0f} {a['cosine']:>7.4f} {a['fmr']:>10.2e} "
            f"{a['false_matches']:>5} "
            f"{a['fnmr']:>7.4f} | {b['fmr']:>10.2e} {b['false_matches']:>7}"
        )
    print("top impostor pairs after exclusions:")
    for score, a, b in clean.top_impostors[:15]:
        print(f"  {score:.4f} {a} {b}")
    result = {
        "command": "python bench/calibrate.py"
        + (" --write-manifest" if args.write_manifest else ""),
        "pack": args.pack,
        "face_model_version": engine.face_model_version,
        "images": len(paths),
        "images_with_face": int(found.sum()),
        "anchor_fmr": {str(k): v for k, v in ANCHOR_FMR.items()},
        "anchors": anchors,
        "excluded_impostor_pairs": raw.impostor_pairs - clean.impostor_pairs,
        "table": table_clean,
        "table_without_exclusions": table_raw,
        "top_impostors_after_exclusions": clean.top_impostors[:50],
        "top_impostors_raw": raw.top_impostors[:50],
        "machine": machine(),
    }
    write_result(f"calibration_{args.pack}.json", result)
    if args.write_manifest:
        manifest = REPO / "src" / "faceledger" / "inference" / "packs" / f"{args.pack}.json"
        data = json.loads(manifest.read_text())
        data["calibration"] = {
            "reference": (
                f"LFW development split (deep-funneled), all pairs: {clean.impostor_pairs:,} "
                f"impostor, {clean.genuine_pairs:,} genuine; label faults in "
                "bench/lfw_exclusions.txt excluded; bench/calibrate.py"
            ),
            "anchors": anchors,
            "published": table_clean,
        }
        manifest.write_text(json.dumps(data, indent=2) + "\n")
        print(f"updated {manifest.relative_to(REPO)}")


if __name__ == "__main__":
    main()
