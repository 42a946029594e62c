"""``faceledger search`` names its lead; ``faceledger audit leads`` lists leads by state and
``faceledger audit decide`` records a decision, refused (with a clear message) when the local
operator made the search or the decision is not allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.principals import Principal
from faceledger.services.gateway import Gateway
from helpers.cli import Cli, in_process
from helpers.data import lfw_people


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Runs ``faceledger ARGS`` in this process on a fresh data directory:
    (exit code, stdout, stderr)."""
    return in_process(
        monkeypatch, capsys, tmp_path / "data", FACELEDGER_DEFAULT_THRESHOLD_FLOOR="80"
    )


def test_search_lists_and_decides_leads(cli: Cli, tmp_path: Path, data_dir: Path) -> None:
    photos = next(iter(lfw_people(data_dir, min_images=2, count=1).values()))
    folder = tmp_path / "enrol"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photos[0].read_bytes())
    assert cli("collections", "create", "cases")[0] == 0
    assert cli("index", str(folder), "--collection", "cases")[0] == 0

    code, out, _ = cli("search", str(photos[1]), "--collection", "cases", "--json")
    assert code == 0
    searched = json.loads(out)
    own_lead = searched["lead_id"]
    face_id = searched["matches"][0]["face_id"]
    code, out, _ = cli("search", str(photos[1]), "--collection", "cases")
    assert code == 0 and "lead " in out and "faceledger audit decide" in out

    code, out, err = cli("audit", "decide", own_lead, face_id, "--decision", "rejected")
    assert code == 2
    assert "AccessDeniedException" in err and "separation of duties" in err

    # an officer's search (another principal) makes a lead the operator may review
    settings = Settings(data_dir=tmp_path / "data", default_threshold_floor=80)
    gate = Gateway(settings)
    try:
        officer = Caller(Principal("officer", ("search",), "K1"), "native", "req-officer")
        result = gate.search_faces_by_image(officer, "cases", photos[1].read_bytes(), threshold=80)
    finally:
        gate.close()
    lead_id = result.lead_id
    assert lead_id is not None

    code, out, _ = cli("audit", "leads", "--state", "open", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [lead["lead_id"] for lead in listed][-1] == lead_id
    assert {lead["lead_id"] for lead in listed} >= {own_lead, lead_id}

    code, _, err = cli("audit", "decide", lead_id, face_id, "--decision", "confirmed")
    assert code == 2 and "needs a note" in err
    code, _, err = cli("audit", "decide", lead_id, face_id, "--decision", "maybe")
    assert code == 2 and "maybe" in err
    code, out, _ = cli(
        "audit", "decide", lead_id, face_id, "--decision", "confirmed", "--note", "tattoo"
    )
    assert code == 0 and "decided" in out

    code, out, _ = cli("audit", "leads", "--state", "decided", "--json")
    decided = json.loads(out)
    assert [lead["lead_id"] for lead in decided] == [lead_id]
    assert decided[0]["candidates"][0]["decision"] == "confirmed"
    assert decided[0]["decisions"][0]["note"] == "tattoo"
    code, out, _ = cli("audit", "leads", "--state", "open")
    assert code == 0 and own_lead in out and lead_id not in out

    code, out, _ = cli("audit", "decisions", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert (row["collection_id"], row["leads"], row["undecided_leads"]) == ("cases", 3, 2)
    assert (row["confirmed"], row["rejected"], row["rejected_share"]) == (1, 0, 0.0)
    code, out, _ = cli("audit", "decisions")
    assert code == 0 and "cases" in out and "0.0%" in out
