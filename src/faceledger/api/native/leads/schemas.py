"""Request and response models of ``/v1/leads``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from faceledger.domain.leads import MAX_NOTE_CHARS


class LeadCandidateOut(BaseModel):
    candidate_id: str = Field(description="The FaceId (kind face) or UserId (kind user).")
    kind: str = Field(description="face or user.")
    similarity: float = Field(description="Calibrated Similarity, 0–100.")
    rank: int = Field(description="0 for the best candidate.")
    external_image_id: str | None
    decision: str | None = Field(
        description="The decision in force (the latest): confirmed, rejected, inconclusive; "
        "null while undecided."
    )


class LeadDecisionOut(BaseModel):
    candidate_id: str
    decision: str
    note: str
    reviewer: str = Field(description="The principal who decided.")
    request_id: str
    decided_at: float = Field(description="Epoch seconds.")


class LeadOut(BaseModel):
    lead_id: str
    state: str = Field(description="open until every candidate has a decision, then decided.")
    created_at: float = Field(description="Epoch seconds.")
    operation: str = Field(description="The search that made the lead (SearchFacesByImage, …).")
    source: str = Field(description="Where the search came from: rekognition, native, cli, web…")
    request_id: str = Field(description="The search's request id, as its ledger record has it.")
    principal: str = Field(description="Who searched (and so may not review the lead).")
    purpose: str | None
    case_reference: str | None
    collection_id: str
    threshold: float = Field(description="The search's effective threshold.")
    face_count: int | None = Field(description="Faces in the collection when it was searched.")
    fpir: float | None = Field(description="Expected false-positive identification rate.")
    hit_rate: float | None = Field(description="Expected share of enrolled people found.")
    candidates: list[LeadCandidateOut] = Field(description="Best first.")
    decisions: list[LeadDecisionOut] = Field(description="Every decision, oldest first.")


class LeadList(BaseModel):
    leads: list[LeadOut]
    next_token: str | None = Field(description="Pass as `after` for the next page.")


class DecisionIn(BaseModel):
    candidate_id: str = Field(description="A FaceId or UserId among the lead's candidates.")
    decision: Literal["confirmed", "rejected", "inconclusive"]
    note: str = Field(
        default="",
        max_length=MAX_NOTE_CHARS,
        description="Why (required for confirmed).",
    )
