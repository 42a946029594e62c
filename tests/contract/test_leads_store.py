"""The lead store on both backends (SQLite, PostgreSQL at the head revision): a lead and its
candidates round-trip, decisions are append-only and set the state, the queue is oldest first
and pages, and leads are listed by state and collection."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.domain.errors import ResourceNotFoundError
from faceledger.domain.leads import Lead, LeadCandidate, LeadDecision
from faceledger.store.factory import open_lead_store


def _lead(created_at: float, collection_id: str = "c1", principal: str = "searcher") -> Lead:
    return Lead(
        lead_id=str(uuid.uuid4()),
        created_at=created_at,
        request_id=f"req-{created_at}",
        operation="SearchFacesByImage",
        source="native",
        principal=principal,
        collection_id=collection_id,
        threshold=80.0,
        purpose="investigation",
        case_reference="CASE-1",
        face_count=1234,
        fpir=0.0012,
        hit_rate=0.97,
        candidates=(
            LeadCandidate("face-a", "face", 91.5, 0, "alice.jpg"),
            LeadCandidate("face-b", "face", 83.25, 1, None),
        ),
    )


def _decision(lead: Lead, candidate: str, decision: str, at: float) -> LeadDecision:
    return LeadDecision(lead.lead_id, candidate, decision, f"note {at}", "reviewer", "r", at)


def test_leads_round_trip_decide_and_page(tmp_path: Path, database_url: str | None) -> None:
    store = open_lead_store(Settings(data_dir=tmp_path, database_url=database_url))
    try:
        first, second, other = _lead(100.0), _lead(200.0), _lead(150.0, collection_id="c2")
        for lead in (second, first, other):  # written out of order: the queue sorts by time
            store.add_lead(lead)

        assert store.lead(first.lead_id) == first  # every field, candidates best first
        assert store.lead(first.lead_id).state == "open"
        with pytest.raises(ResourceNotFoundError):
            store.lead(str(uuid.uuid4()))

        queue = store.list_leads(state="open")
        assert [lead.lead_id for lead in queue] == [first.lead_id, other.lead_id, second.lead_id]
        newest = store.list_leads(newest_first=True, limit=2)
        assert [lead.lead_id for lead in newest] == [second.lead_id, other.lead_id]
        page = store.list_leads(after=first.lead_id, limit=1)
        assert [lead.lead_id for lead in page] == [other.lead_id]
        by_collection = store.list_leads(collection_id="c2")
        assert [lead.lead_id for lead in by_collection] == [other.lead_id]

        # one candidate decided: still open; a later decision supersedes, both stay
        after_one = store.add_decision(_decision(first, "face-a", "confirmed", 300.0))
        assert after_one.state == "open"
        after_two = store.add_decision(_decision(first, "face-b", "inconclusive", 301.0))
        assert after_two.state == "decided"
        again = store.add_decision(_decision(first, "face-b", "rejected", 302.0))
        assert [d.decision for d in again.decisions] == ["confirmed", "inconclusive", "rejected"]
        assert again.latest()["face-b"].decision == "rejected"
        assert again.state == "decided"

        assert [lead.lead_id for lead in store.list_leads(state="decided")] == [first.lead_id]
        assert first.lead_id not in {lead.lead_id for lead in store.list_leads(state="open")}

        assert store.delete_leads("c2", created_before=150.0) == []
        assert store.delete_leads("c2") == [other.lead_id]
        with pytest.raises(ResourceNotFoundError):
            store.lead(other.lead_id)
    finally:
        store.close()
