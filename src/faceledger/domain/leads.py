"""Leads: a search answer with candidates, waiting for a human decision (``docs/REVIEW.md``).

A lead is made by every search that found at least one candidate (faces or users, by image or
by id, from any surface, and each stream match). Its id is in the search's ledger record. A
reviewer (role ``review``) records a decision on each candidate — confirmed, rejected or
inconclusive, with a note — and each decision is a ledger record too. Decisions are
append-only: a later one supersedes an earlier one for the same candidate and both stay. A
lead is ``open`` until every candidate has a decision, then ``decided``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from faceledger.domain.errors import InvalidParameterError

DECISIONS: tuple[str, ...] = ("confirmed", "rejected", "inconclusive")
OPEN = "open"
DECIDED = "decided"
STATES: tuple[str, ...] = (OPEN, DECIDED)
MAX_NOTE_CHARS = 1000
# What a candidate is: an enrolled face (FaceId) or a user (UserId).
CANDIDATE_KINDS: tuple[str, ...] = ("face", "user")
LEAD_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class LeadCandidate:
    """One candidate of a lead: its FaceId or UserId (``kind``), the ExternalImageId of the
    face when known, the calibrated 0–100 Similarity and its rank (0: best)."""

    candidate_id: str
    kind: str
    similarity: float
    rank: int
    external_image_id: str | None = None


@dataclass(frozen=True)
class LeadDecision:
    """A reviewer's decision on one candidate (``decided_at``: epoch seconds)."""

    lead_id: str
    candidate_id: str
    decision: str
    note: str
    reviewer: str
    request_id: str
    decided_at: float


@dataclass(frozen=True)
class Lead:
    """A search with candidates: who searched, why, where, at what threshold and scale
    (``fpir``: the expected false-positive identification rate; ``hit_rate``: the expected
    share of enrolled people found), its candidates best first and every decision so far,
    oldest first. ``created_at``: epoch seconds."""

    lead_id: str
    created_at: float
    request_id: str
    operation: str
    source: str
    principal: str
    collection_id: str
    threshold: float
    candidates: tuple[LeadCandidate, ...]
    purpose: str | None = None
    case_reference: str | None = None
    face_count: int | None = None
    fpir: float | None = None
    hit_rate: float | None = None
    decisions: tuple[LeadDecision, ...] = ()

    def latest(self) -> dict[str, LeadDecision]:
        """The decision in force for each decided candidate (the latest one)."""
        out: dict[str, LeadDecision] = {}
        for decision in self.decisions:
            out[decision.candidate_id] = decision
        return out

    @property
    def state(self) -> str:
        """``decided`` once every candidate has a decision, else ``open``."""
        decided = self.latest()
        return DECIDED if all(c.candidate_id in decided for c in self.candidates) else OPEN

    def candidate(self, candidate_id: str) -> LeadCandidate | None:
        return next((c for c in self.candidates if c.candidate_id == candidate_id), None)


@dataclass(frozen=True)
class LeadPage:
    """A page of leads and the id to continue after (None: the last page)."""

    leads: tuple[Lead, ...]
    next_token: str | None = None


def check_decision(decision: str, note: str) -> None:
    """A decision is one of ``DECISIONS``; its note is printable text of at most
    ``MAX_NOTE_CHARS`` characters, required for ``confirmed``."""
    if decision not in DECISIONS:
        raise InvalidParameterError(f"decision must be one of {', '.join(DECISIONS)}")
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidParameterError(f"the note must be at most {MAX_NOTE_CHARS} characters")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in note):
        raise InvalidParameterError("the note must be printable text")
    if decision == "confirmed" and not note.strip():
        raise InvalidParameterError("a confirmed decision needs a note saying why")


def check_state(state: str | None) -> None:
    if state is not None and state not in STATES:
        raise InvalidParameterError(f"state must be one of {', '.join(STATES)}")


def check_lead_id(lead_id: str) -> None:
    if not LEAD_ID_RE.fullmatch(lead_id):
        raise InvalidParameterError("a lead id is a UUID (8-4-4-4-12 lowercase hex digits)")
