"""``/v1/collections/{collection_id}/users``: create, list and delete users, (dis)associate
their faces, and search users."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep
from faceledger.api.native.collections.mappers import (
    failures_out,
    image_out,
    probe_out,
    scale_out,
    search_users_out,
    unsearched_out,
    user_matches_out,
    user_out,
)
from faceledger.api.native.collections.params import (
    DEFAULT_PAGE_SIZE,
    CollectionIdPath,
    FormSearcher,
    ImageUpload,
    MaxUsersForm,
    MaxUsersQuery,
    NextToken,
    ProbeQualityForm,
    QuerySearcher,
    ThresholdForm,
    ThresholdQuery,
    UserIdPath,
    UserPageSize,
    pattern,
    read_image,
    resource_router,
)
from faceledger.api.native.collections.schemas import (
    AssociateFacesIn,
    AssociateFacesOut,
    CreatedUser,
    CreateUserIn,
    DisassociateFacesIn,
    DisassociateFacesOut,
    SearchUsersByImageOut,
    SearchUsersOut,
    UserList,
)
from faceledger.services.users import (
    CLIENT_REQUEST_TOKEN_RE,
    DEFAULT_MAX_USERS,
    DEFAULT_USER_MATCH_THRESHOLD,
)

router = resource_router()


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
    max_results: UserPageSize = DEFAULT_PAGE_SIZE,
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
    return UserList(users=[user_out(u.user_id, u.status) for u in page], next_token=token)


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
            json_schema_extra=pattern(CLIENT_REQUEST_TOKEN_RE),
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
        associated_face_ids=list(outcome.faces),
        unsuccessful=failures_out(outcome.unsuccessful),
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
        disassociated_face_ids=list(outcome.faces),
        unsuccessful=failures_out(outcome.unsuccessful),
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
    searcher: QuerySearcher,
    collection_id: CollectionIdPath,
    user_id: UserIdPath,
    max_users: MaxUsersQuery = DEFAULT_MAX_USERS,
    threshold: ThresholdQuery = DEFAULT_USER_MATCH_THRESHOLD,
) -> SearchUsersOut:
    """Other users whose faces, combined, reach `threshold` (raised to the collection's
    floor) against this user's."""
    result = await run_blocking(
        request,
        gate.search_users,
        searcher,
        collection_id,
        user_id=user_id,
        user_match_threshold=threshold,
        max_users=max_users,
    )
    return search_users_out(result, threshold)


@router.post(
    "/collections/{collection_id}/users/search",
    tags=["users"],
    summary="Search the collection's users with the largest face of an image",
)
async def search_users_by_image(
    request: Request,
    gate: GatewayDep,
    searcher: FormSearcher,
    collection_id: CollectionIdPath,
    image: ImageUpload,
    max_users: MaxUsersForm = DEFAULT_MAX_USERS,
    threshold: ThresholdForm = DEFAULT_USER_MATCH_THRESHOLD,
    quality_filter: ProbeQualityForm = "NONE",
) -> SearchUsersByImageOut:
    """Users whose faces, combined, reach `threshold` (raised to the collection's floor)
    against the image's largest face. No usable face → no matches and a null
    `searched_face` (not an error)."""
    data = await read_image(gate, image)
    result = await run_blocking(
        request,
        gate.search_users_by_image,
        searcher,
        collection_id,
        data,
        user_match_threshold=threshold,
        max_users=max_users,
        quality_filter=quality_filter,
    )
    searched = result.searched_face
    return SearchUsersByImageOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        requested_threshold=threshold,
        image=image_out(result.image),
        searched_face=probe_out(searched, result.image) if searched is not None else None,
        matches=user_matches_out(result.matches),
        unsearched_faces=[unsearched_out(u, result.image) for u in result.unsearched],
        lead_id=result.lead_id,
        scale=scale_out(result.scale),
    )
