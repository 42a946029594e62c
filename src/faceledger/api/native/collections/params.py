"""Reusable route parameters of the ``/v1/collections`` routes (``Annotated`` aliases).

Identifiers carry their pattern in the spec (the services check them and answer
InvalidParameterException). A search's ``purpose`` and ``case_reference`` fields win over the
X-FaceLedger-Purpose / X-FaceLedger-Case headers: ``FormSearcher`` and ``QuerySearcher`` are
the request's ``Caller`` with them applied.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from pydantic import Field

from faceledger.api.native.auth import CASE_DOC, PURPOSE_DOC, CallerDep, with_purpose
from faceledger.api.native.routes import COMMON_ERRORS, ErrorResponse, read_upload
from faceledger.domain.audit import Caller
from faceledger.domain.collections import (
    COLLECTION_ID_RE,
    FACE_ID_RE,
    USER_ID_RE,
    QualityFilter,
)
from faceledger.domain.policy import MAX_CASE_CHARS, MAX_PURPOSE_CHARS
from faceledger.services.collections import LIST_PAGE_MAX, MAX_SEARCH_FACES
from faceledger.services.gateway import Gateway
from faceledger.services.users import CLIENT_REQUEST_TOKEN_RE, MAX_USERS

DEFAULT_PAGE_SIZE = 100

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "InvalidParameterException (malformed id, value out of range, no face "
        "where one is needed), ResourceNotFoundException (no such collection, face or user), "
        "ResourceAlreadyExistsException / ConflictException (id taken), "
        "InvalidPaginationTokenException, InvalidImageFormatException, ImageTooLargeException, "
        "ServiceQuotaExceededException (a user's 100 faces) or "
        "IdempotentParameterMismatchException.",
    },
    **COMMON_ERRORS,
}


def resource_router() -> APIRouter:
    """A router for one resource's routes under ``/v1`` with the documented errors."""
    return APIRouter(prefix="/v1", responses=ERRORS)


def pattern(regex: re.Pattern[str]) -> dict[str, Any]:
    """The JSON-schema ``pattern`` of a domain id regex (anchored: schemas search, not match)."""
    return {"pattern": f"^{regex.pattern}$"}


# -- identifiers ------------------------------------------------------------------------------
CollectionIdPath = Annotated[
    str, Path(description="The collection's id.", json_schema_extra=pattern(COLLECTION_ID_RE))
]
UserIdPath = Annotated[
    str, Path(description="The user's id.", json_schema_extra=pattern(USER_ID_RE))
]
FaceIdPath = Annotated[
    str, Path(description="A FaceId (UUID).", json_schema_extra=pattern(FACE_ID_RE))
]
FaceId = Annotated[
    str, Field(description="A FaceId (UUID).", json_schema_extra=pattern(FACE_ID_RE))
]
ClientRequestToken = Annotated[
    str | None,
    Field(
        description="Idempotency token: a retry with the same token and parameters returns "
        "the first response without acting again (remembered for 24 h).",
        json_schema_extra=pattern(CLIENT_REQUEST_TOKEN_RE),
    ),
]

# -- pages ------------------------------------------------------------------------------------
NextToken = Annotated[
    str | None, Query(description="`next_token` of the previous page (opaque, signed).")
]
PageSize = Annotated[int, Query(ge=1, le=LIST_PAGE_MAX)]
UserPageSize = Annotated[int, Query(ge=1, le=MAX_USERS)]

# -- searches ---------------------------------------------------------------------------------
THRESHOLD_DOC = (
    "Lowest calibrated Similarity (0–100) returned; raised to the collection's threshold floor "
    "when lower."
)
MAX_MATCHES_DOC = "Return at most this many matches."
MAX_USERS_DOC = "Return at most this many users."
PROBE_QUALITY_DOC = "Refuse a probe face below this quality."
SEARCH_PURPOSE_DOC = PURPOSE_DOC + " Wins over the X-FaceLedger-Purpose header."
SEARCH_CASE_DOC = CASE_DOC + " Wins over the X-FaceLedger-Case header."

ThresholdForm = Annotated[float, Form(ge=0.0, le=100.0, description=THRESHOLD_DOC)]
ThresholdQuery = Annotated[float, Query(ge=0.0, le=100.0, description=THRESHOLD_DOC)]
MaxMatchesForm = Annotated[int, Form(ge=1, le=MAX_SEARCH_FACES, description=MAX_MATCHES_DOC)]
MaxMatchesQuery = Annotated[int, Query(ge=1, le=MAX_SEARCH_FACES, description=MAX_MATCHES_DOC)]
MaxUsersForm = Annotated[int, Form(ge=1, le=MAX_USERS, description=MAX_USERS_DOC)]
MaxUsersQuery = Annotated[int, Query(ge=1, le=MAX_USERS, description=MAX_USERS_DOC)]
ProbeQualityForm = Annotated[QualityFilter, Form(description=PROBE_QUALITY_DOC)]

PurposeForm = Annotated[
    str | None, Form(max_length=MAX_PURPOSE_CHARS, description=SEARCH_PURPOSE_DOC)
]
CaseForm = Annotated[str | None, Form(max_length=MAX_CASE_CHARS, description=SEARCH_CASE_DOC)]
PurposeQuery = Annotated[
    str | None, Query(max_length=MAX_PURPOSE_CHARS, description=SEARCH_PURPOSE_DOC)
]
CaseQuery = Annotated[str | None, Query(max_length=MAX_CASE_CHARS, description=SEARCH_CASE_DOC)]


def form_searcher(
    caller: CallerDep, purpose: PurposeForm = None, case_reference: CaseForm = None
) -> Caller:
    """The caller of a search sent as a form (an upload), with its purpose fields applied."""
    return with_purpose(caller, purpose, case_reference)


def query_searcher(
    caller: CallerDep, purpose: PurposeQuery = None, case_reference: CaseQuery = None
) -> Caller:
    """The caller of a search sent as a query, with its purpose fields applied."""
    return with_purpose(caller, purpose, case_reference)


FormSearcher = Annotated[Caller, Depends(form_searcher)]
QuerySearcher = Annotated[Caller, Depends(query_searcher)]

# -- uploads ----------------------------------------------------------------------------------
ImageUpload = Annotated[UploadFile, File(description="A JPEG or PNG image, at most 5 MiB.")]


async def read_image(gate: Gateway, upload: UploadFile) -> bytes:
    """The ``image`` upload's bytes, capped at ``settings.max_image_bytes``."""
    return await read_upload(upload, "image", gate.settings.max_image_bytes)
