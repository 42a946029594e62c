"""The gateway's searches (faces and users, by id or by image): the collection's policy
applies (purpose, threshold floor) and each record names the matches and the scale. A search
with at least one candidate makes a lead (``services/leads.py``), written before the search's
record, which names it (``lead_id``). When the collection keeps face crops, the lead keeps
its searched face: the crop of the photo's searched (largest) face, sealed for the lead, or
for a search by FaceId the enrolled face's id (its own kept crop is shown, never copied).

The four verbs share one path (``_searched``): policy → scale → search → lead."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from faceledger.domain.audit import Caller
from faceledger.domain.collections import CollectionMatch
from faceledger.domain.faces import Image
from faceledger.domain.leads import LeadCandidate
from faceledger.domain.results import (
    ImageFace,
    SearchByImageResult,
    UserSearchByImageResult,
    UserSearchResult,
)
from faceledger.domain.scale import SearchScale
from faceledger.inference.face_crops import face_crop_jpeg
from faceledger.services.collections import DEFAULT_FACE_MATCH_THRESHOLD, DEFAULT_SEARCH_MAX_FACES
from faceledger.services.gateway_base import ledgered_matches, probe_sha256, scale_summary
from faceledger.services.gateway_policy import PolicyVerbs
from faceledger.services.leads import ProbeMaker, face_candidates, user_candidates
from faceledger.services.users import DEFAULT_MAX_USERS, DEFAULT_USER_MATCH_THRESHOLD
from faceledger.store.records import LeadProbe

T = TypeVar("T")


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

    def _searched(
        self,
        caller: Caller,
        operation: str,
        collection_id: str,
        requested: float,
        search: Callable[[float], T],
        candidates: Callable[[T], tuple[LeadCandidate, ...]],
        probe: Callable[[T], ProbeMaker | None],
    ) -> tuple[T, SearchScale, str | None]:
        """One search's path: the policy (purpose), the scale (the effective threshold),
        ``search`` at that threshold, and the lead of its candidates (with ``probe``'s kept
        searched face when the policy keeps crops); (what ``search`` found, scale, lead id)."""
        policy = self._search_policy(caller, collection_id)
        scale = self.search_scale(collection_id, policy, requested)
        found = search(scale.threshold)
        lead_id = self._leads.open_lead(
            caller,
            operation,
            collection_id,
            scale.threshold,
            candidates(found),
            scale,
            probe(found) if policy.keep_face_crops else None,
        )
        return found, scale, lead_id

    def _photo_probe(self, image: bytes | Image, face: ImageFace | None) -> ProbeMaker | None:
        """Keeps the crop of the photo's searched face, sealed for the lead (made like an
        enrolled face's crop: ``inference/face_crops.py``)."""
        if face is None:
            return None

        def make(lead_id: str) -> LeadProbe:
            box = face.box_px
            corners = (box.left_px, box.top_px, box.right_px, box.bottom_px)
            jpeg = face_crop_jpeg(self._faces.image(image), corners)
            return LeadProbe(sealed=self._crops.probe_sealer()(lead_id, jpeg))

        return make

    @staticmethod
    def _face_probe(face_id: str | None) -> ProbeMaker | None:
        """Keeps the searched enrolled face's id: its own kept crop is the lead's probe."""
        if face_id is None:
            return None
        return lambda _lead_id: LeadProbe(face_id=face_id)

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
            found, scale, lead_id = self._searched(
                caller,
                "SearchFaces",
                collection_id,
                threshold,
                lambda floored: self._collections.search_faces(
                    collection_id, face_id, max_faces=max_faces, threshold=floored
                ),
                face_candidates,
                lambda _found: self._face_probe(face_id),
            )
            version = self._collections.store.face_model_version(collection_id)
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
            result, scale, lead_id = self._searched(
                caller,
                "SearchFacesByImage",
                collection_id,
                threshold,
                lambda floored: self._collections.search_faces_by_image(
                    collection_id,
                    image,
                    max_faces=max_faces,
                    threshold=floored,
                    quality_filter=quality_filter,
                ),
                lambda r: face_candidates(r.matches),
                lambda r: self._photo_probe(image, r.searched_face),
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
            result, scale, lead_id = self._searched(
                caller,
                "SearchUsers",
                collection_id,
                user_match_threshold,
                lambda floored: self._users.search_users(
                    collection_id,
                    user_id=user_id,
                    face_id=face_id,
                    user_match_threshold=floored,
                    max_users=max_users,
                ),
                lambda r: user_candidates(r.matches),
                lambda _r: self._face_probe(face_id),  # by UserId: no one face was searched
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
            result, scale, lead_id = self._searched(
                caller,
                "SearchUsersByImage",
                collection_id,
                user_match_threshold,
                lambda floored: self._users.search_users_by_image(
                    collection_id,
                    image,
                    user_match_threshold=floored,
                    max_users=max_users,
                    quality_filter=quality_filter,
                ),
                lambda r: user_candidates(r.matches),
                lambda r: self._photo_probe(image, r.searched_face),
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
