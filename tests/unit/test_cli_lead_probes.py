"""``faceledger audit probe-crop`` writes a lead's searched face to a file (a ledgered view),
with clear messages when there is none or the file exists; ``faceledger audit leads`` lists
only leads whose search was recorded, ``--unrecorded`` the others."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.services.gateway import Gateway
from helpers.cli import Cli, in_process
from helpers.data import lfw_people
from helpers.leads import a_lead

JPEG_START = b"\xff\xd8\xff"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Runs ``faceledger ARGS`` in this process on a fresh data directory:
    (exit code, stdout, stderr)."""
    return in_process(
        monkeypatch,
        capsys,
        tmp_path / "data",
        FACELEDGER_CROP_KEY_FILE=str(tmp_path / "keys" / "crops.key"),
        FACELEDGER_DEFAULT_THRESHOLD_FLOOR="80",
    )


def test_a_leads_searched_face_is_written_to_a_file(
    cli: Cli, tmp_path: Path, data_dir: Path
) -> None:
    photos = next(iter(lfw_people(data_dir, min_images=2, count=1).values()))
    folder = tmp_path / "enrol"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photos[0].read_bytes())
    assert cli("collections", "create", "cases")[0] == 0
    assert cli("collections", "policy", "cases", "--keep-face-crops")[0] == 0
    assert cli("index", str(folder), "--collection", "cases")[0] == 0
    code, out, _ = cli("search", str(photos[1]), "--collection", "cases", "--json")
    assert code == 0
    lead_id = json.loads(out)["lead_id"]
    assert lead_id

    target = tmp_path / "probe.jpg"
    code, out, _ = cli("audit", "probe-crop", lead_id, "-o", str(target))
    assert code == 0 and "wrote" in out
    assert target.read_bytes().startswith(JPEG_START)
    code, _, err = cli("audit", "probe-crop", lead_id, "-o", str(target))
    assert code != 0 and "exists" in err and "Traceback" not in err
    missing = str(uuid.uuid4())
    code, _, err = cli("audit", "probe-crop", missing, "-o", str(tmp_path / "none.jpg"))
    assert code != 0 and "ResourceNotFoundException" in err and "Traceback" not in err
    assert not (tmp_path / "none.jpg").exists()

    code, out, _ = cli("audit", "tail", "-n", "50", "--json")
    assert code == 0
    views = [r for r in json.loads(out) if r["operation"] == "GetLeadProbeCrop"]
    assert [v["outcome"] for v in views] == ["ok", "ResourceNotFoundException"]
    assert views[0]["result"]["lead_id"] == lead_id


def test_audit_leads_lists_unrecorded_leads_apart(cli: Cli, tmp_path: Path) -> None:
    assert cli("collections", "create", "cases")[0] == 0
    gate = Gateway(Settings(data_dir=tmp_path / "data"))
    try:
        lost = a_lead(request_id="req-lost", collection_id="cases")
        gate._leads.store.add_lead(lost)  # as if the process died before the search's record
    finally:
        gate.close()
    code, out, _ = cli("audit", "leads", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = cli("audit", "leads", "--unrecorded", "--json")
    assert code == 0 and [lead["lead_id"] for lead in json.loads(out)] == [lost.lead_id]
    code, out, _ = cli("audit", "leads", "--unrecorded")
    assert code == 0 and "Unrecorded leads" in out and lost.lead_id in out
