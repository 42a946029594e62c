"""``/v1/collections``: create, list, describe and delete collections."""

from __future__ import annotations

from fastapi import Request, Response

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep
from faceledger.api.native.collections.mappers import collection_out
from faceledger.api.native.collections.params import (
    DEFAULT_PAGE_SIZE,
    CollectionIdPath,
    NextToken,
    PageSize,
    resource_router,
)
from faceledger.api.native.collections.schemas import (
    CollectionList,
    CollectionOut,
    CreateCollectionIn,
)

router = resource_router()


@router.post("/collections", status_code=201, tags=["collections"], summary="Create a collection")
async def create_collection(
    request: Request, gate: GatewayDep, caller: CallerDep, body: CreateCollectionIn
) -> CollectionOut:
    """An empty collection pinned to the server's model pack. A taken id →
    ResourceAlreadyExistsException."""
    created = await run_blocking(request, gate.create_collection, caller, body.collection_id)
    return collection_out(created)


@router.get("/collections", tags=["collections"], summary="List collections")
async def list_collections(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    next_token: NextToken = None,
    max_results: PageSize = DEFAULT_PAGE_SIZE,
) -> CollectionList:
    """Collections by id, a page at a time."""
    page, token = await run_blocking(
        request, gate.list_collections, caller, next_token=next_token, max_results=max_results
    )
    return CollectionList(collections=[collection_out(c) for c in page], next_token=token)


@router.get("/collections/{collection_id}", tags=["collections"], summary="Describe a collection")
async def describe_collection(
    request: Request, gate: GatewayDep, caller: CallerDep, collection_id: CollectionIdPath
) -> CollectionOut:
    """Face and user counts, model pack and creation time."""
    described = await run_blocking(request, gate.describe_collection, caller, collection_id)
    return collection_out(described)


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
