"""``/v1/collections/{collection_id}/policy``: a collection's accountability policy.

Included last, so the spec lists the policy after the routes it governs.
"""

from __future__ import annotations

from fastapi import Request

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep
from faceledger.api.native.collections.mappers import policy_out
from faceledger.api.native.collections.params import CollectionIdPath, resource_router
from faceledger.api.native.collections.schemas import CollectionPolicyIn, CollectionPolicyOut
from faceledger.domain.policy import CollectionPolicy

router = resource_router()


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
    return policy_out(collection_id, policy)


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
        keep_face_crops=body.keep_face_crops,
    )
    stored = await run_blocking(request, gate.put_policy, caller, collection_id, policy)
    return policy_out(collection_id, stored)
