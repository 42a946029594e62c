"""The LFW label faults the open-set figures set aside are real, and the bench states its
FPIR with every non-mated search it has (issue 14).

``bench/lfw_exclusions.txt`` lists faults with their evidence; the one added from the
leave-person-out searches is checked here with the real models, so a wrong entry (or a model
change that makes it wrong) fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from faceledger.evaluation.calibration_fit import Exclusions
from faceledger.inference.engine import FaceEngine
from faceledger.inference.imaging import load_image

REPO = next(p for p in Path(__file__).resolve().parents if (p / "bench").is_dir())
RESULT = REPO / "bench" / "results" / "one_to_n_open_set.json"


def _similarity(engine: FaceEngine, a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    return float(engine.calibration.similarity(float(a @ b)))


@pytest.mark.lfw
def test_aldo_paredes_0002_searches_as_sebastian_saja(engine: FaceEngine, data_dir: Path) -> None:
    """Aldo_Paredes_0002 shows two players; its largest face (the one a search uses) is
    Sebastian Saja's, the centred one Aldo Paredes's — so a search of that photo that finds
    Sebastian Saja is right, and the exclusion list says so."""
    root = data_dir / "lfw-devtrain" / "images"
    photo = engine.analyse(load_image(root / "Aldo_Paredes" / "Aldo_Paredes_0002.jpg"), max_faces=5)
    saja = engine.analyse(load_image(root / "Sebastian_Saja" / "Sebastian_Saja_0001.jpg"))
    aldo = engine.analyse(load_image(root / "Aldo_Paredes" / "Aldo_Paredes_0001.jpg"))
    assert len(photo) == 2
    assert photo.embeddings is not None and saja.embeddings is not None
    assert aldo.embeddings is not None
    largest, other = photo.embeddings[0], photo.embeddings[1]  # largest first
    assert _similarity(engine, largest, saja.embeddings[0]) >= 88.0
    assert _similarity(engine, largest, aldo.embeddings[0]) < 60.0
    assert _similarity(engine, other, aldo.embeddings[0]) >= 88.0
    exclusions = Exclusions.parse((REPO / "bench" / "lfw_exclusions.txt").read_text().splitlines())
    assert exclusions.excluded(
        "Aldo_Paredes/Aldo_Paredes_0002.jpg", "Sebastian_Saja/Sebastian_Saja_0001.jpg"
    )
    # the pair not shown as a fault stays an impostor pair
    assert not exclusions.excluded(
        "Jaqueline_Godoy/Jaqueline_Godoy_0001.jpg", "Kelly_Santos/Kelly_Santos_0001.jpg"
    )


def test_open_set_bench_pools_every_non_mated_search() -> None:
    """The recorded bench result counts the leave-person-out searches with the non-mated
    probes, and compares per-search normalisation with Similarity on the same searches."""
    result = json.loads(RESULT.read_text())
    [at_default] = result["at_default"]
    person_out = result["leave_person_out_at_default"]
    pooled = result["pooled_non_mated_at_default"]
    assert person_out["threshold"] == result["default_floor"] == at_default["threshold"]
    assert pooled["searches"] == result["non_mated_probes"] + person_out["searches"]
    assert pooled["searches"] > 2_000
    assert pooled["with_candidate"] == (
        at_default["non_mated_with_candidate_not_label_fault"] + person_out["with_candidate"]
    )
    assert pooled["fpir"] == pytest.approx(pooled["with_candidate"] / pooled["searches"], abs=1e-5)
    norm = result["normalisation"]
    scores = {row["score"]: row for row in norm["scores"]}
    assert set(scores) == {"similarity", "margin_10", "margin_20", "margin_50"}
    for row in scores.values():
        rates = row["hit_rate_by_false_candidates"]
        assert len(rates) == norm["false_candidates_at_floor"] + 1
        assert rates == sorted(rates)  # letting more false candidates through never loses hits
        assert rates[-1] == at_default["hit_rate"]
