"""Head pose and the AUTO quality filter on the LFW development split.

    .venv/bin/python bench/pose_quality.py [--floor 87.9] [--refresh]

1. Pose against faces sorted by eye: bench/pose_labels.csv lists DevTrain photos labelled
   frontal / three-quarter / profile by looking at them (contact sheets, not the estimate).
   Prints the mean |yaw| per bin, the share of three-quarter views under 60°, and the share
   of faces whose |yaw| falls in their bin's band (frontal < 20° ≤ three-quarter < 60° ≤
   profile), plus the pairwise ordering (a face of a more turned bin has the larger |yaw|).
   Then how well each cue the five landmarks offer (the solvePnP yaw, the eye distance over
   the eye-to-mouth height, the nose's sideways offset, the nose's place in the box, …) tells
   the bins apart: the AUC of frontal vs three-quarter and of three-quarter vs profile (0.5 =
   no information, 1 = every pair ordered).
2. What AUTO rejects and whether it should: every DevTrain image's central face (the person
   LFW names) is checked against AUTO, and searched against all the other
   images' central faces (leave-one-out): a probe is "found" when the top candidate is the
   same person with Similarity ≥ the floor (default: the floor the product picks for a
   collection of that many faces, from the pack's open-set table).
   For each rejection reason: how many faces it rejects and the share of those still found,
   against the share for all faces. A reason earns its place only if its faces are found
   less often than average.
3. The full-size photos in ../shared/data/photos (AWS-demo-like): every face's yaw and
   whether AUTO rejects it as EXTREME_POSE.

Analysis (detector, landmarks, quality, embedding of each image's subject face) is cached in
.cache/; pose and the filter are recomputed from the cached landmarks on every run, so a
change to either is measured in seconds. Writes bench/results/pose_quality.json.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO, data_dir, machine, require_lfw, write_result
from faceledger.config import Settings
from faceledger.domain.faces import AnalysedImage, Faces
from faceledger.evaluation.lfw import all_images, central_face
from faceledger.inference.engine import EngineOptions, FaceEngine
from faceledger.inference.imaging import load_image
from faceledger.inference.quality import pose_from_landmarks
from faceledger.services.collections import QUALITY_LIMITS, quality_reasons, subject_index

LABELS = REPO / "bench" / "pose_labels.csv"
BINS = ("frontal", "three-quarter", "profile")
# |yaw| bands the bins should fall in (degrees): frontal < 20 ≤ three-quarter < 60 ≤ profile
BAND_EDGES_DEG = (20.0, 60.0)
# collection sizes (faces) whose size floors AUTO's rejections are also checked at
COLLECTION_SIZES = (10_000, 100_000, 1_000_000, 20_000_000)


# -- analysis (cached) --------------------------------------------------------------------------
def analyse(engine: FaceEngine, root: Path, refresh: bool) -> dict[str, np.ndarray]:
    """Per DevTrain image: the box, score, landmarks, quality and embedding of its central face
    (LFW centres the person it names; bulk enrolment's subject rule picks the same face in all
    but a handful of DevTrain images, counted in ``subject_is_central``)."""
    CACHE.mkdir(exist_ok=True)
    cache = CACHE / f"pose_quality_central_{engine.face_model_version}.npz"
    paths = all_images(root)
    if cache.is_file() and not refresh:
        data = dict(np.load(cache))
        if list(data["paths"]) == paths:
            print(f"using cached analysis {cache.relative_to(REPO)}")
            return data
    n = len(paths)
    out: dict[str, np.ndarray] = {
        "paths": np.array(paths),
        "found": np.zeros((n,), bool),
        "faces_in_image": np.zeros((n,), np.int32),
        "subject_is_central": np.zeros((n,), bool),
        "boxes_px": np.zeros((n, 4), np.float32),
        "scores": np.zeros((n,), np.float32),
        "landmarks_px": np.zeros((n, 5, 2), np.float32),
        "brightness": np.zeros((n,), np.float32),
        "sharpness": np.zeros((n,), np.float32),
        "embeddings": np.zeros((n, engine.embedding_size), np.float32),
    }
    index = {root / p: i for i, p in enumerate(paths)}
    start = time.perf_counter()
    for done, (path, result) in enumerate(engine.analyse_many(list(index), loader=load_image), 1):
        if done % 1000 == 0 or done == n:
            print(f"  analysed {done}/{n} ({time.perf_counter() - start:.0f} s)", flush=True)
        if not isinstance(result, AnalysedImage) or len(result.faces) == 0:
            continue
        i = index[path]
        faces = result.faces
        k = central_face(faces, result.width_px, result.height_px)
        assert k is not None and faces.embeddings is not None
        out["subject_is_central"][i] = k == subject_index(faces, result.width_px, result.height_px)
        assert faces.brightness is not None and faces.sharpness is not None
        out["found"][i] = True
        out["faces_in_image"][i] = len(faces)
        out["boxes_px"][i] = faces.boxes_px[k]
        out["scores"][i] = faces.scores[k]
        out["landmarks_px"][i] = faces.landmarks_px[k]
        out["brightness"][i] = faces.brightness[k]
        out["sharpness"][i] = faces.sharpness[k]
        out["embeddings"][i] = faces.embeddings[k]
    np.savez(cache, **out)
    return out


def central_faces(data: dict[str, np.ndarray]) -> Faces:
    """The found central faces as ``Faces`` with today's pose estimate."""
    found = data["found"]
    yaw, pitch, roll = pose_from_landmarks(data["landmarks_px"][found])
    return Faces(
        boxes_px=data["boxes_px"][found],
        scores=data["scores"][found],
        landmarks_px=data["landmarks_px"][found],
        brightness=data["brightness"][found],
        sharpness=data["sharpness"][found],
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
    )


def legacy_yaw_deg(landmarks_px: np.ndarray) -> np.ndarray:
    """The yaw formula this bench replaced (until issue 14): arcsin of the nose's offset from
    the eye midpoint over 0.6 eye distances. It saturates at ±90° once the offset reaches
    0.6 eye distances, which three-quarter views do (the eye distance shrinks as they turn)."""
    pts = np.asarray(landmarks_px, dtype=np.float64).reshape(-1, 5, 2)
    eye_vec = pts[:, 1] - pts[:, 0]
    theta = -np.arctan2(eye_vec[:, 1], eye_vec[:, 0])
    d = pts[:, 2] - (pts[:, 0] + pts[:, 1]) / 2.0
    nose_x = d[:, 0] * np.cos(theta) - d[:, 1] * np.sin(theta)
    eye_dist = np.maximum(np.linalg.norm(eye_vec, axis=1), 1e-6)
    return np.degrees(np.arcsin(np.clip(nose_x / (0.6 * eye_dist), -1.0, 1.0)))


# -- 1. pose against labels -----------------------------------------------------------------------
def read_labels(label_set: str | None = None) -> list[tuple[str, str]]:
    """(file, bin) of the labelled faces, of one ``set`` column value when given."""
    with LABELS.open() as f:
        rows = [
            (r["file"], r["bin"])
            for r in csv.DictReader(line for line in f if line[0] != "#")
            if label_set is None or r["set"] == label_set
        ]
    unknown = {b for _, b in rows} - set(BINS)
    if unknown:
        raise SystemExit(f"{LABELS}: unknown bins {sorted(unknown)}")
    return rows


def pose_report(data: dict[str, np.ndarray], label_set: str | None = None) -> dict[str, Any]:
    position = {p: i for i, p in enumerate(data["paths"])}
    rows = read_labels(label_set)
    missing = [f for f, _ in rows if f not in position or not data["found"][position[f]]]
    rows = [(f, b) for f, b in rows if f not in missing]
    landmarks = np.stack([data["landmarks_px"][position[f]] for f, _ in rows])
    yaw = np.abs(pose_from_landmarks(landmarks)[0].astype(np.float64))
    legacy = np.abs(legacy_yaw_deg(landmarks))
    rank = np.array([BINS.index(b) for _, b in rows])
    low, high = BAND_EDGES_DEG
    in_band = np.where(
        rank == 0, yaw < low, np.where(rank == 1, (yaw >= low) & (yaw < high), yaw >= high)
    )
    # pairwise: for faces of different bins, the more turned bin has the larger |yaw|
    diff_bin = rank[:, None] != rank[None, :]
    concordant = (
        np.sign(rank[:, None] - rank[None, :]) == np.sign(yaw[:, None] - yaw[None, :])
    ) & diff_bin
    per_face_pairs = concordant.sum(1) / np.maximum(diff_bin.sum(1), 1)
    bins = {}
    for k, name in enumerate(BINS):
        sel = rank == k
        if sel.any():
            bins[name] = {
                "faces": int(sel.sum()),
                "mean_abs_yaw_deg": round(float(yaw[sel].mean()), 1),
                "min_abs_yaw_deg": round(float(yaw[sel].min()), 1),
                "max_abs_yaw_deg": round(float(yaw[sel].max()), 1),
                "in_band": round(float(in_band[sel].mean()), 3),
                "legacy_mean_abs_yaw_deg": round(float(legacy[sel].mean()), 1),
                "legacy_under_60_deg": round(float((legacy[sel] < 60).mean()), 3),
            }
    means = [bins[b]["mean_abs_yaw_deg"] for b in BINS if b in bins]
    three_quarter = rank == 1
    return {
        "labels_file": str(LABELS.relative_to(REPO)),
        "label_set": label_set or "all",
        "faces": len(rows),
        "not_detected": missing,
        "band_edges_deg": list(BAND_EDGES_DEG),
        "bins": bins,
        "means_ordered": bool(all(a < b for a, b in itertools.pairwise(means))),
        "three_quarter_under_60_deg": round(float((yaw[three_quarter] < 60).mean()), 3)
        if three_quarter.any()
        else None,
        "faces_in_their_band": round(float(in_band.mean()), 3),
        "faces_ordered_pairwise_90pct": round(float((per_face_pairs >= 0.9).mean()), 3),
        "pairs_ordered": round(float(concordant.sum() / max(diff_bin.sum(), 1)), 3),
        "per_face": [
            {"file": f, "bin": b, "abs_yaw_deg": round(float(y), 1), "legacy": round(float(z), 1)}
            for (f, b), y, z in zip(rows, yaw, legacy, strict=True)
        ],
    }


def landmark_cues(landmarks_px: np.ndarray, boxes_px: np.ndarray) -> dict[str, np.ndarray]:
    """Per face, pose cues from the five landmarks (roll removed) and the box; each grows as
    the head turns (absolute values, so the turning direction does not matter)."""
    pts = np.asarray(landmarks_px, dtype=np.float64).reshape(-1, 5, 2)
    eye_vec = pts[:, 1] - pts[:, 0]
    theta = -np.arctan2(eye_vec[:, 1], eye_vec[:, 0])
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    eye_mid = (pts[:, 0] + pts[:, 1]) / 2.0
    d = pts - eye_mid[:, None, :]
    x = d[..., 0] * cos - d[..., 1] * sin  # (N, 5): along the eye line
    y = d[..., 0] * sin + d[..., 1] * cos
    mouth_x, mouth_y = (x[:, 3] + x[:, 4]) / 2.0, (y[:, 3] + y[:, 4]) / 2.0
    height = np.maximum(np.hypot(mouth_x, mouth_y), 1e-6)
    eyes = np.maximum(x[:, 1] - x[:, 0], 1e-6)
    box_w = np.maximum(boxes_px[:, 2] - boxes_px[:, 0], 1e-6)
    box_cx = (boxes_px[:, 0] + boxes_px[:, 2]) / 2.0
    return {
        "solvepnp_abs_yaw": np.abs(pose_from_landmarks(pts.astype(np.float32))[0]),
        "legacy_abs_yaw": np.abs(legacy_yaw_deg(pts)),
        "eye_narrowing": 1.0 - eyes / height,
        "nose_offset_over_height": np.abs(x[:, 2]) / height,
        "nose_offset_over_eyes": np.abs(x[:, 2]) / eyes,
        "nose_to_mouth_offset_over_height": np.abs(x[:, 2] - mouth_x) / height,
        "nose_off_box_centre": np.abs(pts[:, 2, 0] - box_cx) / box_w,
        "eyes_off_box_centre": np.abs(eye_mid[:, 0] - box_cx) / box_w,
        "eye_narrowing_in_box": 1.0 - eyes / box_w,
    }


def auc(lower: np.ndarray, higher: np.ndarray) -> float:
    """Share of pairs (one of each) where ``higher`` scores above ``lower`` (ties count half)."""
    gt = (higher[:, None] > lower[None, :]).mean()
    eq = (higher[:, None] == lower[None, :]).mean()
    return float(gt + 0.5 * eq)


def separability_report(data: dict[str, np.ndarray]) -> dict[str, Any]:
    """How well each landmark cue orders the bins (all labelled faces)."""
    position = {p: i for i, p in enumerate(data["paths"])}
    rows = [(f, b) for f, b in read_labels() if f in position and data["found"][position[f]]]
    rows_i = np.array([position[f] for f, _ in rows])
    rank = np.array([BINS.index(b) for _, b in rows])
    cues = landmark_cues(data["landmarks_px"][rows_i], data["boxes_px"][rows_i])
    out: dict[str, Any] = {
        name: {
            "frontal_vs_three_quarter": round(auc(v[rank == 0], v[rank == 1]), 3),
            "three_quarter_vs_profile": round(auc(v[rank == 1], v[rank == 2]), 3),
        }
        for name, v in cues.items()
    }
    # combinations: a logistic model of every pair of cues (and of all of them), three-quarter
    # vs profile, each face scored by a model fitted without it (leave-one-out)
    turned = rank >= 1
    is_profile = (rank[turned] == 2).astype(np.float64)
    x = np.stack([v[turned] for v in cues.values()], axis=1)
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)
    names = list(cues)
    combos = [*itertools.combinations(range(len(names)), 2), tuple(range(len(names)))]
    best = max(
        (auc(*_split(_leave_one_out_logistic(x[:, list(c)], is_profile), is_profile)), c)
        for c in combos
    )
    whole = _leave_one_out_logistic(x, is_profile)
    out["combined_three_quarter_vs_profile_leave_one_out"] = {
        "best_pair": [names[i] for i in best[1]],
        "best_pair_auc": round(best[0], 3),
        "all_cues_auc": round(auc(*_split(whole, is_profile)), 3),
    }
    return out


def _split(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return scores[labels == 0], scores[labels == 1]


def _leave_one_out_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Each row's score from a ridge logistic regression fitted on the other rows."""
    xb = np.c_[x, np.ones(len(x))]
    penalty = ridge * np.diag(np.r_[np.ones(x.shape[1]), 0.0])
    scores = np.zeros(len(x))
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        w = np.zeros(xb.shape[1])
        for _ in range(50):  # Newton steps
            p = 1.0 / (1.0 + np.exp(-xb[keep] @ w))
            grad = xb[keep].T @ (p - y[keep]) + penalty @ w
            hess = xb[keep].T @ (xb[keep] * (p * (1 - p))[:, None]) + penalty
            w -= np.linalg.solve(hess, grad)
        scores[i] = xb[i] @ w
    return scores


# -- 2. what AUTO rejects -------------------------------------------------------------------------
def leave_one_out_found(
    embeddings: np.ndarray, people: np.ndarray, cosine_floor: float, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Per probe: (top-1 is the same person at or above ``cosine_floor``, the person has
    another image so it could be found)."""
    n = len(embeddings)
    found = np.zeros((n,), bool)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        scores = embeddings[start:stop] @ embeddings.T
        scores[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        top = scores.argmax(1)
        best = scores[np.arange(stop - start), top]
        found[start:stop] = (people[top] == people[start:stop]) & (best >= cosine_floor)
    counts = Counter(people.tolist())
    mated = np.array([counts[p] >= 2 for p in people])
    return found, mated


def quality_report(
    data: dict[str, np.ndarray], engine: FaceEngine, floor: float, level: str
) -> dict[str, Any]:
    faces = central_faces(data)
    paths = data["paths"][data["found"]]
    people = np.array([p.split("/")[0] for p in paths])
    cosine_floor = float(engine.calibration.cosine(floor))
    found, mated = leave_one_out_found(data["embeddings"][data["found"]], people, cosine_floor)
    reasons = quality_reasons(faces, level)
    rejected = np.array([bool(r) for r in reasons])
    overall = float(found[mated].mean())
    by_reason: dict[str, Any] = {}
    for reason in sorted({r for rs in reasons for r in rs}):
        sel = np.array([reason in rs for rs in reasons])
        sel_mated = sel & mated
        by_reason[reason] = {
            "rejected": int(sel.sum()),
            "share_of_faces": round(float(sel.mean()), 4),
            "mated_rejected": int(sel_mated.sum()),
            "found_share": round(float(found[sel_mated].mean()), 3) if sel_mated.any() else None,
            "worse_than_average": bool(found[sel_mated].mean() < overall)
            if sel_mated.any()
            else None,
            "examples": [str(p) for p in paths[sel][:5]],
        }
    # what each limit would cost if it were tighter: found share per yaw band, for tuning
    yaw = np.abs(np.asarray(faces.yaw_deg))
    yaw_bands = {}
    for low, high in ((0, 20), (20, 40), (40, 60), (60, 90)):
        sel = (yaw >= low) & (yaw < high) & mated
        yaw_bands[f"{low}-{high}"] = {
            "mated_faces": int(sel.sum()),
            "found_share": round(float(found[sel].mean()), 3) if sel.any() else None,
        }
    return {
        "level": level,
        "limits": QUALITY_LIMITS[level].__dict__,
        "floor": floor,
        "images": len(data["paths"]),
        "faces": len(faces),
        "no_face": int((~data["found"]).sum()),
        "mated_faces": int(mated.sum()),
        "found_share_all_mated": round(overall, 3),
        "rejected": int(rejected.sum()),
        "rejected_share": round(float(rejected.mean()), 4),
        "found_share_kept_mated": round(float(found[mated & ~rejected].mean()), 3),
        "found_share_rejected_mated": round(float(found[mated & rejected].mean()), 3)
        if (mated & rejected).any()
        else None,
        "by_reason": by_reason,
        "found_share_by_abs_yaw_deg": yaw_bands,
        "by_collection_size": by_collection_size(data, engine, people, mated, reasons),
    }


def by_collection_size(
    data: dict[str, np.ndarray],
    engine: FaceEngine,
    people: np.ndarray,
    mated: np.ndarray,
    reasons: Sequence[Sequence[str]],
) -> list[dict[str, Any]]:
    """The found shares again at the floor the product picks for larger collections (the
    floor rises with the face count, and a face that is found at one floor may not be at a
    higher one): all mated faces against each reason's."""
    table = engine.scale
    if table is None:
        return []
    out = []
    for size in COLLECTION_SIZES:
        floor = table.floor(size)[0]
        cosine = float(engine.calibration.cosine(floor))
        found, _ = leave_one_out_found(data["embeddings"][data["found"]], people, cosine)
        overall = float(found[mated].mean())
        row: dict[str, Any] = {"faces": size, "floor": floor, "found_share_all_mated": overall}
        for reason in sorted({r for rs in reasons for r in rs}):
            sel = np.array([reason in rs for rs in reasons]) & mated
            share = float(found[sel].mean()) if sel.any() else None
            row[reason] = {
                "mated_rejected": int(sel.sum()),
                "found_share": None if share is None else round(share, 3),
                "worse_than_average": None if share is None else share < overall,
            }
        out.append(row)
    return out


# -- 3. full-size photos -------------------------------------------------------------------------
def photos_report(engine: FaceEngine, level: str) -> dict[str, Any]:
    folder = data_dir() / "photos"
    rows = []
    for path in sorted(folder.glob("*.jpg")):
        faces = engine.detect(load_image(path))
        reasons = quality_reasons(faces, level)
        assert faces.yaw_deg is not None and faces.pitch_deg is not None
        legacy = legacy_yaw_deg(faces.landmarks_px)
        for i in range(len(faces)):
            rows.append(
                {
                    "photo": path.name,
                    "face": i,
                    "yaw_deg": round(float(faces.yaw_deg[i]), 1),
                    "pitch_deg": round(float(faces.pitch_deg[i]), 1),
                    "legacy_yaw_deg": round(float(legacy[i]), 1),
                    "reasons": reasons[i],
                }
            )
    return {
        "faces": len(rows),
        "extreme_pose": sum("EXTREME_POSE" in r["reasons"] for r in rows),
        "legacy_over_60_deg": sum(abs(r["legacy_yaw_deg"]) > 60 for r in rows),
        "rejected": sum(bool(r["reasons"]) for r in rows),
        "per_face": rows,
    }


def print_pose(pose: dict[str, Any]) -> None:
    print(
        f"\npose against {pose['faces']} faces sorted by eye ({pose['labels_file']}, "
        f"set {pose['label_set']}):"
    )
    for name, b in pose["bins"].items():
        print(
            f"  {name:14s} {b['faces']:3d} faces  mean |yaw| {b['mean_abs_yaw_deg']:5.1f}°"
            f"  range {b['min_abs_yaw_deg']:.1f}–{b['max_abs_yaw_deg']:.1f}°"
            f"  in band {b['in_band']:.0%}  (legacy formula: mean "
            f"{b['legacy_mean_abs_yaw_deg']:.1f}°, under 60° {b['legacy_under_60_deg']:.0%})"
        )
    print(
        f"  means ordered: {pose['means_ordered']}; three-quarter under 60°: "
        f"{pose['three_quarter_under_60_deg']:.0%}; faces in their band: "
        f"{pose['faces_in_their_band']:.0%}; pairs ordered: {pose['pairs_ordered']:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--floor", type=float, default=None, help="default: the size floor for all faces"
    )
    parser.add_argument("--level", default="AUTO")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--refresh", action="store_true", help="re-analyse even if cached")
    args = parser.parse_args()
    root = require_lfw()
    engine = FaceEngine(options=EngineOptions(workers=args.workers))
    try:
        data = analyse(engine, root, args.refresh)
        pose = pose_report(data)
        pose_check = pose_report(data, "check")
        separability = separability_report(data)
        pinned = Settings().default_threshold_floor
        if args.floor is not None:
            floor = args.floor
        elif pinned is not None:
            floor = pinned
        else:
            table = engine.scale
            floor = table.floor(int(data["found"].sum()))[0] if table is not None else 80.0
        quality = quality_report(data, engine, floor, args.level)
        photos = photos_report(engine, args.level)
    finally:
        engine.close()

    for report in (pose, pose_check):
        print_pose(report)
    print("\nAUC of each landmark cue (0.5: no information; 1: every pair ordered):")
    for name, a in separability.items():
        if "best_pair" in a:
            print(
                f"  three-quarter < profile, logistic model scored leave-one-out: best pair "
                f"{a['best_pair']} {a['best_pair_auc']:.2f}, all cues {a['all_cues_auc']:.2f}"
            )
            continue
        print(
            f"  {name:34s} frontal < three-quarter {a['frontal_vs_three_quarter']:.2f}   "
            f"three-quarter < profile {a['three_quarter_vs_profile']:.2f}"
        )
    q = quality
    print(
        f"\n{q['level']} on {q['faces']} DevTrain central faces: rejects {q['rejected']} "
        f"({q['rejected_share']:.2%}); found at floor {q['floor']:g}: all mated "
        f"{q['found_share_all_mated']:.1%}, kept {q['found_share_kept_mated']:.1%}, "
        f"rejected {q['found_share_rejected_mated']}"
    )
    for reason, r in q["by_reason"].items():
        print(
            f"  {reason:20s} {r['rejected']:4d} faces ({r['share_of_faces']:.2%}); "
            f"mated {r['mated_rejected']:4d}, found {r['found_share']}  "
            f"worse than average: {r['worse_than_average']}"
        )
    print(
        "  found share by |yaw|: "
        + ", ".join(
            f"{k}°: {v['found_share']} (n={v['mated_faces']})"
            for k, v in q["found_share_by_abs_yaw_deg"].items()
        )
    )
    for row in q["by_collection_size"]:
        print(
            f"  at the floor of {row['faces']:>10,} faces ({row['floor']:g}): found "
            f"{row['found_share_all_mated']:.1%} of all mated; "
            + "; ".join(
                f"{reason} {r['found_share']} of {r['mated_rejected']}"
                for reason, r in row.items()
                if isinstance(r, dict)
            )
        )
    print(
        f"\nfull-size photos: {photos['faces']} faces, {photos['extreme_pose']} EXTREME_POSE, "
        f"{photos['rejected']} rejected by {args.level} (legacy formula: "
        f"{photos['legacy_over_60_deg']} over 60°)"
    )
    for r in photos["per_face"]:
        print(
            f"  {r['photo']:10s} face {r['face']}: yaw {r['yaw_deg']:6.1f}° "
            f"(legacy {r['legacy_yaw_deg']:6.1f}°)  {r['reasons']}"
        )
    write_result(
        "pose_quality.json",
        {
            "command": "bench/pose_quality.py " + " ".join(sys.argv[1:]),
            "machine": machine(),
            "pose": pose,
            "pose_check_set": pose_check,
            "pose_cue_auc": separability,
            "quality": quality,
            "photos": photos,
        },
    )


if __name__ == "__main__":
    main()
