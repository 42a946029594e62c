"""The Review page: open leads, oldest first, each candidate beside the search that found it,
and a decision form per candidate (confirmed, rejected or inconclusive, with a note). On
request (one tap per candidate) the searched face and the candidate's enrolled face are shown
side by side, each view a ledger record (``GetLeadProbeCrop``, ``GetFaceCrop``).

Every read and every decision is a gateway verb (``ListLeads``, ``ReviewLead``) with source
``web``, so each is a ledger record linked to the search's. Auditors see the queue; only the
``review`` role may decide, and nobody may decide on a lead of their own search (the gateway
refuses, and the refusal is recorded).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.api import run_blocking
from faceledger.api.native.auth import GatewayDep
from faceledger.api.web.images import jpeg_answer
from faceledger.api.web.views import (
    UserDep,
    WebUser,
    false_match_text,
    for_page,
    problem_of,
    read_form,
    render,
    text_field,
)
from faceledger.domain.errors import FaceLedgerError
from faceledger.domain.leads import DECISIONS, MAX_NOTE_CHARS, OPEN, Lead
from faceledger.services.gateway import Gateway

router = APIRouter()

ReviewUser = Annotated[WebUser, Depends(for_page("review"))]
QUEUE_SIZE = 20
DONE_MESSAGES = {
    "confirmed": "Decision saved: confirmed.",
    "rejected": "Decision saved: rejected.",
    "inconclusive": "Decision saved: inconclusive.",
}


def _card(gate: Gateway, lead: Lead) -> dict[str, Any]:
    """What the page shows of one lead."""
    latest = lead.latest()
    calibration = gate.calibration
    fpir = None
    if lead.fpir is not None and lead.fpir > 0:
        fpir = f"about 1 in {round(1 / lead.fpir):,} searches for someone not enrolled"
    return {
        "lead": lead,
        "fpir": fpir,
        "candidates": [
            {
                "candidate": c,
                "false_match": false_match_text(calibration, c.similarity),
                "decision": latest.get(c.candidate_id),
            }
            for c in lead.candidates
        ],
    }


def _queue(gate: Gateway, user: WebUser) -> dict[str, Any]:
    page = gate.list_leads(user.caller(), state=OPEN, limit=QUEUE_SIZE)
    return {"cards": [_card(gate, lead) for lead in page.leads], "more": page.next_token}


@router.get("/review", response_class=HTMLResponse)
async def review_page(request: Request, user: ReviewUser, gate: GatewayDep) -> HTMLResponse:
    done = request.query_params.get("done", "")
    try:
        queue = await run_blocking(request, _queue, gate, user)
    except FaceLedgerError as exc:
        return render(
            request,
            "review.html",
            user,
            **problem_of(exc),
            active="review",
            cards=[],
        )
    return render(
        request,
        "review.html",
        user,
        active="review",
        message=DONE_MESSAGES.get(done, ""),
        decisions=DECISIONS,
        max_note=MAX_NOTE_CHARS,
        **queue,
    )


@router.post("/review/{lead_id}", response_model=None)
async def decide(request: Request, lead_id: str, user: ReviewUser, gate: GatewayDep) -> Response:
    form = await read_form(request, user)
    candidate_id = text_field(form, "candidate_id", max_chars=255)
    decision = text_field(form, "decision", max_chars=32)
    note = text_field(form, "note", max_chars=MAX_NOTE_CHARS)
    try:
        await run_blocking(
            request,
            lambda: gate.review_lead(
                user.caller(), lead_id, candidate_id, decision=decision, note=note
            ),
        )
    except FaceLedgerError as exc:  # the page again, with the problem in place
        queue = await run_blocking(request, _queue, gate, user)
        return render(
            request,
            "review.html",
            user,
            **problem_of(exc),
            active="review",
            decisions=DECISIONS,
            max_note=MAX_NOTE_CHARS,
            failed={"lead_id": lead_id, "candidate_id": candidate_id, "note": note},
            **queue,
        )
    return RedirectResponse(f"/app/review?done={decision}", status_code=303)


@router.get("/leads/{lead_id}/probe-crop", response_model=None)
async def probe_crop(
    request: Request,
    lead_id: str,
    user: UserDep,
    gate: GatewayDep,
    purpose: str = "",
    case: str = "",
) -> Response:
    """A lead's searched face as ``image/jpeg`` (an ``<img>`` on the review page): any
    signed-in user, the gateway decides (roles search and review; each view ledgered). A
    refusal is a short plain-text answer with the error's status."""
    caller = user.caller(purpose, case)
    return await jpeg_answer(request, lambda: gate.get_lead_probe_crop(caller, lead_id))
