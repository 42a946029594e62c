"""Synthetic street-less "people scenes": known person boxes for measuring the labels pack.

There is no labelled person data set here, so scenes are composed (deterministically, from a
seeded ``numpy.random.Generator``):

* **Background** — the face-free scene of ``group_photos`` (gradients, low-frequency noise,
  blurred rectangles, grain), 1280×720 by default.
* **People** — head-and-shoulders cut-outs: the central 150×210 px of an LFW deep-funnelled
  250×250 image (face, hair, neck and shoulders; most of the other people that LFW photos show
  at their edges are cut away), or one of the portrait photos in ``../shared/data/photos``
  (one person filling the frame). Each is resized to a height drawn uniformly from
  ``[min_height_px, max_height_px]`` and pasted opaque at a random place not overlapping the
  others. The ground-truth box is the pasted rectangle.

What this measures, honestly: a detector finding *upper bodies and portraits* on clutter; it
has no full-length bodies, crowds, occlusion or real scenes, so its recall is an upper bound
for those. False person instances are counted on the same clutter (including scenes with
nobody in them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from faceledger.evaluation.group_photos import iou_matrix, scene_background

LFW_CROP = (50, 40, 200, 250)  # x1, y1, x2, y2 of the head-and-shoulders part of a 250×250 tile


@dataclass(frozen=True)
class PeopleScene:
    pixels_bgr: NDArray[np.uint8]
    boxes_px: NDArray[np.float32]  # (N, 4) x1 y1 x2 y2, one per pasted person


def load_cutouts(lfw_images: list[Path], photos: list[Path]) -> list[NDArray[np.uint8]]:
    """Person cut-outs: LFW head-and-shoulders crops, then whole portrait photos."""
    x1, y1, x2, y2 = LFW_CROP
    out = []
    for path in lfw_images:
        tile = cv2.imread(str(path))
        if tile is not None and tile.shape[:2] == (250, 250):
            out.append(np.ascontiguousarray(tile[y1:y2, x1:x2], dtype=np.uint8))
    for path in photos:
        photo = cv2.imread(str(path))
        if photo is not None:
            out.append(np.asarray(photo, dtype=np.uint8))
    return out


def make_people_scene(
    rng: np.random.Generator,
    cutouts: list[NDArray[np.uint8]],
    n_people: int,
    *,
    width_px: int = 1280,
    height_px: int = 720,
    min_height_px: int = 48,
    max_height_px: int = 400,
) -> PeopleScene:
    """A scene with up to ``n_people`` non-overlapping people (fewer when they do not fit)."""
    canvas = scene_background(rng, width_px, height_px)
    boxes: list[tuple[float, float, float, float]] = []
    for _ in range(n_people):
        cut = cutouts[int(rng.integers(len(cutouts)))]
        h = int(rng.integers(min_height_px, min(max_height_px, height_px) + 1))
        w = max(8, round(cut.shape[1] * h / cut.shape[0]))
        if w >= width_px:
            continue
        for _attempt in range(50):
            x = int(rng.integers(0, width_px - w + 1))
            y = int(rng.integers(0, height_px - h + 1))
            box = (float(x), float(y), float(x + w), float(y + h))
            if not boxes or iou_matrix([box], boxes).max() == 0.0:
                interpolation = cv2.INTER_AREA if h < cut.shape[0] else cv2.INTER_LINEAR
                canvas[y : y + h, x : x + w] = cv2.resize(cut, (w, h), interpolation=interpolation)
                boxes.append(box)
                break
    return PeopleScene(canvas, np.asarray(boxes, np.float32).reshape(-1, 4))


def average_precision(
    scores: NDArray[np.float64], is_true: NDArray[np.bool_], n_truth: int
) -> float:
    """Area under the all-point interpolated precision-recall curve (PASCAL VOC 2010+)."""
    if n_truth == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(is_true[order])
    fp = np.cumsum(~is_true[order])
    recall = np.concatenate([[0.0], tp / n_truth, [1.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))
