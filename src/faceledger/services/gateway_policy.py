"""Collection policy in the gateway: the purpose a search needs, the threshold floor that
follows the collection's size (or is pinned), and the policy verbs."""

from __future__ import annotations

from faceledger.domain.audit import Caller
from faceledger.domain.errors import AccessDeniedError
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.scale import FLOOR_FROM_POLICY, FLOOR_FROM_SIZE, SearchScale
from faceledger.inference.scale import MIN_FLOOR, TARGET_FPIR
from faceledger.services.gateway_base import GatewayParts


class PolicyVerbs(GatewayParts):
    """A collection's policy and what it makes of a search's threshold."""

    def _policy_of(self, collection_id: str) -> CollectionPolicy:
        """The collection's policy, or the installation's default when it has none."""
        stored = self._collections.store.policy(collection_id)
        if stored is not None:
            return CollectionPolicy.from_json(stored)
        return CollectionPolicy(
            require_purpose=self.settings.require_purpose,
            threshold_floor=self.settings.default_threshold_floor,
        )

    def size_floor(self, collection_id: str) -> tuple[float, bool, int]:
        """(the floor the collection's size calls for, whether it keeps FPIR within the
        target, the face count); 80 and unknown reach when the pack has no open-set table."""
        faces = self._collections.indexes.face_count(collection_id)
        table = self._collections.faces.engine.scale
        if table is None:
            return MIN_FLOOR, True, faces
        floor, reachable = table.floor(faces)
        return floor, reachable, faces

    def search_scale(
        self, collection_id: str, policy: CollectionPolicy, requested: float
    ) -> SearchScale:
        """The effective threshold of a search and what a candidate means at that threshold
        and the collection's current size."""
        size_floor, reachable, faces = self.size_floor(collection_id)
        engine = self._collections.faces.engine
        table = engine.scale
        floor = policy.floor(size_floor)
        threshold = max(float(requested), floor)
        estimate = table.estimate(threshold, faces) if table is not None else None
        return SearchScale(
            face_count=faces,
            threshold=threshold,
            floor=floor,
            floor_source=FLOOR_FROM_POLICY if policy.floor_pinned else FLOOR_FROM_SIZE,
            target_fpir=table.target_fpir if table is not None else TARGET_FPIR,
            target_reachable=reachable,
            fpir=None if estimate is None else estimate.fpir,
            fpir_upper=None if estimate is None else estimate.fpir_upper,
            hit_rate=None if estimate is None else estimate.hit_rate,
            fmr=engine.calibration.false_match_rate(threshold),
        )

    def _search_policy(self, caller: Caller, collection_id: str) -> CollectionPolicy:
        policy = self._policy_of(collection_id)
        if policy.require_purpose and not (caller.purpose and caller.case_reference):
            raise AccessDeniedError(
                f"collection {collection_id!r} requires a purpose and a case reference for "
                "searches: send the headers X-FaceLedger-Purpose and X-FaceLedger-Case (AWS "
                "SDKs), the fields purpose and case_reference (/v1), or --purpose and --case "
                "(CLI)"
            )
        return policy

    def get_policy(self, caller: Caller, collection_id: str) -> CollectionPolicy:
        return self._run(
            caller,
            "DescribeCollection",
            lambda: self._policy_of(collection_id),
            collection_id=collection_id,
            summary=lambda p: {"policy": p.to_json()},
        )

    def put_policy(
        self, caller: Caller, collection_id: str, policy: CollectionPolicy
    ) -> CollectionPolicy:
        def work() -> CollectionPolicy:
            self._collections.describe_collection(collection_id)
            self._collections.store.set_policy(collection_id, policy.to_json())
            return policy

        return self._run(
            caller,
            "PutCollectionPolicy",
            work,
            collection_id=collection_id,
            summary=lambda p: {"policy": p.to_json()},
        )
