"""Leads follow their collection's retention: the maintenance pass deletes the leads (and their
decisions) made before the retention window, with one ``PurgeExpiredLeads`` record naming them;
newer leads and collections without retention keep theirs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import ResourceNotFoundError
from faceledger.domain.leads import Lead
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway
from helpers.leads import a_lead

ADMIN = Caller(Principal("admin", ROLES, "K0"), "cli", "setup")
REVIEWER = Caller(Principal("reviewer", ("review",), "K1"), "native", "r")


def _lead(collection_id: str, age_days: float) -> Lead:
    created_at = time.time() - age_days * 86400.0
    return a_lead(collection_id=collection_id, created_at=created_at, threshold=90.0)


def test_maintenance_purges_leads_past_retention(tmp_path: Path) -> None:
    gate = Gateway(Settings(data_dir=tmp_path / "data"))
    try:
        for cid in ("kept30", "forever"):
            gate.create_collection(ADMIN, cid)
        gate.put_policy(ADMIN, "kept30", CollectionPolicy(retention_days=30))
        old, new, timeless = _lead("kept30", 31), _lead("kept30", 1), _lead("forever", 400)
        store = gate._leads.store
        for lead in (old, new, timeless):
            store.add_lead(lead)
        gate.review_lead(REVIEWER, old.lead_id, old.candidates[0].candidate_id, decision="rejected")

        gate.maintain()

        with pytest.raises(ResourceNotFoundError):
            gate.get_lead(REVIEWER, old.lead_id)
        assert gate.get_lead(REVIEWER, new.lead_id).lead_id == new.lead_id
        assert gate.get_lead(REVIEWER, timeless.lead_id).lead_id == timeless.lead_id
        records = [
            e.event
            for e in gate._ledger.entries(operation="PurgeExpiredLeads")
            if e.event is not None
        ]
        assert [(r.collection_id, r.result["lead_ids"]) for r in records] == [
            ("kept30", [old.lead_id])
        ]
        gate.maintain()  # nothing more expired: no further record
        assert len(list(gate._ledger.entries(operation="PurgeExpiredLeads"))) == 1
    finally:
        gate.close()
