"""Detection on synthetic group photos of LFW faces (``faceledger.evaluation.group_photos``).

The full benchmark is ``bench/group_detection.py``; these are its fast guards: small faces are
found in a 1920×1080 photo, and a photo with more than 100 faces returns the 100 largest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from faceledger.domain.faces import Image
from faceledger.evaluation.group_photos import (
    make_group_photo,
    make_measuring_engine,
    match_detections,
)

if TYPE_CHECKING:
    from faceledger.inference.engine import FaceEngine


@pytest.fixture(scope="module")
def lfw_images(data_dir: Path) -> Path:
    folder = data_dir / "lfw-devtrain" / "images"
    if not folder.is_dir():
        pytest.skip(f"LFW development split not found at {folder}")
    return folder


@pytest.fixture(scope="module")
def measurer() -> Iterator[FaceEngine]:
    """The engine that measures LFW face boxes for the generator (threshold 0.3)."""
    engine = make_measuring_engine()
    yield engine
    engine.close()


def as_image(pixels: np.ndarray) -> Image:
    return Image(pixels_bgr=pixels, format="png", sha256="synthetic")


@pytest.mark.parametrize(
    ("truth", "found", "expected"),
    [
        ([[0, 0, 10, 10]], [[0, 0, 10, 10]], [0]),
        ([[0, 0, 10, 10]], [[5, 5, 15, 15]], [-1]),  # IoU 1/7 < 0.4
        ([[0, 0, 10, 10], [20, 0, 30, 10]], [[21, 0, 31, 10], [1, 0, 11, 10]], [1, 0]),
        # one detection between two faces goes to the better overlap only
        ([[0, 0, 10, 10], [2, 0, 12, 10]], [[1, 0, 11, 10]], [0, -1]),
        ([[0, 0, 10, 10]], np.zeros((0, 4)), [-1]),
    ],
)
def test_match_detections_is_one_to_one_by_best_iou(
    truth: list[list[float]], found: list[list[float]], expected: list[int]
) -> None:
    match, ious = match_detections(truth, found, iou_min=0.4)
    assert match.tolist() == expected
    assert np.all((ious >= 0.4) == (match >= 0))


def test_group_photo_is_deterministic(lfw_images: Path, measurer: FaceEngine) -> None:
    a, boxes_a = make_group_photo(
        lfw_images, 4, np.random.default_rng(5), width=640, height=360, engine=measurer
    )
    b, boxes_b = make_group_photo(
        lfw_images, 4, np.random.default_rng(5), width=640, height=360, engine=measurer
    )
    assert a.shape == (360, 640, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(boxes_a, boxes_b)
    widths = boxes_a[:, 2] - boxes_a[:, 0]
    assert np.all((widths > 29.5) & (widths < 120.5))
    assert np.all(boxes_a[:, :2] >= 0) and np.all(boxes_a[:, 2] <= 640)
    assert np.all(boxes_a[:, 3] <= 360)


def test_small_faces_are_found_in_a_1080p_group_photo(
    lfw_images: Path, measurer: FaceEngine, engine: FaceEngine
) -> None:
    pixels, truth = make_group_photo(
        lfw_images, 30, np.random.default_rng(2024), min_face_px=30, max_face_px=90, engine=measurer
    )
    widths = truth[:, 2] - truth[:, 0]
    assert int(((widths >= 40) & (widths < 50)).sum()) >= 4  # the photo tests 40–50 px faces
    faces = engine.detect(as_image(pixels), max_faces=100)
    match, _ = match_detections(truth, faces.boxes_px, iou_min=0.4)
    big = widths >= 40
    recall = float((match[big] >= 0).mean())
    false_detections = len(faces) - int((match >= 0).sum())
    assert recall >= 0.9, f"recall {recall:.2f} for faces ≥ 40 px"
    assert false_detections <= 2


def test_more_than_100_faces_returns_the_100_largest(
    lfw_images: Path, measurer: FaceEngine, engine: FaceEngine
) -> None:
    pixels, truth = make_group_photo(
        lfw_images, 110, np.random.default_rng(110), min_face_px=40, max_face_px=60, engine=measurer
    )
    faces = engine.detect(as_image(pixels), max_faces=100)
    assert len(faces) == 100
    areas = faces.areas_px
    assert np.all(np.diff(areas) <= 0), "faces must come largest first"
    # The faces left out are the small ones: every kept face matches a real face, and the
    # ground-truth faces without a detection are smaller than those with one.
    match, _ = match_detections(truth, faces.boxes_px, iou_min=0.4)
    assert int((match >= 0).sum()) == 100
    widths = truth[:, 2] - truth[:, 0]
    assert widths[match < 0].max() <= np.median(widths[match >= 0])
