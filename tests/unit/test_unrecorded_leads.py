"""A lead no ledger record names (the process stopped between writing the lead and its
search's record) is reported by ``verify_ledger`` (``faceledger audit verify``) as unrecorded;
a lead its search's record names is not."""

from __future__ import annotations

from pathlib import Path

from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent, Caller
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway
from helpers.leads import a_lead

OPERATOR = Caller(Principal("operator", ROLES, "K0"), "cli", "")
OFFICER = Caller(Principal("officer", ("search",), "K1"), "native", "search-1")


def test_verify_names_leads_in_no_record(tmp_path: Path) -> None:
    gate = Gateway(Settings(data_dir=tmp_path / "data"))
    try:
        assert gate.verify_ledger(OPERATOR).warnings == ()
        recorded, lost = (a_lead(request_id=OFFICER.request_id) for _ in range(2))
        gate._leads.store.add_lead(recorded)
        gate._leads.store.add_lead(lost)
        gate._ledger.append(
            AuditEvent.of(OFFICER, "SearchFacesByImage", result={"lead_id": recorded.lead_id})
        )
        report = gate.verify_ledger(OPERATOR)
        assert report.ok
        [warning] = report.warnings
        assert "1 lead(s) unrecorded" in warning and lost.lead_id in warning
        assert recorded.lead_id not in warning
    finally:
        gate.close()
