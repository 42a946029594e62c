"""The face engine on real faces: detection, landmarks, alignment, embedding, quality, bulk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceledger.domain.errors import InvalidImageFormatError, InvalidParameterError
from faceledger.domain.faces import Image
from faceledger.inference.align import ARCFACE_TEMPLATE_112, similarity_transform
from faceledger.inference.engine import EngineOptions, FaceEngine
from faceledger.inference.imaging import decode_image, load_image
from faceledger.inference.quality import MEAN_FACE_3D, pose_from_landmarks


def _image(pixels: np.ndarray) -> Image:
    ok, buf = cv2.imencode(".png", pixels)
    assert ok
    return decode_image(buf.tobytes())


def test_nothing_loads_at_import_or_construction() -> None:
    code = (
        "import sys, faceledger, faceledger.api.app, faceledger.cli.main\n"
        "from faceledger.inference.engine import FaceEngine\n"
        "e = FaceEngine()\n"
        "assert not e.loaded\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime imported eagerly'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_similarity_transform_recovers_a_known_transform() -> None:
    angle, scale, shift = np.radians(17.0), 2.5, np.array([30.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE_112.astype(np.float64)
    dst = src @ rot.T + shift
    m = similarity_transform(src.astype(np.float32), dst.astype(np.float32))
    assert np.allclose(m[:, :2], rot, atol=1e-6)
    assert np.allclose(m[:, 2], shift, atol=1e-6)


def test_pose_estimate_signs_and_roll() -> None:
    frontal = ARCFACE_TEMPLATE_112[None].astype(np.float32)
    yaw, pitch, roll = pose_from_landmarks(frontal)
    assert abs(yaw[0]) < 3 and abs(pitch[0]) < 3 and abs(roll[0]) < 1
    # rotate the landmarks by 20° clockwise in the image (y down): roll ≈ +20
    a = np.radians(20.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    rolled = (frontal[0] - 56) @ rot.T + 56
    assert pose_from_landmarks(rolled[None])[2][0] == pytest.approx(20.0, abs=0.5)
    turned = frontal.copy()
    turned[0, 2, 0] += 12  # nose towards the image's right
    assert pose_from_landmarks(turned)[0][0] > 15


def test_pose_recovers_a_rotated_mean_face() -> None:
    """solvePnP gives back the yaw and pitch of the 3-D mean face, turned and projected."""
    for yaw_deg, pitch_deg in ((0, 0), (30, 0), (45, 15), (-60, -10), (75, 0)):
        a, b = np.radians(yaw_deg), np.radians(pitch_deg)
        turn = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
        tilt = np.array([[1, 0, 0], [0, np.cos(b), np.sin(b)], [0, -np.sin(b), np.cos(b)]])
        points = (MEAN_FACE_3D @ (turn @ tilt).T)[:, :2] * 40 + 100
        yaw, pitch, _ = pose_from_landmarks(points[None].astype(np.float32))
        assert yaw[0] == pytest.approx(yaw_deg, abs=2.5)
        assert pitch[0] == pytest.approx(pitch_deg, abs=2.5)


# DevTrain photos sorted by eye (from bench/pose_labels.csv)
POSE_BINS = {
    "frontal": ["Robert_Wiener/Robert_Wiener_0001.jpg", "Jennifer_Lopez/Jennifer_Lopez_0013.jpg"],
    "three-quarter": ["Paul_Bremer/Paul_Bremer_0002.jpg", "Jo_Joong-hyon/Jo_Joong-hyon_0001.jpg"],
    "profile": [
        "Franz_Muentefering/Franz_Muentefering_0003.jpg",
        "Hernan_Diaz/Hernan_Diaz_0001.jpg",
    ],
}


def test_pose_orders_faces_sorted_by_eye(engine: FaceEngine, data_dir: Path) -> None:
    root = data_dir / "lfw-devtrain" / "images"
    yaw_of: dict[str, list[float]] = {}
    for name, files in POSE_BINS.items():
        yaw_of[name] = []
        for file in files:
            faces = engine.detect(load_image(root / file))
            assert faces.yaw_deg is not None
            yaw_of[name].append(abs(float(faces.yaw_deg[0])))  # LFW: the subject is largest
    assert max(yaw_of["frontal"]) < 15
    assert max(yaw_of["frontal"]) < min(yaw_of["three-quarter"])
    assert max(yaw_of["three-quarter"]) < min(yaw_of["profile"])
    # three-quarter views read as such, not saturated towards ±90° (the old formula's fault)
    assert all(25 < y < 60 for y in yaw_of["three-quarter"])


def test_detect_couple_two_faces_with_ordered_landmarks(engine: FaceEngine, data_dir: Path) -> None:
    image = load_image(data_dir / "photos" / "couple.jpg")
    faces = engine.detect(image)
    assert len(faces) == 2
    assert np.all(np.diff(faces.areas_px) <= 0), "largest first"
    for i in range(2):
        x1, y1, x2, y2 = faces.boxes_px[i]
        lm = faces.landmarks_px[i]
        assert 0 <= x1 < x2 <= image.width_px and 0 <= y1 < y2 <= image.height_px
        assert lm[0, 0] < lm[1, 0], "eyeLeft is left of eyeRight in the image"
        assert lm[3, 0] < lm[4, 0], "mouthLeft is left of mouthRight"
        assert lm[0, 1] < lm[3, 1] and lm[2, 1] < lm[3, 1], "eyes and nose above the mouth"
        assert np.all((lm[:, 0] >= x1 - 5) & (lm[:, 0] <= x2 + 5))
    assert faces.brightness is not None and faces.sharpness is not None
    assert np.all((faces.brightness > 5) & (faces.brightness < 95))
    assert faces.scores.min() > 0.6


def test_embeddings_match_opencv_reference_pipeline(engine: FaceEngine, data_dir: Path) -> None:
    """Our align + embed equals OpenCV's FaceRecognizerSF.alignCrop + feature on the same face."""
    import tempfile

    from faceledger.inference.packs import PackRegistry
    from faceledger.inference.sessions import strip_unused_inputs

    files = PackRegistry().load("yunet-sface")
    image = load_image(next((data_dir / "lfw-devtrain" / "images").glob("*/*_0001.jpg")))
    faces = engine.analyse(image, max_faces=1)
    with tempfile.NamedTemporaryFile(suffix=".onnx") as tmp:
        tmp.write(strip_unused_inputs(files.embedder_bytes))
        tmp.flush()
        recognizer = cv2.FaceRecognizerSF.create(tmp.name, "")
    box = faces.boxes_px[0]
    row = np.concatenate(
        [[box[0], box[1], box[2] - box[0], box[3] - box[1]], faces.landmarks_px[0].ravel(), [1.0]]
    ).astype(np.float32)
    aligned = recognizer.alignCrop(image.pixels_bgr, row)
    reference = recognizer.feature(aligned).ravel()
    reference /= np.linalg.norm(reference)
    assert faces.embeddings is not None
    assert float(faces.embeddings[0] @ reference) > 0.999
    assert np.linalg.norm(faces.embeddings[0]) == pytest.approx(1.0, abs=1e-5)


def test_quality_tracks_blur_and_darkness(engine: FaceEngine, data_dir: Path) -> None:
    pixels = load_image(data_dir / "photos" / "img1.jpg").pixels_bgr
    sharp = engine.detect(_image(pixels), max_faces=1)
    blurred = engine.detect(_image(cv2.GaussianBlur(pixels, (0, 0), 6)), max_faces=1)
    dark = engine.detect(_image((pixels * 0.35).astype(np.uint8)), max_faces=1)
    assert sharp.sharpness is not None and blurred.sharpness is not None
    assert blurred.sharpness[0] < sharp.sharpness[0] - 20
    assert dark.brightness is not None and sharp.brightness is not None
    assert dark.brightness[0] < sharp.brightness[0] * 0.6


def test_tilted_head_is_aligned_and_still_matches(engine: FaceEngine, data_dir: Path) -> None:
    """A 20° in-plane tilt is undone by the 5-point alignment (roll is reported)."""
    pixels = load_image(data_dir / "photos" / "img1.jpg").pixels_bgr
    h, w = pixels.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -20, 1.0)
    tilted_pixels = cv2.warpAffine(pixels, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    upright = engine.analyse(_image(pixels), max_faces=1)
    tilted = engine.analyse(_image(tilted_pixels), max_faces=1)
    assert upright.roll_deg is not None and tilted.roll_deg is not None
    assert tilted.roll_deg[0] - upright.roll_deg[0] == pytest.approx(20.0, abs=5.0)
    assert upright.embeddings is not None and tilted.embeddings is not None
    assert float(engine.similarity(upright.embeddings[0], tilted.embeddings[0])) > 90


def test_no_face_and_bad_parameters(engine: FaceEngine) -> None:
    blank = _image(np.full((200, 200, 3), 128, np.uint8))
    assert len(engine.detect(blank)) == 0
    faces = engine.analyse(blank)
    assert faces.embeddings is not None and faces.embeddings.shape == (0, 128)
    with pytest.raises(InvalidParameterError):
        engine.compare(blank, blank)
    with pytest.raises(InvalidParameterError):
        engine.detect(blank, max_faces=0)
    with pytest.raises(InvalidParameterError):
        engine.detect(blank, max_faces=101)


def test_compare_same_and_different_people(engine: FaceEngine, data_dir: Path) -> None:
    couple = load_image(data_dir / "photos" / "couple.jpg")
    result = engine.compare(couple, couple)
    sims = [m.similarity for m in result.matches]
    assert len(sims) == 2
    assert max(sims) > 99 and min(sims) < 50


def test_bulk_on_two_processes_matches_single_images(data_dir: Path) -> None:
    root = data_dir / "lfw-devtrain" / "images"
    paths = sorted(root.glob("*/*.jpg"))[:12]
    bogus = data_dir / "photos"  # a directory: the loader fails for this item
    items = [*paths[:6], bogus, *paths[6:]]
    bulk = FaceEngine(options=EngineOptions(workers=2))
    single = FaceEngine(options=EngineOptions(workers=1))
    try:
        results = list(bulk.analyse_many(items, loader=load_image))
        assert [item for item, _ in results] == items, "results come back in input order"
        assert isinstance(results[6][1], InvalidParameterError | InvalidImageFormatError)
        for item, result in results:
            if item == bogus:
                continue
            image = load_image(item)
            ref = single.analyse(image)
            assert not isinstance(result, Exception)
            assert result.sha256 == image.sha256 and result.width_px == image.width_px
            faces = result.faces
            assert faces.embeddings is not None and ref.embeddings is not None
            assert len(faces) == len(ref) >= 1
            assert float(faces.embeddings[0] @ ref.embeddings[0]) > 0.999
    finally:
        bulk.close()


def test_thread_budget_adapts_opencv_threads_to_concurrency() -> None:
    import cv2

    from faceledger.inference.engine import ThreadBudget

    before = cv2.getNumThreads()
    now = [100.0]
    try:
        budget = ThreadBudget(cores=2, shared_window_s=0.2, clock=lambda: now[0])
        with budget():
            assert cv2.getNumThreads() == 2  # alone: every core
            with budget():
                assert cv2.getNumThreads() == 1  # two at once: one thread each
            # the one still running keeps one thread (under load the next request needs the
            # other core at once)
            assert cv2.getNumThreads() == 1
            now[0] += 0.05
        now[0] += 0.1  # alone, but 0.15 s after the last overlap: still under load
        with budget():
            assert cv2.getNumThreads() == 1
        now[0] += 0.3  # no overlap for longer than the window: every core again
        with budget():
            assert cv2.getNumThreads() == 2
        fixed = ThreadBudget(fixed=1, cores=2)
        with fixed():
            assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)
