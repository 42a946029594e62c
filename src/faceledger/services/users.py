"""Users: several enrolled faces of one person under one UserId (Rekognition's user verbs).

``UserService`` wraps a ``CollectionService`` (its store, vector indexes, engine and token
signer) with CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces, SearchUsers
and SearchUsersByImage. A face belongs to at most one user; DeleteFaces refuses faces that
belong to a user (``ASSOCIATED_TO_AN_EXISTING_USER``) and DeleteUser keeps the user's faces,
disassociated.

**How a user's faces combine into one score.** A user is represented by the L2-normalised mean
of its faces' unit embeddings (its *centroid*). A user's Similarity to a probe is the pack's
calibrated Similarity of the cosine between the probe and that centroid, so it is read on the
same 0–100 scale as a face match. Measured on the LFW development split (cached SFace
embeddings; label faults of ``bench/lfw_exclusions.txt`` removed; every person with more than
K images enrolled as a user of K random images, one held-out image as the genuine probe, every
image of the other people as impostor probes; 8 draws, 5–23 M impostor user comparisons):

| K  | rule      | FMR at 50 | FMR at 80 | FNMR at 80 | FNMR at FMR 1e-5 |
|----|-----------|----------:|----------:|-----------:|-----------------:|
| 2  | max face  | 1.31e-3   | 1.95e-6   | 3.66 %     | 1.89 %           |
| 2  | centroid  | 1.04e-3   | 1.91e-6   | 2.27 %     | 1.43 %           |
| 3  | max face  | 1.83e-3   | 2.86e-6   | 1.80 %     | 1.19 %           |
| 3  | centroid  | 1.17e-3   | 2.74e-6   | 1.13 %     | 0.58 %           |
| 5  | max face  | 2.87e-3   | 4.71e-6   | 1.48 %     | 0.86 %           |
| 5  | centroid  | 1.42e-3   | 4.01e-6   | 0.74 %     | 0.63 %           |
| 10 | max face  | 5.18e-3   | 1.24e-5   | 1.09 %     | 1.09 %           |
| 10 | centroid  | 1.78e-3   | 2.26e-6   | 0.97 %     | 0.97 %           |

The pack's single-face calibration publishes FMR 1.0e-3 at 50 and 9.9e-6 at 80. The best
single-face match ("max") takes K chances to be fooled, so its false-match rate grows about
K-fold (5× at 50 for K = 10) and a Similarity stops meaning what the table says; the centroid
keeps the false-match rate near the published one (≤ 1.8× at 50, below it at 80) and misses
fewer genuine matches at every K. The mean of per-face cosines was also tried: it is
conservative (FMR 1e-4 at 50) but misses 4–7 % at 80. So: centroid.

SearchUsers and SearchUsersByImage cannot keep a second index of centroids in step with every
process's writes, so they search the face index and rescore: the faces nearest the probe
(``100 × MaxUsers + 100``, at most 4,096) with a cosine of at least ``CANDIDATE_NORM`` × the
threshold's cosine nominate their users (the ``4 × MaxUsers`` (≥ 40) users with the best face);
each nominated user's centroid is then scored exactly. A user's centroid cosine is at most its
best face's cosine divided by the centroid's norm, and on LFW (users of 2–20 faces) the norm
was never below 0.70 and the best face never below 0.74 × the centroid cosine, so the floor
``CANDIDATE_NORM = 0.65`` loses no user above the threshold there. SearchUsers by UserId
searches with that user's centroid (the user itself excluded); by FaceId with the face's
embedding (its own user, if any, included).

**AssociateFaces and UserMatchThreshold (default 75).** Each face is checked against the user
as it stands when the call starts: its Similarity to the user's centroid must reach the
threshold, else it is refused with ``LOW_MATCH_CONFIDENCE`` and that Similarity as
``Confidence``. Faces accepted by the same call do not move the centroid for the others, so
the outcome does not depend on the order of FaceIds. A user with no faces yet takes a *seed*:
the face of the batch with the most batch-mates at or above the threshold (ties: the earlier
FaceId); the seed is accepted and every other face is checked against it. A single face for an
empty user is accepted as is (Rekognition applies the threshold only to users with faces).

**At most 100 faces per user** (``MAX_FACES_PER_USER``). Rekognition documents that once a user
holds 100 faces further calls fail with ServiceQuotaExceededException. Here a call that would
take the user past the limit is refused as a whole with ``ServiceQuotaExceededError``
(ServiceQuotaExceededException), saying how many faces the user has; nothing is associated,
rather than associating part of the batch and reporting the rest without a reason code (the
service model's ``UnsuccessfulFaceAssociationReason`` has none for the limit).

**Existing users and ClientRequestToken.** CreateUser of an existing UserId raises
``UserAlreadyExistsError``, a ``ResourceAlreadyExistsError`` that serialises as
ConflictException (the service model lists ConflictException, not
ResourceAlreadyExistsException, for CreateUser). boto3 fills ClientRequestToken on every call,
so a token cannot mean "ignore duplicates"; instead a token is remembered with the call's
parameters and response for ``REQUEST_TOKEN_TTL_S`` (24 h): a retry with the same token and
parameters returns the first response without acting again (CreateUser of a user it created,
DeleteUser of a user it deleted, the same AssociateFaces/DisassociateFaces result); the same
token with different parameters raises IdempotentParameterMismatchException. CreateUser and
DeleteUser record their token in the same transaction as their write; AssociateFaces and
DisassociateFaces record theirs just after (a crash in between lets a retry run again, which
is harmless: faces already in the wanted state are ignored).

Defaults the service model leaves open: MaxUsers 10 for searches, MaxResults 500 (the
maximum) for ListUsers, which lists users by UserId.

UserStatus is ACTIVE for a user with faces and CREATED for one without (every change here is
synchronous, so UPDATING is never reported).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import (
    COLLECTION_ID_RE,
    FACE_ID_RE,
    USER_ID_RE,
    Collection,
    PixelBox,
    User,
    UserStatus,
    check_id,
)
from faceledger.domain.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
    UserAlreadyExistsError,
)
from faceledger.domain.faces import Faces, ImageInfo
from faceledger.domain.results import (
    AssociationOutcome,
    FaceFailure,
    ImageFace,
    UnsearchedFace,
    UserMatch,
    UserSearchByImageResult,
    UserSearchResult,
)
from faceledger.services.collections import (
    CollectionService,
    quality_reasons,
)
from faceledger.services.faces import ImageSource
from faceledger.services.validation import check_int, check_threshold
from faceledger.store.records import UserFacesChange
from faceledger.store.rules import replay

MAX_FACES_PER_USER = 100
MAX_FACE_IDS_PER_CALL = 100  # UserFaceIdList
DEFAULT_ASSOCIATE_THRESHOLD = 75.0
DEFAULT_USER_MATCH_THRESHOLD = 80.0
MAX_USERS = 500  # MaxUserResults
DEFAULT_MAX_USERS = 10
DEFAULT_LIST_USERS = 500
MAX_CANDIDATE_FACES = 4096
CANDIDATE_NORM = 0.65
CLIENT_REQUEST_TOKEN_RE = re.compile(r"[a-zA-Z0-9\-_]{1,64}")


def centroid(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """The user's vector: the L2-normalised mean of its faces' unit embeddings (n, D) → (D,)."""
    mean = np.asarray(vectors, np.float64).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:  # opposite faces cancel out; cannot happen with real embeddings
        mean, norm = np.asarray(vectors[0], np.float64), 1.0
    return (mean / norm).astype(np.float32)


def _status(face_count: int) -> UserStatus:
    return "ACTIVE" if face_count > 0 else "CREATED"


def _check_face_ids(face_ids: list[str]) -> list[str]:
    if not isinstance(face_ids, list | tuple) or not 1 <= len(face_ids) <= MAX_FACE_IDS_PER_CALL:
        raise InvalidParameterError(f"FaceIds must list 1 to {MAX_FACE_IDS_PER_CALL} face ids")
    for face_id in face_ids:
        check_id(face_id, FACE_ID_RE, "FaceId")
    return list(dict.fromkeys(face_ids))  # duplicates count once


class UserService:
    """The user verbs over one ``CollectionService`` (same store, indexes, engine, tokens)."""

    def __init__(self, collections: CollectionService) -> None:
        self.collections = collections
        # Serialises this process's read-check-write sequences (AssociateFaces); the store
        # re-checks existence, ownership and the limit inside its own transaction.
        self._lock = threading.Lock()

    # -- helpers ----------------------------------------------------------------------------
    def _collection(self, collection_id: str) -> Collection:
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        return self.collections.store.collection(collection_id)

    def _require_user(self, collection_id: str, user_id: str) -> None:
        if not self.collections.store.user_exists(collection_id, user_id):
            raise ResourceNotFoundError(
                f"user {user_id!r} does not exist in collection {collection_id!r}"
            )

    @staticmethod
    def _check_token(token: str | None) -> str | None:
        if token is not None:
            check_id(token, CLIENT_REQUEST_TOKEN_RE, "ClientRequestToken")
        return token

    # -- lifecycle --------------------------------------------------------------------------
    def create_user(
        self, collection_id: str, user_id: str, client_request_token: str | None = None
    ) -> None:
        """Create an empty user (UserStatus CREATED until a face is associated).

        UserAlreadyExistsError (ConflictException) when the UserId is taken, unless this
        ClientRequestToken created it (a retry: nothing happens).
        """
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        check_id(user_id, USER_ID_RE, "UserId")
        token = self._check_token(client_request_token)
        store = self.collections.store
        try:
            if token is None:
                store.create_user(collection_id, user_id)
                return
            params = json.dumps({"UserId": user_id})
            earlier = store.create_user_once(
                collection_id, user_id, request_token=token, params=params
            )
        except ResourceAlreadyExistsError as exc:
            raise UserAlreadyExistsError(exc.message) from None
        if earlier is not None:
            replay(earlier, params)

    def delete_user(
        self, collection_id: str, user_id: str, client_request_token: str | None = None
    ) -> None:
        """Delete a user; its faces stay in the collection, disassociated.

        ResourceNotFoundError for an unknown collection or user (unless this
        ClientRequestToken already deleted it: a retry succeeds without acting).
        """
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        check_id(user_id, USER_ID_RE, "UserId")
        token = self._check_token(client_request_token)
        params = json.dumps({"UserId": user_id})
        with self._lock:
            earlier = self.collections.store.delete_user(
                collection_id, user_id, request_token=token, params=params
            )
        if earlier is not None:
            replay(earlier, params)

    def list_users(
        self,
        collection_id: str,
        *,
        next_token: str | None = None,
        max_results: int = DEFAULT_LIST_USERS,
    ) -> tuple[list[User], str | None]:
        """Users by UserId, with UserStatus; ``next_token`` is signed and bound to the listing."""
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        check_int(max_results, 1, MAX_USERS, "MaxResults")
        signer = self.collections._tokens
        after = signer.decode(next_token, "users", collection_id) if next_token else None
        store = self.collections.store
        page = store.list_users(collection_id, after=after, limit=max_results + 1)
        more = len(page) > max_results
        page = page[:max_results]
        counts = store.user_face_counts(collection_id, [u.user_id for u in page])
        users = [User(u.user_id, _status(counts.get(u.user_id, 0))) for u in page]
        token = signer.encode("users", collection_id, page[-1].user_id) if more and page else None
        return users, token

    # -- associations -----------------------------------------------------------------------
    def associate_faces(
        self,
        collection_id: str,
        user_id: str,
        face_ids: list[str],
        user_match_threshold: float = DEFAULT_ASSOCIATE_THRESHOLD,
        client_request_token: str | None = None,
    ) -> AssociationOutcome:
        """Associate faces with a user (see the module docstring for the threshold rule).

        Faces already associated with this user are ignored (neither changed nor refused).
        Reasons: FACE_NOT_FOUND, ASSOCIATED_TO_A_DIFFERENT_USER (``user_id`` is the owner),
        LOW_MATCH_CONFIDENCE (``similarity`` is the face's Similarity to the user).
        ServiceQuotaExceededError when the user would hold more than ``MAX_FACES_PER_USER``
        faces (nothing is associated).
        """
        self.collections.pinned_version(collection_id)
        check_id(user_id, USER_ID_RE, "UserId")
        wanted = _check_face_ids(face_ids)
        threshold = check_threshold(user_match_threshold, "UserMatchThreshold")
        token = self._check_token(client_request_token)
        params = json.dumps({"UserId": user_id, "FaceIds": wanted, "Threshold": threshold})
        store = self.collections.store
        with self._lock:
            self._require_user(collection_id, user_id)
            if token is not None:
                earlier = store.request_record(collection_id, "AssociateFaces", token)
                if earlier is not None:
                    return _outcome(replay(earlier, params))
            failed, candidates = self._owned_elsewhere(collection_id, user_id, wanted)
            existing = store.user_embeddings(collection_id, [user_id]).get(user_id)
            accepted, refused = self._matching(
                collection_id, user_id, candidates, existing, threshold
            )
            failed.update((f.face_id, f) for f in refused)
            current = 0 if existing is None else len(existing)
            limit = MAX_FACES_PER_USER
            if accepted and current + len(accepted) > limit:
                raise _quota_error(user_id, current, len(accepted), limit)
            change = store.associate(collection_id, user_id, accepted, max_faces_per_user=limit)
            if change.limit_exceeded:
                raise _quota_error(user_id, change.face_count, len(accepted), limit)
            outcome = _outcome_of(change, wanted, failed)
            if token is not None:
                store.record_request(
                    collection_id, "AssociateFaces", token, params, _outcome_json(outcome)
                )
        return outcome

    def _owned_elsewhere(
        self, collection_id: str, user_id: str, wanted: list[str]
    ) -> tuple[dict[str, FaceFailure], list[str]]:
        """The wanted faces that cannot join ``user_id`` (missing, or another user's), by
        FaceId, and those that belong to no user yet (the candidates), in the order asked."""
        rows = self.collections.store.faces_by_id(collection_id, wanted)
        failed: dict[str, FaceFailure] = {}
        candidates: list[str] = []
        for face_id in wanted:
            row = rows.get(face_id)
            if row is None:
                failed[face_id] = FaceFailure(face_id, ("FACE_NOT_FOUND",))
            elif row.face.user_id is None:
                candidates.append(face_id)
            elif row.face.user_id != user_id:
                failed[face_id] = FaceFailure(
                    face_id, ("ASSOCIATED_TO_A_DIFFERENT_USER",), row.face.user_id
                )
        return failed, candidates

    def _matching(
        self,
        collection_id: str,
        user_id: str,
        candidates: list[str],
        existing: NDArray[np.float32] | None,
        threshold: float,
    ) -> tuple[list[str], list[FaceFailure]]:
        """The candidates similar enough to the user as it stands (``existing``: its faces'
        embeddings), or to the batch's seed for a user without faces; and the others, refused
        with LOW_MATCH_CONFIDENCE."""
        if not candidates:
            return [], []
        calibration = self.collections.faces.engine.calibration
        vectors = self.collections.store.face_embeddings(collection_id, candidates)
        cand = np.stack([vectors[f] for f in candidates])
        if existing is not None:
            similarity = calibration.similarity(cand @ centroid(existing))
        else:
            pairwise = calibration.similarity(cand @ cand.T)
            mates = (pairwise >= threshold).sum(axis=1)
            seed = int(np.argmax(mates))  # first of the best-connected faces
            similarity = pairwise[seed]
            similarity[seed] = 100.0
        accepted: list[str] = []
        refused: list[FaceFailure] = []
        for face_id, sim in zip(candidates, similarity, strict=True):
            if float(sim) >= threshold:
                accepted.append(face_id)
            else:
                refused.append(FaceFailure(face_id, ("LOW_MATCH_CONFIDENCE",), user_id, float(sim)))
        return accepted, refused

    def disassociate_faces(
        self,
        collection_id: str,
        user_id: str,
        face_ids: list[str],
        client_request_token: str | None = None,
    ) -> AssociationOutcome:
        """Remove faces from a user. Reasons: FACE_NOT_FOUND, ASSOCIATED_TO_A_DIFFERENT_USER;
        faces not associated with anyone are ignored."""
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        check_id(user_id, USER_ID_RE, "UserId")
        wanted = _check_face_ids(face_ids)
        token = self._check_token(client_request_token)
        params = json.dumps({"UserId": user_id, "FaceIds": wanted})
        store = self.collections.store
        with self._lock:
            self._require_user(collection_id, user_id)
            if token is not None:
                earlier = store.request_record(collection_id, "DisassociateFaces", token)
                if earlier is not None:
                    return _outcome(replay(earlier, params))
            change = store.disassociate(collection_id, user_id, wanted)
            outcome = _outcome_of(change, wanted, {})
            if token is not None:
                store.record_request(
                    collection_id, "DisassociateFaces", token, params, _outcome_json(outcome)
                )
        return outcome

    # -- search -----------------------------------------------------------------------------
    def _search_users(
        self,
        collection_id: str,
        query: NDArray[np.float32],
        *,
        threshold: float,
        max_users: int,
        exclude_user: str | None = None,
    ) -> tuple[UserMatch, ...]:
        """Users whose centroid reaches ``threshold`` against ``query`` (unit vector)."""
        calibration = self.collections.faces.engine.calibration
        store = self.collections.store
        threshold_cosine = float(calibration.cosine(threshold))
        floor = threshold_cosine * CANDIDATE_NORM if threshold_cosine > 0 else -1.0
        k = min(MAX_CANDIDATE_FACES, 100 * max_users + 100)
        ids, cosines = self.collections.indexes.search(
            collection_id, np.asarray(query, np.float32), k=k, min_cosine=floor
        )
        rows = store.faces_by_row(collection_id, [int(i) for i in ids])
        best: dict[str, float] = {}  # user → best face cosine, in decreasing order
        for row_id, cosine in zip(ids, cosines, strict=True):
            row = rows.get(int(row_id))
            user = None if row is None else row.face.user_id
            if user is not None and user != exclude_user and user not in best:
                best[user] = float(cosine)
        nominated = list(best)[: max(4 * max_users, 40)]
        vectors = store.user_embeddings(collection_id, nominated)
        users = [u for u in nominated if u in vectors]
        if not users:
            return ()
        centroids = np.stack([centroid(vectors[u]) for u in users])
        similarity = calibration.similarity(centroids @ np.asarray(query, np.float32))
        matches = [
            UserMatch(float(s), User(u, "ACTIVE"))
            for u, s in zip(users, similarity, strict=True)
            if float(s) >= threshold
        ]
        matches.sort(key=lambda m: (-m.similarity, m.user.user_id))
        return tuple(matches[:max_users])

    def search_users(
        self,
        collection_id: str,
        user_id: str | None = None,
        face_id: str | None = None,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
        max_users: int = DEFAULT_MAX_USERS,
    ) -> UserSearchResult:
        """Users matching a user (by its centroid; itself excluded) or an enrolled face.

        Exactly one of ``user_id`` / ``face_id``. A user without faces matches no one.
        """
        version = self.collections.pinned_version(collection_id)
        if (user_id is None) == (face_id is None):
            raise InvalidParameterError("give exactly one of UserId and FaceId")
        threshold = check_threshold(user_match_threshold, "UserMatchThreshold")
        check_int(max_users, 1, MAX_USERS, "MaxUsers")
        store = self.collections.store
        if user_id is not None:
            check_id(user_id, USER_ID_RE, "UserId")
            self._require_user(collection_id, user_id)
            vectors = store.user_embeddings(collection_id, [user_id]).get(user_id)
            matches: tuple[UserMatch, ...] = ()
            if vectors is not None:
                matches = self._search_users(
                    collection_id,
                    centroid(vectors),
                    threshold=threshold,
                    max_users=max_users,
                    exclude_user=user_id,
                )
            return UserSearchResult(matches, version, threshold, searched_user_id=user_id)
        assert face_id is not None
        check_id(face_id, FACE_ID_RE, "FaceId")
        _, vector = store.embedding(collection_id, face_id)
        matches = self._search_users(
            collection_id, vector, threshold=threshold, max_users=max_users
        )
        return UserSearchResult(matches, version, threshold, searched_face_id=face_id)

    def search_users_by_image(
        self,
        collection_id: str,
        image: ImageSource,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
        max_users: int = DEFAULT_MAX_USERS,
        quality_filter: str = "NONE",
    ) -> UserSearchByImageResult:
        """Users matching the largest face of an image.

        No face, or a largest face failing ``quality_filter``, gives no matches (not an
        error) and no ``searched_face``. Every other face is in ``unsearched`` with
        FACE_NOT_LARGEST (the largest, when it fails the filter, with its quality reasons).
        """
        version = self.collections.pinned_version(collection_id)
        threshold = check_threshold(user_match_threshold, "UserMatchThreshold")
        check_int(max_users, 1, MAX_USERS, "MaxUsers")
        quality_reasons(Faces.empty(), quality_filter)  # validates it, even for a faceless image
        engine = self.collections.faces.engine
        decoded = self.collections.faces.image(image)
        faces = engine.detect(decoded)  # largest first, with quality
        info = ImageInfo.of(decoded)
        if len(faces) == 0:
            return UserSearchByImageResult(info, (), version, threshold, None, ())
        described = [
            ImageFace(PixelBox.of(faces.boxes_px[i]), float(faces.scores[i]) * 100.0)
            for i in range(len(faces))
        ]
        unsearched = [
            UnsearchedFace(described[i], ("FACE_NOT_LARGEST",)) for i in range(1, len(faces))
        ]
        largest_reasons = quality_reasons(faces[0], quality_filter)[0]
        if largest_reasons:
            unsearched.insert(0, UnsearchedFace(described[0], tuple(largest_reasons)))
            return UserSearchByImageResult(info, (), version, threshold, None, tuple(unsearched))
        probe = engine.analyse(decoded, max_faces=1)
        assert probe.embeddings is not None and len(probe) == 1
        matches = self._search_users(
            collection_id, probe.embeddings[0], threshold=threshold, max_users=max_users
        )
        return UserSearchByImageResult(
            info, matches, version, threshold, described[0], tuple(unsearched)
        )


def _quota_error(user_id: str, current: int, adding: int, limit: int) -> ServiceQuotaExceededError:
    if current >= limit:
        detail = f"it already has {current}"
    else:
        detail = f"it has {current} and this call would add {adding}"
    return ServiceQuotaExceededError(
        f"user {user_id!r} can hold at most {limit} faces; {detail}. Nothing was associated."
    )


def _outcome_of(
    change: UserFacesChange, wanted: list[str], failed: dict[str, FaceFailure]
) -> AssociationOutcome:
    """The outcome of a store change: the faces it changed, the faces refused before it
    (``failed``) or by it (deleted or taken by another user since they were read), in the
    order asked, and the user's status."""
    refused = dict(failed)
    for face_id in change.not_found:
        refused[face_id] = FaceFailure(face_id, ("FACE_NOT_FOUND",))
    for face_id, owner in change.other_user:
        refused[face_id] = FaceFailure(face_id, ("ASSOCIATED_TO_A_DIFFERENT_USER",), owner)
    return AssociationOutcome(
        tuple(change.changed),
        tuple(refused[f] for f in wanted if f in refused),
        _status(change.face_count),
    )


# A ClientRequestToken's remembered response (``RequestRecord.response``) keeps the format it
# had when outcomes were Rekognition-shaped, so records written before still replay.
def _outcome_json(outcome: AssociationOutcome) -> str:
    unsuccessful: list[dict[str, Any]] = []
    for failure in outcome.unsuccessful:
        item: dict[str, Any] = {"FaceId": failure.face_id}
        if failure.user_id is not None:
            item["UserId"] = failure.user_id
        if failure.similarity is not None:
            item["Confidence"] = failure.similarity
        item["Reasons"] = list(failure.reasons)
        unsuccessful.append(item)
    return json.dumps(
        {
            "Faces": list(outcome.faces),
            "Unsuccessful": unsuccessful,
            "UserStatus": outcome.user_status,
        }
    )


def _outcome(response: dict[str, Any]) -> AssociationOutcome:
    failures = tuple(
        FaceFailure(
            item["FaceId"], tuple(item["Reasons"]), item.get("UserId"), item.get("Confidence")
        )
        for item in response["Unsuccessful"]
    )
    return AssociationOutcome(tuple(response["Faces"]), failures, response["UserStatus"])
