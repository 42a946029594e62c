"""InsightFace-layout packs: user packs on disk, licences, digests, and SCRFD on real photos.

Uses the real ONNX files in ``../shared/models`` (copied into ``tmp_path``, never into the repo)
and the photos in ``../shared/data``; skips with the path it looked at when they are absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from faceledger.domain.errors import LicenceNotAcceptedError, ModelPackError
from faceledger.domain.faces import LANDMARK_NAMES, Faces
from faceledger.inference.detectors import SCRFDDetector, YuNetDetector
from faceledger.inference.packs import PackRegistry, sha256_hex
from faceledger.inference.sessions import OrtSession, Session, make_session

SCRFD_FIXED = "scrfd_500m_kps.onnx"  # 1×3×640×640, batched outputs (1, N, C)
SCRFD_DYNAMIC = "scrfd_2.5g_bnkps.onnx"  # 1×3×?×?, unbatched outputs (N, C)
EMBEDDER = "mobilefacenet_128.onnx"
YUNET = "face_detection_yunet_2023mar.onnx"
NEEDED = (SCRFD_FIXED, SCRFD_DYNAMIC, EMBEDDER, YUNET, "SHA256SUMS")
PACK = "scrfd-mfn"

LFW_IMAGES = (
    "lfw-devtrain/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "lfw-devtrain/images/AJ_Cook/AJ_Cook_0001.jpg",
)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(shared_models_dir: Path) -> Path:
    """The shared models folder, holding every file this module needs (else the module skips)."""
    missing = [name for name in NEEDED if not (shared_models_dir / name).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found in {shared_models_dir}")
    return shared_models_dir


@pytest.fixture(autouse=True)
def _needs_models(models: Path) -> None:
    """Every test here needs the real models: skip the whole module when they are absent."""


@pytest.fixture(scope="module")
def digests(models: Path) -> dict[str, str]:
    out = {}
    for line in (models / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split()
            out[name.lstrip("*")] = digest
    return out


def pack_manifest(digests: dict[str, str]) -> dict[str, Any]:
    return {
        "name": PACK,
        "face_model_version": "scrfd500m-mobilefacenet128",
        "description": "Test pack: SCRFD-500M (fixed 640×640) + MobileFaceNet 128-d.",
        "licence": {
            "name": "InsightFace non-commercial research",
            "commercial_use": False,
            "notice": "For non-commercial research only.",
        },
        "source": {"kind": "directory"},
        "detector": {
            "file": SCRFD_FIXED,
            "sha256": digests[SCRFD_FIXED],
            "kind": "scrfd",
            "runtime": "onnxruntime",
            "input_size": [640, 640],
        },
        "embedder": {
            "file": EMBEDDER,
            "sha256": digests[EMBEDDER],
            "kind": "arcface112",
            "runtime": "onnxruntime",
            "input_size": [112, 112],
            "colour": "rgb",
            "mean": 127.5,
            "std": 128.0,
            "embedding_size": 128,
        },
    }


@pytest.fixture
def model_dir(tmp_path: Path, models: Path, digests: dict[str, str]) -> Path:
    """``tmp_path/models/scrfd-mfn/`` holding pack.json and copies of the two model files."""
    pack_dir = tmp_path / "models" / PACK
    pack_dir.mkdir(parents=True)
    for name in (SCRFD_FIXED, EMBEDDER):
        shutil.copyfile(models / name, pack_dir / name)
    (pack_dir / "pack.json").write_text(json.dumps(pack_manifest(digests)), encoding="utf-8")
    return tmp_path / "models"


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def photos(shared_data_dir: Path) -> Path:
    folder = shared_data_dir / "photos"
    if not (folder / "couple.jpg").is_file():
        pytest.skip(f"test photos not found in {folder}")
    return folder


def read_image(path: Path) -> NDArray[np.uint8]:
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert pixels is not None, f"cannot decode {path}"
    return np.asarray(pixels, dtype=np.uint8)


@pytest.fixture(scope="module")
def sessions(models: Path) -> dict[str, OrtSession]:
    return {name: OrtSession((models / name).read_bytes()) for name in (SCRFD_FIXED, SCRFD_DYNAMIC)}


@pytest.fixture(params=[SCRFD_FIXED, SCRFD_DYNAMIC])
def detector(request: pytest.FixtureRequest, sessions: dict[str, OrtSession]) -> SCRFDDetector:
    return SCRFDDetector(sessions[request.param])


def assert_plausible_faces(faces: Faces, pixels: NDArray[np.uint8], threshold: float) -> None:
    """Scores above threshold, boxes inside the image, landmarks inside boxes, image-left eye
    and mouth corner first, nose between eyes and mouth."""
    h, w = pixels.shape[:2]
    assert np.all(faces.scores > threshold)
    assert np.all(faces.boxes_px[:, :2] >= 0)
    assert np.all(faces.boxes_px[:, 2] <= w) and np.all(faces.boxes_px[:, 3] <= h)
    assert np.all(faces.widths_px > 20) and np.all(faces.heights_px > 20)
    for box, points in zip(faces.boxes_px, faces.landmarks_px, strict=True):
        x1, y1, x2, y2 = box
        assert np.all((points[:, 0] >= x1) & (points[:, 0] <= x2)), (box, points)
        assert np.all((points[:, 1] >= y1) & (points[:, 1] <= y2)), (box, points)
        lm = dict(zip(LANDMARK_NAMES, points, strict=True))
        assert lm["eyeLeft"][0] < lm["eyeRight"][0]
        assert lm["mouthLeft"][0] < lm["mouthRight"][0]
        eyes_y = (lm["eyeLeft"][1] + lm["eyeRight"][1]) / 2
        mouth_y = (lm["mouthLeft"][1] + lm["mouthRight"][1]) / 2
        assert eyes_y < lm["nose"][1] < mouth_y


# --- user packs: listing, licence consent, digests ---------------------------------------------


def test_user_pack_is_listed_with_its_manifest(model_dir: Path) -> None:
    registry = PackRegistry([model_dir])
    assert PACK in registry.names()
    manifest = registry.manifest(PACK)
    assert manifest.source.kind == "directory"
    assert manifest.source.directory == model_dir / PACK
    assert (manifest.detector.kind, manifest.detector.runtime) == ("scrfd", "onnxruntime")
    assert manifest.detector.input_size == (640, 640)
    assert (manifest.embedder.kind, manifest.embedder.colour) == ("arcface112", "rgb")
    assert (manifest.embedder.mean, manifest.embedder.std) == (127.5, 128.0)
    assert manifest.embedder.embedding_size == 128
    assert manifest.licence.commercial_use is False


def test_non_commercial_pack_needs_consent(model_dir: Path) -> None:
    with pytest.raises(LicenceNotAcceptedError) as caught:
        PackRegistry([model_dir]).load(PACK)
    message = str(caught.value)
    assert "FACELEDGER_ACCEPT_MODEL_LICENCES" in message
    assert PACK in message
    assert "non-commercial" in message
    # Consent for another pack is not consent for this one.
    with pytest.raises(LicenceNotAcceptedError):
        PackRegistry([model_dir], accepted_licences={"buffalo_l"}).load(PACK)


def test_accepted_pack_loads_the_verified_bytes(model_dir: Path, models: Path) -> None:
    files = PackRegistry([model_dir], accepted_licences={PACK}).load(PACK)
    assert files.manifest.name == PACK
    assert files.detector_bytes == (models / SCRFD_FIXED).read_bytes()
    assert files.embedder_bytes == (models / EMBEDDER).read_bytes()
    assert sha256_hex(files.detector_bytes) == files.manifest.detector.sha256


@pytest.mark.parametrize("filename", [SCRFD_FIXED, EMBEDDER])
def test_tampered_file_is_refused(model_dir: Path, filename: str) -> None:
    flip_one_byte(model_dir / PACK / filename)
    with pytest.raises(ModelPackError, match="SHA-256") as caught:
        PackRegistry([model_dir], accepted_licences={PACK}).load(PACK)
    assert not isinstance(caught.value, LicenceNotAcceptedError)
    assert filename in str(caught.value)


@pytest.mark.parametrize("filename", [SCRFD_FIXED, EMBEDDER])
def test_missing_file_is_refused(model_dir: Path, filename: str) -> None:
    (model_dir / PACK / filename).unlink()
    with pytest.raises(ModelPackError, match="not found") as caught:
        PackRegistry([model_dir], accepted_licences={PACK}).load(PACK)
    assert filename in str(caught.value)


@pytest.mark.parametrize(
    ("tamper", "remove", "expected"),
    [
        (None, None, {"detector": "ok", "embedder": "ok"}),
        (SCRFD_FIXED, None, {"detector": "mismatch", "embedder": "ok"}),
        (None, EMBEDDER, {"detector": "ok", "embedder": "missing"}),
        (EMBEDDER, SCRFD_FIXED, {"detector": "missing", "embedder": "mismatch"}),
    ],
)
def test_verify_reports_each_file(
    model_dir: Path,
    digests: dict[str, str],
    tamper: str | None,
    remove: str | None,
    expected: dict[str, str],
) -> None:
    if tamper:
        flip_one_byte(model_dir / PACK / tamper)
    if remove:
        (model_dir / PACK / remove).unlink()
    # verify() needs no licence consent: it only hashes.
    checks = {c.role: c for c in PackRegistry([model_dir]).verify(PACK)}
    assert {role: c.status for role, c in checks.items()} == expected
    for check in checks.values():
        assert check.expected_sha256 == digests[check.filename]
        if check.status == "missing":
            assert check.path is None and check.actual_sha256 is None
        else:
            assert check.path == model_dir / PACK / check.filename
            assert (check.actual_sha256 == check.expected_sha256) == (check.status == "ok")


# --- built-in InsightFace manifests ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "detector_file", "embedder_file"),
    [
        ("buffalo_l", "det_10g.onnx", "w600k_r50.onnx"),
        ("antelopev2", "scrfd_10g_bnkps.onnx", "glintr100.onnx"),
    ],
)
def test_builtin_insightface_manifests(
    tmp_path: Path, models: Path, name: str, detector_file: str, embedder_file: str
) -> None:
    registry = PackRegistry([tmp_path])
    manifest = registry.manifest(name)
    assert (manifest.detector.filename, manifest.embedder.filename) == (
        detector_file,
        embedder_file,
    )
    assert (manifest.detector.kind, manifest.detector.runtime) == ("scrfd", "onnxruntime")
    assert manifest.detector.input_size == (640, 640)
    assert (manifest.embedder.kind, manifest.embedder.runtime) == ("arcface112", "onnxruntime")
    assert (manifest.embedder.colour, manifest.embedder.mean, manifest.embedder.std) == (
        "rgb",
        127.5,
        127.5,
    )
    assert manifest.embedder.embedding_size == 512
    assert manifest.source.kind == "directory"
    assert manifest.licence.commercial_use is False
    assert "non-commercial" in manifest.licence.notice
    assert all(m.size_bytes and m.size_bytes > 0 for m in manifest.files)

    # Not installed: consent comes first, then a clear "not installed".
    with pytest.raises(LicenceNotAcceptedError):
        registry.load(name)
    with pytest.raises(ModelPackError, match="not installed"):
        PackRegistry([tmp_path], accepted_licences={name}).load(name)

    # Files are looked up in <model_dir>/<name>/ and checked against the published digests.
    (tmp_path / name).mkdir()
    shutil.copyfile(models / SCRFD_FIXED, tmp_path / name / detector_file)
    statuses = {c.role: c.status for c in PackRegistry([tmp_path]).verify(name)}
    assert statuses == {"detector": "mismatch", "embedder": "missing"}


# --- SCRFD on real photos ----------------------------------------------------------------------


def test_detector_from_a_loaded_pack_finds_both_faces(model_dir: Path, photos: Path) -> None:
    files = PackRegistry([model_dir], accepted_licences={PACK}).load(PACK)
    spec = files.manifest.detector
    detector = SCRFDDetector(
        make_session(spec.runtime, files.detector_bytes), input_size=spec.input_size
    )
    pixels = read_image(photos / "couple.jpg")
    faces = detector.detect(pixels, score_threshold=0.5)
    assert len(faces) == 2
    assert_plausible_faces(faces, pixels, 0.5)


def test_couple_has_exactly_two_faces(detector: SCRFDDetector, photos: Path) -> None:
    pixels = read_image(photos / "couple.jpg")
    faces = detector.detect(pixels, score_threshold=0.5)
    assert len(faces) == 2
    assert_plausible_faces(faces, pixels, 0.5)
    # Two different people side by side, not one face found twice.
    centres_x = sorted(float(x) for x in (faces.boxes_px[:, 0] + faces.boxes_px[:, 2]) / 2)
    assert centres_x[0] < pixels.shape[1] / 2 < centres_x[1]


def test_portrait_photo_has_one_face(detector: SCRFDDetector, photos: Path) -> None:
    pixels = read_image(photos / "img1.jpg")  # taller than wide: letterboxed on the right
    assert pixels.shape[0] > pixels.shape[1]
    faces = detector.detect(pixels, score_threshold=0.5)
    assert len(faces) == 1
    assert_plausible_faces(faces, pixels, 0.5)


@pytest.mark.lfw
@pytest.mark.parametrize("relative", LFW_IMAGES)
def test_lfw_face_is_near_the_centre(
    detector: SCRFDDetector, shared_data_dir: Path, relative: str
) -> None:
    path = shared_data_dir / relative
    if not path.is_file():
        pytest.skip(f"LFW image not found: {path}")
    pixels = read_image(path)
    faces = detector.detect(pixels, score_threshold=0.5)
    assert len(faces) == 1
    assert_plausible_faces(faces, pixels, 0.5)
    h, w = pixels.shape[:2]
    cx = float(faces.boxes_px[0, 0] + faces.boxes_px[0, 2]) / 2
    cy = float(faces.boxes_px[0, 1] + faces.boxes_px[0, 3]) / 2
    assert abs(cx - w / 2) < 0.1 * w and abs(cy - h / 2) < 0.1 * h


@pytest.mark.lfw
def test_landmarks_agree_with_yunet(
    detector: SCRFDDetector, models: Path, shared_data_dir: Path
) -> None:
    """All five points in LANDMARK_NAMES order: within a quarter of the eye distance of YuNet's."""
    path = shared_data_dir / LFW_IMAGES[0]
    if not path.is_file():
        pytest.skip(f"LFW image not found: {path}")
    pixels = read_image(path)
    ours = detector.detect(pixels, score_threshold=0.5)
    theirs = YuNetDetector((models / YUNET).read_bytes()).detect(pixels, score_threshold=0.6)
    assert len(ours) == len(theirs) == 1
    eye_distance = float(np.linalg.norm(theirs.landmarks_px[0, 1] - theirs.landmarks_px[0, 0]))
    error = np.linalg.norm(ours.landmarks_px[0] - theirs.landmarks_px[0], axis=1)
    assert np.all(error < 0.25 * eye_distance), error


@pytest.mark.lfw
def test_boxes_map_back_through_the_letterbox(
    detector: SCRFDDetector, shared_data_dir: Path
) -> None:
    """Placing a face on a larger canvas moves its box by the offset, whatever the scale."""
    path = shared_data_dir / LFW_IMAGES[0]
    if not path.is_file():
        pytest.skip(f"LFW image not found: {path}")
    face = read_image(path)
    alone = detector.detect(face, score_threshold=0.5)
    canvas = np.zeros((700, 1000, 3), dtype=np.uint8)
    dx, dy = 600, 300
    canvas[dy : dy + face.shape[0], dx : dx + face.shape[1]] = face
    placed = detector.detect(canvas, score_threshold=0.5)
    assert len(alone) == len(placed) == 1
    shift = np.array([dx, dy, dx, dy], dtype=np.float32)
    # The face is 2.5× smaller in the input on the canvas, so the detector sees it differently:
    # allow a tenth of the face height (a wrong scale-back would be off by hundreds of pixels).
    tolerance = 0.1 * float(alone.heights_px[0])
    np.testing.assert_allclose(placed.boxes_px[0], alone.boxes_px[0] + shift, atol=tolerance)
    np.testing.assert_allclose(
        placed.landmarks_px[0], alone.landmarks_px[0] + np.array([dx, dy]), atol=tolerance
    )


def test_non_square_input_size(sessions: dict[str, OrtSession], photos: Path) -> None:
    detector = SCRFDDetector(sessions[SCRFD_DYNAMIC], input_size=(640, 480))
    pixels = read_image(photos / "couple.jpg")
    faces = detector.detect(pixels, score_threshold=0.5)
    assert len(faces) == 2
    assert_plausible_faces(faces, pixels, 0.5)


class _Reshaped:
    """A Session whose outputs are the wrapped session's, batched or unbatched on demand."""

    def __init__(self, inner: Session, *, batched: bool) -> None:
        self.input_name = inner.input_name
        self._inner = inner
        self._batched = batched

    def run(self, batch: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        outs = [o[0] if o.ndim == 3 else o for o in self._inner.run(batch)]
        return [o[np.newaxis] for o in outs] if self._batched else outs


@pytest.mark.parametrize("name", [SCRFD_FIXED, SCRFD_DYNAMIC])
def test_batched_and_unbatched_outputs_decode_alike(
    sessions: dict[str, OrtSession], photos: Path, name: str
) -> None:
    pixels = read_image(photos / "couple.jpg")
    results = [
        SCRFDDetector(_Reshaped(sessions[name], batched=b)).detect(pixels, score_threshold=0.5)
        for b in (True, False)
    ]
    assert len(results[0]) == len(results[1]) == 2
    np.testing.assert_array_equal(results[0].boxes_px, results[1].boxes_px)
    np.testing.assert_array_equal(results[0].landmarks_px, results[1].landmarks_px)


def test_blank_image_has_no_face(detector: SCRFDDetector) -> None:
    faces = detector.detect(np.full((480, 640, 3), 128, dtype=np.uint8), score_threshold=0.5)
    assert len(faces) == 0
    assert faces.landmarks_px.shape == (0, 5, 2)


def test_score_threshold_is_applied(detector: SCRFDDetector, photos: Path) -> None:
    pixels = read_image(photos / "couple.jpg")
    assert len(detector.detect(pixels, score_threshold=0.99)) == 0
    low = detector.detect(pixels, score_threshold=0.3)
    assert len(low) >= 2 and np.all(low.scores >= 0.3)


def test_fixed_input_model_rejects_another_size(sessions: dict[str, OrtSession]) -> None:
    with pytest.raises(ModelPackError, match="fixed 640×640"):
        SCRFDDetector(sessions[SCRFD_FIXED], input_size=(320, 320))
    with pytest.raises(ValueError, match="multiples of 32"):
        SCRFDDetector(sessions[SCRFD_DYNAMIC], input_size=(650, 640))


def test_detection_does_not_mutate_the_image(detector: SCRFDDetector, photos: Path) -> None:
    pixels = read_image(photos / "couple.jpg")
    before = pixels.copy()
    detector.detect(pixels, score_threshold=0.5)
    np.testing.assert_array_equal(pixels, before)


def test_engine_runs_a_user_pack_end_to_end(model_dir: Path, shared_data_dir: Path) -> None:
    """SCRFD + MobileFaceNet through FaceEngine: detect, align, embed (128-d), compare."""
    from faceledger.inference.engine import FaceEngine
    from faceledger.inference.imaging import load_image

    registry = PackRegistry([model_dir], accepted_licences={PACK})
    engine = FaceEngine(PACK, registry=registry)
    assert not engine.loaded
    couple = load_image(shared_data_dir / "photos" / "couple.jpg")
    faces = engine.analyse(couple)
    assert engine.loaded
    assert len(faces) == 2
    assert faces.embeddings is not None and faces.embeddings.shape == (2, 128)
    assert not engine.calibration.calibrated  # a user pack without a fitted calibration says so
    result = engine.compare(couple, couple)
    cosines = sorted(m.cosine for m in result.matches)
    assert cosines[-1] > 0.99 and cosines[0] < 0.5


def test_pack_loads_once_under_concurrent_first_use(model_dir: Path) -> None:
    """Many threads hitting a cold engine at once: the pack is read and verified exactly once."""
    import threading

    from faceledger.inference.engine import FaceEngine

    registry = PackRegistry([model_dir], accepted_licences={PACK})
    calls = []
    original = registry.load

    def counting_load(name: str):  # type: ignore[no-untyped-def]
        calls.append(name)
        return original(name)

    registry.load = counting_load  # type: ignore[method-assign]
    engine = FaceEngine(PACK, registry=registry)
    barrier = threading.Barrier(6)

    def first_use() -> None:
        barrier.wait()
        engine.load()

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [PACK]
    assert engine.loaded
