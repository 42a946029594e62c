"""Collections: enrol faces and search them (Rekognition's collection verbs).

``CollectionService`` wires the SQLite store (source of truth), one vector index per collection
(``CollectionIndexes``) and the process's ``FaceEngine`` (from ``FaceService``). Results are
domain objects; the adapters (CLI, HTTP) shape them.

Quality filter (IndexFaces, and searches when asked): a face is refused, with every reason that
applies, when it falls below the level's limits. Limits were chosen from the LFW development
split's distribution (brightness 30.6–69.9 for 1–99 %) and checked against search
(``bench/pose_quality.py``, with the solvePnP pose; docs/POSE_AND_QUALITY.md).

AUTO is MEDIUM with the sharpness limit at 10, DevTrain's blurriest 1.2 % (its 1st percentile
is 9.4): those faces are found less often than average at the floor of every collection size
(leave-one-out, rank 1; 10 K faces, floor 87.9: 94.2 % of 69 against 95.5 %; 100 K: 91.3 %
against 93.6 %; 1 M: 81.2 % against 89.7 %). MEDIUM's 8 picked the 23 blurriest, all of them
found at the floors of 10 K and 100 K faces, so it did not refuse what hurts there, while the
46 with sharpness 8–10 are found less often than average at every floor. The yaw limit stays
at 60°: three-quarter views (20–60°) are found nearly as often as frontal ones.

| level  | confidence | sharpness | brightness  | face width | yaw / pitch |
|--------|-----------:|----------:|------------:|-----------:|------------:|
| LOW    | < 0.60     | < 4       | < 10, > 95  | < 24 px    | > 75 / 60   |
| MEDIUM | < 0.70     | < 8       | < 15, > 92  | < 32 px    | > 60 / 45   |
| AUTO   | < 0.70     | < 10      | < 15, > 92  | < 32 px    | > 60 / 45   |
| HIGH   | < 0.80     | < 15      | < 25, > 85  | < 48 px    | > 40 / 30   |

Bulk enrolment (``subject_only``, the CLI's ``index`` and the web app's enrolment by default)
enrols one face per photo, the subject (see ``subject_index``); every other face is reported
as NOT_THE_SUBJECT, so bystanders are never filed under the photo's ExternalImageId.
IndexFaces itself keeps Rekognition's semantics (every face, up to MaxFaces).

MaxFaces keeps the faces of best quality, then the largest (Rekognition's rule); the rest are
reported as EXCEEDS_MAX_FACES. Quality for that ranking is the detector confidence, then size.

Deletion is final (DeleteFaces, DeleteCollection, retention purges): the store overwrites the
rows and truncates its WAL, and the vector index erases the vectors and drops its snapshot
(see ``SQLiteStore.scrub_wal`` and ``CollectionIndexes.purge_deleted``). Only the ledger keeps
the fact that a deletion happened (and which FaceIds), never a vector.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from faceledger.config import Settings
from faceledger.domain.collections import (
    COLLECTION_ID_RE,
    EXTERNAL_IMAGE_ID_RE,
    FACE_ID_RE,
    MAX_TAGS,
    QUALITY_FILTERS,
    TAG_KEY_RE,
    TAG_VALUE_RE,
    USER_ID_RE,
    BoundingBox,
    Collection,
    CollectionMatch,
    IndexFacesResult,
    PixelBox,
    StoredFace,
    UnindexedFace,
    UnindexedReason,
    check_id,
)
from faceledger.domain.errors import InvalidPaginationTokenError, InvalidParameterError
from faceledger.domain.faces import AnalysedImage, Faces, Image, ImageInfo
from faceledger.domain.results import FaceFailure, ImageFace, SearchByImageResult
from faceledger.inference.face_crops import face_crop_jpeg
from faceledger.services.crops import CropSealer
from faceledger.services.faces import FaceService, ImageSource
from faceledger.services.tokens import TokenSigner, load_or_create_secret
from faceledger.services.validation import check_int, check_threshold
from faceledger.services.vectors import CollectionIndexes, VectorSearch, collection_vectors
from faceledger.store.base import FaceStore
from faceledger.store.factory import open_store
from faceledger.store.records import NewFace

DEFAULT_FACE_MATCH_THRESHOLD = 80.0
MAX_SEARCH_FACES = 4096
DEFAULT_SEARCH_MAX_FACES = 80
LIST_PAGE_MAX = 4096
# ListCollections tokens for CollectionIds too long to carry whole (see ``_position_of``).
LONG_ID_PREFIX_CHARS = 96
LONG_ID_SCAN = 256  # ids sharing that prefix looked through to find where a page ended
#: A retention purge deletes at most this many faces per store transaction.
PURGE_BATCH = 4096
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class QualityLimits:
    min_confidence: float
    min_sharpness: float
    brightness_range: tuple[float, float]
    min_width_px: float
    max_yaw_deg: float
    max_pitch_deg: float


QUALITY_LIMITS: dict[str, QualityLimits] = {
    "LOW": QualityLimits(0.60, 4.0, (10.0, 95.0), 24.0, 75.0, 60.0),
    "MEDIUM": QualityLimits(0.70, 8.0, (15.0, 92.0), 32.0, 60.0, 45.0),
    "HIGH": QualityLimits(0.80, 15.0, (25.0, 85.0), 48.0, 40.0, 30.0),
}
QUALITY_LIMITS["AUTO"] = replace(QUALITY_LIMITS["MEDIUM"], min_sharpness=10.0)


def quality_reasons(faces: Faces, level: str) -> list[list[UnindexedReason]]:
    """For each face, the reasons it fails ``level`` (empty when it passes or level is NONE)."""
    if level not in QUALITY_FILTERS:
        raise InvalidParameterError(
            f"QualityFilter must be one of {', '.join(QUALITY_FILTERS)}, got {level!r}"
        )
    out: list[list[UnindexedReason]] = [[] for _ in range(len(faces))]
    if level == "NONE" or len(faces) == 0:
        return out
    lim = QUALITY_LIMITS[level]
    assert faces.sharpness is not None and faces.brightness is not None
    assert faces.yaw_deg is not None and faces.pitch_deg is not None
    for i in range(len(faces)):
        reasons = out[i]
        if faces.scores[i] < lim.min_confidence:
            reasons.append("LOW_CONFIDENCE")
        if faces.sharpness[i] < lim.min_sharpness:
            reasons.append("LOW_SHARPNESS")
        low, high = lim.brightness_range
        if not low <= faces.brightness[i] <= high:
            reasons.append("LOW_BRIGHTNESS")
        if faces.widths_px[i] < lim.min_width_px:
            reasons.append("SMALL_BOUNDING_BOX")
        if abs(faces.yaw_deg[i]) > lim.max_yaw_deg or abs(faces.pitch_deg[i]) > lim.max_pitch_deg:
            reasons.append("EXTREME_POSE")
    return out


#: Faces whose box area is at least this share of the largest face's tie for the subject.
SUBJECT_TIE_AREA_RATIO = 0.9


def subject_index(faces: Faces, width_px: int, height_px: int) -> int | None:
    """The index of a photo's subject among its detected faces (None when there is none).

    The subject is the largest face by box area. Faces within 10 % of the largest area
    (area ≥ 0.9 × the largest) tie, and the tie goes to the face whose box centre is nearest
    the image centre (then to the larger face). Chosen among all detected faces, before the
    quality filter: a subject that fails the filter is not replaced by a bystander.
    """
    if len(faces) == 0:
        return None
    areas = faces.areas_px
    ties = np.flatnonzero(areas >= SUBJECT_TIE_AREA_RATIO * float(areas.max()))
    boxes = faces.boxes_px[ties]
    centres = (boxes[:, :2] + boxes[:, 2:4]) / 2.0
    offsets_px = np.hypot(centres[:, 0] - width_px / 2.0, centres[:, 1] - height_px / 2.0)
    order = np.lexsort((-areas[ties], offsets_px))
    return int(ties[order[0]])


def ratio_box(analysed: AnalysedImage, index: int) -> BoundingBox:
    """A detected face's box as ratios of its image, clipped to [0, 1]."""
    return BoundingBox.from_pixels(
        analysed.faces.boxes_px[index], analysed.width_px, analysed.height_px
    )


def _select_faces(
    analysed: AnalysedImage, quality_filter: str, subject_only: bool, max_faces: int | None
) -> tuple[list[int], list[list[UnindexedReason]]]:
    """The faces to enrol (best score first, then largest; at most ``max_faces``) and each
    face's reasons for being left out (empty for those enrolled)."""
    faces = analysed.faces
    reasons = quality_reasons(faces, quality_filter)
    if subject_only:
        subject = subject_index(faces, analysed.width_px, analysed.height_px)
        for i in range(len(faces)):
            if i != subject:
                reasons[i] = ["NOT_THE_SUBJECT"]
    passing = [i for i in range(len(faces)) if not reasons[i]]
    passing.sort(key=lambda i: (-round(float(faces.scores[i]), 2), -float(faces.areas_px[i])))
    if max_faces is not None:
        for i in passing[max_faces:]:
            reasons[i].append("EXCEEDS_MAX_FACES")
        passing = passing[:max_faces]
    return passing, reasons


def _box_iou(a: BoundingBox, b: BoundingBox) -> float:
    width = min(a.left + a.width, b.left + b.width) - max(a.left, b.left)
    height = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    inter = max(width, 0.0) * max(height, 0.0)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _detected_index(analysed: AnalysedImage, face: StoredFace) -> int:
    """Which detected face of ``analysed`` a face stored from the same image is (its box
    overlaps best, IoU > 0.5), so a repeated IndexFaces answers with the full FaceDetail;
    -1 when none does (the image was indexed with another model pack or detector setting)."""
    best, best_iou = -1, 0.5
    for i in range(len(analysed.faces)):
        iou = _box_iou(ratio_box(analysed, i), face.bounding_box)
        if iou > best_iou:
            best, best_iou = i, iou
    return best


def _kept_crop(
    image: Image | None, faces: Faces, index: int, seal_crop: CropSealer | None
) -> dict[str, Any]:
    """``NewFace``'s ``face_id`` and ``sealed_crop`` for face ``index`` when its crop is kept
    (a FaceId chosen here: the crop is sealed for it), else nothing."""
    if seal_crop is None or image is None:
        return {}
    face_id = str(uuid.uuid4())
    return {
        "face_id": face_id,
        "sealed_crop": seal_crop(face_id, face_crop_jpeg(image, faces.boxes_px[index])),
    }


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise InvalidParameterError(f"at most {MAX_TAGS} tags are allowed, got {len(tags)}")
    for key, value in tags.items():
        check_id(key, TAG_KEY_RE, "TagKey")
        check_id(value, TAG_VALUE_RE, "TagValue")
    return dict(tags)


class CollectionService:
    """Create, describe, list and delete collections; index, list, delete and search faces."""

    def __init__(
        self,
        settings: Settings,
        faces: FaceService | None = None,
        *,
        store: FaceStore | None = None,
    ) -> None:
        """``store``: the process's face store (``services/container.py``); without one the
        service opens (and closes) its own from ``settings``."""
        self.settings = settings
        self.faces = faces or FaceService(settings)
        # SQLite or PostgreSQL (``FACELEDGER_DATABASE_URL``), and its vector search.
        self._owns_store = store is None
        self.store: FaceStore = store if store is not None else open_store(settings)
        self.indexes: VectorSearch = collection_vectors(
            self.store,
            settings.data_dir / "indexes",
            in_database=settings.vector_search == "database",
        )
        # Replicas on one database share the token key, so a NextToken works on any of them.
        secret = self.store.shared_secret("pagination-tokens")
        key_file = settings.data_dir / "token.key"
        self._tokens = TokenSigner(secret or load_or_create_secret(key_file))
        self._enrol_lock = threading.Lock()

    def close(self) -> None:
        self.indexes.save_all()
        if self._owns_store:
            self.store.close()

    # -- collections ------------------------------------------------------------------------
    def create_collection(
        self, collection_id: str, tags: dict[str, str] | None = None
    ) -> Collection:
        """A new, empty collection pinned to the server's pack (its FaceModelVersion)."""
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        tags = _check_tags(tags or {})
        engine = self.faces.engine
        return self.store.create_collection(
            collection_id, engine.face_model_version, engine.embedding_size, tags
        )

    # -- tags (TagResource / UntagResource / ListTagsForResource on a collection) ---------
    def collection_tags(self, collection_id: str) -> dict[str, str]:
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        return self.store.tags(collection_id)

    def tag_collection(self, collection_id: str, tags: dict[str, str]) -> None:
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        self.store.set_tags(collection_id, _check_tags(tags), MAX_TAGS)

    def untag_collection(self, collection_id: str, keys: list[str]) -> None:
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        for key in keys:
            check_id(key, TAG_KEY_RE, "TagKey")
        self.store.remove_tags(collection_id, list(keys))

    def describe_collection(self, collection_id: str) -> Collection:
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        return self.store.collection(collection_id)

    def list_collections(
        self, *, next_token: str | None = None, max_results: int = 1000
    ) -> tuple[list[Collection], str | None]:
        check_int(max_results, 0, 4096, "MaxResults")
        position = self._tokens.decode(next_token, "collections", "") if next_token else None
        page = self._collections_after(position, max_results + 1)
        more = len(page) > max_results
        page = page[:max_results]
        token = (
            self._tokens.encode("collections", "", self._position_of(page[-1].collection_id))
            if more and page
            else None
        )
        return page, token

    def _position_of(self, last_id: str) -> Any:
        """Where a ListCollections page ended: the last CollectionId itself when a token can
        hold it, else (ids of up to 255 characters) its first ``LONG_ID_PREFIX_CHARS``
        characters and a digest of the whole id."""
        if self._tokens.fits("collections", "", last_id):
            return last_id
        digest = hashlib.sha256(last_id.encode("utf-8")).hexdigest()[:16]
        return {"prefix": last_id[:LONG_ID_PREFIX_CHARS], "sha256": digest}

    def _collections_after(self, position: Any, limit: int) -> list[Collection]:
        """Up to ``limit`` collections after a page that ended at ``position``.

        A long id's position (prefix, digest) resumes right after that id while it exists;
        if it was deleted meanwhile, the listing resumes at the first id sharing its prefix,
        so a few collections may be listed twice, never skipped.
        """
        if position is None or isinstance(position, str):
            return self.store.list_collections(after=position, limit=limit)
        if not isinstance(position, dict) or not isinstance(position.get("prefix"), str):
            raise InvalidPaginationTokenError("the pagination token is invalid")
        prefix, digest = position["prefix"], position.get("sha256")
        rows = self.store.list_collections(after=prefix, limit=limit + LONG_ID_SCAN)
        for i, row in enumerate(rows):
            if not row.collection_id.startswith(prefix):
                break
            if hashlib.sha256(row.collection_id.encode("utf-8")).hexdigest()[:16] == digest:
                return rows[i + 1 :][:limit]
        return rows[:limit]

    def delete_collection(self, collection_id: str) -> None:
        """Delete the collection with every face, vector, user and index snapshot.

        The store overwrites the rows and truncates its WAL (``SQLiteStore.delete_collection``);
        the index is forgotten and its snapshot files removed."""
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        with self._enrol_lock:
            self.store.delete_collection(collection_id)
            self.indexes.drop(collection_id)

    def pinned_version(self, collection_id: str) -> str:
        """The collection's FaceModelVersion, refused when it is not the engine's (without
        describing it: counting a large collection's faces costs more than a search)."""
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        version = self.store.face_model_version(collection_id)
        engine_version = self.faces.engine.face_model_version
        if version != engine_version:
            raise InvalidParameterError(
                f"collection {collection_id!r} holds {version} vectors; "
                f"this server runs {engine_version}. Vectors of different packs never mix."
            )
        return version

    # -- faces ------------------------------------------------------------------------------
    def index_faces(
        self,
        collection_id: str,
        image: ImageSource,
        *,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: str = "AUTO",
        subject_only: bool = False,
        seal_crop: CropSealer | None = None,
    ) -> IndexFacesResult:
        """Detect, filter and enrol the faces of one image (Rekognition's IndexFaces).

        ``subject_only`` enrols only the photo's subject (``subject_index``); the others are
        reported as NOT_THE_SUBJECT. ``seal_crop``: keep each enrolled face's crop, sealed
        with it (the collection's policy keeps crops), in the transaction that adds the faces.
        """
        self.pinned_version(collection_id)
        decoded = self.faces.image(image)
        analysed = AnalysedImage.of(decoded, self.faces.engine.analyse(decoded))
        return self.enrol(
            collection_id,
            analysed,
            external_image_id=external_image_id,
            max_faces=max_faces,
            quality_filter=quality_filter,
            subject_only=subject_only,
            image=decoded,
            seal_crop=seal_crop,
        )

    def enrol(
        self,
        collection_id: str,
        analysed: AnalysedImage,
        *,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: str = "AUTO",
        subject_only: bool = False,
        image: Image | None = None,
        seal_crop: CropSealer | None = None,
    ) -> IndexFacesResult:
        """Enrol an already analysed image (bulk enrolment analyses on worker processes).

        ``subject_only``, ``seal_crop``: see :meth:`index_faces`; crops are cut from
        ``image`` (the analysed image's pixels), so without it none are kept.
        """
        version = self.pinned_version(collection_id)
        if external_image_id is not None:
            check_id(external_image_id, EXTERNAL_IMAGE_ID_RE, "ExternalImageId")
        if max_faces is not None:
            check_int(max_faces, 1, 100, "MaxFaces")
        faces = analysed.faces
        passing, reasons = _select_faces(analysed, quality_filter, subject_only, max_faces)
        unindexed = tuple(UnindexedFace(tuple(r), i) for i, r in enumerate(reasons) if r)
        with self._enrol_lock:
            existing = self.store.faces_of_image(collection_id, analysed.sha256, external_image_id)
            if existing:
                return IndexFacesResult(
                    tuple((row.face, _detected_index(analysed, row.face)) for row in existing),
                    (),
                    version,
                    duplicate=True,
                    analysed=analysed,
                )
            assert faces.embeddings is not None
            new = [
                NewFace(
                    image_sha256=analysed.sha256,
                    external_image_id=external_image_id,
                    bounding_box=ratio_box(analysed, i),
                    confidence=float(faces.scores[i]) * 100.0,
                    embedding=faces.embeddings[i],
                    image_width_px=analysed.width_px,
                    image_height_px=analysed.height_px,
                    **_kept_crop(image, faces, i, seal_crop),
                )
                for i in sorted(passing)
            ]
            rows = self.store.add_faces(collection_id, new) if new else []
        records = tuple((row.face, i) for row, i in zip(rows, sorted(passing), strict=True))
        return IndexFacesResult(records, unindexed, version, analysed=analysed)

    def list_faces(
        self,
        collection_id: str,
        *,
        next_token: str | None = None,
        max_results: int = 1000,
        user_id: str | None = None,
        face_ids: list[str] | None = None,
    ) -> tuple[list[StoredFace], str | None]:
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        check_int(max_results, 0, LIST_PAGE_MAX, "MaxResults")
        if user_id is not None:
            check_id(user_id, USER_ID_RE, "UserId")
        for face_id in face_ids or ():
            check_id(face_id, FACE_ID_RE, "FaceId")
        after = int(self._tokens.decode(next_token, "faces", collection_id)) if next_token else 0
        rows = self.store.list_faces(
            collection_id,
            after_row=after,
            limit=max_results + 1,
            user_id=user_id,
            face_ids=face_ids,
        )
        more = len(rows) > max_results
        rows = rows[:max_results]
        token = (
            self._tokens.encode("faces", collection_id, rows[-1].row_id) if more and rows else None
        )
        return [r.face for r in rows], token

    def delete_faces(
        self, collection_id: str, face_ids: list[str]
    ) -> tuple[list[str], list[FaceFailure]]:
        """Delete faces; returns (the FaceIds deleted, the faces refused with their reasons)."""
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        if not 1 <= len(face_ids) <= 4096:
            raise InvalidParameterError("FaceIds must list 1 to 4096 face ids")
        for face_id in face_ids:
            check_id(face_id, FACE_ID_RE, "FaceId")
        with self._enrol_lock:
            known = self.store.faces_by_id(collection_id, face_ids)
            unsuccessful: list[FaceFailure] = []
            deletable = []
            for face_id in face_ids:
                row = known.get(face_id)
                if row is None:
                    unsuccessful.append(FaceFailure(face_id, ("FACE_NOT_FOUND",)))
                elif row.face.user_id is not None:
                    unsuccessful.append(
                        FaceFailure(face_id, ("ASSOCIATED_TO_AN_EXISTING_USER",), row.face.user_id)
                    )
                else:
                    deletable.append(face_id)
            deleted = self.store.delete_faces(collection_id, deletable)
        if deleted:
            self.indexes.purge_deleted(collection_id)
        return deleted, unsuccessful

    def purge_expired(
        self, collection_id: str, retention_days: int | None, now: float | None = None
    ) -> list[str]:
        """Delete the faces enrolled more than ``retention_days`` days before ``now`` (Unix
        seconds, default the current time); returns their FaceIds, oldest first.

        ``retention_days`` None (no retention in the collection's policy) deletes nothing.
        The deletion takes the DeleteFaces path (rows overwritten, WAL truncated, vectors
        erased from the index and its snapshot), in transactions of ``PURGE_BATCH`` faces.

        Faces associated with a user are deleted too (unlike DeleteFaces, which refuses them):
        a retention period is a promise about how long biometric data is kept, and a user link
        must not extend it. The link lives in the face's row, so it goes with it; the user
        itself (an id, no biometric data) stays, with its remaining faces, or none (status
        CREATED, as after DisassociateFaces). Scheduling and the ledger record are the
        caller's (the gateway's) job.
        """
        check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
        self.store.collection(collection_id)  # ResourceNotFoundError for an unknown collection
        if retention_days is None:
            return []
        if (
            isinstance(retention_days, bool)
            or not isinstance(retention_days, int | float)
            or not retention_days > 0
        ):
            raise InvalidParameterError(
                f"retention_days must be a positive number of days, got {retention_days!r}"
            )
        cutoff = (time.time() if now is None else float(now)) - retention_days * SECONDS_PER_DAY
        expired = self.store.faces_older_than(collection_id, cutoff)
        deleted: list[str] = []
        for start in range(0, len(expired), PURGE_BATCH):
            with self._enrol_lock:
                batch = expired[start : start + PURGE_BATCH]
                deleted.extend(self.store.delete_faces(collection_id, batch))
        if deleted:
            self.indexes.purge_deleted(collection_id)
        return deleted

    # -- search -----------------------------------------------------------------------------
    def _search_vector(
        self,
        collection_id: str,
        vector: np.ndarray,
        *,
        max_faces: int,
        threshold: float,
        exclude_row: int | None = None,
    ) -> tuple[CollectionMatch, ...]:
        check_int(max_faces, 1, MAX_SEARCH_FACES, "MaxFaces")
        threshold = check_threshold(threshold, "FaceMatchThreshold")
        calibration = self.faces.engine.calibration
        min_cosine = float(calibration.cosine(threshold))
        k = max_faces + (1 if exclude_row is not None else 0)
        clock = self.faces.engine.clock
        started = time.perf_counter()
        ids, cosines = self.indexes.search(
            collection_id, vector.astype(np.float32), k=k, min_cosine=min_cosine
        )
        if clock.enabled:  # the size of an in-memory index (a database search does not say)
            indexes = self.indexes
            size = indexes.size(collection_id) if isinstance(indexes, CollectionIndexes) else None
            clock.record("search", time.perf_counter() - started, size)
        rows = self.store.faces_by_row(collection_id, [int(i) for i in ids])
        matches = []
        for row_id, cosine in zip(ids, cosines, strict=True):
            row = rows.get(int(row_id))
            if row is None or int(row_id) == exclude_row:
                continue  # deleted between the index read and the join
            similarity = float(calibration.similarity(float(cosine)))
            if similarity >= threshold:
                matches.append(CollectionMatch(similarity, row.face))
        matches.sort(key=lambda m: -m.similarity)
        return tuple(matches[:max_faces])

    def search_embedding(
        self,
        collection_id: str,
        vector: np.ndarray,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
    ) -> tuple[CollectionMatch, ...]:
        """Faces of the collection matching an embedding made by the collection's pack (video
        tracks are searched this way, one best-shot embedding at a time)."""
        return self._search_vector(collection_id, vector, max_faces=max_faces, threshold=threshold)

    def search_faces(
        self,
        collection_id: str,
        face_id: str,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
    ) -> tuple[CollectionMatch, ...]:
        """Faces of the collection matching an enrolled face (the face itself excluded)."""
        self.pinned_version(collection_id)
        check_id(face_id, FACE_ID_RE, "FaceId")
        row_id, vector = self.store.embedding(collection_id, face_id)
        return self._search_vector(
            collection_id, vector, max_faces=max_faces, threshold=threshold, exclude_row=row_id
        )

    def search_faces_by_image(
        self,
        collection_id: str,
        image: ImageSource,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
        quality_filter: str = "NONE",
    ) -> SearchByImageResult:
        """Search with the largest face of an image; no face → InvalidParameterException."""
        version = self.pinned_version(collection_id)
        check_int(max_faces, 1, MAX_SEARCH_FACES, "MaxFaces")
        check_threshold(threshold, "FaceMatchThreshold")
        decoded = self.faces.image(image)
        faces = self.faces.engine.analyse(decoded, max_faces=1)
        if len(faces) == 0:
            raise InvalidParameterError("no face was found in the image")
        reasons = quality_reasons(faces, quality_filter)[0]
        if reasons:
            raise InvalidParameterError(
                f"the largest face fails QualityFilter {quality_filter}: {', '.join(reasons)}"
            )
        assert faces.embeddings is not None
        matches = self._search_vector(
            collection_id, faces.embeddings[0], max_faces=max_faces, threshold=threshold
        )
        return SearchByImageResult(
            ImageInfo.of(decoded),
            ImageFace(PixelBox.of(faces.boxes_px[0]), float(faces.scores[0]) * 100.0),
            matches,
            version,
            threshold,
        )
