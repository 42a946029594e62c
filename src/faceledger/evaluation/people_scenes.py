"""Synthetic street-less "people scenes": known person boxes for measuring the labels pack.

There is no labelled person data set here, so scenes are composed (deterministically, from a
seeded ``numpy.random.Generator``):

* **Background** — the face-free scene of ``group_photos`` (gradients, low-frequency noise,
  blurred rectangles, grain), 1280×720 by default.
* **People** — head-and-shoulders cut-outs: the central 150×210 px of an LFW deep-funnelled
  250×250 image (face, hair, neck and shoulders; most of the other people that LFW photos show
  at their edges are cut away), or one of the portrait photos in ``../shared/data/photos``.
  Each is resized to a height drawn uniformly from ``[min_height_px, max_height_px]`` and
  pasted opaque at a random place not overlapping the others.
* **Ground truth** — an LFW crop is one person filling it (the pasted rectangle). A photo's
  people are boxed by hand in ``PHOTO_PEOPLE`` (drawn by eye on a 10 % grid): ``couple.jpg``
  holds two people, and two wide portraits have background beside the person; a photo not
  listed is one person filling it (checked by eye for the other seven).

What this measures, honestly: a detector finding *upper bodies and portraits* on clutter; it
has no full-length bodies, crowds, occlusion or real scenes, so its recall is an upper bound
for those. False person instances are counted on the same clutter (including scenes with
nobody in them); a few are bystanders at the edge of an LFW crop, which no box covers
(``PeopleScene.pasted_px`` tells them apart from false boxes on the background).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from faceledger.evaluation.group_photos import iou_matrix, scene_background

LFW_CROP = (50, 40, 200, 250)  # x1, y1, x2, y2 of the head-and-shoulders part of a 250×250 tile

RatioBox = tuple[float, float, float, float]  # x1, y1, x2, y2 as shares of the width / height
WHOLE: tuple[RatioBox, ...] = ((0.0, 0.0, 1.0, 1.0),)
# The people in ../shared/data/photos where they do not fill the photo: every visible person,
# hair to the photo's edge (a shoulder cut by the frame ends at the frame).
PHOTO_PEOPLE: dict[str, tuple[RatioBox, ...]] = {
    "couple.jpg": ((0.06, 0.20, 0.42, 1.0), (0.32, 0.06, 1.0, 1.0)),
    "img2.jpg": ((0.21, 0.01, 0.91, 1.0),),
    "img4.jpg": ((0.15, 0.04, 0.81, 1.0),),
}


@dataclass(frozen=True)
class Cutout:
    """A picture to paste and the people in it (boxes as ratios of the picture)."""

    pixels_bgr: NDArray[np.uint8]
    people: tuple[RatioBox, ...] = WHOLE


@dataclass(frozen=True)
class PeopleScene:
    """A composed scene; one pasted picture may hold more than one person (``couple.jpg``)."""

    pixels_bgr: NDArray[np.uint8]
    boxes_px: NDArray[np.float32]  # (N, 4) x1 y1 x2 y2, one per person
    pasted_px: NDArray[np.float32]  # (M, 4) x1 y1 x2 y2, one per pasted picture


def load_cutouts(lfw_images: list[Path], photos: list[Path]) -> list[Cutout]:
    """Person cut-outs: LFW head-and-shoulders crops, then whole portrait photos."""
    x1, y1, x2, y2 = LFW_CROP
    out = []
    for path in lfw_images:
        tile = cv2.imread(str(path))
        if tile is not None and tile.shape[:2] == (250, 250):
            out.append(Cutout(np.ascontiguousarray(tile[y1:y2, x1:x2], dtype=np.uint8)))
    for path in photos:
        photo = cv2.imread(str(path))
        if photo is not None:
            people = PHOTO_PEOPLE.get(path.name, WHOLE)
            out.append(Cutout(np.asarray(photo, dtype=np.uint8), people))
    return out


def make_people_scene(
    rng: np.random.Generator,
    cutouts: list[Cutout],
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
    pasted: list[tuple[float, float, float, float]] = []
    for _ in range(n_people):
        cutout = cutouts[int(rng.integers(len(cutouts)))]
        cut = cutout.pixels_bgr
        h = int(rng.integers(min_height_px, min(max_height_px, height_px) + 1))
        w = max(8, round(cut.shape[1] * h / cut.shape[0]))
        if w >= width_px:
            continue
        for _attempt in range(50):
            x = int(rng.integers(0, width_px - w + 1))
            y = int(rng.integers(0, height_px - h + 1))
            box = (float(x), float(y), float(x + w), float(y + h))
            if not pasted or iou_matrix([box], pasted).max() == 0.0:
                interpolation = cv2.INTER_AREA if h < cut.shape[0] else cv2.INTER_LINEAR
                canvas[y : y + h, x : x + w] = cv2.resize(cut, (w, h), interpolation=interpolation)
                pasted.append(box)
                boxes += [
                    (x + a * w, y + b * h, x + c * w, y + d * h) for a, b, c, d in cutout.people
                ]
                break
    return PeopleScene(
        canvas,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(pasted, np.float32).reshape(-1, 4),
    )


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
