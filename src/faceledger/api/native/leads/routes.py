"""``/v1/leads``: list leads, read one, record a decision on one of its candidates."""

from __future__ import annotations

from fastapi import Request

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep
from faceledger.api.native.leads.mappers import lead_out
from faceledger.api.native.leads.params import (
    AfterQuery,
    CollectionQuery,
    LeadIdPath,
    LeadPageSize,
    OrderQuery,
    StateQuery,
    leads_router,
)
from faceledger.api.native.leads.schemas import DecisionIn, LeadList, LeadOut
from faceledger.services.leads import MAX_LEADS_PER_PAGE

router = leads_router()


@router.get("/leads", summary="List leads (the review queue: open, oldest first)")
async def list_leads(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    state: StateQuery = None,
    collection_id: CollectionQuery = None,
    order: OrderQuery = "oldest",
    after: AfterQuery = None,
    max_results: LeadPageSize = MAX_LEADS_PER_PAGE,
) -> LeadList:
    """Leads by state and collection, a page at a time (roles `review`, `audit`)."""
    page = await run_blocking(
        request,
        gate.list_leads,
        caller,
        state=state,
        collection_id=collection_id,
        newest_first=order == "newest",
        after=after,
        limit=max_results,
    )
    return LeadList(leads=[lead_out(lead) for lead in page.leads], next_token=page.next_token)


@router.get("/leads/{lead_id}", summary="Read one lead with its candidates and decisions")
async def get_lead(
    request: Request, gate: GatewayDep, caller: CallerDep, lead_id: LeadIdPath
) -> LeadOut:
    """The lead, its candidates (with the decision in force) and every decision so far."""
    return lead_out(await run_blocking(request, gate.get_lead, caller, lead_id))


@router.post(
    "/leads/{lead_id}/decisions",
    status_code=201,
    summary="Record a decision on one candidate of a lead",
)
async def review_lead(
    request: Request, gate: GatewayDep, caller: CallerDep, lead_id: LeadIdPath, body: DecisionIn
) -> LeadOut:
    """Role `review`. Decisions are append-only: a later one on the same candidate supersedes
    the earlier one (both stay). The searcher may not review their own lead (403
    AccessDeniedException, recorded). A note is required for `confirmed`."""
    lead = await run_blocking(
        request,
        gate.review_lead,
        caller,
        lead_id,
        body.candidate_id,
        decision=body.decision,
        note=body.note,
    )
    return lead_out(lead)
