"""Decisions by outcome: per collection and effective threshold, what reviewers decided about
the leads (the decision in force per candidate), and the section the fairness report gains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from faceledger.domain.leads import Lead, LeadCandidate, LeadDecision
from faceledger.evaluation.fairness import EmbeddedImages
from faceledger.evaluation.report import (
    PackInfo,
    ReportRequest,
    build_report,
    decisions_by_outcome,
    decisions_text,
    write_report,
)


def _lead(n: int, collection: str, threshold: float, *decided: tuple[str, str]) -> Lead:
    lead_id = f"lead-{n}"
    candidates = (LeadCandidate("f1", "face", 95.0, 0), LeadCandidate("f2", "face", 85.0, 1))
    decisions = tuple(
        LeadDecision(lead_id, face, decision, "", "rev", "r", float(k))
        for k, (face, decision) in enumerate(decided)
    )
    return Lead(
        lead_id, float(n), "r", "SearchFacesByImage", "web", "officer", collection, threshold,
        candidates, decisions=decisions,
    )  # fmt: skip


LEADS = [
    # c1 @ 90: one lead fully decided (f1 first rejected, then confirmed: the latest counts)
    _lead(1, "c1", 90.0, ("f1", "rejected"), ("f1", "confirmed"), ("f2", "rejected")),
    # c1 @ 90: one candidate decided, so the lead is still undecided
    _lead(2, "c1", 90.0, ("f2", "inconclusive")),
    # c1 @ 97: nothing decided
    _lead(3, "c1", 97.0),
    # c2 @ 90: both rejected
    _lead(4, "c2", 90.0, ("f1", "rejected"), ("f2", "rejected")),
]


def test_decisions_by_outcome_counts_the_decision_in_force() -> None:
    rows = decisions_by_outcome(LEADS)
    by_key = {(r["collection_id"], r["threshold"]): r for r in rows}
    assert list(by_key) == [("c1", 90.0), ("c1", 97.0), ("c2", 90.0)]
    c1 = by_key[("c1", 90.0)]
    assert (c1["leads"], c1["undecided_leads"], c1["candidates"], c1["candidates_decided"]) == (
        2,
        1,
        4,
        3,
    )
    assert (c1["confirmed"], c1["rejected"], c1["inconclusive"]) == (1, 1, 1)
    assert c1["rejected_share"] == 0.5
    assert by_key[("c1", 97.0)]["rejected_share"] is None  # nothing judged yet
    assert by_key[("c1", 97.0)]["undecided_leads"] == 1
    assert by_key[("c2", 90.0)]["rejected_share"] == 1.0
    assert "50.0%" in decisions_text(rows) and decisions_text([]).endswith("no leads yet")


def test_the_report_gains_decisions_by_outcome(tmp_path: Path) -> None:
    paths = ("A/A_1.jpg", "A/A_2.jpg", "B/B_1.jpg")
    vectors = np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1]], np.float32)
    embedded = EmbeddedImages(
        paths,
        vectors,
        np.ones(3, bool),
        np.zeros(3, bool),
        np.zeros((3, 4), np.float32),
        np.zeros((3, 5, 2), np.float32),
        "test-pack-1",
    )
    rows = tuple(decisions_by_outcome(LEADS))
    request = ReportRequest(data_dir=tmp_path / "data", out_dir=tmp_path / "out", decisions=rows)
    report, hist = build_report(
        embedded, request, PackInfo("test", "test-pack-1"), lambda c: 100.0 * np.clip(c, 0, 1)
    )
    write_report(report, hist, request.out_dir)
    page = (request.out_dir / "report.html").read_text()
    assert "<h2>Decisions by outcome</h2>" in page
    assert "<td>c2</td><td>90</td><td>1</td><td>0</td><td>0</td><td>2</td><td>0</td>" in page
    saved = json.loads((request.out_dir / "report.json").read_text())
    assert saved["decisions_by_outcome"] == list(rows)

    plain = ReportRequest(data_dir=tmp_path / "data", out_dir=tmp_path / "plain")
    report, hist = build_report(
        embedded, plain, PackInfo("test", "test-pack-1"), lambda c: 100.0 * np.clip(c, 0, 1)
    )
    write_report(report, hist, plain.out_dir)
    assert "Decisions by outcome" not in (plain.out_dir / "report.html").read_text()
