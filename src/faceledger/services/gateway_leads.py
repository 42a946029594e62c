"""The gateway's lead verbs: list and read leads, record a reviewer's decision.

Leads are made by the searches (``gateway_search.py``) and stream matches; these verbs are
what a reviewer (role ``review``) and an auditor (``audit``, reading only) call. Each is one
ledger record; a decision's record names the lead, the search's request id, the candidate,
the decision and the note (cut and hashed by the ledger's guard when long).
"""

from __future__ import annotations

from typing import Any

from faceledger.domain.audit import Caller
from faceledger.domain.leads import Lead, LeadPage
from faceledger.services.gateway_base import GatewayParts
from faceledger.services.leads import MAX_LEADS_PER_PAGE


class LeadVerbs(GatewayParts):
    """Leads: the review queue, one lead, a decision."""

    def list_leads(
        self,
        caller: Caller,
        *,
        state: str | None = None,
        collection_id: str | None = None,
        newest_first: bool = False,
        after: str | None = None,
        limit: int = MAX_LEADS_PER_PAGE,
        unrecorded: bool = False,
    ) -> LeadPage:
        """Leads by state and collection; oldest first (the queue) unless ``newest_first``;
        ``after``: the ``next_token`` of the previous page. Only leads whose search's record
        landed, unless ``unrecorded``: then only the others (for an auditor)."""

        def summary(page: LeadPage) -> dict[str, Any]:
            out: dict[str, Any] = {
                "state": state,
                "newest_first": newest_first,
                "count": len(page.leads),
                "lead_ids": [lead.lead_id for lead in page.leads],
            }
            if unrecorded:
                out["unrecorded"] = True
            return out

        return self._run(
            caller,
            "ListLeads",
            lambda: self._leads.list_leads(
                state=state,
                collection_id=collection_id,
                newest_first=newest_first,
                after=after,
                limit=limit,
                recorded=not unrecorded,
            ),
            collection_id=collection_id,
            summary=summary,
        )

    def get_lead(self, caller: Caller, lead_id: str) -> Lead:
        """One lead with its candidates and every decision so far."""
        return self._run(
            caller,
            "GetLead",
            lambda: self._leads.lead(lead_id),
            summary=lambda lead: {
                "lead_id": lead.lead_id,
                "lead_collection_id": lead.collection_id,
                "state": lead.state,
            },
        )

    def lead_outcomes(
        self, caller: Caller, *, collection_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Decisions by outcome (``evaluation/report/decisions.py``): per collection and
        effective threshold, leads, confirmed / rejected / inconclusive candidates, undecided
        leads and the observed rejected share. One ListLeads record (every lead is read)."""
        from faceledger.evaluation.report.decisions import decisions_by_outcome

        def work() -> tuple[list[dict[str, Any]], int]:
            leads = self._leads.every_lead(collection_id)
            return decisions_by_outcome(leads), len(leads)

        rows, _ = self._run(
            caller,
            "ListLeads",
            work,
            collection_id=collection_id,
            summary=lambda out: {"decisions_by_outcome": len(out[0]), "count": out[1]},
        )
        return rows

    def review_lead(
        self,
        caller: Caller,
        lead_id: str,
        candidate_id: str,
        *,
        decision: str,
        note: str = "",
    ) -> Lead:
        """Record ``caller``'s decision (confirmed, rejected or inconclusive, with a note:
        required for confirmed) on one candidate (FaceId or UserId) of a lead; the lead
        afterwards. The searcher may not review their own lead: refused
        (``AccessDeniedException``) and recorded."""
        return self._run(
            caller,
            "ReviewLead",
            lambda: self._leads.decide(caller, lead_id, candidate_id, decision, note),
            summary=lambda lead: {
                "lead_id": lead.lead_id,
                "lead_collection_id": lead.collection_id,
                "search_request_id": lead.request_id,
                "search_operation": lead.operation,
                "candidate": candidate_id,
                "decision": decision,
                "note": note,
                "state": lead.state,
            },
        )
