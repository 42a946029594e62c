"""AUTO refuses DevTrain's blurriest faces (sharpness < 10, the 1st percentile), which search
finds less often than average at every collection size's floor (``bench/pose_quality.py``);
MEDIUM keeps its limit of 8. Real model, real DevTrain faces."""

from __future__ import annotations

from pathlib import Path

from faceledger.domain.faces import Faces
from faceledger.inference.engine import FaceEngine
from faceledger.inference.imaging import load_image
from faceledger.services.collections import QUALITY_LIMITS, quality_reasons

# Single-face DevTrain photos: sharpness ≈ 9.1 (between MEDIUM's 8 and AUTO's 10) and ≈ 12.1.
SOFT = "Alex_King/Alex_King_0001.jpg"
SHARP = "Alain_Cervantes/Alain_Cervantes_0001.jpg"


def _face(engine: FaceEngine, data_dir: Path, rel: str) -> Faces:
    faces = engine.detect(load_image(data_dir / "lfw-devtrain" / "images" / rel))
    assert len(faces) == 1 and faces.sharpness is not None
    return faces


def test_auto_refuses_the_blurriest_faces_that_medium_keeps(
    engine: FaceEngine, data_dir: Path
) -> None:
    assert QUALITY_LIMITS["AUTO"].min_sharpness == 10.0
    assert QUALITY_LIMITS["MEDIUM"].min_sharpness == 8.0
    soft = _face(engine, data_dir, SOFT)
    assert soft.sharpness is not None and 8.0 <= float(soft.sharpness[0]) < 10.0
    assert quality_reasons(soft, "AUTO") == [["LOW_SHARPNESS"]]
    assert quality_reasons(soft, "MEDIUM") == [[]]
    sharp = _face(engine, data_dir, SHARP)
    assert quality_reasons(sharp, "AUTO") == [[]]
