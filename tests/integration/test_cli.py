"""The real ``faceledger`` console script, run as a subprocess (as an operator would).

Each run pays process start-up (and a model load for detect/compare), so the cases are few.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.domain.faces import LANDMARK_NAMES
from helpers.cli import run


def test_models_list_shows_the_default_pack(tmp_path: Path) -> None:
    result = run("models", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "yunet-sface" in result.stdout
    packs = json.loads(run("models", "list", "--json", cwd=tmp_path).stdout)
    default = next(p for p in packs if p["name"] == "yunet-sface")
    assert default["installed"] and default["verified"] and default["commercial_use"]


def test_models_verify_is_ok(tmp_path: Path) -> None:
    result = run("models", "verify", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "yunet-sface: ok" in result.stdout


def test_models_verify_fails_for_a_tampered_pack(tmp_path: Path) -> None:
    """buffalo_l reads its files from <model_dir>/buffalo_l/: fake files fail the SHA-256."""
    pack_dir = tmp_path / "models" / "buffalo_l"
    pack_dir.mkdir(parents=True)
    for name in ("det_10g.onnx", "w600k_r50.onnx"):
        (pack_dir / name).write_bytes(b"not the real model")
    result = run("models", "verify", cwd=tmp_path, FACELEDGER_MODEL_DIRS=str(tmp_path / "models"))
    assert result.returncode == 1
    assert "buffalo_l: FAILED" in result.stdout
    assert "mismatch" in result.stdout
    assert "yunet-sface: ok" in result.stdout
    assert "Traceback" not in result.stderr


def test_detect_prints_json_and_writes_an_annotated_copy(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out.jpg"
    photo = data_dir / "photos" / "couple.jpg"
    result = run("detect", str(photo), "--annotate", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert len(body["faces"]) == 2
    face = body["faces"][0]
    assert {"bbox_px", "confidence", "landmarks_px", "quality", "pose_deg"} <= set(face)
    assert tuple(face["landmarks_px"]) == LANDMARK_NAMES
    annotated = cv2.imread(str(out))
    assert annotated is not None
    assert annotated.shape[:2] == (body["image"]["height_px"], body["image"]["width_px"])
    original = cv2.imread(str(photo))
    assert original is not None and (annotated != original).any()  # something was drawn
    # the detection is in the ledger: who (the local operator), what (the photo's SHA-256)
    with Ledger.from_settings(Settings(data_dir=tmp_path / "data")) as ledger:
        [record] = [e.event for e in ledger.entries(operation="DetectFaces") if e.event]
    assert record.source == "cli" and record.outcome == "ok"
    assert record.probe_sha256 == (hashlib.sha256(photo.read_bytes()).hexdigest(),)
    assert record.result == {"faces": 2}


def test_compare_same_person(tmp_path: Path, data_dir: Path) -> None:
    lines = (data_dir / "lfw-devtrain" / "pairsDevTrain.txt").read_text().splitlines()[1:]
    name, i, j = next(line.split() for line in lines if len(line.split()) == 3)
    folder = data_dir / "lfw-devtrain" / "images" / name
    a, b = (folder / f"{name}_{int(n):04d}.jpg" for n in (i, j))
    result = run("compare", str(a), str(b), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["matches"][0]["similarity"] > 80


def test_detect_text_file_is_a_one_line_error(tmp_path: Path) -> None:
    text = tmp_path / "x.jpg"
    text.write_text("this is not a photo\n")
    result = run("detect", str(text), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: InvalidImageFormatException")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_detect_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    result = run("detect", str(missing), cwd=tmp_path)
    assert result.returncode == 2
    assert f"no such file: {missing}" in result.stderr
    assert "Traceback" not in result.stderr
