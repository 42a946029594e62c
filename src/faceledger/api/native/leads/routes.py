"""``/v1/leads``: list leads, read one, show its searched face, record a decision on one of its
candidates."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import Response

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep
from faceledger.api.native.collections.params import QuerySearcher
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
    unrecorded: Annotated[
        bool,
        Query(
            description="true: only the leads whose search's ledger record never landed (a "
            "crash or a failed ledger write; not in the queue), for an auditor."
        ),
    ] = False,
) -> LeadList:
    """Leads by state and collection, a page at a time (roles `review`, `audit`); only leads
    whose search was recorded, unless `unrecorded=true`."""
    page = await run_blocking(
        request,
        gate.list_leads,
        caller,
        state=state,
        collection_id=collection_id,
        newest_first=order == "newest",
        after=after,
        limit=max_results,
        unrecorded=unrecorded,
    )
    return LeadList(leads=[lead_out(lead) for lead in page.leads], next_token=page.next_token)


@router.get("/leads/{lead_id}", summary="Read one lead with its candidates and decisions")
async def get_lead(
    request: Request, gate: GatewayDep, caller: CallerDep, lead_id: LeadIdPath
) -> LeadOut:
    """The lead, its candidates (with the decision in force) and every decision so far."""
    return lead_out(await run_blocking(request, gate.get_lead, caller, lead_id))


@router.get(
    "/leads/{lead_id}/probe-crop",
    summary="Show the searched face of a lead",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The searched face's JPEG."}},
)
async def get_lead_probe_crop(
    request: Request, gate: GatewayDep, searcher: QuerySearcher, lead_id: LeadIdPath
) -> Response:
    """The searched face of a lead whose collection keeps face crops: the crop of the searched
    photo's face (kept, encrypted, with the lead), or for a search by FaceId that enrolled
    face's kept crop. Roles search and review; every view is ledgered (`GetLeadProbeCrop`).
    400 ResourceNotFoundException when the lead kept none."""
    jpeg = await run_blocking(request, gate.get_lead_probe_crop, searcher, lead_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


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
