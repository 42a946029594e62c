"""``/v1/collections/...``: collections, faces and users, thin adapters over the services.

Each route calls one verb of ``CollectionService`` or ``UserService`` in a worker thread
(``run_blocking``) and shapes its domain result into a pydantic model, so the OpenAPI spec at
``/docs`` says exactly what comes back. Each route needs an API key whose roles allow the
Rekognition operation it performs (``require("IndexFaces")`` …; see ``auth``).

Units and conventions:

* ``bbox_px`` — pixels (left, top, width, height) of the uploaded image after EXIF orientation,
  given wherever the image is at hand (IndexFaces, search by image).
* ``bounding_box_ratio`` — a stored face's box as ratios (0–1) of its image's width and height
  (Rekognition's ``BoundingBox``): the image is not kept, so its pixel size is not known.
* ``similarity`` — the model pack's calibrated 0–100 Similarity; ``confidence`` — detector
  confidence 0–100; ``created_at`` — epoch seconds.
* Identifiers (``collection_id``, ``user_id``, ``face_id``, ``external_image_id``) carry their
  pattern in the spec; the services check them and answer InvalidParameterException.
* A resource that does not exist answers 400 ResourceNotFoundException (Rekognition's code);
  404 means "no such route".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from faceledger.api import CollectionsDep, UsersDep, run_blocking
from faceledger.api.native.auth import require
from faceledger.api.native.routes import COMMON_ERRORS, ErrorResponse, read_upload
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
from faceledger.domain.faces import Image
from faceledger.inference.engine import MAX_FACES_PER_IMAGE
from faceledger.services.collections import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    LIST_PAGE_MAX,
    MAX_SEARCH_FACES,
)
from faceledger.services.faces import FaceService, image_info
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
THRESHOLD_DOC = "Lowest calibrated Similarity (0–100) returned."


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
        description="Index among the image's detected faces (largest first); null when the "
        "image was indexed before (``duplicate``)."
    )


class UnindexedFaceOut(BaseModel):
    face_index: int = Field(description="Index among the image's detected faces, largest first.")
    bbox_px: BoxPx
    confidence: float = Field(description="Detector confidence, 0–100.")
    reasons: list[str] = Field(
        description="EXCEEDS_MAX_FACES, EXTREME_POSE, LOW_BRIGHTNESS, LOW_SHARPNESS, "
        "LOW_CONFIDENCE, SMALL_BOUNDING_BOX."
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


class SearchFacesByImageOut(BaseModel):
    face_model_version: str
    threshold: float
    image: ImageOut
    searched_face: ProbeFace = Field(description="The image's largest face, which was searched.")
    matches: list[FaceMatchOut] = Field(description="Highest similarity first.")


class SearchFacesOut(BaseModel):
    searched_face_id: str
    threshold: float
    matches: list[FaceMatchOut] = Field(description="Highest similarity first; never the face.")


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
    threshold: float
    searched_user_id: str | None
    searched_face_id: str | None
    matches: list[UserMatchOut] = Field(description="Highest similarity first.")


class UnsearchedFaceOut(ProbeFace):
    reasons: list[str] = Field(description="FACE_NOT_LARGEST or the largest face's quality faults.")


class SearchUsersByImageOut(BaseModel):
    face_model_version: str
    threshold: float
    image: ImageOut
    searched_face: ProbeFace | None = Field(
        description="The largest face, searched; null when the image has no usable face."
    )
    matches: list[UserMatchOut] = Field(description="Highest similarity first.")
    unsearched_faces: list[UnsearchedFaceOut]


# -- shaping domain results --------------------------------------------------------------
def _collection(collection: Collection) -> CollectionOut:
    return CollectionOut(
        collection_id=collection.collection_id,
        face_model_version=collection.face_model_version,
        created_at=collection.created_at,
        face_count=collection.face_count,
        user_count=collection.user_count,
    )


def _ratio(box: BoundingBox) -> BoxRatio:
    return BoxRatio(left=box.left, top=box.top, width=box.width, height=box.height)


def _pixels(box: BoundingBox, image: Image) -> BoxPx:
    """A ratio box in pixels of ``image`` (the image it was measured on)."""
    w, h = image.width_px, image.height_px
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


def _image(image: Image) -> ImageOut:
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


def _search_users_out(result: UserSearchResult) -> SearchUsersOut:
    return SearchUsersOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        searched_user_id=result.searched_user_id,
        searched_face_id=result.searched_face_id,
        matches=_user_matches(result.matches),
    )


def _with_image(faces: FaceService, data: bytes, verb: Callable[[Image], R]) -> tuple[Image, R]:
    """Decode an upload once (the service's limits), then run ``verb`` on the decoded image.

    The adapter keeps the decoded image to turn the verb's ratio boxes back into pixels.
    """
    image = faces.image(data)
    return image, verb(image)


async def _upload(faces: FaceService, upload: UploadFile) -> bytes:
    """The ``image`` upload's bytes, capped at ``settings.max_image_bytes``."""
    return await read_upload(upload, "image", faces.settings.max_image_bytes)


ImageUpload = Annotated[UploadFile, File(description="A JPEG or PNG image, at most 5 MiB.")]


# -- collections -------------------------------------------------------------------------
@router.post(
    "/collections",
    status_code=201,
    tags=["collections"],
    summary="Create a collection",
    dependencies=[Depends(require("CreateCollection"))],
)
async def create_collection(
    request: Request, collections: CollectionsDep, body: CreateCollectionIn
) -> CollectionOut:
    """An empty collection pinned to the server's model pack. A taken id →
    ResourceAlreadyExistsException."""
    created = await run_blocking(request, collections.create_collection, body.collection_id)
    return _collection(created)


@router.get(
    "/collections",
    tags=["collections"],
    summary="List collections",
    dependencies=[Depends(require("ListCollections"))],
)
async def list_collections(
    request: Request,
    collections: CollectionsDep,
    next_token: NextToken = None,
    max_results: Annotated[int, Query(ge=1, le=LIST_PAGE_MAX)] = DEFAULT_PAGE_SIZE,
) -> CollectionList:
    """Collections by id, a page at a time."""
    page, token = await run_blocking(
        request, collections.list_collections, next_token=next_token, max_results=max_results
    )
    return CollectionList(collections=[_collection(c) for c in page], next_token=token)


@router.get(
    "/collections/{collection_id}",
    tags=["collections"],
    summary="Describe a collection",
    dependencies=[Depends(require("DescribeCollection"))],
)
async def describe_collection(
    request: Request, collections: CollectionsDep, collection_id: CollectionIdPath
) -> CollectionOut:
    """Face and user counts, model pack and creation time."""
    return _collection(await run_blocking(request, collections.describe_collection, collection_id))


@router.delete(
    "/collections/{collection_id}",
    status_code=204,
    tags=["collections"],
    summary="Delete a collection",
    dependencies=[Depends(require("DeleteCollection"))],
)
async def delete_collection(
    request: Request, collections: CollectionsDep, collection_id: CollectionIdPath
) -> Response:
    """Deletes the collection with all its faces, vectors and users."""
    await run_blocking(request, collections.delete_collection, collection_id)
    return Response(status_code=204)


# -- faces -------------------------------------------------------------------------------
@router.post(
    "/collections/{collection_id}/faces",
    tags=["faces"],
    summary="Index the faces of an image",
    dependencies=[Depends(require("IndexFaces"))],
)
async def index_faces(
    request: Request,
    collections: CollectionsDep,
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
    data = await _upload(collections.faces, image)
    decoded, result = await run_blocking(
        request,
        _with_image,
        collections.faces,
        data,
        lambda img: collections.index_faces(
            collection_id,
            img,
            external_image_id=external_image_id,
            max_faces=max_faces,
            quality_filter=quality_filter,
        ),
    )
    faces = [
        IndexedFace(
            **_face_fields(face),
            bbox_px=_pixels(face.bounding_box, decoded),
            face_index=index if index >= 0 else None,
        )
        for face, index in result.face_records
    ]
    return IndexFacesOut(
        face_model_version=result.face_model_version,
        image=_image(decoded),
        duplicate=result.duplicate,
        faces=faces,
        unindexed_faces=_unindexed(result),
    )


@router.get(
    "/collections/{collection_id}/faces",
    tags=["faces"],
    summary="List the faces of a collection",
    dependencies=[Depends(require("ListFaces"))],
)
async def list_faces(
    request: Request,
    collections: CollectionsDep,
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
    page, token = await run_blocking(
        request,
        collections.list_faces,
        collection_id,
        next_token=next_token,
        max_results=max_results,
        user_id=user_id,
        face_ids=face_id,
    )
    return FaceList(faces=[_face(f) for f in page], next_token=token)


@router.post(
    "/collections/{collection_id}/faces/delete",
    tags=["faces"],
    summary="Delete faces",
    dependencies=[Depends(require("DeleteFaces"))],
)
async def delete_faces(
    request: Request,
    collections: CollectionsDep,
    collection_id: CollectionIdPath,
    body: DeleteFacesIn,
) -> DeleteFacesOut:
    """Deletes the faces that exist and belong to no user; the others are listed in
    `unsuccessful` with a reason (FACE_NOT_FOUND, ASSOCIATED_TO_AN_EXISTING_USER)."""
    deleted, unsuccessful = await run_blocking(
        request, collections.delete_faces, collection_id, list(body.face_ids)
    )
    return DeleteFacesOut(deleted_face_ids=deleted, unsuccessful=_unsuccessful(unsuccessful))


@router.post(
    "/collections/{collection_id}/search",
    tags=["faces"],
    summary="Search the collection with the largest face of an image",
    dependencies=[Depends(require("SearchFacesByImage"))],
)
async def search_faces_by_image(
    request: Request,
    collections: CollectionsDep,
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
) -> SearchFacesByImageOut:
    """Stored faces whose Similarity to the image's largest face reaches `threshold`.
    No face in the image (or one failing `quality_filter`) → InvalidParameterException."""
    data = await _upload(collections.faces, image)
    decoded, result = await run_blocking(
        request,
        _with_image,
        collections.faces,
        data,
        lambda img: collections.search_faces_by_image(
            collection_id,
            img,
            max_faces=max_faces,
            threshold=threshold,
            quality_filter=quality_filter,
        ),
    )
    searched = ImageFace(result.searched_face_bounding_box, result.searched_face_confidence)
    return SearchFacesByImageOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        image=_image(decoded),
        searched_face=_probe(searched, decoded),
        matches=_face_matches(result.matches),
    )


@router.get(
    "/collections/{collection_id}/faces/{face_id}/matches",
    tags=["faces"],
    summary="Search the collection with a stored face",
    dependencies=[Depends(require("SearchFaces"))],
)
async def search_faces(
    request: Request,
    collections: CollectionsDep,
    collection_id: CollectionIdPath,
    face_id: FaceIdPath,
    max_faces: Annotated[
        int, Query(ge=1, le=MAX_SEARCH_FACES, description="Return at most this many matches.")
    ] = DEFAULT_SEARCH_MAX_FACES,
    threshold: Annotated[float, Query(ge=0.0, le=100.0, description=THRESHOLD_DOC)] = (
        DEFAULT_FACE_MATCH_THRESHOLD
    ),
) -> SearchFacesOut:
    """Other stored faces whose Similarity to this face reaches `threshold`."""
    matches = await run_blocking(
        request,
        collections.search_faces,
        collection_id,
        face_id,
        max_faces=max_faces,
        threshold=threshold,
    )
    return SearchFacesOut(
        searched_face_id=face_id, threshold=threshold, matches=_face_matches(matches)
    )


@router.get(
    "/collections/{collection_id}/faces/{face_id}/user_matches",
    tags=["users"],
    summary="Search the collection's users with a stored face",
    dependencies=[Depends(require("SearchUsers"))],
)
async def search_users_by_face(
    request: Request,
    users: UsersDep,
    collection_id: CollectionIdPath,
    face_id: FaceIdPath,
    max_users: Annotated[
        int, Query(ge=1, le=MAX_USERS, description="Return at most this many users.")
    ] = DEFAULT_MAX_USERS,
    threshold: Annotated[float, Query(ge=0.0, le=100.0, description=THRESHOLD_DOC)] = (
        DEFAULT_USER_MATCH_THRESHOLD
    ),
) -> SearchUsersOut:
    """Users whose faces, combined, reach `threshold` against this face (its own user
    included)."""
    result = await run_blocking(
        request,
        users.search_users,
        collection_id,
        face_id=face_id,
        user_match_threshold=threshold,
        max_users=max_users,
    )
    return _search_users_out(result)


# -- users -------------------------------------------------------------------------------
@router.post(
    "/collections/{collection_id}/users",
    status_code=201,
    tags=["users"],
    summary="Create a user",
    dependencies=[Depends(require("CreateUser"))],
)
async def create_user(
    request: Request, users: UsersDep, collection_id: CollectionIdPath, body: CreateUserIn
) -> CreatedUser:
    """An empty user (status CREATED until a face is associated). A taken id →
    ConflictException, unless this `client_request_token` created it."""
    await run_blocking(
        request,
        users.create_user,
        collection_id,
        body.user_id,
        client_request_token=body.client_request_token,
    )
    return CreatedUser(collection_id=collection_id, user_id=body.user_id)


@router.get(
    "/collections/{collection_id}/users",
    tags=["users"],
    summary="List users",
    dependencies=[Depends(require("ListUsers"))],
)
async def list_users(
    request: Request,
    users: UsersDep,
    collection_id: CollectionIdPath,
    next_token: NextToken = None,
    max_results: Annotated[int, Query(ge=1, le=MAX_USERS)] = DEFAULT_PAGE_SIZE,
) -> UserList:
    """Users by id with their status, a page at a time."""
    page, token = await run_blocking(
        request, users.list_users, collection_id, next_token=next_token, max_results=max_results
    )
    return UserList(
        users=[UserOut(user_id=u.user_id, status=u.status) for u in page], next_token=token
    )


@router.delete(
    "/collections/{collection_id}/users/{user_id}",
    status_code=204,
    tags=["users"],
    summary="Delete a user",
    dependencies=[Depends(require("DeleteUser"))],
)
async def delete_user(
    request: Request,
    users: UsersDep,
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
        request,
        users.delete_user,
        collection_id,
        user_id,
        client_request_token=client_request_token,
    )
    return Response(status_code=204)


@router.post(
    "/collections/{collection_id}/users/{user_id}/faces",
    tags=["users"],
    summary="Associate faces with a user",
    dependencies=[Depends(require("AssociateFaces"))],
)
async def associate_faces(
    request: Request,
    users: UsersDep,
    collection_id: CollectionIdPath,
    user_id: UserIdPath,
    body: AssociateFacesIn,
) -> AssociateFacesOut:
    """Faces that match the user well enough join it; the others are listed in
    `unsuccessful` with a reason. A user holds at most 100 faces."""
    outcome = await run_blocking(
        request,
        users.associate_faces,
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
    dependencies=[Depends(require("DisassociateFaces"))],
)
async def disassociate_faces(
    request: Request,
    users: UsersDep,
    collection_id: CollectionIdPath,
    user_id: UserIdPath,
    body: DisassociateFacesIn,
) -> DisassociateFacesOut:
    """The faces leave the user and stay in the collection."""
    outcome = await run_blocking(
        request,
        users.disassociate_faces,
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
    dependencies=[Depends(require("SearchUsers"))],
)
async def search_users(
    request: Request,
    users: UsersDep,
    collection_id: CollectionIdPath,
    user_id: UserIdPath,
    max_users: Annotated[
        int, Query(ge=1, le=MAX_USERS, description="Return at most this many users.")
    ] = DEFAULT_MAX_USERS,
    threshold: Annotated[float, Query(ge=0.0, le=100.0, description=THRESHOLD_DOC)] = (
        DEFAULT_USER_MATCH_THRESHOLD
    ),
) -> SearchUsersOut:
    """Other users whose faces, combined, reach `threshold` against this user's."""
    result = await run_blocking(
        request,
        users.search_users,
        collection_id,
        user_id=user_id,
        user_match_threshold=threshold,
        max_users=max_users,
    )
    return _search_users_out(result)


@router.post(
    "/collections/{collection_id}/users/search",
    tags=["users"],
    summary="Search the collection's users with the largest face of an image",
    dependencies=[Depends(require("SearchUsersByImage"))],
)
async def search_users_by_image(
    request: Request,
    users: UsersDep,
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
) -> SearchUsersByImageOut:
    """Users whose faces, combined, reach `threshold` against the image's largest face. No
    usable face → no matches and a null `searched_face` (not an error)."""
    faces = users.collections.faces
    data = await _upload(faces, image)
    decoded, result = await run_blocking(
        request,
        _with_image,
        faces,
        data,
        lambda img: users.search_users_by_image(
            collection_id,
            img,
            user_match_threshold=threshold,
            max_users=max_users,
            quality_filter=quality_filter,
        ),
    )
    searched = result.searched_face
    return SearchUsersByImageOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        image=_image(decoded),
        searched_face=_probe(searched, decoded) if searched is not None else None,
        matches=_user_matches(result.matches),
        unsearched_faces=[_unsearched(u, decoded) for u in result.unsearched],
    )
