"""Domain leads → ``/v1/leads`` response models."""

from __future__ import annotations

from faceledger.api.native.leads.schemas import LeadCandidateOut, LeadDecisionOut, LeadOut
from faceledger.domain.leads import Lead


def lead_out(lead: Lead) -> LeadOut:
    latest = lead.latest()
    return LeadOut(
        lead_id=lead.lead_id,
        state=lead.state,
        created_at=lead.created_at,
        operation=lead.operation,
        source=lead.source,
        request_id=lead.request_id,
        principal=lead.principal,
        purpose=lead.purpose,
        case_reference=lead.case_reference,
        collection_id=lead.collection_id,
        threshold=lead.threshold,
        face_count=lead.face_count,
        fpir=lead.fpir,
        hit_rate=lead.hit_rate,
        candidates=[
            LeadCandidateOut(
                candidate_id=c.candidate_id,
                kind=c.kind,
                similarity=c.similarity,
                rank=c.rank,
                external_image_id=c.external_image_id,
                decision=latest[c.candidate_id].decision if c.candidate_id in latest else None,
            )
            for c in lead.candidates
        ],
        decisions=[
            LeadDecisionOut(
                candidate_id=d.candidate_id,
                decision=d.decision,
                note=d.note,
                reviewer=d.reviewer,
                request_id=d.request_id,
                decided_at=d.decided_at,
            )
            for d in lead.decisions
        ],
    )
