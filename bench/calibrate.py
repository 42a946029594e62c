"""Fit a pack's Similarity calibration and open-set table on identity pairs of LFW DevTrain.

    .venv/bin/python bench/calibrate.py [--pack yunet-sface] [--write-manifest]

Embeds all 9,525 images (cached in .cache/). Every image with a face is a probe; the gallery
is one image (seeded random choice) of every identity, so each probe meets each other identity
once; a probe is weighted 1/(images of its person), so each identity pair counts once whatever
the number of photos (George W. Bush's 530 photos weigh as much as one). Label faults listed
in bench/lfw_exclusions.txt are left out of the impostor scores.

From those scores (method in src/faceledger/evaluation/open_set.py):

* the per-probe exponential tails (peaks over the 50th-highest score; Gumbel maxima) give the
  identity-pair false-match rate at any cosine, beyond what 8 M identity pairs can measure;
* the Similarity anchors: Similarity s ↔ that FMR (``ANCHORS``: 80 ↔ 1e-5 as before, then
  4 points of Similarity per decade, so the range where true and false candidates of large
  galleries mix — FMR 1e-6 … 1e-10 — spreads over 84 … 99);
* the open-set table: FPIR (and a bootstrap over identities) and the hit rate for every
  Similarity threshold and gallery size (1 … 20 M faces), and the floor the product picks;
* checks: the extrapolation against FPIR measured on real sub-galleries of 500 … 4,000
  identities; per-search z-score normalisation against Similarity at a fixed FPIR; the
  same-image-pair figures (all 45 M pairs) for comparison with the old calibration.

Writes bench/results/calibration_<pack>.json; --write-manifest stores the anchors and
published table in the pack's manifest and the open-set table in packs/scale/<pack>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO, machine, require_lfw, write_result
from faceledger.evaluation.calibration_fit import ANCHOR_FMR, Exclusions, score_all_pairs
from faceledger.evaluation.lfw import all_images, embed_images
from faceledger.evaluation.open_set import (
    MIN_FLOOR,
    TAIL_K,
    TARGET_FPIR,
    MatedPairs,
    ProbeTails,
    choose_floor,
    fpir_table,
)
from faceledger.inference.calibration import Calibration
from faceledger.inference.engine import FaceEngine
from faceledger.inference.manifest import CalibrationTable

ANCHORS = ANCHOR_FMR  # Similarity → the identity-pair false-match rate it stands for
PUBLISHED = (50.0, 70.0, 80.0, 84.0, 88.0, 90.0, 92.0, 95.0, 96.0, 99.0)
SIZES = (
    1, 10, 100, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000,
)  # fmt: skip
README_SIZES = (10_000, 100_000, 1_000_000, 20_000_000)
SIMILARITY_GRID = tuple(float(s) for s in range(0, 80)) + tuple(
    round(80 + i / 10, 1) for i in range(0, 201)
)
GALLERY_SEED = 0


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


class IdentityScores:
    """Probes (every image with a face) × gallery (one image per identity)."""

    def __init__(
        self, paths: list[str], emb: np.ndarray, found: np.ndarray, exclusions: Exclusions
    ) -> None:
        names = np.array([p.split("/", 1)[0] for p in paths])
        _, labels = np.unique(names, return_inverse=True)
        self.probes = np.flatnonzero(found)
        rng = np.random.default_rng(GALLERY_SEED)
        gallery = []
        for g in range(int(labels.max()) + 1):
            rows = self.probes[labels[self.probes] == g]
            if len(rows):
                gallery.append(int(rng.choice(rows)))
        self.gallery = np.array(gallery)
        self.labels = labels
        self.probe_labels = labels[self.probes]
        scores = emb[self.probes] @ emb[self.gallery].T
        own = self.probe_labels[:, None] == labels[self.gallery][None, :]
        scores[own] = np.nan
        self.excluded_pairs = 0
        for i, j in zip(*np.nonzero(scores > 0.4), strict=True):
            if exclusions.excluded(paths[self.probes[i]], paths[self.gallery[j]], twins=True):
                scores[i, j] = np.nan
                self.excluded_pairs += 1
        self.scores = scores
        counts = np.bincount(self.probe_labels)
        self.weights = 1.0 / counts[self.probe_labels]
        self.weights /= self.weights.sum()
        self.emb = emb
        self.people = int(np.count_nonzero(counts))

    def rows(self) -> list[np.ndarray]:
        return [r[~np.isnan(r)] for r in self.scores]

    def measured_fmr(self, cosine: float) -> float:
        """Identity-pair FMR measured on the scores (no model)."""
        valid = ~np.isnan(self.scores)
        above = np.nan_to_num(self.scores, nan=-2.0) >= cosine
        return float(self.weights @ (above.sum(1) / valid.sum(1)))

    def mated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every ordered genuine pair (probe row, mate score, weight 1/(n(n−1)) per person)."""
        rows, scores, weights = [], [], []
        for g in np.unique(self.probe_labels):
            members = np.flatnonzero(self.probe_labels == g)
            n = len(members)
            if n < 2:
                continue
            vec = self.emb[self.probes[members]]
            sim = vec @ vec.T
            a, b = np.nonzero(~np.eye(n, dtype=bool))
            rows.append(members[a])
            scores.append(sim[a, b])
            weights.append(np.full(len(a), 1.0 / (n * (n - 1))))
        return np.concatenate(rows), np.concatenate(scores), np.concatenate(weights)


SHAPES = (0.0, -0.05, -0.1, -0.15, -0.2)
VALIDATION_IDENTITIES = 1000
VALIDATION_SIMILARITY_COSINE = 0.508  # ≈ Similarity 80: the smooth part of the tail


def measured_fpir(
    ids: IdentityScores, cosines: list[float], size: int, draws: int = 5
) -> np.ndarray:
    """FPIR measured on random galleries of ``size`` real identities (mean of ``draws``)."""
    rng = np.random.default_rng(2)
    cols = ids.scores.shape[1]
    if size >= cols:
        draws = 1
    out = np.zeros(len(cosines))
    for _ in range(draws):
        pick = rng.choice(cols, size=min(size, cols), replace=False)
        top = np.nan_to_num(ids.scores[:, pick], nan=-2.0).max(1)
        out += np.array([ids.weights @ (top >= c) for c in cosines])
    return out / draws


def choose_shape(ids: IdentityScores) -> tuple[float, list[dict[str, Any]]]:
    """The GPD shape ξ chosen by prediction: tails fitted on galleries of 1,000 identities
    predict the FPIR measured on all ~4,000; the most negative (lightest-tailed) ξ whose
    prediction is not below the measured FPIR."""
    rng = np.random.default_rng(4)
    cols = ids.scores.shape[1]
    pick = rng.choice(cols, size=VALIDATION_IDENTITIES, replace=False)
    sub = ids.scores[:, pick]
    rows = [r[~np.isnan(r)] for r in sub]
    present = (~np.isnan(ids.scores)).sum(1)
    c = VALIDATION_SIMILARITY_COSINE
    measured = float(measured_fpir(ids, [c], cols)[0])
    report = []
    chosen = 0.0
    for shape in SHAPES:
        tails = ProbeTails.fit(rows, ids.weights, k=TAIL_K, shape=shape)
        p = np.clip(tails.exceedance(c), 0, 1 - 1e-12)
        predicted = float(tails.weights @ -np.expm1(present * np.log1p(-p)))
        report.append({"shape": shape, "predicted_fpir": predicted, "measured_fpir": measured})
        if predicted >= measured:
            chosen = shape
    return chosen, report


def fit_anchors(tails: ProbeTails, ids: IdentityScores) -> list[list[float]]:
    """Similarity s ↔ the cosine where the identity-pair FMR falls to ANCHORS[s]: the fitted
    tails' cosine, raised to the measured one where the data can measure that rate (so the
    measured FMR never exceeds what the Similarity stands for)."""
    measurable = 1.0 / (len(ids.probes) * len(ids.gallery))
    anchors: list[list[float]] = []
    for similarity in sorted(ANCHORS):
        target = ANCHORS[similarity]
        c = tails.cosine_for_fmr(target)
        if target >= measurable:
            lo, hi = -1.0, 1.0
            for _ in range(40):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if ids.measured_fmr(mid) > target else (lo, mid)
            c = max(c, hi)
        c = float(np.ceil(c * 1e4) / 1e4)
        if anchors and c <= anchors[-1][0]:
            c = anchors[-1][0] + 1e-4
        anchors.append([round(min(c, 0.9999), 4), similarity])
    return anchors


def check_extrapolation(ids: IdentityScores, tails: ProbeTails, cal: Calibration) -> list[dict]:
    """Measured FPIR on random sub-galleries of real identities vs the fitted prediction."""
    rng = np.random.default_rng(1)
    out = []
    cols = ids.scores.shape[1]
    for size in (500, 1000, 2000, cols):
        pick = rng.choice(cols, size=size, replace=False) if size < cols else np.arange(cols)
        sub = np.nan_to_num(ids.scores[:, pick], nan=-2.0)
        top = sub.max(1)
        present = (~np.isnan(ids.scores[:, pick])).sum(1)
        for s in (80.0, 84.0, 88.0, 92.0):
            c = float(cal.cosine(s))
            measured = float(ids.weights @ (top >= c))
            p = np.clip(tails.exceedance(c), 0, 1 - 1e-12)
            predicted = float(ids.weights @ -np.expm1(present * np.log1p(-p)))
            out.append(
                {
                    "gallery_identities": int(size),
                    "similarity": s,
                    "measured_fpir": round(measured, 6),
                    "predicted_fpir": round(predicted, 6),
                    "non_mated_with_candidate": int(np.sum(top >= c)),
                    "probes": len(top),
                }
            )
    return out


def z_score_comparison(ids: IdentityScores) -> dict[str, Any]:
    """Per-search normalisation: z = (score − probe's mean) / probe's std over the gallery.

    Gallery = one image per identity (~4 K). Non-mated search: the probe against all other
    identities. Mated search: the same plus one other image of the probe's person. At the
    threshold giving FPIR 0.1 % (and 1 %), the hit rate (mate first and ≥ threshold) of each
    score, identity-weighted."""
    sc = np.nan_to_num(ids.scores, nan=-2.0)
    mean = np.nanmean(ids.scores, axis=1)
    std = np.nanstd(ids.scores, axis=1)
    top = sc.max(1)
    z_top = (top - mean) / std
    rows: list[dict[str, Any]] = []
    mate_score = np.full(len(top), np.nan)
    for g in np.unique(ids.probe_labels):
        members = np.flatnonzero(ids.probe_labels == g)
        if len(members) < 2:
            continue
        vec = ids.emb[ids.probes[members]]
        sim = vec @ vec.T
        n = len(members)
        mate_score[members] = sim[np.arange(n), (np.arange(n) + 1) % n]  # the next image
    mated = ~np.isnan(mate_score)
    w_nm = ids.weights / ids.weights.sum()
    w_m = ids.weights[mated] / ids.weights[mated].sum()
    m = mate_score[mated]
    first = m > top[mated]
    z_m = (m - mean[mated]) / std[mated]
    for target in (1e-3, 1e-2):
        for name, nm_score, m_score in (("similarity", top, m), ("z_score", z_top, z_m)):
            order = np.argsort(-nm_score)
            cum = np.cumsum(w_nm[order])
            k = int(np.searchsorted(cum, target, side="right"))
            t = float(nm_score[order][k]) + 1e-9 if k < len(order) else -np.inf
            hit = float(w_m @ ((m_score >= t) & first))
            rows.append(
                {
                    "target_fpir": target,
                    "score": name,
                    "threshold": round(t, 5),
                    "fpir": round(float(w_nm @ (nm_score >= t)), 6),
                    "hit_rate": round(hit, 4),
                }
            )
    return {
        "gallery_identities": int(sc.shape[1]),
        "mated_searches": int(mated.sum()),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default="yunet-sface")
    parser.add_argument("--write-manifest", action="store_true")
    parser.add_argument("--refresh", action="store_true", help="re-embed even if cached")
    args = parser.parse_args()
    root = require_lfw()
    load_before = os.getloadavg()
    engine = FaceEngine(args.pack)
    paths, emb, found = embeddings(engine, root, args.refresh)
    print(f"face found in {int(found.sum())}/{len(paths)} images ({found.mean():.4%})")
    exclusions = Exclusions.parse((REPO / "bench" / "lfw_exclusions.txt").read_text().splitlines())
    start = time.perf_counter()
    ids = IdentityScores(paths, emb, found, exclusions)
    shape, shape_report = choose_shape(ids)
    print(f"GPD shape {shape} (fit on {VALIDATION_IDENTITIES} identities, predict all):")
    for r in shape_report:
        print(
            f"  shape {r['shape']:+.2f}: predicted {r['predicted_fpir']:.4%} "
            f"measured {r['measured_fpir']:.4%}"
        )
    tails = ProbeTails.fit(ids.rows(), ids.weights, k=TAIL_K, shape=shape)
    anchors = fit_anchors(tails, ids)
    cal = Calibration.from_table(CalibrationTable(anchors=tuple((a, b) for a, b in anchors)))
    print(
        f"probes {len(ids.probes)}, gallery identities {len(ids.gallery)}, "
        f"excluded label-fault pairs {ids.excluded_pairs}"
    )
    print("anchors (cosine, Similarity):", anchors)

    rows, mscores, mweights = ids.mated()
    mated = MatedPairs.of(tails, rows, mscores, mweights)
    mated_people = len(np.unique(ids.probe_labels[rows]))
    image_pairs = score_all_pairs(emb, paths, valid=found, exclusions=exclusions)

    published = []
    for s in PUBLISHED:
        c = float(cal.cosine(s))
        published.append(
            {
                "similarity": s,
                "cosine": round(c, 4),
                "fmr": tails.fmr(c),
                "fmr_measured": ids.measured_fmr(c),
                "fnmr": float(mated.weights @ (mated.scores < c)),
                "fmr_image_pairs": image_pairs.fmr(c),
                "fnmr_image_pairs": image_pairs.fnmr(c),
                "false_matches_image_pairs": image_pairs.impostors_at_or_above(c),
                "identity_pairs": int(len(ids.probes) and ids.people * (ids.people - 1)),
                "genuine_people": mated_people,
                "impostor_pairs": image_pairs.impostor_pairs,
                "genuine_pairs": image_pairs.genuine_pairs,
            }
        )
    print(
        f"{'Sim':>5} {'cosine':>7} {'FMR id':>9} {'meas.':>9} {'FNMR id':>8} | "
        f"{'FMR img':>9} {'FNMR img':>8}"
    )
    for r in published:
        print(
            f"{r['similarity']:>5.0f} {r['cosine']:>7.4f} {r['fmr']:>9.2e} "
            f"{r['fmr_measured']:>9.2e} {r['fnmr']:>8.4f} | {r['fmr_image_pairs']:>9.2e} "
            f"{r['fnmr_image_pairs']:>8.4f}"
        )

    cosines = [float(cal.cosine(s)) for s in SIMILARITY_GRID]
    model, _low, high = fpir_table(tails, cosines, SIZES, groups=ids.probe_labels)
    # FPIR never below what real galleries showed: measured directly up to ~4 K identities,
    # and the measured value at ~4 K as a lower bound beyond (look-alikes such as twins).
    # beyond: the measured value at ~4 K plus the model's growth from there.
    cols = ids.scores.shape[1]
    measured = np.stack([measured_fpir(ids, cosines, min(n, cols)) for n in SIZES], axis=1)
    at_cols, _, high_cols = fpir_table(tails, cosines, [cols], groups=ids.probe_labels)
    beyond = np.array(SIZES) > cols
    growth = np.where(beyond[None, :], np.maximum(model - at_cols, 0.0), 0.0)
    growth_high = np.where(beyond[None, :], np.maximum(high - high_cols, 0.0), 0.0)
    fpir = np.minimum(np.maximum(model * ~beyond[None, :], measured + growth), 1.0)
    high = np.minimum(np.maximum(high * ~beyond[None, :], measured + growth_high), 1.0)
    hit = np.array([[mated.hit_rate(c, n) for n in SIZES] for c in cosines])
    floors = []
    for j, n in enumerate(SIZES):
        floor, reachable = choose_floor(fpir[:, j], SIMILARITY_GRID)
        r = SIMILARITY_GRID.index(floor)
        floors.append(
            {
                "faces": n,
                "floor": floor,
                "reachable": reachable,
                "fpir": round(float(fpir[r, j]), 6),
                "fpir_upper": round(float(high[r, j]), 6),
                "hit_rate": round(float(hit[r, j]), 4),
                "fmr_per_comparison": tails.fmr(cosines[r]),
            }
        )
    print(f"{'faces':>11} {'floor':>6} {'FPIR':>9} {'(95th)':>9} {'hit rate':>8}")
    for f in floors:
        mark = "" if f["reachable"] else "  target not reachable"
        print(
            f"{f['faces']:>11,} {f['floor']:>6.1f} {f['fpir']:>9.2%} {f['fpir_upper']:>9.2%} "
            f"{f['hit_rate']:>8.2%}{mark}"
        )
    extrapolation = check_extrapolation(ids, tails, cal)
    print("extrapolation check (measured vs predicted FPIR on real sub-galleries):")
    for e in extrapolation:
        print(
            f"  {e['gallery_identities']:>5} identities, Sim {e['similarity']:.0f}: "
            f"measured {e['measured_fpir']:.4%} predicted {e['predicted_fpir']:.4%}"
        )
    zscore = z_score_comparison(ids)
    print("per-search z-score vs Similarity at a fixed FPIR:")
    for r in zscore["rows"]:
        print(
            f"  FPIR {r['target_fpir']:.1%} {r['score']:>10}: threshold {r['threshold']:.4f} "
            f"hit rate {r['hit_rate']:.2%}"
        )
    seconds = time.perf_counter() - start

    method = (
        "Identity pairs of LFW DevTrain (every image with a face is a probe weighted "
        "1/images of its person; gallery = one seeded image per identity; label faults in "
        "bench/lfw_exclusions.txt excluded). Per probe: empirical exceedance of its impostor "
        f"scores, and above its {TAIL_K}th-highest score a fitted tail (peaks over "
        "threshold: a generalised Pareto tail with a common shape chosen so that tails fitted "
        "on 1,000 identities do not under-predict the FPIR measured on all ~4,000). "
        "Model FPIR(t, N) = weighted mean of 1-(1-p_i(t))^N. Table: up to ~4,000 faces the "
        "larger of the model and the FPIR measured on real galleries of N identities; beyond, "
        "the FPIR measured at ~4,000 plus the model's growth from there. Listed identical "
        "twins (bench/lfw_exclusions.txt) are left out and reported apart. "
        "Hit rate(t, N) = weighted share of genuine pairs (1/(n(n-1)) per ordered pair) with "
        "score m >= t times (1-p_i(m))^(N-1). Upper bound: 95th percentile of 200 bootstraps "
        "over identities. Faces of one person counted as different people, so FPIR is "
        "overstated for galleries with several photos per person. Fitted by bench/calibrate.py"
    )
    scale = {
        "pack": args.pack,
        "face_model_version": engine.face_model_version,
        "method": method,
        "target_fpir": TARGET_FPIR,
        "min_floor": MIN_FLOOR,
        "floor_column": "fpir",
        "sizes": list(SIZES),
        "similarities": list(SIMILARITY_GRID),
        "fpir": [[float(f"{v:.4g}") for v in row] for row in fpir],
        "fpir_upper": [[float(f"{v:.4g}") for v in row] for row in high],
        "hit_rate": [[round(float(v), 4) for v in row] for row in hit],
        "floors": floors,
    }
    result = {
        "command": "python bench/calibrate.py"
        + (" --write-manifest" if args.write_manifest else ""),
        "pack": args.pack,
        "face_model_version": engine.face_model_version,
        "images": len(paths),
        "images_with_face": int(found.sum()),
        "probes": len(ids.probes),
        "gallery_identities": len(ids.gallery),
        "excluded_label_fault_pairs": ids.excluded_pairs,
        "gpd_shape": shape,
        "gpd_shape_validation": shape_report,
        "anchor_fmr": {str(k): v for k, v in ANCHORS.items()},
        "anchors": anchors,
        "published": published,
        "floors": floors,
        "readme_floors": [f for f in floors if f["faces"] in README_SIZES],
        "extrapolation_check": extrapolation,
        "z_score_vs_similarity": zscore,
        "method": method,
        "top_impostors_image_pairs_after_exclusions": image_pairs.top_impostors[:30],
        "seconds": round(seconds, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
    }
    write_result(f"calibration_{args.pack}.json", result)
    if args.write_manifest:
        packs = REPO / "src" / "faceledger" / "inference" / "packs"
        manifest = packs / f"{args.pack}.json"
        data = json.loads(manifest.read_text())
        data["calibration"] = {
            "reference": (
                f"LFW development split (deep-funneled), identity pairs: {len(ids.probes):,} "
                f"probes x {len(ids.gallery):,} identities, each identity pair weighted once; "
                "exponential tails beyond the data; label faults in bench/lfw_exclusions.txt "
                "excluded; bench/calibrate.py"
            ),
            "anchors": anchors,
            "published": published,
        }
        manifest.write_text(json.dumps(data, indent=2) + "\n")
        (packs / "scale").mkdir(exist_ok=True)
        (packs / "scale" / f"{args.pack}.json").write_text(json.dumps(scale) + "\n")
        print(f"updated {manifest.relative_to(REPO)} and packs/scale/{args.pack}.json")


if __name__ == "__main__":
    main()
