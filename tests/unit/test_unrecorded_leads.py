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


def test_only_ok_records_of_lead_operations_name_a_lead(tmp_path: Path) -> None:
    """The one-pass scan (``entries(contains=…)``) counts what the per-operation queries did:
    a job's ``lead_ids`` name leads; a refused search or another verb mentioning a lead does not."""
    gate = Gateway(Settings(data_dir=tmp_path / "data"))
    try:
        one, job_a, job_b, refused, other, lost = (
            a_lead(request_id=OFFICER.request_id) for _ in range(6)
        )
        for lead in (one, job_a, job_b, refused, other, lost):
            gate._leads.store.add_lead(lead)
        for _ in range(50):  # records that name no lead
            gate._ledger.append(AuditEvent.of(OFFICER, "DetectFaces", result={"faces": 1}))
        gate._ledger.append(AuditEvent.of(OFFICER, "SearchFaces", result={"lead_id": one.lead_id}))
        gate._ledger.append(
            AuditEvent.of(
                OFFICER, "FaceSearchJob", result={"lead_ids": [job_a.lead_id, job_b.lead_id]}
            )
        )
        gate._ledger.append(
            AuditEvent.of(
                OFFICER,
                "SearchFacesByImage",
                outcome="ThrottlingException",
                result={"lead_id": refused.lead_id},
            )
        )
        gate._ledger.append(AuditEvent.of(OFFICER, "GetLead", result={"lead_id": other.lead_id}))
        [warning] = gate.verify_ledger(OPERATOR).warnings
        assert "3 lead(s) unrecorded" in warning
        for lead in (refused, other, lost):
            assert lead.lead_id in warning
        for lead in (one, job_a, job_b):
            assert lead.lead_id not in warning
    finally:
        gate.close()
