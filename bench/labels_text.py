"""DetectLabels and DetectText: latency on 1280×720 images, and person detection on composed
scenes (recall for people ≥ 64 px tall, false person instances per image, AP@0.5), each for
the session-5 settings and today's, side by side in one run.

    python bench/labels_text.py [--scenes 60] [--repeats 15]

Settings compared (same vendored YOLOX-nano file, same RapidOCR 1.4.4 models):

* labels ``session5``: the image letterboxed into 416×416, plus two square tiles at 416 on
  16:9 images (a user pack in a temporary folder holding that manifest);
  ``now``: the default pack (a coarse pass at 416 and a fine one up to 1024 px, at the image's
  aspect ratio).
* text ``session5``: detection on the whole 1280×720 image without ONNX Runtime's memory
  arena, recognition in batches of six; ``now``: detection on an 800 px copy with the arena,
  full-resolution crops recognised one at a time.
* Both run ONNX Runtime on one thread (session 5's labels detector used two, whose idle
  spinning doubled its CPU time on this shared machine: see ``detector_for_pack``).

Latency is the service verb on encoded JPEG bytes (decode included, no HTTP), median of
``--repeats`` runs after a warm-up, every setting and DetectFaces interleaved in each round so
the ratios are stable on a shared machine; process CPU time is recorded too (on a loaded
machine the steadier figure), with the load average next to the figures. The person set is
built by ``faceledger.evaluation.people_scenes`` (see its docstring for exactly how, and what it
does not cover). Writes bench/results/labels_text.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, machine, require_lfw, write_result
from faceledger.config import Settings
from faceledger.domain.labels import COCO80
from faceledger.evaluation.group_photos import match_detections
from faceledger.evaluation.people_scenes import (
    PeopleScene,
    average_precision,
    load_cutouts,
    make_people_scene,
)
from faceledger.inference.labels_packs import (
    USER_LABELS_MANIFEST,
    LabelsPackRegistry,
    detector_for_pack,
)
from faceledger.inference.ocr import TextReader
from faceledger.inference.yolox import YoloxDetector
from faceledger.services.faces import FaceService
from faceledger.services.labels import DEFAULT_MIN_CONFIDENCE, LabelService

TEXT_LINES = ("HELLO WORLD 2024", "FaceLedger audit", "STOP AHEAD", "Invoice 12345", "open source")
PERSON = COCO80.index("person")
MIN_PERSON_PX = 64
IOU = 0.5
THRESHOLDS = (30.0, 40.0, 50.0, DEFAULT_MIN_CONFIDENCE)  # MinConfidence operating points
SESSION5_PACK = "labels-session5"
SETTINGS = ("session5", "now")


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


def write_session5_pack(model_dir: Path) -> None:
    """The session-5 default as a user pack: the vendored file, 416×416 letterbox, tiles."""
    folder = model_dir / SESSION5_PACK
    folder.mkdir(parents=True)
    builtin = resources.files("faceledger.inference") / "labelpacks"
    manifest = json.loads((builtin / "labels.json").read_text(encoding="utf-8"))
    (folder / manifest["file"]).write_bytes((builtin / manifest["file"]).read_bytes())
    manifest.pop("input_max_side", None)
    manifest.update(name=SESSION5_PACK, tiles=True)
    (folder / USER_LABELS_MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


class PersonTally:
    """Person detection counts of one setting over the scenes."""

    def __init__(self) -> None:
        self.n_truth_big = 0
        self.n_truth_all = 0
        self.found = dict.fromkeys(THRESHOLDS, 0)
        self.false = dict.fromkeys(THRESHOLDS, 0)
        self.false_in_picture = dict.fromkeys(THRESHOLDS, 0)
        self.scores: list[float] = []
        self.is_true: list[bool] = []
        self.cpu_s = 0.0

    def add(self, scene: PeopleScene, boxes: np.ndarray, conf: np.ndarray) -> None:
        heights = scene.boxes_px[:, 3] - scene.boxes_px[:, 1]
        big = heights >= MIN_PERSON_PX
        self.n_truth_big += int(big.sum())
        self.n_truth_all += len(scene.boxes_px)
        for threshold in THRESHOLDS:
            keep = conf >= threshold / 100.0
            match, _ = match_detections(scene.boxes_px, boxes[keep], iou_min=IOU)
            self.found[threshold] += int(((match >= 0) & big).sum())
            # a detection matched to a person under 64 px is not false; unmatched ones are
            unmatched = np.ones(int(keep.sum()), dtype=bool)
            unmatched[match[match >= 0]] = False
            self.false[threshold] += int(unmatched.sum())
            self.false_in_picture[threshold] += _inside_pictures(
                boxes[keep][unmatched], scene.pasted_px
            )
        # AP@0.5 over every score, people of every size
        match_all, _ = match_detections(scene.boxes_px, boxes, iou_min=IOU)
        hit = np.zeros(len(boxes), dtype=bool)
        hit[match_all[match_all >= 0]] = True
        self.scores += [float(s) for s in conf]
        self.is_true += list(hit)

    def report(self, n_scenes: int) -> dict[str, Any]:
        ap = average_precision(
            np.asarray(self.scores), np.asarray(self.is_true, dtype=bool), self.n_truth_all
        )
        by = {
            f"{t:g}": {
                "recall_at_least_64px": round(self.found[t] / max(self.n_truth_big, 1), 4),
                "false_person_instances_per_image": round(self.false[t] / n_scenes, 3),
                "of_which_inside_a_pasted_picture": round(self.false_in_picture[t] / n_scenes, 3),
            }
            for t in THRESHOLDS
        }
        at = by[f"{DEFAULT_MIN_CONFIDENCE:g}"]
        return {
            "recall_at_least_64px": at["recall_at_least_64px"],
            "false_person_instances_per_image": at["false_person_instances_per_image"],
            "person_ap_at_0_5": round(ap, 4),
            "by_min_confidence": by,
            "detector_cpu_ms_per_scene": round(1000.0 * self.cpu_s / n_scenes, 1),
        }


def _inside_pictures(boxes: np.ndarray, pasted: np.ndarray) -> int:
    """How many boxes lie mostly (≥ 80 %) inside one pasted picture: a bystander at an LFW
    crop's edge or part of a pictured person, rather than a false box on the background."""
    if len(boxes) == 0 or len(pasted) == 0:
        return 0
    x1 = np.maximum(boxes[:, None, 0], pasted[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], pasted[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], pasted[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], pasted[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int((inter.max(axis=1) >= 0.8 * area).sum())


def person_accuracy(detectors: dict[str, YoloxDetector], n_scenes: int) -> dict[str, Any]:
    lfw = require_lfw()
    rng = np.random.default_rng(20)
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    chosen = rng.choice(len(people), size=min(300, len(people)), replace=False)
    lfw_images = [sorted(people[int(i)].glob("*.jpg"))[0] for i in chosen]
    photos = sorted((data_dir() / "photos").glob("*.jpg"))
    cutouts = load_cutouts(lfw_images, photos)
    tallies = {name: PersonTally() for name in detectors}
    n_pictures = 0
    for k in range(n_scenes):
        n = 0 if k % 6 == 0 else int(rng.integers(1, 7))  # every sixth scene has nobody
        scene = make_people_scene(rng, cutouts, n)
        n_pictures += len(scene.pasted_px)
        for name, detector in detectors.items():
            c0 = time.process_time()
            dets = detector.detect(scene.pixels_bgr)
            tallies[name].cpu_s += time.process_time() - c0
            person = dets.class_ids == PERSON
            tallies[name].add(scene, dets.boxes_px[person], dets.scores[person])
    first = next(iter(tallies.values()))
    return {
        "scenes": n_scenes,
        "pictures_pasted": n_pictures,
        "people": first.n_truth_all,
        "people_at_least_64px": first.n_truth_big,
        "operating_point_min_confidence": DEFAULT_MIN_CONFIDENCE,
        "iou_match": IOU,
        "map_at_0_5_note": "one labelled class (person): mAP@0.5 = person AP@0.5",
        "by_setting": {name: tally.report(n_scenes) for name, tally in tallies.items()},
        "built_from": "faceledger.evaluation.people_scenes: LFW head-and-shoulders crops and "
        "../shared/data/photos portraits (people boxed by hand) pasted on synthetic clutter, "
        "1280x720, heights 48-400 px, seed 20; every sixth scene empty",
    }


def _timed(fn: Callable[[], object], wall: list[float], cpu: list[float]) -> None:
    """Wall ms and process CPU ms (all threads) of one call: on a shared machine CPU time is
    the steadier figure (what the call costs, not how long it waited for a core)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    wall.append((time.perf_counter() - t0) * 1000.0)
    cpu.append((time.process_time() - c0) * 1000.0)


def latency(
    labels: dict[str, LabelService], faces: FaceService, scene_jpeg: bytes, repeats: int
) -> dict[str, Any]:
    text_jpeg = text_image()
    calls: dict[str, Callable[[], object]] = {
        "detect_faces": lambda: faces.detect_faces(scene_jpeg)
    }
    read: dict[str, list[str]] = {}
    for name, service in labels.items():
        calls[f"detect_labels.{name}"] = lambda s=service: s.detect_labels(scene_jpeg)  # type: ignore[misc]
        calls[f"detect_text.{name}"] = lambda s=service: s.detect_text(text_jpeg)  # type: ignore[misc]
        got = service.detect_text(text_jpeg)  # warm-up, and what it read
        read[name] = [i.text for i in got.items if i.kind == "LINE"]
    for call in calls.values():
        call()
    wall: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    load = []
    for _ in range(repeats):
        load.append(os.getloadavg()[0])
        for key, call in calls.items():
            _timed(call, wall[key], cpu[key])
    faces_ms = statistics.median(wall["detect_faces"])
    out: dict[str, Any] = {}
    for key in calls:
        out[key] = {
            "median_ms": round(statistics.median(wall[key]), 1),
            "min_ms": round(min(wall[key]), 1),
            "cpu_ms_median": round(statistics.median(cpu[key]), 1),
            "over_detect_faces": round(statistics.median(wall[key]) / faces_ms, 2),
        }
    for name, lines in read.items():
        out[f"detect_text.{name}"]["lines_read"] = lines
        out[f"detect_text.{name}"]["lines_exact"] = lines == list(TEXT_LINES)
    out["load_average_1m_during"] = [round(min(load), 2), round(max(load), 2)]
    out["repeats"] = repeats
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "models"
        write_session5_pack(model_dir)
        registry = LabelsPackRegistry([model_dir])
        detectors = {  # a low threshold: every MinConfidence operating point from one run
            "session5": detector_for_pack(registry.load(SESSION5_PACK), score_threshold=0.01),
            "now": detector_for_pack(registry.load("labels"), score_threshold=0.01),
        }
        accuracy = person_accuracy(detectors, args.scenes)
        base = {"data_dir": Path(tmp) / "data", "model_dirs": [model_dir]}
        labels = {
            "session5": LabelService(Settings(**base, labels_pack=SESSION5_PACK)),  # type: ignore[arg-type]
            "now": LabelService(Settings(**base)),  # type: ignore[arg-type]
        }
        labels["session5"].text_reader = TextReader(
            det_max_side_px=4096, rec_batch=6, detector_arena=False
        )
        faces = FaceService(Settings(**base))  # type: ignore[arg-type]
        rng = np.random.default_rng(7)
        lfw = require_lfw()
        cut = load_cutouts(
            [next(lfw.glob("*/*.jpg"))], sorted((data_dir() / "photos").glob("*.jpg"))
        )
        scene = make_people_scene(rng, cut, 3)
        speed = latency(labels, faces, _jpeg(scene.pixels_bgr[:, :, ::-1]), args.repeats)
    result = {"person_detection": accuracy, "latency": speed, "machine": machine()}
    print(json.dumps(result, indent=1, default=float))
    write_result("labels_text.json", result)


if __name__ == "__main__":
    main()
