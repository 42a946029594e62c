"""``LeadService``: makes a lead of a search with candidates, records decisions, reads leads.

The gateway calls it: inside a search's ``work`` (``open_lead``, before the search's ledger
record, whose result then names the lead), after that record (``recorded``: the lead joins
the queue) and from the lead verbs (``gateway_leads.py``). A lead whose record never landed
(a crash or a failed ledger write in between) stays out of the queue: ``audit verify`` names
it and ``list_leads(recorded=False)`` lists it. It checks what a decision may be
(``domain/leads.py``) and that nobody reviews their own search (separation of duties, like
enrolment and search); the ledger records are the gateway's.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from faceledger.audit.core import ChainLedger
from faceledger.domain.audit import Caller
from faceledger.domain.collections import CollectionMatch
from faceledger.domain.errors import AccessDeniedError, InvalidParameterError
from faceledger.domain.leads import (
    Lead,
    LeadCandidate,
    LeadDecision,
    LeadPage,
    check_decision,
    check_lead_id,
    check_state,
)
from faceledger.domain.results import UserMatch
from faceledger.domain.scale import SearchScale
from faceledger.services.lead_probes import JpegProbes
from faceledger.store.base import LeadStore
from faceledger.store.records import LeadProbe

logger = logging.getLogger(__name__)

#: Makes what a lead keeps of its searched face, once the lead's id is chosen.
ProbeMaker = Callable[[str], LeadProbe | None]
MAX_LEADS_PER_PAGE = 100
# The operations whose ledger records name the leads they made (``result["lead_id"]``; a
# face-search job's end record: ``result["lead_ids"]``, one lead per matched person).
CLOCK_SLACK_S = 300.0  # records before the oldest lead, less this, are not read
LEAD_OPERATIONS = (
    "SearchFaces",
    "SearchFacesByImage",
    "SearchUsers",
    "SearchUsersByImage",
    "StreamFaceMatch",
    "FaceSearchJob",
)


def named_leads(result: dict[str, Any]) -> list[str]:
    """The lead ids a ledger record's result names (``lead_id`` and ``lead_ids``)."""
    named = [result.get("lead_id")]
    many = result.get("lead_ids")
    if isinstance(many, list):
        named += many
    return [lead_id for lead_id in named if isinstance(lead_id, str)]


def face_candidates(matches: Sequence[CollectionMatch]) -> tuple[LeadCandidate, ...]:
    """A face search's matches as a lead's candidates, best first."""
    return tuple(
        LeadCandidate(
            candidate_id=m.face.face_id,
            kind="face",
            similarity=round(m.similarity, 3),
            rank=rank,
            external_image_id=m.face.external_image_id,
        )
        for rank, m in enumerate(matches)
    )


def user_candidates(matches: Sequence[UserMatch]) -> tuple[LeadCandidate, ...]:
    """A user search's matches as a lead's candidates, best first."""
    return tuple(
        LeadCandidate(
            candidate_id=m.user.user_id,
            kind="user",
            similarity=round(m.similarity, 3),
            rank=rank,
        )
        for rank, m in enumerate(matches)
    )


class LeadService:
    """Leads over a ``LeadStore`` (the wiring root gives it the process's store);
    ``jpeg_probes``: keeps a stream match's best shot as its lead's searched face."""

    def __init__(self, store: LeadStore, *, jpeg_probes: JpegProbes | None = None) -> None:
        self.store = store
        self._jpeg_probes = jpeg_probes

    def open_lead(
        self,
        caller: Caller,
        operation: str,
        collection_id: str,
        threshold: float,
        candidates: tuple[LeadCandidate, ...],
        scale: SearchScale | None = None,
        probe: ProbeMaker | None = None,
        probe_jpeg: bytes = b"",
    ) -> str | None:
        """Write a lead for a search with candidates (state ``open``, not yet recorded) with
        what ``probe`` keeps of the searched face (or, for a stream match, ``probe_jpeg``: its
        face crop, kept when the collection keeps crops), and return its id; None (and
        nothing written) when there is no candidate."""
        if not candidates:
            return None
        lead = Lead(
            lead_id=str(uuid.uuid4()),
            created_at=time.time(),
            request_id=caller.request_id,
            operation=operation,
            source=caller.source,
            principal=caller.principal.name,
            purpose=caller.purpose,
            case_reference=caller.case_reference,
            collection_id=collection_id,
            threshold=threshold,
            candidates=candidates,
            face_count=None if scale is None else scale.face_count,
            fpir=None if scale is None else scale.fpir,
            hit_rate=None if scale is None else scale.hit_rate,
        )
        if probe is not None:
            kept = probe(lead.lead_id)
        elif probe_jpeg and self._jpeg_probes is not None:
            kept = self._jpeg_probes.seal(collection_id, lead.lead_id, probe_jpeg)
        else:
            kept = None
        self.store.add_lead(lead, kept)
        return lead.lead_id

    def recorded(self, operation: str, result: dict[str, Any]) -> None:
        """After a record of ``operation`` landed with ``result``: the lead it names (if any)
        joins the queue. A failure is logged, not raised (the call itself succeeded);
        ``audit verify`` sets the flag of a lead a record names."""
        if operation not in LEAD_OPERATIONS:
            return
        for lead_id in named_leads(result):
            try:
                self.store.mark_recorded(lead_id)
            except Exception:
                logger.exception("lead %s: its record landed but it could not be marked", lead_id)

    def lead(self, lead_id: str) -> Lead:
        check_lead_id(lead_id)
        return self.store.lead(lead_id)

    def list_leads(
        self,
        *,
        state: str | None = None,
        collection_id: str | None = None,
        newest_first: bool = False,
        after: str | None = None,
        limit: int = MAX_LEADS_PER_PAGE,
        recorded: bool = True,
    ) -> LeadPage:
        """A page of leads (oldest first: the review queue) and the token of the next;
        ``recorded=False``: the leads whose search's record never landed instead."""
        check_state(state)
        if after is not None:
            check_lead_id(after)
        if not 1 <= limit <= MAX_LEADS_PER_PAGE:
            raise InvalidParameterError(f"limit must be between 1 and {MAX_LEADS_PER_PAGE}")
        leads = self.store.list_leads(
            state=state,
            collection_id=collection_id,
            newest_first=newest_first,
            after=after,
            limit=limit + 1,
            recorded=recorded,
        )
        more = len(leads) > limit
        page = tuple(leads[:limit])
        return LeadPage(page, page[-1].lead_id if more else None)

    def every_lead(
        self, collection_id: str | None = None, *, recorded: bool | None = None
    ) -> list[Lead]:
        """Every lead (of one collection; recorded or not), oldest first, a page at a time."""
        out: list[Lead] = []
        after: str | None = None
        while True:
            page = self.store.list_leads(
                collection_id=collection_id,
                after=after,
                limit=MAX_LEADS_PER_PAGE,
                recorded=recorded,
            )
            out += page
            if len(page) < MAX_LEADS_PER_PAGE:
                return out
            after = page[-1].lead_id

    def unrecorded(self, ledger: ChainLedger) -> list[str]:
        """The ids of leads named by no ledger record (a crash between writing the lead and
        its search's record), oldest first. The leads are read before the ledger, so a search
        running meanwhile is never counted. A lead that a record names but that is not marked
        recorded (its mark failed after the record) is marked now: it joins the queue."""
        leads = self.every_lead()
        if not leads:  # nothing to look for: the ledger (maybe millions of records) is not read
            return []
        unmarked = {lead.lead_id for lead in self.every_lead(recorded=False)}
        # A lead is written before the record naming it: older records cannot name one.
        since = min(lead.created_at for lead in leads) - CLOCK_SLACK_S
        named: set[str] = set()
        for entry in ledger.entries(since=since, contains=b'"lead_id'):  # and "lead_ids"
            event = entry.event
            if event is not None and event.operation in LEAD_OPERATIONS and event.outcome == "ok":
                named.update(named_leads(event.result))
        for lead_id in sorted(unmarked & named):
            self.store.mark_recorded(lead_id)
        return [lead.lead_id for lead in leads if lead.lead_id not in named]

    def decide(
        self, caller: Caller, lead_id: str, candidate_id: str, decision: str, note: str
    ) -> Lead:
        """Append ``caller``'s decision on one candidate; the lead afterwards. The searcher may
        not review their own lead (``AccessDeniedException``)."""
        check_decision(decision, note)
        lead = self.lead(lead_id)
        if lead.candidate(candidate_id) is None:
            raise InvalidParameterError(f"lead {lead_id} has no candidate {candidate_id!r}")
        if lead.principal == caller.principal.name:
            raise AccessDeniedError(
                f"principal {caller.principal.name!r} made the search of lead {lead_id} and "
                "may not review it (separation of duties)"
            )
        return self.store.add_decision(
            LeadDecision(
                lead_id=lead_id,
                candidate_id=candidate_id,
                decision=decision,
                note=note,
                reviewer=caller.principal.name,
                request_id=caller.request_id,
                decided_at=time.time(),
            )
        )
