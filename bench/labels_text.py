"""DetectLabels and DetectText: latency on 1280×720 images, and person detection on composed
scenes (recall for people ≥ 64 px tall, false person instances per image, AP@0.5).

    python bench/labels_text.py [--scenes 60] [--repeats 15]

Latency is the service verb on encoded JPEG bytes (decode included, no HTTP), median of
``--repeats`` runs after a warm-up, each interleaved with DetectFaces on the same image so the
ratio is stable on a shared machine; the load average is recorded next to the figures.
The person set is built by ``faceledger.evaluation.people_scenes`` (see its docstring for
exactly how, and what it does not cover). Writes bench/results/labels_text.json.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, machine, require_lfw, write_result
from faceledger.config import Settings
from faceledger.domain.labels import COCO80
from faceledger.evaluation.group_photos import match_detections
from faceledger.evaluation.people_scenes import (
    average_precision,
    load_cutouts,
    make_people_scene,
)
from faceledger.inference.yolox import YoloxDetector
from faceledger.services.faces import FaceService
from faceledger.services.labels import DEFAULT_MIN_CONFIDENCE, LabelService

TEXT_LINES = ("HELLO WORLD 2024", "FaceLedger audit", "STOP AHEAD", "Invoice 12345", "open source")
PERSON = COCO80.index("person")
MIN_PERSON_PX = 64
IOU = 0.5


def _jpeg(pixels_rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(pixels_rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def text_image() -> bytes:
    font = ImageFont.truetype("DejaVuSans.ttf", 40)
    img = PILImage.new("RGB", (1280, 720), "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(TEXT_LINES):
        draw.text((100, 60 + i * 120), line, fill="black", font=font)
    return _jpeg(np.asarray(img))


def timed(fn, cpu: list[float]) -> list[float]:  # type: ignore[no-untyped-def]
    """Wall ms of one call; its process CPU ms (all threads) is appended to ``cpu``: on a
    shared machine CPU time is the steadier figure (what the call costs, not how long it
    waited for a core)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    wall = (time.perf_counter() - t0) * 1000.0
    cpu.append((time.process_time() - c0) * 1000.0)
    return [wall]


def latency(labels: LabelService, faces: FaceService, scene_jpeg: bytes, repeats: int) -> dict:  # type: ignore[type-arg]
    text_jpeg = text_image()
    labels.detect_labels(scene_jpeg)
    got = labels.detect_text(text_jpeg)
    faces.detect_faces(scene_jpeg)
    lines = [i.text for i in got.items if i.kind == "LINE"]
    runs: dict[str, list[float]] = {"labels": [], "text": [], "faces": []}
    cpu: dict[str, list[float]] = {"labels": [], "text": [], "faces": []}
    load = []
    for _ in range(repeats):
        load.append(os.getloadavg()[0])
        runs["labels"] += timed(lambda: labels.detect_labels(scene_jpeg), cpu["labels"])
        runs["faces"] += timed(lambda: faces.detect_faces(scene_jpeg), cpu["faces"])
        runs["text"] += timed(lambda: labels.detect_text(text_jpeg), cpu["text"])
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "detect_labels_cpu_ms_median": round(statistics.median(cpu["labels"]), 1),
        "detect_text_cpu_ms_median": round(statistics.median(cpu["text"]), 1),
        "detect_faces_cpu_ms_median": round(statistics.median(cpu["faces"]), 1),
        "detect_labels_min_ms": round(min(runs["labels"]), 1),
        "detect_text_min_ms": round(min(runs["text"]), 1),
        "detect_labels_median_ms": round(med["labels"], 1),
        "detect_text_median_ms": round(med["text"], 1),
        "detect_faces_median_ms": round(med["faces"], 1),
        "labels_over_faces": round(med["labels"] / med["faces"], 2),
        "text_over_faces": round(med["text"] / med["faces"], 2),
        "text_lines_read": lines,
        "text_lines_exact": lines == list(TEXT_LINES),
        "load_average_1m_during": [round(min(load), 2), round(max(load), 2)],
        "repeats": repeats,
    }


def person_accuracy(labels: LabelService, n_scenes: int) -> dict:  # type: ignore[type-arg]
    lfw = require_lfw()
    rng = np.random.default_rng(20)
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    chosen = rng.choice(len(people), size=min(300, len(people)), replace=False)
    lfw_images = [sorted(people[int(i)].glob("*.jpg"))[0] for i in chosen]
    photos = sorted((data_dir() / "photos").glob("*.jpg"))
    cutouts = load_cutouts(lfw_images, photos)
    detector, _ = labels.detector()
    low = YoloxDetector(
        detector.session, detector.input_size_px, score_threshold=0.01, tiles=detector.tiles
    )
    thresholds = (30.0, 40.0, 50.0, DEFAULT_MIN_CONFIDENCE)
    n_truth = 0
    found = dict.fromkeys(thresholds, 0)
    false_instances = dict.fromkeys(thresholds, 0)
    scores: list[float] = []
    is_true: list[bool] = []
    n_truth_all = 0
    for k in range(n_scenes):
        n = 0 if k % 6 == 0 else int(rng.integers(1, 7))  # every sixth scene has nobody
        scene = make_people_scene(rng, cutouts, n)
        dets = low.detect(scene.pixels_bgr)
        person = dets.class_ids == PERSON
        boxes, conf = dets.boxes_px[person], dets.scores[person]
        heights = scene.boxes_px[:, 3] - scene.boxes_px[:, 1]
        big = heights >= MIN_PERSON_PX
        n_truth += int(big.sum())
        for threshold in thresholds:  # operating points (MinConfidence)
            keep = conf >= threshold / 100.0
            match, _ = match_detections(scene.boxes_px, boxes[keep], iou_min=IOU)
            found[threshold] += int(((match >= 0) & big).sum())
            # a detection matched to a person under 64 px is not false; unmatched ones are
            false_instances[threshold] += int(keep.sum()) - int((match >= 0).sum())
        # AP@0.5 over every score, people of every size
        match_all, _ = match_detections(scene.boxes_px, boxes, iou_min=IOU)
        hit = np.zeros(len(boxes), dtype=bool)
        hit[match_all[match_all >= 0]] = True
        scores += [float(s) for s in conf]
        is_true += list(hit)
        n_truth_all += len(scene.boxes_px)
    ap = average_precision(np.asarray(scores), np.asarray(is_true, dtype=bool), n_truth_all)
    return {
        "scenes": n_scenes,
        "people": n_truth_all,
        "people_at_least_64px": n_truth,
        "recall_at_least_64px": round(found[DEFAULT_MIN_CONFIDENCE] / max(n_truth, 1), 4),
        "false_person_instances_per_image": round(
            false_instances[DEFAULT_MIN_CONFIDENCE] / n_scenes, 3
        ),
        "operating_point_min_confidence": DEFAULT_MIN_CONFIDENCE,
        "by_min_confidence": {
            f"{t:g}": {
                "recall_at_least_64px": round(found[t] / max(n_truth, 1), 4),
                "false_person_instances_per_image": round(false_instances[t] / n_scenes, 3),
            }
            for t in thresholds
        },
        "iou_match": IOU,
        "person_ap_at_0_5": round(ap, 4),
        "built_from": "faceledger.evaluation.people_scenes: LFW head-and-shoulders crops and "
        "../shared/data/photos portraits pasted on synthetic clutter, 1280x720, heights "
        "48-400 px, seed 20; every sixth scene empty",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        labels = LabelService(settings)
        faces = FaceService(settings)
        accuracy = person_accuracy(labels, args.scenes)
        rng = np.random.default_rng(7)
        lfw = require_lfw()
        cut = load_cutouts(
            [next(lfw.glob("*/*.jpg"))], sorted((data_dir() / "photos").glob("*.jpg"))
        )
        scene = make_people_scene(rng, cut, 3)
        speed = latency(labels, faces, _jpeg(scene.pixels_bgr[:, :, ::-1]), args.repeats)
    result = {"person_detection": accuracy, "latency": speed, "machine": machine()}
    for section in ("person_detection", "latency"):
        for key, value in result[section].items():
            print(f"{section}.{key}: {value}")
    write_result("labels_text.json", result)


if __name__ == "__main__":
    main()
