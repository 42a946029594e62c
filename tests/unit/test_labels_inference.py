"""The labels pack and its pre/post-processing, and the OCR word grouping, on known values.

Letterbox, decode and class-wise NMS are checked against outputs computed by hand; the real
vendored model against known detections on the shared photos (skips without them); the pack
registry refuses a file whose SHA-256 differs from its manifest's.
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.domain.errors import ModelPackError
from faceledger.domain.labels import COCO80, COCO_LABELS
from faceledger.inference.labels_packs import USER_LABELS_MANIFEST, LabelsPackRegistry
from faceledger.inference.ocr import ink_segments, words_of_line
from faceledger.inference.yolox import (
    PAD_VALUE,
    Detections,
    Letterbox,
    decode,
    letterbox,
    nms_class_wise,
)
from faceledger.services.labels import LabelFilters, LabelService, labels_from_detections

NANO_SHA256 = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"


def _raw(rows: dict[int, list[float]]) -> np.ndarray:
    raw = np.zeros((3549, 85), np.float32)
    for index, values in rows.items():
        raw[index, : len(values)] = values
    return raw


def test_letterbox_scales_to_fit_and_pads_bottom_right() -> None:
    image = np.full((400, 800, 3), 7, np.uint8)
    batch, box = letterbox(image, (416, 416))
    assert batch.shape == (1, 3, 416, 416) and batch.dtype == np.float32
    assert box.scale == pytest.approx(0.52)
    assert np.all(batch[0, :, :208, :] == 7)  # 400 × 0.52 = 208 rows of image, top-left
    assert np.all(batch[0, :, 208:, :] == PAD_VALUE)


def test_decode_known_rows() -> None:
    # stride 8, cell (10, 5): row 5·52 + 10; stride 32, cell (3, 2): row 2704 + 676 + 2·13 + 3
    car = [0.5, 0.5, math.log(4.0), math.log(2.0), 0.9, 0.0, 0.0, 0.8]  # class 2 (car)
    person = [0.0, 0.0, 0.0, math.log(3.0), 0.5, 0.96]
    weak = [0.0, 0.0, 0.0, 0.0, 0.1, 0.5]  # 0.05 < threshold
    raw = _raw({5 * 52 + 10: car, 2704 + 676 + 2 * 13 + 3: person, 7: weak})
    dets = decode(raw, Letterbox(scale=0.5, input_size_px=(416, 416)), score_threshold=0.25)
    order = np.argsort(dets.class_ids)
    assert dets.class_ids[order].tolist() == [0, 2]
    # person: centre (3·32, 2·32) = (96, 64), size (32, 96); then ÷ 0.5
    np.testing.assert_allclose(dets.boxes_px[order][0], [160, 32, 224, 224], atol=1e-4)
    # car: centre (10.5·8, 5.5·8) = (84, 44), size (32, 16); then ÷ 0.5
    np.testing.assert_allclose(dets.boxes_px[order][1], [136, 72, 200, 104], atol=1e-4)
    np.testing.assert_allclose(dets.scores[order], [0.48, 0.72], atol=1e-6)


def test_decode_refuses_a_head_of_another_size() -> None:
    with pytest.raises(ValueError, match="anchor points"):
        decode(np.zeros((100, 85), np.float32), Letterbox(1.0, (416, 416)), score_threshold=0.1)


def test_nms_is_class_wise_and_sorted() -> None:
    boxes = np.asarray(
        [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32
    )
    dets = Detections(
        boxes, np.asarray([0.6, 0.9, 0.7, 0.3], np.float32), np.asarray([0, 0, 1, 0], np.int64)
    )
    kept = nms_class_wise(dets, iou_threshold=0.45)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.3])
    assert kept.class_ids.tolist() == [0, 1, 0]  # the other class's box survives the overlap


def test_label_table_covers_every_class_and_adds_ancestors() -> None:
    assert set(COCO80) == set(COCO_LABELS) and len(COCO80) == 80
    dets = Detections(
        np.asarray([[0, 0, 50, 100], [100, 100, 200, 150], [10, 10, 20, 20]], np.float32),
        np.asarray([0.9, 0.8, 0.3], np.float32),
        np.asarray([0, 2, 2], np.int64),
    )
    labels = labels_from_detections(dets, COCO80, 200, 200, min_confidence_pct=55)
    by_name = {label.name: label for label in labels}
    assert [label.name for label in labels] == ["Person", "Car", "Transportation", "Vehicle"]
    car = by_name["Car"]
    assert car.parents == ("Vehicle", "Transportation")
    assert car.category == "Vehicles and Automotive"
    assert len(car.instances) == 1  # the 30 % one is below MinConfidence
    box = car.instances[0].box
    assert (box.left, box.top, box.width, box.height) == (0.5, 0.5, 0.5, 0.25)
    assert by_name["Vehicle"].instances == () and by_name["Vehicle"].parents == ("Transportation",)
    assert by_name["Vehicle"].confidence_pct == pytest.approx(80.0)
    assert by_name["Person"].category == "Person Description"
    keep_vehicles = LabelFilters(include_categories=frozenset({"Vehicles and Automotive"}))
    assert "Person" not in [label.name for label in labels if keep_vehicles.keeps(label)]
    assert not LabelFilters(exclude=frozenset({"Car"})).keeps(car)


def test_words_split_at_ink_gaps_even_without_spaces() -> None:
    line = ((0.0, 0.0), (100.0, 0.0), (100.0, 20.0), (0.0, 20.0))
    chars = list("ABCD")
    quads = [[[x, 0], [x + 10, 0], [x + 10, 20], [x, 20]] for x in (0, 12, 60, 72)]
    words = words_of_line(chars, quads, [0.9, 0.8, 1.0, 1.0], line, [(0, 24), (58, 84)])
    assert [w.text for w in words] == ["AB", "CD"]
    assert words[0].quad_px == ((0, 0), (24, 0), (24, 20), (0, 20))
    assert words[0].confidence == pytest.approx(0.85)
    spaced = words_of_line([*"AB", " ", *"CD"], [*quads[:2], quads[1], *quads[2:]], [1.0] * 5, line)
    assert [w.text for w in spaced] == ["AB", "CD"]


def test_ink_segments_find_word_gaps() -> None:
    crop = np.full((20, 100), 255, np.uint8)
    crop[5:15, 2:10] = crop[5:15, 12:20] = 0  # two letters 2 px apart: one word
    crop[5:15, 40:60] = 0  # a word 20 px later
    assert ink_segments(crop) == [(2, 20), (40, 60)]


# -- the pack ------------------------------------------------------------------------------------
def test_builtin_pack_digest_and_notice() -> None:
    folder = resources.files("faceledger.inference") / "labelpacks"
    assert hashlib.sha256((folder / "yolox_nano.onnx").read_bytes()).hexdigest() == NANO_SHA256
    assert "Apache" in (folder / "NOTICE-yolox.txt").read_text()
    files = LabelsPackRegistry().load("labels")
    assert files.manifest.classes == COCO80 and files.manifest.input_size_px == (416, 416)


def _user_pack(root: Path, sha256: str, name: str = "yolox-user") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    source = resources.files("faceledger.inference") / "labelpacks" / "yolox_nano.onnx"
    (folder / "det.onnx").write_bytes(source.read_bytes())
    manifest = {
        "name": name,
        "label_model_version": "user-yolox",
        "licence": {"name": "Apache-2.0", "commercial_use": True},
        "kind": "yolox",
        "file": "det.onnx",
        "sha256": sha256,
        "input_size": [416, 416],
        "classes": list(COCO80),
    }
    (folder / USER_LABELS_MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_user_pack_loads_with_its_own_digest_and_is_refused_when_it_differs(
    tmp_path: Path,
) -> None:
    _user_pack(tmp_path, NANO_SHA256)
    _user_pack(tmp_path, "0" * 64, name="tampered")
    registry = LabelsPackRegistry([tmp_path])
    assert registry.names() == ["labels", "tampered", "yolox-user"]
    assert registry.load("yolox-user").manifest.label_model_version == "user-yolox"
    with pytest.raises(ModelPackError, match="refusing to load"):
        registry.load("tampered")
    service = LabelService(
        Settings(data_dir=tmp_path / "d", labels_pack="yolox-user"), registry=registry
    )
    blank = np.full((200, 300, 3), 128, np.uint8)
    _, png = cv2.imencode(".png", blank)
    assert service.detect_labels(png.tobytes()).label_model_version == "user-yolox"


def test_user_pack_may_not_take_the_builtin_name(tmp_path: Path) -> None:
    _user_pack(tmp_path, NANO_SHA256, name="labels")
    with pytest.raises(ModelPackError, match="built in"):
        LabelsPackRegistry([tmp_path])


def test_real_model_on_known_photo(data_dir: Path) -> None:
    """couple.jpg: two people (left and right) and the man's tie, as the model saw them when
    this test was written (boxes to within 3 % of the image)."""
    photo = data_dir / "photos" / "couple.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not found")
    service = LabelService(Settings(data_dir=Path("unused")))
    result = service.detect_labels(photo.read_bytes())
    by_name = {label.name: label for label in result.labels}
    assert set(by_name) >= {"Person", "Tie"}
    people = sorted(by_name["Person"].instances, key=lambda i: i.box.left)
    assert len(people) == 2
    expected = [(10, 326, 966, 1581), (711, 83, 2280, 1580)]
    for found, (x1, y1, x2, y2) in zip(people, expected, strict=True):
        got = (found.box.left, found.box.top, found.box.width, found.box.height)
        want = (x1 / 2280, y1 / 1588, (x2 - x1) / 2280, (y2 - y1) / 1588)
        assert got == pytest.approx(want, abs=0.03)
    assert by_name["Tie"].parents == ("Accessories", "Formal Wear", "Clothing")


def test_square_tiles_cover_wide_and_tall_images() -> None:
    from faceledger.inference.yolox import square_tiles

    assert square_tiles(1280, 720) == [(0, 0, 720, 720), (560, 0, 1280, 720)]
    assert square_tiles(300, 1000) == [
        (0, 0, 300, 300),
        (0, 233, 300, 533),
        (0, 467, 300, 767),
        (0, 700, 300, 1000),
    ]
    assert square_tiles(600, 480) == []  # nearly square: the whole image is enough


class _OneBoxSession:
    """A fake session answering one car at the centre of whatever it is shown."""

    input_name = "images"

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        # centre cell of the stride-32 grid (6, 6) of a 416 input: box 192..224 px
        raw = _raw({2704 + 676 + 6 * 13 + 6: [0.5, 0.5, 0.0, 0.0, 0.9, 0.0, 0.0, 0.9]})
        return [raw[None]]


def test_tiles_add_detections_and_drop_those_cut_by_inner_edges() -> None:
    from faceledger.inference.yolox import YoloxDetector

    image = np.zeros((720, 1280, 3), np.uint8)
    plain = YoloxDetector(_OneBoxSession(), (416, 416)).detect(image)
    tiled = YoloxDetector(_OneBoxSession(), (416, 416), tiles=True).detect(image)
    assert len(plain) == 1
    # whole image: centre (208 / 0.325) = 640; tiles: 360 and 560 + 360 = 920
    centres = sorted(round(float(b[0] + b[2]) / 2) for b in tiled.boxes_px)
    assert centres == [360, 640, 920]
