"""``verify_ledger`` (``faceledger audit verify``) looks for unrecorded leads by reading the
ledger's search records; with no lead at all it does not read them (on a 1 M-record ledger
that reading took four times as long as the verification itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent, Caller
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway

OPERATOR = Caller(Principal("operator", ROLES, "K0"), "cli", "")
OFFICER = Caller(Principal("officer", ("search",), "K1"), "native", "search-1")


def test_verify_without_leads_does_not_read_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gateway(Settings(data_dir=tmp_path / "data"))
    try:
        for n in range(3):
            gate._ledger.append(
                AuditEvent.of(OFFICER, "SearchFacesByImage", result={"FaceMatches": [], "n": n})
            )

        def unread(*args: object, **kwargs: object) -> None:
            raise AssertionError("the ledger's records were read for leads")

        monkeypatch.setattr(gate._ledger, "entries", unread)
        report = gate.verify_ledger(OPERATOR)
        assert report.ok and report.records >= 3 and report.warnings == ()
    finally:
        gate.close()
