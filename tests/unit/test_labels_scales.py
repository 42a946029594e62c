"""The labels pack at the image's own aspect ratio, coarse and fine; the hand-boxed people of
the composed scenes; DetectText's reduced detection copy.

Input sizes and the fine pass's size limit are checked on known values and a fake session; the
size-free graph on the vendored model (its 416×416 output unchanged, other sizes accepted); a
pack whose graph is no YOLOX detector is refused at load; text on a large image is read exactly
with its boxes in the image's own pixels.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from faceledger.domain.errors import ModelPackError
from faceledger.evaluation.people_scenes import Cutout, make_people_scene
from faceledger.inference.labels_packs import (
    USER_LABELS_MANIFEST,
    LabelsPackRegistry,
    detector_for_pack,
)
from faceledger.inference.ocr import TextReader
from faceledger.inference.sessions import OrtSession
from faceledger.inference.yolox import (
    YoloxDetector,
    dynamic_image_size,
    fit_input_size,
    grids,
)

NANO = resources.files("faceledger.inference") / "labelpacks" / "yolox_nano.onnx"


def test_fit_input_size_keeps_the_aspect_ratio_in_multiples_of_32() -> None:
    assert fit_input_size(1280, 720, 416) == (416, 256)  # 720 × 0.325 = 234 → 256
    assert fit_input_size(1280, 720, 1024) == (1024, 576)
    assert fit_input_size(300, 1000, 416) == (128, 416)  # 300 × 0.416 = 125 → 128
    assert fit_input_size(200, 100, 416) == (416, 224)  # small images are enlarged


def test_passes_coarse_then_fine_only_when_the_image_is_larger() -> None:
    fitted = YoloxDetector(_CentreBox(8.0), (416, 416), max_side_px=1024)
    # the fine pass answers for objects up to 320 input px (0.77 × 416)
    assert fitted.passes(1280, 720) == [((416, 256), None), ((1024, 576), 320)]
    assert fitted.passes(2280, 1588) == [((416, 320), None), ((1024, 736), 320)]
    assert fitted.passes(640, 480) == [((416, 320), None), ((640, 480), 320)]
    assert fitted.passes(300, 200) == [((416, 288), None)]
    fixed = YoloxDetector(_CentreBox(8.0), (416, 416))
    assert fixed.passes(1280, 720) == [((416, 416), None)]


class _CentreBox:
    """A fake session answering one car at the centre of whatever input it is shown, its side
    ``side_px`` input pixels (a stride-32 anchor of the input's own grid)."""

    input_name = "images"

    def __init__(self, side_px: float) -> None:
        self.side_px = side_px
        self.shapes: list[tuple[int, ...]] = []

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        self.shapes.append(batch.shape)
        height, width = batch.shape[2:]
        cells, _ = grids((width, height))
        raw = np.zeros((len(cells), 85), np.float32)
        gw, gh = width // 32, height // 32
        first32 = len(cells) - gw * gh
        row = first32 + (gh // 2) * gw + gw // 2
        size = np.log(self.side_px / 32.0)
        raw[row, :8] = [0.0, 0.0, size, size, 0.9, 0.0, 0.0, 0.9]
        return [raw[None]]


def test_fine_pass_leaves_large_objects_to_the_coarse_pass() -> None:
    image = np.zeros((720, 1280, 3), np.uint8)
    large = _CentreBox(400.0)  # over the fine pass's 320 px
    found = YoloxDetector(large, (416, 416), max_side_px=1024).detect(image)
    assert [s[2:] for s in large.shapes] == [(256, 416), (576, 1024)]
    assert len(found) == 1  # the coarse pass's: 400 / 0.325 px, clipped to the image
    assert found.boxes_px[0, 3] - found.boxes_px[0, 1] == pytest.approx(720.0)
    small = YoloxDetector(_CentreBox(100.0), (416, 416), max_side_px=1024).detect(image)
    sides = sorted(round(float(b[2] - b[0])) for b in small.boxes_px)
    assert sides == [125, 308]  # fine 100 / 0.8 and coarse 100 / 0.325 (too unlike to merge)


def test_size_free_graph_runs_any_size_and_keeps_its_416_output() -> None:
    model = NANO.read_bytes()
    batch = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    fixed = OrtSession(model, threads=1).run(batch)[0]
    free = OrtSession(dynamic_image_size(model), threads=1)
    np.testing.assert_allclose(free.run(batch)[0], fixed, atol=1e-4)
    wide = free.run(np.zeros((1, 3, 576, 1024), np.float32))[0]
    assert wide.shape == (1, len(grids((1024, 576))[0]), 85)  # 12,096 anchor points


def _user_pack(root: Path, model: bytes, input_max_side: int) -> None:
    import hashlib

    folder = root / "user-pack"
    folder.mkdir(parents=True)
    (folder / "det.onnx").write_bytes(model)
    manifest = {
        "name": "user-pack",
        "licence": {"name": "MIT", "commercial_use": True},
        "kind": "yolox",
        "file": "det.onnx",
        "sha256": hashlib.sha256(model).hexdigest(),
        "input_size": [416, 416],
        "classes": "coco80",
        "input_max_side": input_max_side,
    }
    (folder / USER_LABELS_MANIFEST).write_text(json.dumps(manifest))


def test_input_max_side_is_checked(tmp_path: Path) -> None:
    _user_pack(tmp_path, NANO.read_bytes(), 1000)
    with pytest.raises(ModelPackError, match="input_max_side must be a multiple of 32"):
        LabelsPackRegistry([tmp_path])


def test_a_graph_that_is_no_yolox_detector_is_refused_at_load(
    tmp_path: Path, shared_models_dir: Path
) -> None:
    yunet = shared_models_dir / "face_detection_yunet_2023mar.onnx"
    if not yunet.is_file():
        pytest.skip(f"{yunet} not found")
    _user_pack(tmp_path, yunet.read_bytes(), 1024)
    files = LabelsPackRegistry([tmp_path]).load("user-pack")
    with pytest.raises(ModelPackError, match="does not run as a YOLOX detector"):
        detector_for_pack(files)


def test_scene_truth_follows_the_people_boxed_in_a_picture() -> None:
    picture = np.full((100, 200, 3), 90, np.uint8)
    two = Cutout(picture, ((0.0, 0.1, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)))
    scene = make_people_scene(
        np.random.default_rng(1), [two], 1, min_height_px=100, max_height_px=100
    )
    assert len(scene.pasted_px) == 1 and len(scene.boxes_px) == 2
    x1, y1, x2, y2 = scene.pasted_px[0]
    assert (x2 - x1, y2 - y1) == (200, 100)
    np.testing.assert_allclose(
        scene.boxes_px, [[x1, y1 + 10, x1 + 100, y2], [x1 + 100, y1, x2, y2]], atol=1e-4
    )
    assert np.all(scene.pixels_bgr[int(y1) : int(y2), int(x1) : int(x2)] == 90)


def test_text_on_a_large_image_is_read_exactly_and_boxed_in_its_own_pixels() -> None:
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 56)
    except OSError:
        pytest.skip("DejaVu Sans is not installed")
    image = Image.new("RGB", (2400, 1350), "white")
    draw = ImageDraw.Draw(image)
    draw.text((300, 200), "NORTH GATE 7", fill="black", font=font)
    draw.text((1400, 1000), "Parcel desk", fill="black", font=font)
    pixels = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
    lines = TextReader().read(pixels)  # detected at 800 px: these letters are ≈ 14 px there
    assert [line.text for line in lines] == ["NORTH GATE 7", "Parcel desk"]
    for line, origin in zip(lines, ((300, 200), (1400, 1000)), strict=True):
        word = line.words[0]  # "NORTH", "Parcel": their ink starts where the line was drawn
        ink = draw.textbbox(origin, word.text, font=font)
        xs = [p[0] for p in word.quad_px]
        ys = [p[1] for p in word.quad_px]
        # the word's box is its ink in the full image's pixels (a ×3 error would be far off)
        assert min(xs) == pytest.approx(ink[0], abs=12) and max(xs) == pytest.approx(ink[2], abs=12)
        assert min(ys) <= ink[1] + 4 and max(ys) >= ink[3] - 4
        assert min(ys) >= ink[1] - 25 and max(ys) <= ink[3] + 25
