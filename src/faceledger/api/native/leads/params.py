"""Route parameters of ``/v1/leads`` (``Annotated`` aliases)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from faceledger.api.native.routes import COMMON_ERRORS, ErrorResponse
from faceledger.domain.collections import COLLECTION_ID_RE
from faceledger.domain.leads import LEAD_ID_RE
from faceledger.services.leads import MAX_LEADS_PER_PAGE

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "InvalidParameterException (malformed id, a candidate the lead does "
        "not have, a decision or note that is not allowed) or ResourceNotFoundException "
        "(no such lead).",
    },
    **COMMON_ERRORS,
}


def leads_router() -> APIRouter:
    return APIRouter(prefix="/v1", tags=["leads"], responses=ERRORS)


LeadIdPath = Annotated[
    str, Path(description="The lead's id (a UUID).", pattern=f"^{LEAD_ID_RE.pattern}$")
]
StateQuery = Annotated[
    Literal["open", "decided"] | None,
    Query(description="open: a candidate waits for a decision; decided: every one has one."),
]
CollectionQuery = Annotated[
    str | None,
    Query(description="Only this collection's leads.", pattern=f"^{COLLECTION_ID_RE.pattern}$"),
]
OrderQuery = Annotated[
    Literal["oldest", "newest"],
    Query(description="oldest first (the review queue) or newest first."),
]
AfterQuery = Annotated[
    str | None,
    Query(
        description="`next_token` of the previous page (a lead id).",
        pattern=f"^{LEAD_ID_RE.pattern}$",
    ),
]
LeadPageSize = Annotated[int, Query(ge=1, le=MAX_LEADS_PER_PAGE)]
