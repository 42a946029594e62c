"""LFW accuracy of a pack under the standard 10-fold protocol, plus the face-found rate.

    .venv/bin/python bench/lfw_accuracy.py [--pack yunet-sface]

Runs the same code as `faceledger eval lfw` on pairsDevTrain.txt (1,100 genuine + 1,100
impostor pairs), and reads the face-found rate over all 9,525 images from
bench/results/calibration_<pack>.json (bench/calibrate.py embeds every image).
Writes bench/results/lfw_accuracy_<pack>.json and the ROC/DET/histogram PNG next to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, require_lfw, write_result
from faceledger.evaluation.lfw import run_lfw_eval
from faceledger.inference.engine import FaceEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default="yunet-sface")
    args = parser.parse_args()
    root = require_lfw()
    pairs = root.parent / "pairsDevTrain.txt"
    engine = FaceEngine(args.pack)
    start = time.perf_counter()
    out_dir = RESULTS / f"lfw_{args.pack}"
    report = run_lfw_eval(engine, root, pairs, out_dir)
    elapsed = time.perf_counter() - start
    engine.close()
    found_rate = None
    calibration = RESULTS / f"calibration_{args.pack}.json"
    if calibration.is_file():
        cal = json.loads(calibration.read_text())
        found_rate = cal["images_with_face"] / cal["images"]
    print(
        f"{args.pack}: accuracy {report['accuracy_mean']:.4%} ± {report['accuracy_std']:.4%} "
        f"(10-fold, {report['pairs']} pairs); faces found in {report['images_with_face']}/"
        f"{report['images']} pair images; all images: {found_rate}"
    )
    for t, row in report["at_similarity"].items():
        print(
            f"  Similarity ≥ {t}: FMR {row['false_match_rate']:.4f}  "
            f"FNMR {row['false_non_match_rate']:.4f}"
        )
    write_result(
        f"lfw_accuracy_{args.pack}.json",
        {
            "command": f"python bench/lfw_accuracy.py --pack {args.pack}",
            "seconds": round(elapsed, 1),
            "face_found_rate_all_images": found_rate,
            "report": report,
            "report_dir": str(out_dir.relative_to(RESULTS.parent.parent)),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
