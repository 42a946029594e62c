"""``/v1/collections/{collection_id}/faces``: index, list, delete and search faces.

Searches by image pass the upload's bytes to the gateway, which checks the caller's roles
before decoding it; the result carries the probe's pixel box and the image's size.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request, Response

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep
from faceledger.api.native.collections.mappers import (
    face_matches_out,
    face_out,
    failures_out,
    image_out,
    index_faces_out,
    probe_out,
    scale_out,
    search_users_out,
)
from faceledger.api.native.collections.params import (
    DEFAULT_PAGE_SIZE,
    CollectionIdPath,
    FaceId,
    FaceIdPath,
    FormSearcher,
    ImageUpload,
    MaxMatchesForm,
    MaxMatchesQuery,
    MaxUsersQuery,
    NextToken,
    PageSize,
    ProbeQualityForm,
    QuerySearcher,
    ThresholdForm,
    ThresholdQuery,
    pattern,
    read_image,
    resource_router,
)
from faceledger.api.native.collections.schemas import (
    DeleteFacesIn,
    DeleteFacesOut,
    FaceList,
    IndexFacesOut,
    SearchFacesByImageOut,
    SearchFacesOut,
    SearchUsersOut,
)
from faceledger.domain.collections import EXTERNAL_IMAGE_ID_RE, USER_ID_RE, QualityFilter
from faceledger.inference.engine import MAX_FACES_PER_IMAGE
from faceledger.services.collections import DEFAULT_FACE_MATCH_THRESHOLD, DEFAULT_SEARCH_MAX_FACES
from faceledger.services.users import DEFAULT_MAX_USERS, DEFAULT_USER_MATCH_THRESHOLD

router = resource_router()


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
            json_schema_extra=pattern(EXTERNAL_IMAGE_ID_RE),
        ),
    ] = None,
    max_faces: Annotated[
        int,
        Form(ge=1, le=MAX_FACES_PER_IMAGE, description="Index at most this many faces."),
    ] = MAX_FACES_PER_IMAGE,
    quality_filter: Annotated[
        QualityFilter,
        Form(description="Refuse faces below this quality (AUTO: MEDIUM, sharpness < 10)."),
    ] = "AUTO",
) -> IndexFacesOut:
    """Detects the faces, refuses those that fail the quality filter (with reasons) and keeps
    the best `max_faces`. Boxes are in pixels of the upload (`bbox_px`) and as ratios."""
    data = await read_image(gate, image)
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
    return index_faces_out(result)


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
        Query(description="Only this user's faces.", json_schema_extra=pattern(USER_ID_RE)),
    ] = None,
    face_id: Annotated[
        list[FaceId] | None,
        Query(description="Only these faces (repeat the parameter).", max_length=4096),
    ] = None,
    next_token: NextToken = None,
    max_results: PageSize = DEFAULT_PAGE_SIZE,
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
    return FaceList(faces=[face_out(f) for f in page.faces], next_token=page.next_token)


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
    return DeleteFacesOut(deleted_face_ids=deleted, unsuccessful=failures_out(unsuccessful))


@router.post(
    "/collections/{collection_id}/search",
    tags=["faces"],
    summary="Search the collection with the largest face of an image",
)
async def search_faces_by_image(
    request: Request,
    gate: GatewayDep,
    searcher: FormSearcher,
    collection_id: CollectionIdPath,
    image: ImageUpload,
    max_faces: MaxMatchesForm = DEFAULT_SEARCH_MAX_FACES,
    threshold: ThresholdForm = DEFAULT_FACE_MATCH_THRESHOLD,
    quality_filter: ProbeQualityForm = "NONE",
) -> SearchFacesByImageOut:
    """Stored faces whose Similarity to the image's largest face reaches `threshold` (raised
    to the collection's floor). No face in the image (or one failing `quality_filter`) →
    InvalidParameterException; no purpose where the policy requires one → 403."""
    data = await read_image(gate, image)
    result = await run_blocking(
        request,
        gate.search_faces_by_image,
        searcher,
        collection_id,
        data,
        max_faces=max_faces,
        threshold=threshold,
        quality_filter=quality_filter,
    )
    return SearchFacesByImageOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        requested_threshold=threshold,
        image=image_out(result.image),
        searched_face=probe_out(result.searched_face, result.image),
        matches=face_matches_out(result.matches),
        scale=scale_out(result.scale),
        lead_id=result.lead_id,
    )


@router.get(
    "/collections/{collection_id}/faces/{face_id}/crop",
    tags=["faces"],
    summary="Show the kept crop of an enrolled face",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The face's JPEG crop."}},
)
async def get_face_crop(
    request: Request,
    gate: GatewayDep,
    searcher: QuerySearcher,
    collection_id: CollectionIdPath,
    face_id: FaceIdPath,
) -> Response:
    """The small JPEG a collection whose policy keeps face crops stored (encrypted) when the
    face was enrolled (roles search and review; every view is ledgered). A searcher needs a
    purpose and a case reference when the collection's policy requires them. 400
    ResourceNotFoundException when the face has no kept crop."""
    jpeg = await run_blocking(request, gate.get_face_crop, searcher, collection_id, face_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get(
    "/collections/{collection_id}/faces/{face_id}/matches",
    tags=["faces"],
    summary="Search the collection with a stored face",
)
async def search_faces(
    request: Request,
    gate: GatewayDep,
    searcher: QuerySearcher,
    collection_id: CollectionIdPath,
    face_id: FaceIdPath,
    max_faces: MaxMatchesQuery = DEFAULT_SEARCH_MAX_FACES,
    threshold: ThresholdQuery = DEFAULT_FACE_MATCH_THRESHOLD,
) -> SearchFacesOut:
    """Other stored faces whose Similarity to this face reaches `threshold` (raised to the
    collection's floor)."""
    found = await run_blocking(
        request,
        gate.search_faces,
        searcher,
        collection_id,
        face_id,
        max_faces=max_faces,
        threshold=threshold,
    )
    return SearchFacesOut(
        searched_face_id=face_id,
        threshold=found.threshold,
        requested_threshold=threshold,
        matches=face_matches_out(found.matches),
        scale=scale_out(found.scale),
        lead_id=found.lead_id,
    )


@router.get(
    "/collections/{collection_id}/faces/{face_id}/user_matches",
    tags=["users"],
    summary="Search the collection's users with a stored face",
)
async def search_users_by_face(
    request: Request,
    gate: GatewayDep,
    searcher: QuerySearcher,
    collection_id: CollectionIdPath,
    face_id: FaceIdPath,
    max_users: MaxUsersQuery = DEFAULT_MAX_USERS,
    threshold: ThresholdQuery = DEFAULT_USER_MATCH_THRESHOLD,
) -> SearchUsersOut:
    """Users whose faces, combined, reach `threshold` (raised to the collection's floor)
    against this face (its own user included)."""
    result = await run_blocking(
        request,
        gate.search_users,
        searcher,
        collection_id,
        face_id=face_id,
        user_match_threshold=threshold,
        max_users=max_users,
    )
    return search_users_out(result, threshold)
