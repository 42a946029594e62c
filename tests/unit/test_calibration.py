"""Calibrated Similarity: the map, its fit, and the contract the shipped table must meet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceledger.evaluation.calibration_fit import (
    ANCHOR_FMR,
    Exclusions,
    fit_anchors,
    score_all_pairs,
)
from faceledger.inference.calibration import Calibration
from faceledger.inference.manifest import CalibrationTable
from faceledger.inference.packs import PackRegistry

REPO = Path(__file__).resolve().parents[2]


def test_map_is_monotonic_continuous_and_invertible() -> None:
    cal = Calibration.from_table(
        CalibrationTable(anchors=((0.3, 50.0), (0.5, 80.0), (0.6, 90.0), (0.7, 99.0)))
    )
    cos = np.linspace(-1, 1, 2001)
    sim = cal.similarity(cos)
    assert sim[0] == 0.0 and sim[-1] == 100.0
    assert np.all(np.diff(sim) > 0)
    assert cal.similarity(0.5) == pytest.approx(80.0)
    assert cal.similarity(0.55) == pytest.approx(85.0)  # linear between anchors
    assert np.allclose(cal.cosine(cal.similarity(cos)), cos, atol=1e-9)


def test_uncalibrated_pack_is_flagged() -> None:
    cal = Calibration.from_table(None)
    assert not cal.calibrated
    assert cal.similarity(0.5) == pytest.approx(50.0, abs=1e-6)


def test_anchors_must_increase() -> None:
    with pytest.raises(ValueError):
        Calibration.from_table(CalibrationTable(anchors=((0.5, 80.0), (0.4, 90.0))))


def test_shipped_default_pack_meets_the_fmr_contract() -> None:
    """Similarity s stands for an identity-pair FMR (ANCHOR_FMR, issue 14): the fitted tails'
    rate is within it at every anchor, and so is the measured rate wherever the identity pairs
    can measure it (at least 4 expected false matches)."""
    manifest = PackRegistry().manifest("yunet-sface")
    cal = Calibration.from_table(manifest.calibration)
    assert cal.calibrated
    rows = {float(r["similarity"]): r for r in cal.published}
    for similarity in (80.0, 84.0, 88.0, 92.0, 96.0, 99.0):
        bound, row = ANCHOR_FMR[similarity], rows[similarity]
        assert row["fmr"] <= bound * 1.001, (similarity, row)
        if row["identity_pairs"] * bound >= 4:
            assert row["fmr_measured"] <= bound, (similarity, row)
        assert row["cosine"] == pytest.approx(float(cal.cosine(similarity)), abs=1e-4)
    # resolution where it matters: FMR 1e-6 … 1e-10 spread over 15 points of Similarity
    assert rows[99.0]["cosine"] - rows[84.0]["cosine"] > 0.1
    assert cal.false_match_rate(93.0) == rows[92.0]["fmr"]


def _synthetic(n_people: int, per_person: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 64))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vecs, paths = [], []
    for p in range(n_people):
        for k in range(per_person):
            v = centres[p] + rng.normal(scale=0.08, size=64)
            vecs.append(v / np.linalg.norm(v))
            paths.append(f"P{p}/P{p}_{k + 1:04d}.jpg")
    return np.asarray(vecs, np.float32), paths


def test_fit_guarantees_each_anchor_fmr_on_the_fitted_pairs() -> None:
    emb, paths = _synthetic(150, 3)
    scores = score_all_pairs(emb, paths, top_floor=2.0)
    n = len(paths)
    assert scores.impostor_pairs == n * (n - 1) // 2 - 150 * 3
    assert scores.genuine_pairs == 150 * 3
    # brute-force check of every anchor against the exact impostor scores
    sims = emb @ emb.T
    names = np.array([p.split("/")[0] for p in paths])
    iu = np.triu_indices(n, 1)
    impostor = sims[iu][names[iu[0]] != names[iu[1]]]
    for cosine, similarity in fit_anchors(scores, {50.0: 1e-2, 80.0: 1e-3, 90.0: 1e-4}):
        bound = {50.0: 1e-2, 80.0: 1e-3, 90.0: 1e-4}[similarity]
        assert np.sum(impostor >= cosine) <= np.floor(bound * len(impostor))
    assert set(ANCHOR_FMR) >= {80.0, 99.0}


def test_exclusions_remove_label_faults_only() -> None:
    ex = Exclusions.parse(
        [
            "# comment",
            "same A B   # one person, two names",
            "image C/C_0001.jpg D  # shows D",
            "photo E/E_0001.jpg F/F_0002.jpg",
        ]
    )
    assert ex.excluded("A/A_0001.jpg", "B/B_0003.jpg")
    assert ex.excluded("D/D_0002.jpg", "C/C_0001.jpg")
    assert not ex.excluded("C/C_0002.jpg", "D/D_0002.jpg")
    assert ex.excluded("F/F_0002.jpg", "E/E_0001.jpg")
    assert not ex.excluded("E/E_0001.jpg", "F/F_0001.jpg")
    assert not ex.excluded("A/A_0001.jpg", "C/C_0001.jpg")


def test_repository_exclusion_list_parses() -> None:
    text = (REPO / "bench" / "lfw_exclusions.txt").read_text().splitlines()
    ex = Exclusions.parse(text)
    assert len(ex.same_people) >= 5 and ex.image_shows and ex.same_photos


@pytest.mark.lfw
def test_real_pairs_land_on_the_right_side(engine, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from faceledger.evaluation.lfw import read_pairs
    from faceledger.inference.imaging import load_image

    root = data_dir / "lfw-devtrain" / "images"
    pairs = read_pairs(data_dir / "lfw-devtrain" / "pairsDevTrain.txt")
    genuine = [p for p in pairs if p.same][:10]
    impostor = [p for p in pairs if not p.same][:10]

    def sim(a: str, b: str) -> float:
        fa = engine.analyse(load_image(root / a), max_faces=1)
        fb = engine.analyse(load_image(root / b), max_faces=1)
        return float(engine.similarity(fa.embeddings[0], fb.embeddings[0]))

    gen = [sim(p.a, p.b) for p in genuine]
    imp = [sim(p.a, p.b) for p in impostor]
    assert max(imp) < 50.0, imp
    assert np.median(gen) > 80.0, gen
