"""The gateway's searches (faces and users, by id or by image): the collection's policy
applies (purpose, threshold floor) and each record names the matches and the scale. A search
with at least one candidate makes a lead (``services/leads.py``), written before the search's
record, which names it (``lead_id``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from faceledger.domain.audit import Caller
from faceledger.domain.collections import CollectionMatch
from faceledger.domain.faces import Image
from faceledger.domain.results import (
    SearchByImageResult,
    UserSearchByImageResult,
    UserSearchResult,
)
from faceledger.domain.scale import SearchScale
from faceledger.services.collections import DEFAULT_FACE_MATCH_THRESHOLD, DEFAULT_SEARCH_MAX_FACES
from faceledger.services.gateway_base import ledgered_matches, probe_sha256, scale_summary
from faceledger.services.gateway_policy import PolicyVerbs
from faceledger.services.leads import face_candidates, user_candidates
from faceledger.services.users import DEFAULT_MAX_USERS, DEFAULT_USER_MATCH_THRESHOLD


@dataclass(frozen=True)
class FaceSearch:
    """SearchFaces: the matches, the effective (floored) threshold, the FaceModelVersion."""

    matches: tuple[CollectionMatch, ...]
    threshold: float
    face_model_version: str
    scale: SearchScale | None = None  # what a candidate means at the collection's size
    lead_id: str | None = None  # the lead the matches make (None: no match, no lead)


class SearchVerbs(PolicyVerbs):
    """Face and user searches."""

    def search_faces(
        self,
        caller: Caller,
        collection_id: str,
        face_id: str,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
    ) -> FaceSearch:
        """Matches of an enrolled face, the effective (floored) threshold, and the scale."""

        def work() -> FaceSearch:
            policy = self._search_policy(caller, collection_id)
            scale = self.search_scale(collection_id, policy, threshold)
            found = self._collections.search_faces(
                collection_id, face_id, max_faces=max_faces, threshold=scale.threshold
            )
            version = self._collections.store.face_model_version(collection_id)
            lead_id = self._leads.open_lead(
                caller,
                "SearchFaces",
                collection_id,
                scale.threshold,
                face_candidates(found),
                scale,
            )
            return FaceSearch(found, scale.threshold, version, scale, lead_id)

        return self._run(
            caller,
            "SearchFaces",
            work,
            collection_id=collection_id,
            summary=lambda out: {
                "searched_face_id": face_id,
                "requested_threshold": threshold,
                "threshold": out.threshold,
                "matches": ledgered_matches(out.matches),
                "scale": scale_summary(out.scale),
                "lead_id": out.lead_id,
            },
        )

    def search_faces_by_image(
        self,
        caller: Caller,
        collection_id: str,
        image: bytes | Image,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
        quality_filter: str = "NONE",
    ) -> SearchByImageResult:
        """The result's ``threshold`` is the effective (floored) one."""

        def work() -> SearchByImageResult:
            policy = self._search_policy(caller, collection_id)
            scale = self.search_scale(collection_id, policy, threshold)
            result = self._collections.search_faces_by_image(
                collection_id,
                image,
                max_faces=max_faces,
                threshold=scale.threshold,
                quality_filter=quality_filter,
            )
            lead_id = self._leads.open_lead(
                caller,
                "SearchFacesByImage",
                collection_id,
                result.threshold,
                face_candidates(result.matches),
                scale,
            )
            return replace(result, scale=scale, lead_id=lead_id)

        return self._run(
            caller,
            "SearchFacesByImage",
            work,
            collection_id=collection_id,
            probes=probe_sha256(image),
            summary=lambda r: {
                "requested_threshold": threshold,
                "threshold": r.threshold,
                "matches": ledgered_matches(r.matches),
                "scale": scale_summary(r.scale),
                "lead_id": r.lead_id,
            },
        )

    def search_users(
        self,
        caller: Caller,
        collection_id: str,
        *,
        user_id: str | None = None,
        face_id: str | None = None,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
        max_users: int = DEFAULT_MAX_USERS,
    ) -> UserSearchResult:
        """The result's ``threshold`` is the effective (floored) one."""

        def work() -> UserSearchResult:
            policy = self._search_policy(caller, collection_id)
            scale = self.search_scale(collection_id, policy, user_match_threshold)
            result = self._users.search_users(
                collection_id,
                user_id=user_id,
                face_id=face_id,
                user_match_threshold=scale.threshold,
                max_users=max_users,
            )
            lead_id = self._leads.open_lead(
                caller,
                "SearchUsers",
                collection_id,
                result.threshold,
                user_candidates(result.matches),
                scale,
            )
            return replace(result, lead_id=lead_id, scale=scale)

        return self._run(
            caller,
            "SearchUsers",
            work,
            collection_id=collection_id,
            summary=lambda r: {
                "searched_user_id": user_id,
                "searched_face_id": face_id,
                "requested_threshold": user_match_threshold,
                "threshold": r.threshold,
                "matches": [[m.user.user_id, round(m.similarity, 3)] for m in r.matches],
                "scale": scale_summary(r.scale),
                "lead_id": r.lead_id,
            },
        )

    def search_users_by_image(
        self,
        caller: Caller,
        collection_id: str,
        image: bytes | Image,
        *,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
        max_users: int = DEFAULT_MAX_USERS,
        quality_filter: str = "NONE",
    ) -> UserSearchByImageResult:
        """The result's ``threshold`` is the effective (floored) one."""

        def work() -> UserSearchByImageResult:
            policy = self._search_policy(caller, collection_id)
            scale = self.search_scale(collection_id, policy, user_match_threshold)
            result = self._users.search_users_by_image(
                collection_id,
                image,
                user_match_threshold=scale.threshold,
                max_users=max_users,
                quality_filter=quality_filter,
            )
            lead_id = self._leads.open_lead(
                caller,
                "SearchUsersByImage",
                collection_id,
                result.threshold,
                user_candidates(result.matches),
                scale,
            )
            return replace(result, lead_id=lead_id, scale=scale)

        return self._run(
            caller,
            "SearchUsersByImage",
            work,
            collection_id=collection_id,
            probes=probe_sha256(image),
            summary=lambda r: {
                "requested_threshold": user_match_threshold,
                "threshold": r.threshold,
                "matches": [[m.user.user_id, round(m.similarity, 3)] for m in r.matches],
                "searched_face": r.searched_face is not None,
                "scale": scale_summary(r.scale),
                "lead_id": r.lead_id,
            },
        )
