"""``/v1/collections/...``: collections, policies, faces and users, thin adapters over the
gateway.

Each route calls one ``Gateway`` verb (``app.state.gateway``) in a worker thread
(``run_blocking``) with the request's ``Caller`` (see ``auth``), and shapes its domain result
into a pydantic model, so the OpenAPI spec at ``/docs`` says exactly what comes back. The
gateway checks that the key's roles allow the Rekognition operation (IndexFaces, …), applies
the collection's policy to searches (purpose and case reference required, threshold floor)
and writes the call, refused or not, to the audit ledger. A route touches no data before the
gateway has checked the roles: an upload is decoded, if the answer needs its pixel size, only
after the gateway call.

Units and conventions:

* ``bbox_px`` — pixels (left, top, width, height) of the uploaded image after EXIF orientation,
  given wherever the image is at hand (IndexFaces, search by image).
* ``bounding_box_ratio`` — a stored face's box as ratios (0–1) of its image's width and height
  (Rekognition's ``BoundingBox``): the image is not kept, so its pixel size is not known.
* ``similarity`` — the model pack's calibrated 0–100 Similarity; ``confidence`` — detector
  confidence 0–100; ``created_at`` — epoch seconds.
* ``threshold`` in a search answer is the effective one: the ``requested_threshold`` raised to
  the collection's ``threshold_floor`` (its policy, or the installation's default).
* Identifiers (``collection_id``, ``user_id``, ``face_id``, ``external_image_id``) carry their
  pattern in the spec; the services check them and answer InvalidParameterException.
* A resource that does not exist answers 400 ResourceNotFoundException (Rekognition's code);
  404 means "no such route".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from faceledger.api import run_blocking
from faceledger.api.native.auth import CASE_DOC, PURPOSE_DOC, CallerDep, GatewayDep, with_purpose
from faceledger.api.native.routes import COMMON_ERRORS, ErrorResponse, read_upload
from faceledger.domain.audit import Caller
from faceledger.domain.collections import (
    COLLECTION_ID_RE,
    EXTERNAL_IMAGE_ID_RE,
    FACE_ID_RE,
    USER_ID_RE,
    BoundingBox,
    Collection,
    CollectionMatch,
    IndexFacesResult,
    QualityFilter,
    StoredFace,
)
from faceledger.domain.errors import FaceLedgerError
from faceledger.domain.faces import AnalysedImage, Image
from faceledger.domain.policy import MAX_CASE_CHARS, MAX_PURPOSE_CHARS, CollectionPolicy
from faceledger.domain.scale import SearchScale
from faceledger.inference.engine import MAX_FACES_PER_IMAGE
from faceledger.services.collections import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    LIST_PAGE_MAX,
    MAX_SEARCH_FACES,
)
from faceledger.services.faces import image_info
from faceledger.services.gateway import Gateway
from faceledger.services.users import (
    CLIENT_REQUEST_TOKEN_RE,
    DEFAULT_ASSOCIATE_THRESHOLD,
    DEFAULT_MAX_USERS,
    DEFAULT_USER_MATCH_THRESHOLD,
    MAX_USERS,
    ImageFace,
    UnsearchedFace,
    UserMatch,
    UserSearchResult,
)

R = TypeVar("R")

DEFAULT_PAGE_SIZE = 100

_ERRORS: dict[int | str, dict[str, Any]] = {
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

router = APIRouter(prefix="/v1", responses=_ERRORS)


# -- identifiers: documented patterns (checked by the services) ----------------------------
def _pattern(regex: re.Pattern[str]) -> dict[str, Any]:
    """The JSON-schema ``pattern`` of a domain id regex (anchored: schemas search, not match)."""
    return {"pattern": f"^{regex.pattern}$"}


CollectionIdPath = Annotated[
    str, Path(description="The collection's id.", json_schema_extra=_pattern(COLLECTION_ID_RE))
]
UserIdPath = Annotated[
    str, Path(description="The user's id.", json_schema_extra=_pattern(USER_ID_RE))
]
FaceIdPath = Annotated[
    str, Path(description="A FaceId (UUID).", json_schema_extra=_pattern(FACE_ID_RE))
]
FaceId = Annotated[
    str, Field(description="A FaceId (UUID).", json_schema_extra=_pattern(FACE_ID_RE))
]
ClientRequestToken = Annotated[
    str | None,
    Field(
        description="Idempotency token: a retry with the same token and parameters returns "
        "the first response without acting again (remembered for 24 h).",
        json_schema_extra=_pattern(CLIENT_REQUEST_TOKEN_RE),
    ),
]
NextToken = Annotated[
    str | None, Query(description="`next_token` of the previous page (opaque, signed).")
]
THRESHOLD_DOC = (
    "Lowest calibrated Similarity (0–100) returned; raised to the collection's threshold floor "
    "when lower."
)
EFFECTIVE_THRESHOLD_DOC = (
    "The threshold applied: the requested one, raised to the collection's threshold floor."
)
REQUESTED_THRESHOLD_DOC = "The threshold the request asked for."
SEARCH_PURPOSE_DOC = PURPOSE_DOC + " Wins over the X-FaceLedger-Purpose header."
SEARCH_CASE_DOC = CASE_DOC + " Wins over the X-FaceLedger-Case header."
PurposeForm = Annotated[
    str | None, Form(max_length=MAX_PURPOSE_CHARS, description=SEARCH_PURPOSE_DOC)
]
CaseForm = Annotated[str | None, Form(max_length=MAX_CASE_CHARS, description=SEARCH_CASE_DOC)]
PurposeQuery = Annotated[
    str | None, Query(max_length=MAX_PURPOSE_CHARS, description=SEARCH_PURPOSE_DOC)
]
CaseQuery = Annotated[str | None, Query(max_length=MAX_CASE_CHARS, description=SEARCH_CASE_DOC)]


# -- response and request models ----------------------------------------------------------
class CollectionOut(BaseModel):
    collection_id: str
    face_model_version: str = Field(
        description="The model pack whose vectors the collection holds (pinned at creation)."
    )
    created_at: float = Field(description="Epoch seconds.")
    face_count: int
    user_count: int


class CollectionList(BaseModel):
    collections: list[CollectionOut]
    next_token: str | None = Field(description="Pass it back for the next page; null at the end.")


class CreateCollectionIn(BaseModel):
    collection_id: Annotated[
        str, Field(description="New id.", json_schema_extra=_pattern(COLLECTION_ID_RE))
    ]


class BoxPx(BaseModel):
    """Pixels of the uploaded image after EXIF orientation."""

    left: float
    top: float
    width: float
    height: float


class BoxRatio(BaseModel):
    """Ratios (0–1) of the source image's width (left, width) and height (top, height)."""

    left: float
    top: float
    width: float
    height: float


class FaceOut(BaseModel):
    face_id: str
    image_id: str = Field(description="Id of the image the face was indexed from.")
    external_image_id: str | None
    bounding_box_ratio: BoxRatio = Field(
        description="Box as ratios of the source image's size. The image is not kept, so "
        "stored faces have no pixel box."
    )
    confidence: float = Field(description="Detector confidence, 0–100.")
    user_id: str | None = Field(description="The user the face is associated with, if any.")
    face_model_version: str


class FaceList(BaseModel):
    faces: list[FaceOut]
    next_token: str | None = Field(description="Pass it back for the next page; null at the end.")


class ImageOut(BaseModel):
    width_px: int = Field(description="After EXIF orientation.")
    height_px: int
    format: str = Field(description='"jpeg" or "png".')
    size_bytes: int
    sha256: str = Field(description="SHA-256 of the uploaded bytes.")


class IndexedFace(FaceOut):
    bbox_px: BoxPx
    face_index: int | None = Field(
        description="Index among the image's detected faces (largest first); null only when "
        "the image was indexed before (``duplicate``) and none of today's detections matches "
        "the stored box."
    )


class UnindexedFaceOut(BaseModel):
    face_index: int = Field(description="Index among the image's detected faces, largest first.")
    bbox_px: BoxPx
    confidence: float = Field(description="Detector confidence, 0–100.")
    reasons: list[str] = Field(
        description="EXCEEDS_MAX_FACES, EXTREME_POSE, LOW_BRIGHTNESS, LOW_SHARPNESS, "
        "LOW_CONFIDENCE, SMALL_BOUNDING_BOX; NOT_THE_SUBJECT from bulk enrolment only."
    )


class IndexFacesOut(BaseModel):
    face_model_version: str
    image: ImageOut
    duplicate: bool = Field(
        description="True when the same image (SHA-256) and external_image_id were indexed "
        "before: the faces then are returned and nothing is added."
    )
    faces: list[IndexedFace]
    unindexed_faces: list[UnindexedFaceOut]


class DeleteFacesIn(BaseModel):
    face_ids: list[FaceId] = Field(description="1 to 4,096 FaceIds.")


class UnsuccessfulFace(BaseModel):
    face_id: str
    user_id: str | None = Field(
        default=None, description="The user the face belongs to, when that is the reason."
    )
    confidence: float | None = Field(
        default=None, description="LOW_MATCH_CONFIDENCE: the face's Similarity to the user."
    )
    reasons: list[str] = Field(
        description="FACE_NOT_FOUND, ASSOCIATED_TO_AN_EXISTING_USER, "
        "ASSOCIATED_TO_A_DIFFERENT_USER or LOW_MATCH_CONFIDENCE."
    )


class DeleteFacesOut(BaseModel):
    deleted_face_ids: list[str]
    unsuccessful: list[UnsuccessfulFace]


class ProbeFace(BaseModel):
    bbox_px: BoxPx
    confidence: float = Field(description="Detector confidence, 0–100.")


class FaceMatchOut(BaseModel):
    similarity: float = Field(description="Calibrated Similarity, 0–100.")
    face: FaceOut


class SearchScaleOut(BaseModel):
    """What a candidate means at the scale of this search."""

    face_count: int = Field(description="Faces in the collection when it was searched.")
    floor: float = Field(description="The collection's floor (follows its size or pinned).")
    floor_source: str = Field(description="'collection size' or 'policy'.")
    fpir: float | None = Field(
        description="Expected false-positive identification rate at the effective threshold "
        "and this size: the share of searches for someone not in the collection that return "
        "any candidate. null: the model pack has no open-set table."
    )
    fpir_upper: float | None = Field(description="Upper bound of fpir (95th percentile).")
    one_in: int | None = Field(
        description="About 1 in this many searches for someone not enrolled returns a "
        "candidate (1 / fpir)."
    )
    hit_rate: float | None = Field(
        description="Expected share of searches for someone enrolled that find them first."
    )
    fmr: float | None = Field(description="Per-comparison false-match rate at the threshold.")
    target_fpir: float = Field(description="The FPIR a default floor keeps to.")
    target_reachable: bool = Field(
        description="False: no Similarity keeps FPIR within the target at this size."
    )
    statement: str = Field(description="The same, in one sentence.")


def _scale(scale: SearchScale | None) -> SearchScaleOut | None:
    if scale is None:
        return None
    data = scale.as_dict()
    return SearchScaleOut(
        statement=scale.statement,
        **{k: v for k, v in data.items() if k in SearchScaleOut.model_fields},
    )


class SearchFacesByImageOut(BaseModel):
    face_model_version: str
    threshold: float = Field(description=EFFECTIVE_THRESHOLD_DOC)
    requested_threshold: float = Field(description=REQUESTED_THRESHOLD_DOC)
    image: ImageOut
    searched_face: ProbeFace = Field(description="The image's largest face, which was searched.")
    matches: list[FaceMatchOut] = Field(description="Highest similarity first.")
    scale: SearchScaleOut | None = Field(description="What a candidate means at this size.")


class SearchFacesOut(BaseModel):
    searched_face_id: str
    threshold: float = Field(description=EFFECTIVE_THRESHOLD_DOC)
    requested_threshold: float = Field(description=REQUESTED_THRESHOLD_DOC)
    matches: list[FaceMatchOut] = Field(description="Highest similarity first; never the face.")
    scale: SearchScaleOut | None = Field(description="What a candidate means at this size.")


class CreateUserIn(BaseModel):
    user_id: Annotated[str, Field(description="New id.", json_schema_extra=_pattern(USER_ID_RE))]
    client_request_token: ClientRequestToken = None


class CreatedUser(BaseModel):
    collection_id: str
    user_id: str


class UserOut(BaseModel):
    user_id: str
    status: str = Field(description="ACTIVE (has faces) or CREATED (no faces yet).")


class UserList(BaseModel):
    users: list[UserOut]
    next_token: str | None = Field(description="Pass it back for the next page; null at the end.")


class AssociateFacesIn(BaseModel):
    face_ids: list[FaceId] = Field(description="1 to 100 FaceIds.")
    user_match_threshold: float = Field(
        default=DEFAULT_ASSOCIATE_THRESHOLD,
        ge=0.0,
        le=100.0,
        description="A face joins a user that has faces only if its Similarity to the user "
        "reaches this (0–100).",
    )
    client_request_token: ClientRequestToken = None


class DisassociateFacesIn(BaseModel):
    face_ids: list[FaceId] = Field(description="1 to 100 FaceIds.")
    client_request_token: ClientRequestToken = None


class AssociateFacesOut(BaseModel):
    associated_face_ids: list[str]
    unsuccessful: list[UnsuccessfulFace]
    user_status: str


class DisassociateFacesOut(BaseModel):
    disassociated_face_ids: list[str]
    unsuccessful: list[UnsuccessfulFace]
    user_status: str


class UserMatchOut(BaseModel):
    similarity: float = Field(
        description="Calibrated Similarity (0–100) of the probe to the user's faces combined."
    )
    user: UserOut


class SearchUsersOut(BaseModel):
    face_model_version: str
    threshold: float = Field(description=EFFECTIVE_THRESHOLD_DOC)
    requested_threshold: float = Field(description=REQUESTED_THRESHOLD_DOC)
    searched_user_id: str | None
    searched_face_id: str | None
    matches: list[UserMatchOut] = Field(description="Highest similarity first.")


class UnsearchedFaceOut(ProbeFace):
    reasons: list[str] = Field(description="FACE_NOT_LARGEST or the largest face's quality faults.")


class SearchUsersByImageOut(BaseModel):
    face_model_version: str
    threshold: float = Field(description=EFFECTIVE_THRESHOLD_DOC)
    requested_threshold: float = Field(description=REQUESTED_THRESHOLD_DOC)
    image: ImageOut
    searched_face: ProbeFace | None = Field(
        description="The largest face, searched; null when the image has no usable face."
    )
    matches: list[UserMatchOut] = Field(description="Highest similarity first.")
    unsearched_faces: list[UnsearchedFaceOut]


class CollectionPolicyIn(BaseModel):
    """A collection's accountability policy (it replaces the installation's defaults)."""

    require_purpose: bool = Field(
        description="Searches must carry a purpose and a case reference (fields or headers)."
    )
    threshold_floor: float | None = Field(
        default=None,
        ge=0.0,
        le=100.0,
        description="Lowest effective match threshold (calibrated Similarity, 0–100): a lower "
        "requested threshold is raised to it. null: the floor follows the collection's size "
        "(the lowest Similarity whose expected FPIR at its face count is within 0.1 %).",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="How long the collection's data may be kept, in days; null for no limit.",
    )


class CollectionPolicyOut(CollectionPolicyIn):
    collection_id: str


# -- shaping domain results --------------------------------------------------------------
def _collection(collection: Collection) -> CollectionOut:
    return CollectionOut(
        collection_id=collection.collection_id,
        face_model_version=collection.face_model_version,
        created_at=collection.created_at,
        face_count=collection.face_count,
        user_count=collection.user_count,
    )


def _policy(collection_id: str, policy: CollectionPolicy) -> CollectionPolicyOut:
    return CollectionPolicyOut(
        collection_id=collection_id,
        require_purpose=policy.require_purpose,
        threshold_floor=policy.threshold_floor,
        retention_days=policy.retention_days,
    )


def _ratio(box: BoundingBox) -> BoxRatio:
    box = box.clipped()
    return BoxRatio(left=box.left, top=box.top, width=box.width, height=box.height)


def _pixels(box: BoundingBox, image: Image | AnalysedImage) -> BoxPx:
    """A ratio box in pixels of ``image`` (the image it was measured on), clipped to it."""
    w, h = image.width_px, image.height_px
    box = box.clipped()
    return BoxPx(
        left=round(box.left * w, 1),
        top=round(box.top * h, 1),
        width=round(box.width * w, 1),
        height=round(box.height * h, 1),
    )


def _face_fields(face: StoredFace) -> dict[str, Any]:
    return {
        "face_id": face.face_id,
        "image_id": face.image_id,
        "external_image_id": face.external_image_id,
        "bounding_box_ratio": _ratio(face.bounding_box),
        "confidence": round(face.confidence, 3),
        "user_id": face.user_id,
        "face_model_version": face.face_model_version,
    }


def _face(face: StoredFace) -> FaceOut:
    return FaceOut(**_face_fields(face))


def _face_matches(matches: Sequence[CollectionMatch]) -> list[FaceMatchOut]:
    return [FaceMatchOut(similarity=round(m.similarity, 4), face=_face(m.face)) for m in matches]


def _user_matches(matches: Sequence[UserMatch]) -> list[UserMatchOut]:
    return [
        UserMatchOut(
            similarity=round(m.similarity, 4),
            user=UserOut(user_id=m.user.user_id, status=m.user.status),
        )
        for m in matches
    ]


def _image(image: Image | AnalysedImage) -> ImageOut:
    return ImageOut(**image_info(image))


def _probe(face: ImageFace, image: Image) -> ProbeFace:
    return ProbeFace(
        bbox_px=_pixels(face.bounding_box, image), confidence=round(face.confidence, 3)
    )


def _unsearched(face: UnsearchedFace, image: Image) -> UnsearchedFaceOut:
    probe = _probe(face.face, image)
    return UnsearchedFaceOut(
        bbox_px=probe.bbox_px, confidence=probe.confidence, reasons=list(face.reasons)
    )


def _unindexed(result: IndexFacesResult) -> list[UnindexedFaceOut]:
    """The refused faces with their pixel boxes and confidences, from the analysed image.

    ``face_index`` points into ``result.analysed.faces``; boxes there are pixels (x1, y1, x2,
    y2) of the decoded upload, so no ratio round trip is needed.
    """
    if not result.unindexed:
        return []
    analysed = result.analysed
    if analysed is None:
        raise RuntimeError("IndexFacesResult has unindexed faces but no analysed image")
    faces = analysed.faces
    out = []
    for face in result.unindexed:
        x1, y1, x2, y2 = (float(v) for v in faces.boxes_px[face.face_index])
        out.append(
            UnindexedFaceOut(
                face_index=face.face_index,
                bbox_px=BoxPx(
                    left=round(x1, 1),
                    top=round(y1, 1),
                    width=round(x2 - x1, 1),
                    height=round(y2 - y1, 1),
                ),
                confidence=round(float(faces.scores[face.face_index]) * 100.0, 3),
                reasons=list(face.reasons),
            )
        )
    return out


def _unsuccessful(items: Sequence[dict[str, Any]]) -> list[UnsuccessfulFace]:
    """The services' Rekognition-shaped failure dicts, in snake_case."""
    return [
        UnsuccessfulFace(
            face_id=item["FaceId"],
            user_id=item.get("UserId"),
            confidence=item.get("Confidence"),
            reasons=list(item["Reasons"]),
        )
        for item in items
    ]


def _search_users_out(result: UserSearchResult, requested: float) -> SearchUsersOut:
    return SearchUsersOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        requested_threshold=requested,
        searched_user_id=result.searched_user_id,
        searched_face_id=result.searched_face_id,
        matches=_user_matches(result.matches),
    )


def _decoded(
    gate: Gateway,
    caller: Caller,
    operation: str,
    data: bytes,
    verb: Callable[[bytes | Image], R],
) -> tuple[Image, R]:
    """Decode the upload once and run ``verb`` (a gateway call) on the decoded image.

    The answer gives boxes in pixels of the upload, which the verb's ratio boxes do not carry.
    The caller's roles are checked first (a refusal is ledgered), so nobody's upload is
    decoded on behalf of a caller who may not search; an upload that does not decode is
    handed to the gateway as bytes, which refuses and ledgers it the same way.
    """
    gate.authorise(caller, operation)
    try:
        decoded = gate.decode_image(data)
    except FaceLedgerError:
        verb(data)
        raise
    return decoded, verb(decoded)


async def _upload(gate: Gateway, upload: UploadFile) -> bytes:
    """The ``image`` upload's bytes, capped at ``settings.max_image_bytes``."""
    return await read_upload(upload, "image", gate.settings.max_image_bytes)


ImageUpload = Annotated[UploadFile, File(description="A JPEG or PNG image, at most 5 MiB.")]


# -- collections -------------------------------------------------------------------------
@router.post("/collections", status_code=201, tags=["collections"], summary="Create a collection")
async def create_collection(
    request: Request, gate: GatewayDep, caller: CallerDep, body: CreateCollectionIn
) -> CollectionOut:
    """An empty collection pinned to the server's model pack. A taken id →
    ResourceAlreadyExistsException."""
    created = await run_blocking(request, gate.create_collection, caller, body.collection_id)
    return _collection(created)


@router.get("/collections", tags=["collections"], summary="List collections")
async def list_collections(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    next_token: NextToken = None,
    max_results: Annotated[int, Query(ge=1, le=LIST_PAGE_MAX)] = DEFAULT_PAGE_SIZE,
) -> CollectionList:
    """Collections by id, a page at a time."""
    page, token = await run_blocking(
        request, gate.list_collections, caller, next_token=next_token, max_results=max_results
    )
    return CollectionList(collections=[_collection(c) for c in page], next_token=token)


@router.get("/collections/{collection_id}", tags=["collections"], summary="Describe a collection")
async def describe_collection(
    request: Request, gate: GatewayDep, caller: CallerDep, collection_id: CollectionIdPath
) -> CollectionOut:
    """Face and user counts, model pack and creation time."""
    described = await run_blocking(request, gate.describe_collection, caller, collection_id)
    return _collection(described)


@router.delete(
    "/collections/{collection_id}",
    status_code=204,
    tags=["collections"],
    summary="Delete a collection",
)
async def delete_collection(
    request: Request, gate: GatewayDep, caller: CallerDep, collection_id: CollectionIdPath
) -> Response:
    """Deletes the collection with all its faces, vectors and users."""
    await run_blocking(request, gate.delete_collection, caller, collection_id)
    return Response(status_code=204)


# -- faces -------------------------------------------------------------------------------
@router.post(
    "/collections/{collection_id}/faces", tags=["faces"], summary="Index the faces of an image"
)
async def index_faces(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    image: ImageUpload,
    external_image_id: Annotated[
        str | None,
        Form(
            description="Your id for the image (kept with each face).",
            json_schema_extra=_pattern(EXTERNAL_IMAGE_ID_RE),
        ),
    ] = None,
    max_faces: Annotated[
        int,
        Form(ge=1, le=MAX_FACES_PER_IMAGE, description="Index at most this many faces."),
    ] = MAX_FACES_PER_IMAGE,
    quality_filter: Annotated[
        QualityFilter, Form(description="Refuse faces below this quality (AUTO = MEDIUM).")
    ] = "AUTO",
) -> IndexFacesOut:
    """Detects the faces, refuses those that fail the quality filter (with reasons) and keeps
    the best `max_faces`. Boxes are in pixels of the upload (`bbox_px`) and as ratios."""
    data = await _upload(gate, image)
    result = await run_blocking(
        request,
        gate.index_faces,
        caller,
        collection_id,
        data,
        external_image_id=external_image_id,
        max_faces=max_faces,
        quality_filter=quality_filter,
    )
    analysed = result.analysed
    if analysed is None:
        raise RuntimeError("IndexFacesResult of an upload has no analysed image")
    faces = [
        IndexedFace(
            **_face_fields(face),
            bbox_px=_pixels(face.bounding_box, analysed),
            face_index=index if index >= 0 else None,
        )
        for face, index in result.face_records
    ]
    return IndexFacesOut(
        face_model_version=result.face_model_version,
        image=_image(analysed),
        duplicate=result.duplicate,
        faces=faces,
        unindexed_faces=_unindexed(result),
    )


@router.get(
    "/collections/{collection_id}/faces", tags=["faces"], summary="List the faces of a collection"
)
async def list_faces(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    user_id: Annotated[
        str | None,
        Query(description="Only this user's faces.", json_schema_extra=_pattern(USER_ID_RE)),
    ] = None,
    face_id: Annotated[
        list[FaceId] | None,
        Query(description="Only these faces (repeat the parameter).", max_length=4096),
    ] = None,
    next_token: NextToken = None,
    max_results: Annotated[int, Query(ge=1, le=LIST_PAGE_MAX)] = DEFAULT_PAGE_SIZE,
) -> FaceList:
    """Faces in the order they were indexed, a page at a time."""
    page = await run_blocking(
        request,
        gate.list_faces,
        caller,
        collection_id,
        next_token=next_token,
        max_results=max_results,
        user_id=user_id,
        face_ids=face_id,
    )
    return FaceList(faces=[_face(f) for f in page.faces], next_token=page.next_token)


@router.post("/collections/{collection_id}/faces/delete", tags=["faces"], summary="Delete faces")
async def delete_faces(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    body: DeleteFacesIn,
) -> DeleteFacesOut:
    """Deletes the faces that exist and belong to no user; the others are listed in
    `unsuccessful` with a reason (FACE_NOT_FOUND, ASSOCIATED_TO_AN_EXISTING_USER)."""
    deleted, unsuccessful = await run_blocking(
        request, gate.delete_faces, caller, collection_id, list(body.face_ids)
    )
    return DeleteFacesOut(deleted_face_ids=deleted, unsuccessful=_unsuccessful(unsuccessful))


@router.post(
    "/collections/{collection_id}/search",
    tags=["faces"],
    summary="Search the collection with the largest face of an image",
)
async def search_faces_by_image(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    image: ImageUpload,
    max_faces: Annotated[
        int, Form(ge=1, le=MAX_SEARCH_FACES, description="Return at most this many matches.")
    ] = DEFAULT_SEARCH_MAX_FACES,
    threshold: Annotated[float, Form(ge=0.0, le=100.0, description=THRESHOLD_DOC)] = (
        DEFAULT_FACE_MATCH_THRESHOLD
    ),
    quality_filter: Annotated[
        QualityFilter, Form(description="Refuse a probe face below this quality.")
    ] = "NONE",
    purpose: PurposeForm = None,
    case_reference: CaseForm = None,
) -> SearchFacesByImageOut:
    """Stored faces whose Similarity to the image's largest face reaches `threshold` (raised
    to the collection's floor). No face in the image (or one failing `quality_filter`) →
    InvalidParameterException; no purpose where the policy requires one → 403."""
    data = await _upload(gate, image)
    searcher = with_purpose(caller, purpose, case_reference)
    decoded, result = await run_blocking(
        request,
        _decoded,
        gate,
        searcher,
        "SearchFacesByImage",
        data,
        lambda image: gate.search_faces_by_image(
            searcher,
            collection_id,
            image,
            max_faces=max_faces,
            threshold=threshold,
            quality_filter=quality_filter,
        ),
    )
    searched = ImageFace(result.searched_face_bounding_box, result.searched_face_confidence)
    return SearchFacesByImageOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        requested_threshold=threshold,
        image=_image(decoded),
        searched_face=_probe(searched, decoded),
        matches=_face_matches(result.matches),
        scale=_scale(result.scale),
    )


@router.get(
    "/collections/{collection_id}/faces/{face_id}/matches",
    tags=["faces"],
    summary="Search the collection with a stored face",
)
async def search_faces(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    face_id: FaceIdPath,
    max_faces: Annotated[
        int, Query(ge=1, le=MAX_SEARCH_FACES, description="Return at most this many matches.")
    ] = DEFAULT_SEARCH_MAX_FACES,
    threshold: Annotated[float, Query(ge=0.0, le=100.0, description=THRESHOLD_DOC)] = (
        DEFAULT_FACE_MATCH_THRESHOLD
    ),
    purpose: PurposeQuery = None,
    case_reference: CaseQuery = None,
) -> SearchFacesOut:
    """Other stored faces whose Similarity to this face reaches `threshold` (raised to the
    collection's floor)."""
    found = await run_blocking(
        request,
        gate.search_faces,
        with_purpose(caller, purpose, case_reference),
        collection_id,
        face_id,
        max_faces=max_faces,
        threshold=threshold,
    )
    return SearchFacesOut(
        searched_face_id=face_id,
        threshold=found.threshold,
        requested_threshold=threshold,
        matches=_face_matches(found.matches),
        scale=_scale(found.scale),
    )


@router.get(
    "/collections/{collection_id}/faces/{face_id}/user_matches",
    tags=["users"],
    summary="Search the collection's users with a stored face",
)
async def search_users_by_face(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    face_id: FaceIdPath,
    max_users: Annotated[
        int, Query(ge=1, le=MAX_USERS, description="Return at most this many users.")
    ] = DEFAULT_MAX_USERS,
    threshold: Annotated[float, Query(ge=0.0, le=100.0, description=THRESHOLD_DOC)] = (
        DEFAULT_USER_MATCH_THRESHOLD
    ),
    purpose: PurposeQuery = None,
    case_reference: CaseQuery = None,
) -> SearchUsersOut:
    """Users whose faces, combined, reach `threshold` (raised to the collection's floor)
    against this face (its own user included)."""
    result = await run_blocking(
        request,
        gate.search_users,
        with_purpose(caller, purpose, case_reference),
        collection_id,
        face_id=face_id,
        user_match_threshold=threshold,
        max_users=max_users,
    )
    return _search_users_out(result, threshold)


# -- users -------------------------------------------------------------------------------
@router.post(
    "/collections/{collection_id}/users", status_code=201, tags=["users"], summary="Create a user"
)
async def create_user(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    body: CreateUserIn,
) -> CreatedUser:
    """An empty user (status CREATED until a face is associated). A taken id →
    ConflictException, unless this `client_request_token` created it."""
    await run_blocking(
        request,
        gate.create_user,
        caller,
        collection_id,
        body.user_id,
        body.client_request_token,
    )
    return CreatedUser(collection_id=collection_id, user_id=body.user_id)


@router.get("/collections/{collection_id}/users", tags=["users"], summary="List users")
async def list_users(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    next_token: NextToken = None,
    max_results: Annotated[int, Query(ge=1, le=MAX_USERS)] = DEFAULT_PAGE_SIZE,
) -> UserList:
    """Users by id with their status, a page at a time."""
    page, token = await run_blocking(
        request,
        gate.list_users,
        caller,
        collection_id,
        next_token=next_token,
        max_results=max_results,
    )
    return UserList(
        users=[UserOut(user_id=u.user_id, status=u.status) for u in page], next_token=token
    )


@router.delete(
    "/collections/{collection_id}/users/{user_id}",
    status_code=204,
    tags=["users"],
    summary="Delete a user",
)
async def delete_user(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    user_id: UserIdPath,
    client_request_token: Annotated[
        str | None,
        Query(
            description="Idempotency token: a retry with it succeeds without acting again.",
            json_schema_extra=_pattern(CLIENT_REQUEST_TOKEN_RE),
        ),
    ] = None,
) -> Response:
    """Deletes the user; its faces stay in the collection, disassociated."""
    await run_blocking(
        request, gate.delete_user, caller, collection_id, user_id, client_request_token
    )
    return Response(status_code=204)


@router.post(
    "/collections/{collection_id}/users/{user_id}/faces",
    tags=["users"],
    summary="Associate faces with a user",
)
async def associate_faces(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    user_id: UserIdPath,
    body: AssociateFacesIn,
) -> AssociateFacesOut:
    """Faces that match the user well enough join it; the others are listed in
    `unsuccessful` with a reason. A user holds at most 100 faces."""
    outcome = await run_blocking(
        request,
        gate.associate_faces,
        caller,
        collection_id,
        user_id,
        list(body.face_ids),
        user_match_threshold=body.user_match_threshold,
        client_request_token=body.client_request_token,
    )
    return AssociateFacesOut(
        associated_face_ids=outcome.faces,
        unsuccessful=_unsuccessful(outcome.unsuccessful),
        user_status=outcome.user_status,
    )


@router.post(
    "/collections/{collection_id}/users/{user_id}/faces/delete",
    tags=["users"],
    summary="Disassociate faces from a user",
)
async def disassociate_faces(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    user_id: UserIdPath,
    body: DisassociateFacesIn,
) -> DisassociateFacesOut:
    """The faces leave the user and stay in the collection."""
    outcome = await run_blocking(
        request,
        gate.disassociate_faces,
        caller,
        collection_id,
        user_id,
        list(body.face_ids),
        client_request_token=body.client_request_token,
    )
    return DisassociateFacesOut(
        disassociated_face_ids=outcome.faces,
        unsuccessful=_unsuccessful(outcome.unsuccessful),
        user_status=outcome.user_status,
    )


@router.get(
    "/collections/{collection_id}/users/{user_id}/matches",
    tags=["users"],
    summary="Search the collection's users with a user",
)
async def search_users(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    user_id: UserIdPath,
    max_users: Annotated[
        int, Query(ge=1, le=MAX_USERS, description="Return at most this many users.")
    ] = DEFAULT_MAX_USERS,
    threshold: Annotated[float, Query(ge=0.0, le=100.0, description=THRESHOLD_DOC)] = (
        DEFAULT_USER_MATCH_THRESHOLD
    ),
    purpose: PurposeQuery = None,
    case_reference: CaseQuery = None,
) -> SearchUsersOut:
    """Other users whose faces, combined, reach `threshold` (raised to the collection's
    floor) against this user's."""
    result = await run_blocking(
        request,
        gate.search_users,
        with_purpose(caller, purpose, case_reference),
        collection_id,
        user_id=user_id,
        user_match_threshold=threshold,
        max_users=max_users,
    )
    return _search_users_out(result, threshold)


@router.post(
    "/collections/{collection_id}/users/search",
    tags=["users"],
    summary="Search the collection's users with the largest face of an image",
)
async def search_users_by_image(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    image: ImageUpload,
    max_users: Annotated[
        int, Form(ge=1, le=MAX_USERS, description="Return at most this many users.")
    ] = DEFAULT_MAX_USERS,
    threshold: Annotated[float, Form(ge=0.0, le=100.0, description=THRESHOLD_DOC)] = (
        DEFAULT_USER_MATCH_THRESHOLD
    ),
    quality_filter: Annotated[
        QualityFilter, Form(description="Refuse a probe face below this quality.")
    ] = "NONE",
    purpose: PurposeForm = None,
    case_reference: CaseForm = None,
) -> SearchUsersByImageOut:
    """Users whose faces, combined, reach `threshold` (raised to the collection's floor)
    against the image's largest face. No usable face → no matches and a null
    `searched_face` (not an error)."""
    data = await _upload(gate, image)
    searcher = with_purpose(caller, purpose, case_reference)
    decoded, result = await run_blocking(
        request,
        _decoded,
        gate,
        searcher,
        "SearchUsersByImage",
        data,
        lambda image: gate.search_users_by_image(
            searcher,
            collection_id,
            image,
            user_match_threshold=threshold,
            max_users=max_users,
            quality_filter=quality_filter,
        ),
    )
    searched = result.searched_face
    return SearchUsersByImageOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        requested_threshold=threshold,
        image=_image(decoded),
        searched_face=_probe(searched, decoded) if searched is not None else None,
        matches=_user_matches(result.matches),
        unsearched_faces=[_unsearched(u, decoded) for u in result.unsearched],
    )


# -- policies (last, so the spec lists them after the routes they govern) ---------------
@router.get(
    "/collections/{collection_id}/policy",
    tags=["collections"],
    summary="Show a collection's accountability policy",
)
async def get_collection_policy(
    request: Request, gate: GatewayDep, caller: CallerDep, collection_id: CollectionIdPath
) -> CollectionPolicyOut:
    """Whether searches need a purpose and a case reference, the threshold floor and the
    retention. A collection without a policy of its own has the installation's defaults."""
    policy = await run_blocking(request, gate.get_policy, caller, collection_id)
    return _policy(collection_id, policy)


@router.put(
    "/collections/{collection_id}/policy",
    tags=["collections"],
    summary="Set a collection's accountability policy",
)
async def put_collection_policy(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    collection_id: CollectionIdPath,
    body: CollectionPolicyIn,
) -> CollectionPolicyOut:
    """Replaces the collection's policy (needs the admin role: PutCollectionPolicy). It
    applies to every later search, on every API."""
    policy = CollectionPolicy(
        require_purpose=body.require_purpose,
        threshold_floor=body.threshold_floor,
        retention_days=body.retention_days,
    )
    stored = await run_blocking(request, gate.put_policy, caller, collection_id, policy)
    return _policy(collection_id, stored)
