"""``faceledger eval report``: FMR/FNMR overall and per group, groups CSV, HTML, a real run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from faceledger.domain.errors import InvalidParameterError
from faceledger.evaluation.calibration_fit import Exclusions
from faceledger.evaluation.fairness import (
    UNASSIGNED,
    EmbeddedImages,
    Rate,
    assign_groups,
    binomial_upper_bound,
    excluded_index_pairs,
    false_match,
    false_match_sources,
    false_non_match,
    histogram_pairs,
    parse_groups,
    similarity_bins,
    threshold_bin,
    weighted_fnmr,
)
from faceledger.evaluation.report import PackInfo, ReportRequest, build_report, write_report


def linear(cosine: np.ndarray) -> np.ndarray:
    """Similarity = 100·cosine (clipped at 0): exact, hand-checkable scores."""
    return 100.0 * np.clip(np.asarray(cosine, np.float64), 0.0, 1.0)


# Five images, three identities. Hand-computed cosines (×100 = Similarity):
#   genuine  A1·A2 = 0.80, C1·C2 = 0.60
#   impostor within g1 (A, B): A1·B1 = 0.60, A2·B1 = 0.96
#   impostor across g1–g2:     A1·C1 = A1·C2 = A2·C1 = B1·C1 = 0, A2·C2 = 0.48, B1·C2 = 0.64
PATHS = ("A/A_1.jpg", "A/A_2.jpg", "B/B_1.jpg", "C/C_1.jpg", "C/C_2.jpg")
VECTORS = np.array([[1, 0, 0], [0.8, 0.6, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 0.8, 0.6]], np.float32)
IDENTITY = np.array([0, 0, 1, 2, 2])
GROUPS = ("g1", "g2")
GROUP = np.array([0, 0, 0, 1, 1])


def _hist(**kwargs):  # type: ignore[no-untyped-def]
    return histogram_pairs(VECTORS, IDENTITY, GROUP, GROUPS, linear, **kwargs)


@pytest.mark.parametrize(
    ("threshold", "fm", "fnm"),
    [(50.0, 3, 0), (70.0, 1, 1), (90.0, 1, 2), (99.0, 0, 2), (0.0, 8, 0)],
)
def test_overall_rates_match_hand_counts(threshold: float, fm: int, fnm: int) -> None:
    hist = _hist()
    assert false_match(hist.overall_impostor(), threshold) == Rate(fm, 8)
    assert false_non_match(hist.overall_genuine(), threshold) == Rate(fnm, 2)


def test_group_rates_count_within_group_impostors_only() -> None:
    hist = _hist(block=2)  # blocks that split identities must not change anything
    assert false_match(hist.within(0), 70.0) == Rate(1, 2)  # A2·B1 = 96 of (A1·B1, A2·B1)
    assert false_match(hist.within(1), 50.0) == Rate(0, 0)  # one identity: no impostors
    assert false_match(hist.across(1, 0), 50.0) == Rate(1, 6)  # B1·C2 = 64
    assert false_match(hist.across(0, 1), 30.0) == Rate(2, 6)  # and A2·C2 = 48
    assert false_non_match(hist.genuine[0], 70.0) == Rate(0, 1)
    assert false_non_match(hist.genuine[1], 70.0) == Rate(1, 1)
    assert hist.impostor[1, 0].sum() == 0  # only a ≤ b is filled
    assert hist.overall_impostor().sum() == 8
    assert [round(s, 3) for s, _, _ in hist.top_impostors(2)] == [96.0, 64.0]
    assert hist.top_impostors(1)[0][1:] == (1, 2)


def test_false_match_sources_name_the_identity_pairs() -> None:
    hist = _hist()
    # at 50: A1·B1 = 60, A2·B1 = 96 (people A, B) and B1·C2 = 64 (people B, C)
    overall = false_match_sources(hist, 50.0, names=("A", "B", "C"))
    assert overall is not None and overall["false_matches"] == 3
    assert overall["identity_pair_fmr"]["errors"] == 2  # of the 3 pairs of people
    assert overall["identity_pair_fmr"]["pairs"] == 3
    top = overall["top_identity_pairs"][0]
    assert (top["identity_a"], top["identity_b"], top["false_matches"]) == ("A", "B", 2)
    assert top["share"] == pytest.approx(2 / 3)
    within = false_match_sources(hist, 50.0, group=0, names=("A", "B", "C"))
    assert within is not None and within["identity_pair_fmr"]["pairs"] == 1
    assert false_match_sources(hist, 40.0) is None  # below the floor pairs were kept from


def test_exclusions_drop_impostor_and_misfiled_genuine_pairs() -> None:
    ex = Exclusions.parse(["same A B", "image C/C_2.jpg B  # C_2 shows B"])
    pairs = excluded_index_pairs(PATHS, ex)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 2), (1, 2), (2, 4), (3, 4)]
    hist = _hist(excluded=pairs)
    assert hist.excluded_impostor == 3 and hist.excluded_genuine == 1
    assert false_match(hist.overall_impostor(), 50.0) == Rate(0, 5)
    assert false_non_match(hist.overall_genuine(), 70.0) == Rate(0, 1)


def test_images_without_a_face_take_part_in_no_pair() -> None:
    hist = _hist(valid=np.array([True, True, False, True, True]))
    assert hist.overall_impostor().sum() == 4 and hist.overall_genuine().sum() == 2


def test_matches_brute_force_on_random_data() -> None:
    rng = np.random.default_rng(1)
    n_ids = 30
    identity = np.repeat(np.arange(n_ids), rng.integers(1, 5, n_ids))
    group = identity % 3
    centres = rng.normal(size=(n_ids, 16))
    emb = centres[identity] + rng.normal(scale=0.7, size=(len(identity), 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    hist = histogram_pairs(emb, identity, group, ("x", "y", "z"), linear, block=7)
    i, j = np.triu_indices(len(identity), 1)
    sims = linear(np.einsum("ij,ij->i", emb[i], emb[j]))
    same = identity[i] == identity[j]
    for t in (10.0, 33.33, 50.0, 75.5):
        # the binned count equals a direct count at the float threshold
        assert false_match(hist.overall_impostor(), t).errors == int(np.sum(sims[~same] >= t))
        assert false_non_match(hist.overall_genuine(), t).errors == int(np.sum(sims[same] < t))
        for g in range(3):
            within = ~same & (group[i] == g) & (group[j] == g)
            assert false_match(hist.within(g), t) == Rate(
                int(np.sum(sims[within] >= t)), int(within.sum())
            )


def test_identity_weighted_fnmr_counts_each_identity_once() -> None:
    # identity 0: three images, pairs at 100, 10, 10 (two of three below 50);
    # identity 1: two images, one pair at 19.9 (below 50).
    r = np.sqrt(0.99)
    emb = np.array([[1, 0], [1, 0], [0.1, r], [0.1, r], [r, 0.1]], np.float32)
    ident = np.array([0, 0, 0, 1, 1])
    hist = histogram_pairs(emb, ident, np.zeros(5, np.int64), ("all",), linear)
    assert false_non_match(hist.genuine[0], 50.0) == Rate(3, 4)
    assert weighted_fnmr(hist.genuine_weighted[0], 50.0) == pytest.approx((2 / 3 + 1) / 2)
    assert hist.identities_with_genuine[0] == 2 and hist.largest_identity_genuine[0] == 3


def test_threshold_grid_and_bins() -> None:
    assert threshold_bin(80.0) == 8000 and threshold_bin(0.29) == 29
    with pytest.raises(InvalidParameterError):
        threshold_bin(80.005)
    with pytest.raises(InvalidParameterError):
        threshold_bin(101.0)
    bins = similarity_bins(np.array([0.0, 0.29, 79.999999, 80.0, 100.0]))
    assert bins.tolist() == [0, 29, 7999, 8000, 10000]


def test_rates_with_few_errors_show_an_upper_bound() -> None:
    assert Rate(20, 1000).display() == "2.00e-02 (20/1,000)"
    assert Rate(0, 1000).display() == "≤ 3.0e-03 (0/1,000)"
    assert Rate(3, 1000).display().startswith("≤ ")
    assert Rate(0, 0).display() == "n/a (0 pairs)" and Rate(0, 0).rate is None
    # Clopper–Pearson one-sided 95%: 1 of 100 → 0.0466; 0 of n → 1 − 0.05^(1/n)
    assert binomial_upper_bound(1, 100) == pytest.approx(0.0466, abs=2e-4)
    assert binomial_upper_bound(0, 45_000_000) == pytest.approx(6.66e-8, rel=1e-2)
    # from 100 errors on, Wilson's bound stands in for the exact one (0.011797 here)
    assert binomial_upper_bound(100, 10_000) == pytest.approx(0.011797, rel=0.01)


def test_groups_csv_parsing() -> None:
    parsed = parse_groups(
        ["# a proxy, not ethnicity", "identity,group", "A, g1", "", '"B",g1', "C,g2"]
    )
    assert parsed.mapping == {"A": "g1", "B": "g1", "C": "g2"}
    assert parsed.notes == ("a proxy, not ethnicity",)
    grouping = assign_groups(["A", "B", "C", "D", "E"], parsed.mapping)
    assert grouping.names == ("g1", "g2", UNASSIGNED)
    assert grouping.of_identity["D"] == grouping.of_identity["E"] == 2
    assert grouping.unassigned == 2
    assert assign_groups(["A"], None).grouped is False
    assert assign_groups(["A", "C"], {"C": "z", "A": "a"}).names == ("z", "a")  # file order


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["A,g1", "B"], "line 2: expected 'identity,group'"),
        (["A,g1,extra"], "line 1"),
        (["A,"], "line 1"),
        (["A,g1", "A,g2"], "'A' is in group 'g1' already"),
    ],
)
def test_malformed_groups_csv_is_a_clear_error(lines: list[str], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        parse_groups(lines, source="groups.csv")


def test_face_choice_largest_or_central() -> None:
    """LFW photos are centred on the labelled person; a bystander can be the largest face."""
    from faceledger.domain.faces import AnalysedImage, Faces
    from faceledger.evaluation.fairness import choose_face as _choose

    faces = Faces(
        np.array([[0, 0, 100, 100], [105, 105, 145, 145]], np.float32),
        np.array([0.9, 0.9], np.float32),
        np.zeros((2, 5, 2), np.float32),
    )
    image = AnalysedImage("0" * 64, "jpeg", 250, 250, 1, faces)
    assert _choose(image, "largest") == 0 and _choose(image, "central") == 1
    assert _choose(AnalysedImage("0" * 64, "jpeg", 250, 250, 1, Faces.empty()), "central") is None


def _embedded() -> EmbeddedImages:
    n = len(PATHS)
    return EmbeddedImages(
        PATHS,
        VECTORS,
        np.ones(n, bool),
        np.zeros(n, bool),
        np.zeros((n, 4), np.float32),
        np.zeros((n, 5, 2), np.float32),
        "test-pack-1",
    )


def test_html_report_has_the_det_chart_and_the_tables(tmp_path: Path) -> None:
    request = ReportRequest(data_dir=tmp_path / "data", out_dir=tmp_path / "out", title="T<1>")
    groups = parse_groups(["# proxy note", "A,g1", "B,g1"])
    report, hist = build_report(
        _embedded(), request, PackInfo("test", "test-pack-1"), linear, group_file=groups
    )
    write_report(report, hist, request.out_dir)
    page = (request.out_dir / "report.html").read_text()
    assert 'alt="DET curves" src="data:image/png;base64,' in page
    assert 'alt="per-group bars" src="data:image/png;base64,' in page
    assert "<table>" in page and "Similarity 80" in page and "T&lt;1&gt;" in page
    assert "proxy note" in page and UNASSIGNED in page
    assert "Where the false matches come from" in page and "A – B: 1 (100%)" in page
    assert "≤ " in page  # few errors: bounds, not bare rates
    assert (request.out_dir / "det.png").read_bytes().startswith(b"\x89PNG")
    saved = json.loads((request.out_dir / "report.json").read_text())
    assert saved["overall"]["at"]["90"]["fmr"]["errors"] == 1
    assert [g["group"] for g in saved["per_group"]] == ["g1", UNASSIGNED]
    assert saved["per_group"][0]["at"]["90"]["fmr_ratio_to_overall"] == pytest.approx(4.0)
    assert len(saved["overall"]["curve"]) == 101


def _small_lfw(data_dir: Path, tmp_path: Path) -> Path:
    """A few LFW identities (symlinked, never copied): four with 2–3 images, three with one."""
    root = data_dir / "lfw-devtrain" / "images"
    if not root.is_dir():
        pytest.skip(f"LFW devtrain not found under {data_dir}")
    people = sorted(p for p in root.iterdir() if p.is_dir())
    many = [p for p in people if 2 <= len(list(p.glob("*.jpg"))) <= 3][:4]
    single = [p for p in people if len(list(p.glob("*.jpg"))) == 1][:3]
    small = tmp_path / "lfw"
    for person in many + single:
        (small / person.name).mkdir(parents=True)
        for image in sorted(person.glob("*.jpg")):
            os.symlink(image, small / person.name / image.name)
    return small


@pytest.mark.lfw
def test_cli_report_on_a_few_lfw_identities(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from faceledger.cli.main import app

    small = _small_lfw(data_dir, tmp_path)
    names = sorted(p.name for p in small.iterdir())
    groups = tmp_path / "groups.csv"
    groups.write_text("".join(f"{n},{'x' if k % 2 else 'y'}\n" for k, n in enumerate(names[:-1])))
    monkeypatch.setenv("FACELEDGER_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FACELEDGER_WORKERS", "1")  # 20 images: a process pool costs more
    out = tmp_path / "report"
    args = ["eval", "report", "--data", str(small), "--groups", str(groups), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert (out / "report.html").is_file() and (out / "det.png").is_file()
    report = json.loads((out / "report.json").read_text())
    counts = [len(list((small / n).iterdir())) for n in names]
    faces = report["overall"]["images"] - report["overall"]["images_without_face"]
    assert report["overall"]["images"] == sum(counts) and faces >= sum(counts) - 1
    if faces == sum(counts):
        assert report["overall"]["genuine_pairs"] == sum(c * (c - 1) // 2 for c in counts)
        assert report["overall"]["impostor_pairs"] == (
            sum(counts) * (sum(counts) - 1) // 2 - report["overall"]["genuine_pairs"]
        )
    assert report["groups"]["names"] == ["y", "x", UNASSIGNED]  # order of the CSV
    assert report["groups"]["unassigned_identities"] == 1
    assert not report["meta"]["embeddings_cache_reused"]
    summary = json.loads(result.stdout)
    assert summary["report_html"].endswith("report.html") and set(summary["groups"]) == {
        "x",
        "y",
        UNASSIGNED,
    }
    # a second run (other groups) reuses the cached embeddings
    again = CliRunner().invoke(app, [*args[:4], "--out", str(out)])
    assert again.exit_code == 0, again.output
    report2 = json.loads((out / "report.json").read_text())
    assert report2["meta"]["embeddings_cache_reused"] and not report2["groups"]["grouped"]
    assert report2["overall"]["genuine_pairs"] == report["overall"]["genuine_pairs"]


def test_cli_reports_a_malformed_groups_csv_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from faceledger.cli.main import main

    (tmp_path / "data" / "A").mkdir(parents=True)
    (tmp_path / "data" / "A" / "A_0001.jpg").write_bytes(b"not read: the CSV fails first")
    bad = tmp_path / "groups.csv"
    bad.write_text("A,g1\nB\n")
    monkeypatch.setenv("FACELEDGER_DATA_DIR", str(tmp_path / "state"))
    args = ["eval", "report", "--data", str(tmp_path / "data"), "--groups", str(bad)]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert "groups.csv line 2: expected 'identity,group', got 'B'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
