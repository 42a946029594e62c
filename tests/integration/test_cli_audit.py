"""`faceledger audit verify|tail|export|checkpoint`, in-process through ``main`` (fast) and
once as the real console script."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from faceledger.audit import Ledger
from faceledger.cli.main import main
from faceledger.domain.audit import AuditEvent
from helpers.cli import run


def event(
    n: int, *, principal: str, collection: str, outcome: str = "ok", **extra: str
) -> AuditEvent:
    return AuditEvent(
        operation=extra.get("operation", "SearchFacesByImage"),
        principal=principal,
        key_id=f"FLAK{n:016d}",
        roles=("search",),
        source="cli",
        request_id=f"req-{n}",
        outcome=outcome,
        purpose=extra.get("purpose", "find a missing person"),
        case_reference="CASE-1",
        collection_id=collection,
        probe_sha256=(hashlib.sha256(b"%d" % n).hexdigest(),),
        result={"FaceMatches": [{"FaceId": f"face-{n}", "Similarity": 97.5}]},
    )


class Cli:
    """Runs ``faceledger`` in-process with its data dir and key in a temporary folder."""

    def __init__(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.data = tmp_path / "data"
        self.key = tmp_path / "keys" / "ledger.key"
        monkeypatch.setenv("FACELEDGER_DATA_DIR", str(self.data))
        monkeypatch.setenv("FACELEDGER_LEDGER_KEY_FILE", str(self.key))
        self.capsys = capsys

    def ledger(self) -> Ledger:
        return Ledger(self.data / "ledger.sqlite3", key_file=self.key)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as stopped:
            main(list(args))
        captured = self.capsys.readouterr()
        code = stopped.value.code
        return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, monkeypatch, capsys)


@pytest.fixture
def filled(cli: Cli) -> float:
    """Six events, then (after the returned epoch time) four more; returns that time."""
    ledger = cli.ledger()
    for n in range(6):
        ledger.append(event(n, principal="alice" if n % 2 else "bob", collection="wanted"))
    time.sleep(0.02)
    middle = time.time()
    time.sleep(0.02)
    ledger.append(event(6, principal="alice", collection="missing"))
    ledger.append(
        event(7, principal="carol", collection="missing", outcome="AccessDeniedException")
    )
    ledger.append(event(8, principal="bob", collection="missing", operation="IndexFaces"))
    ledger.append(event(9, principal="dave", collection="missing", purpose='=HYPERLINK("x")'))
    ledger.close()  # seq 11 is the final signed checkpoint
    return middle


# -- verify ---------------------------------------------------------------------------------
def test_verify_an_intact_ledger(cli: Cli, filled: float) -> None:
    code, out, _ = cli("audit", "verify")
    assert code == 0
    assert out.startswith("ledger intact: 11 records (1 signed checkpoint, the last at seq 11")
    code, out, _ = cli("audit", "verify", "--json")
    report = json.loads(out)
    # the first verify is itself ledgered (VerifyLedger, 12) and signed on exit (13)
    assert code == 0 and report["ok"] and report["records"] == 13 and report["witness_seq"] == 13
    code, out, _ = cli("audit", "export", "--operation", "VerifyLedger")
    verified = _jsonl(out)
    assert [r["seq"] for r in verified] == [12, 14]
    assert verified[0]["source"] == "cli" and verified[0]["result"]["intact"] is True


def test_verify_names_the_first_bad_record(cli: Cli, filled: float) -> None:
    db = sqlite3.connect(cli.data / "ledger.sqlite3", isolation_level=None)
    db.execute("DROP TRIGGER records_no_update")
    db.execute("UPDATE records SET body = replace(body, 'alice', 'alicf') WHERE seq = 4")
    code, out, _ = cli("audit", "verify")
    assert code == 1
    assert (
        out.strip()
        == "first bad record: 4: record 4 was edited: its body does not match its digest"
    )
    code, out, _ = cli("audit", "verify", "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == 4


# -- tail -----------------------------------------------------------------------------------
def test_tail_shows_the_newest_records(cli: Cli, filled: float) -> None:
    code, out, _ = cli("audit", "tail", "-n", "3")
    assert code == 0
    assert "carol" in out and "dave" in out and "AccessDeniedException" in out
    assert "IndexFaces" in out and "FaceMatches: 1" in out and "bob" in out
    assert "alice" not in out  # seq 7 is the 4th newest event
    code, out, _ = cli("audit", "tail", "-n", "2", "--json")
    records = json.loads(out)
    # the first tail is itself ledgered (ReadLedger, 12; 11 and 13 are checkpoints)
    assert code == 0 and [r["seq"] for r in records] == [10, 12]
    assert records[0]["principal"] == "dave" and records[0]["result"]["FaceMatches"]
    assert records[1]["operation"] == "ReadLedger" and records[1]["result"]["count"] == 3


def test_tail_of_an_empty_ledger(cli: Cli) -> None:
    code, out, _ = cli("audit", "tail")
    assert code == 0 and "no records yet" in out


# -- export ---------------------------------------------------------------------------------
def _jsonl(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_export_jsonl_with_filters(cli: Cli, filled: float) -> None:
    code, out, _ = cli("audit", "export")
    everything = _jsonl(out)
    assert code == 0 and [r["seq"] for r in everything] == list(range(1, 11))
    first = everything[0]
    assert first["principal"] == "bob" and first["kind"] == "event" and len(first["digest"]) == 64
    assert (
        first["time_utc"].endswith("Z")
        and first["probe_sha256"][0] == hashlib.sha256(b"0").hexdigest()
    )
    assert "image" not in json.dumps(first) and "embedding" not in json.dumps(first)

    def seqs(*args: str) -> list[int]:
        code, out, err = cli("audit", "export", *args)
        assert code == 0, err
        # (each export is itself ledgered: ExportLedger records after the filled ones)
        return [r["seq"] for r in _jsonl(out) if r["operation"] != "ExportLedger"]

    assert seqs("--principal", "alice") == [2, 4, 6, 7]
    assert seqs("--collection", "missing", "--principal", "bob") == [9]
    assert seqs("--operation", "IndexFaces") == [9]
    assert seqs("--outcome", "AccessDeniedException") == [8]
    assert seqs("--since", str(filled)) == [7, 8, 9, 10]
    assert seqs("--until", str(filled)) == [1, 2, 3, 4, 5, 6]
    assert seqs("--since", "2000-01-01", "--principal", "carol") == [8]
    assert seqs("--since", "2999-01-01T00:00:00Z") == []


def test_export_csv_to_a_private_file(cli: Cli, filled: float, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    code, out, err = cli(
        "audit", "export", "--format", "csv", "--collection", "missing", "-o", str(target)
    )
    assert code == 0 and out == "" and "exported 4 records" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [int(r["seq"]) for r in rows] == [7, 8, 9, 10]
    assert rows[0]["principal"] == "alice" and rows[0]["roles"] == "search"
    assert json.loads(rows[0]["result"]) == {
        "FaceMatches": [{"FaceId": "face-6", "Similarity": 97.5}]
    }
    assert rows[3]["purpose"] == '\'=HYPERLINK("x")'  # a spreadsheet will not run it
    assert rows[1]["outcome"] == "AccessDeniedException"


def test_export_refuses_a_bad_time(cli: Cli, filled: float) -> None:
    code, _, err = cli("audit", "export", "--since", "last tuesday")
    assert code == 2 and err.startswith("error: --since: expected ISO 8601")


# -- checkpoint and key placement -----------------------------------------------------------
def test_checkpoint_appends_a_signed_record(cli: Cli, filled: float) -> None:
    code, out, _ = cli("audit", "checkpoint")
    assert code == 0 and out.startswith("signed checkpoint 12 (covers record 11); witness: ")
    assert cli("audit", "verify")[0] == 0


def test_a_key_inside_the_data_dir_is_refused(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACELEDGER_LEDGER_KEY_FILE", str(cli.data / "ledger.key"))
    code, _, err = cli("audit", "verify")
    assert code == 2 and "is inside the data directory" in err
    assert not (cli.data / "ledger.key").exists()


# -- the real console script ----------------------------------------------------------------
def test_the_console_script_verifies_and_fails_on_tampering(tmp_path: Path) -> None:
    env = {"FACELEDGER_LEDGER_KEY_FILE": str(tmp_path / "keys" / "ledger.key")}
    ledger = Ledger(tmp_path / "data" / "ledger.sqlite3", key_file=tmp_path / "keys" / "ledger.key")
    ledger.append_many(event(n, principal="erin", collection="c") for n in range(5))
    ledger.close()
    ok = run("audit", "verify", cwd=tmp_path, **env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ledger intact: 6 records")
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)
    db.execute("DROP TRIGGER records_no_delete")
    db.execute("DELETE FROM records WHERE seq = 3")
    bad = run("audit", "verify", cwd=tmp_path, **env)
    assert bad.returncode == 1
    assert bad.stdout.startswith("first bad record: 3: record 3 is missing")
    assert "Traceback" not in bad.stderr
