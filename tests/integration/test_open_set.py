"""Open-set error rates: the tail fit, the shipped table, floors that follow size, the scale
every search answer carries (gateway, ledger), and ``faceledger eval search``."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import Principal
from faceledger.domain.scale import FLOOR_FROM_POLICY, FLOOR_FROM_SIZE, SearchScale
from faceledger.evaluation.open_set import (
    MatedPairs,
    ProbeTails,
    choose_floor,
    identification_rates,
)
from faceledger.inference.scale import MIN_FLOOR, TARGET_FPIR, ScaleTable
from faceledger.services.gateway import Gateway
from helpers.cli import run

RESULT = Path(__file__).resolve().parents[2] / "bench" / "results" / "calibration_yunet-sface.json"


def _scores(rng: np.random.Generator, probes: int, gallery: int) -> list[np.ndarray]:
    # each probe: normal impostor scores with its own mean and spread (heterogeneous probes)
    return [
        rng.normal(rng.uniform(0.0, 0.1), rng.uniform(0.08, 0.12), gallery).astype(np.float32)
        for _ in range(probes)
    ]


def test_fpir_grows_with_size_and_falls_with_threshold() -> None:
    tails = ProbeTails.fit(_scores(np.random.default_rng(0), 300, 2000), shape=-0.1)
    sizes = (10, 1_000, 100_000, 10_000_000)
    for c in (0.3, 0.45, 0.6):
        f = [tails.fpir(c, n) for n in sizes]
        assert f == sorted(f) and f[0] < f[-1]
    assert tails.fpir(0.3, 1_000) > tails.fpir(0.45, 1_000) > tails.fpir(0.6, 1_000)
    # the FMR the tails imply is what FPIR(N = 1) is
    assert tails.fmr(0.4) == pytest.approx(tails.fpir(0.4, 1), rel=1e-6)


def test_fit_predicts_the_fpir_of_a_real_search_within_the_data() -> None:
    rng = np.random.default_rng(1)
    scores = _scores(rng, 400, 3000)
    tails = ProbeTails.fit(scores, shape=-0.1)
    top = np.array([s.max() for s in scores])
    for c in np.quantile(top, [0.5, 0.8, 0.95]):
        measured = float(np.mean(top >= c))
        assert tails.fpir(float(c), 3000) == pytest.approx(measured, abs=0.05)


def test_hit_rate_needs_the_mate_first_and_above_the_threshold() -> None:
    tails = ProbeTails.fit(_scores(np.random.default_rng(2), 50, 1000))
    mated = MatedPairs.of(tails, np.arange(50), np.full(50, 0.9), np.ones(50))
    assert mated.hit_rate(0.95, 1000) == 0.0  # every mate below the threshold
    assert mated.hit_rate(0.5, 10) > mated.hit_rate(0.5, 10_000_000)


def test_choose_floor_is_the_lowest_similarity_within_target() -> None:
    sims = [70.0, 80.0, 85.0, 90.0]
    assert choose_floor([0.5, 0.01, 0.0009, 0.0001], sims) == (85.0, True)
    assert choose_floor([0.0, 0.0, 0.0, 0.0], sims) == (80.0, True)  # never below 80
    assert choose_floor([0.5, 0.4, 0.3, 0.2], sims) == (90.0, False)


def test_identification_rates_count_hits_and_false_positives() -> None:
    rows = identification_rates([(95.0, True), (90.0, False), (70.0, True)], [85.0, 60.0], [80])
    assert rows[0]["hits"] == 1 and rows[0]["hit_rate"] == pytest.approx(1 / 3)
    assert rows[0]["fpir"] == 0.5 and rows[0]["non_mated_with_candidate"] == 1


def test_shipped_table_floors_follow_size_and_match_the_bench() -> None:
    table = ScaleTable.builtin("yunet-sface")
    assert table is not None and table.target_fpir == TARGET_FPIR
    floors = [table.floor(n)[0] for n in (1, 1_000, 10_000, 100_000, 1_000_000, 20_000_000)]
    assert floors == sorted(floors) and floors[0] == MIN_FLOOR and floors[-1] > floors[2]
    for n in (10_000, 100_000, 1_000_000):
        floor, reachable = table.floor(n)
        estimate = table.estimate(floor, n)
        assert estimate is not None
        if reachable:
            assert estimate.fpir <= TARGET_FPIR
            below = table.estimate(round(floor - 0.1, 1), n)
            assert (below is not None and below.fpir > TARGET_FPIR) or floor == MIN_FLOOR
    # the README's table is the fitted one, not numbers typed in
    shipped = json.loads(RESULT.read_text())["readme_floors"]
    for row in shipped:
        assert table.floor(row["faces"]) == (row["floor"], row["reachable"])
    assert ScaleTable.builtin("no-such-pack") is None


def test_a_search_scale_says_what_a_candidate_means() -> None:
    scale = SearchScale(
        face_count=10_000,
        threshold=90.0,
        floor=88.9,
        floor_source=FLOOR_FROM_SIZE,
        target_fpir=1e-3,
        target_reachable=False,
        fpir=0.0025,
        fpir_upper=0.003,
        hit_rate=0.8,
        fmr=3e-8,
    )
    assert scale.one_in == 400
    assert "about 1 in 400 searches for someone not in this collection" in scale.statement
    assert "cannot keep that within 1 in 1,000 at 10,000 faces" in scale.statement
    headers = scale.headers()
    assert headers["X-FaceLedger-Fpir"] == "0.0025"
    assert headers["X-FaceLedger-Target-Reachable"] == "false"
    assert all(v.isascii() for v in headers.values())


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gateway]:
    settings = Settings(data_dir=tmp_path / "data", workers=1)
    assert settings.default_threshold_floor is None  # the default floor follows the size
    service = Gateway(settings)
    yield service
    service.close()


def test_the_default_floor_follows_the_collection_and_a_policy_pins_it(
    gate: Gateway, data_dir: Path
) -> None:
    admin = Caller(
        Principal("test-all", ("admin", "enrol", "search", "audit"), "TEST"),
        source="cli",
        request_id="",
    )
    root = data_dir / "lfw-devtrain" / "images"
    person = next(p for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) >= 3)
    photos = sorted(person.glob("*.jpg"))
    gate.create_collection(admin, "scale")
    gate.index_faces(admin, "scale", photos[0].read_bytes(), external_image_id="a")
    table = gate._collections.faces.engine.scale
    assert table is not None

    found = gate.search_faces_by_image(admin, "scale", photos[1].read_bytes(), threshold=50)
    scale = found.scale
    assert scale is not None and scale.face_count == 1
    assert scale.floor_source == FLOOR_FROM_SIZE and scale.floor == table.floor(1)[0]
    assert found.threshold == scale.threshold == max(50.0, scale.floor) == MIN_FLOOR
    expected = table.estimate(found.threshold, 1)
    assert expected is not None and scale.fpir == expected.fpir
    assert scale.hit_rate == expected.hit_rate and scale.fmr is not None

    gate.put_policy(admin, "scale", CollectionPolicy(threshold_floor=95.5))
    pinned = gate.search_faces_by_image(admin, "scale", photos[1].read_bytes(), threshold=50)
    assert pinned.scale is not None and pinned.scale.floor_source == FLOOR_FROM_POLICY
    assert pinned.threshold == 95.5 == pinned.scale.threshold
    assert all(m.similarity >= 95.5 for m in pinned.matches)

    face_id = gate.list_faces(admin, "scale").faces[0].face_id
    found = gate.search_faces(admin, "scale", face_id, threshold=10)
    assert found.threshold == 95.5 and found.scale is not None
    assert found.scale.face_count == 1

    records = [e.event for e in gate._ledger.entries(collection_id="scale") if e.event]
    searches = [r for r in records if r.operation in ("SearchFacesByImage", "SearchFaces")]
    assert [r.result["scale"]["floor_source"] for r in searches] == [
        FLOOR_FROM_SIZE,
        FLOOR_FROM_POLICY,
        FLOOR_FROM_POLICY,
    ]
    assert all(r.result["scale"]["face_count"] == 1 for r in searches)
    assert searches[0].result["scale"]["fpir"] == pytest.approx(scale.fpir, rel=1e-2)

    # user searches carry the same scale, on the record too
    gate.create_user(admin, "scale", "u1")
    gate.associate_faces(admin, "scale", "u1", [face_id])
    users = gate.search_users_by_image(admin, "scale", photos[2].read_bytes())
    assert users.scale is not None and users.scale.face_count == 1
    assert users.threshold == users.scale.threshold == 95.5
    by_face = gate.search_users(admin, "scale", face_id=face_id)
    assert by_face.scale is not None and by_face.scale.floor_source == FLOOR_FROM_POLICY
    records = [e.event for e in gate._ledger.entries(collection_id="scale") if e.event]
    user_searches = [r for r in records if r.operation.startswith("SearchUsers")]
    assert [r.result["scale"]["face_count"] for r in user_searches] == [1, 1]


def _faceledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(*args, cwd=cwd, FACELEDGER_WORKERS="1")


def test_eval_search_runs_the_open_set_protocol_on_folders(tmp_path: Path, data_dir: Path) -> None:
    root = data_dir / "lfw-devtrain" / "images"
    multi = [p for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) >= 2][:4]
    single = [p for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) == 1][:3]
    gallery, probes = tmp_path / "gallery", tmp_path / "probes"
    for p in multi:
        first, second = sorted(p.glob("*.jpg"))[:2]
        (gallery / p.name).mkdir(parents=True)
        (probes / p.name).mkdir(parents=True)
        shutil.copy(first, gallery / p.name / first.name)
        shutil.copy(second, probes / p.name / second.name)
    for p in single:  # not enrolled: non-mated
        (probes / p.name).mkdir(parents=True)
        shutil.copy(next(p.glob("*.jpg")), probes / p.name)
    out = tmp_path / "report"
    done = _faceledger(
        "eval", "search", "--gallery", str(gallery), "--probes", str(probes), "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["mated_probes"] == 4 and summary["non_mated_probes"] == 3
    assert summary["gallery_faces"] == 4 and summary["rank1_rate"] == 1.0
    assert summary["product_floor"]["floor"] == MIN_FLOOR  # 4 faces: the lowest floor
    assert summary["measured_floor"] is None and "1,000 non-mated" in summary["measured_floor_note"]
    assert "photos: 11/11" in done.stderr  # plain progress lines when stderr is no terminal
    report = json.loads((out / "search_report.json").read_text())
    at_zero = report["rates"][0]
    assert at_zero["threshold"] == 0.0 and at_zero["fpir"] == 1.0  # everyone is somebody at 0
    at_floor = next(r for r in report["rates"] if r["threshold"] == MIN_FLOOR)
    assert at_floor["fpir"] == report["product_floor"]["measured_fpir"]
    assert (out / "search_report.png").read_bytes()[:4] == b"\x89PNG"

    bad = _faceledger("eval", "search", "--gallery", str(tmp_path / "nope"), "--probes",
                      str(probes), cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "--gallery: no such folder" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_eval_lfw_adds_tar_at_far_and_per_pair_scores(tmp_path: Path, data_dir: Path) -> None:
    root = data_dir / "lfw-devtrain" / "images"
    multi = [p.name for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) >= 2][:4]
    lines = ["8"] + [f"{n} 1 2" for n in multi]
    lines += [f"{a} 1 {b} 1" for a, b in zip(multi, multi[1:] + multi[:1], strict=True)]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "lfw"
    done = _faceledger(
        "eval", "lfw", "--data", str(root), "--pairs", str(pairs), "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    far = report["tar_at_far"]
    assert set(far) == {"0.001", "0.0001"}
    assert far["0.001"]["impostor_pairs"] == 4 and far["0.001"]["resolved"] is False
    assert far["0.001"]["false_accepts"] == 0 and 0.0 <= far["0.001"]["tar"] <= 1.0
    rows = (out / report["pair_scores"]).read_text().splitlines()
    assert rows[0] == "image_a,image_b,same,cosine,similarity" and len(rows) == 9
    assert sum(r.split(",")[2] == "1" for r in rows[1:]) == 4
    assert "LFW pairs: 8/8" in done.stderr  # progress, though stderr is not a terminal
