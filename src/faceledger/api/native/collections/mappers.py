"""Domain results → the ``/v1/collections`` response models (snake_case, pixel boxes).

Boxes of faces in an upload are given in pixels of that upload (``bbox_px``), clipped to it
and rounded to 0.1 px; stored faces keep their ratio box (``bounding_box_ratio``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faceledger.api.native.collections.schemas import (
    BoxPx,
    BoxRatio,
    CollectionOut,
    CollectionPolicyOut,
    FaceMatchOut,
    FaceOut,
    ImageOut,
    IndexedFace,
    IndexFacesOut,
    ProbeFace,
    SearchScaleOut,
    SearchUsersOut,
    UnindexedFaceOut,
    UnsearchedFaceOut,
    UnsuccessfulFace,
    UserMatchOut,
    UserOut,
)
from faceledger.domain.collections import (
    BoundingBox,
    Collection,
    CollectionMatch,
    IndexFacesResult,
    StoredFace,
)
from faceledger.domain.faces import AnalysedImage, ImageInfo
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.results import (
    FaceFailure,
    ImageFace,
    UnsearchedFace,
    UserMatch,
    UserSearchResult,
)
from faceledger.domain.scale import SearchScale


def collection_out(collection: Collection) -> CollectionOut:
    return CollectionOut(
        collection_id=collection.collection_id,
        face_model_version=collection.face_model_version,
        created_at=collection.created_at,
        face_count=collection.face_count,
        user_count=collection.user_count,
    )


def policy_out(collection_id: str, policy: CollectionPolicy) -> CollectionPolicyOut:
    return CollectionPolicyOut(
        collection_id=collection_id,
        require_purpose=policy.require_purpose,
        threshold_floor=policy.threshold_floor,
        retention_days=policy.retention_days,
        keep_face_crops=policy.keep_face_crops,
    )


def scale_out(scale: SearchScale | None) -> SearchScaleOut | None:
    if scale is None:
        return None
    data = scale.as_dict()
    return SearchScaleOut(
        statement=scale.statement,
        **{k: v for k, v in data.items() if k in SearchScaleOut.model_fields},
    )


def ratio_out(box: BoundingBox) -> BoxRatio:
    box = box.clipped()
    return BoxRatio(left=box.left, top=box.top, width=box.width, height=box.height)


def pixels_out(box: BoundingBox, width_px: int, height_px: int) -> BoxPx:
    """A ratio box in pixels of an image of that size (the image it was measured on), clipped
    to it."""
    box = box.clipped()
    return BoxPx(
        left=round(box.left * width_px, 1),
        top=round(box.top * height_px, 1),
        width=round(box.width * width_px, 1),
        height=round(box.height * height_px, 1),
    )


def image_out(image: ImageInfo | AnalysedImage) -> ImageOut:
    return ImageOut(
        width_px=image.width_px,
        height_px=image.height_px,
        format=image.format,
        size_bytes=image.size_bytes,
        sha256=image.sha256,
    )


def _face_fields(face: StoredFace) -> dict[str, Any]:
    return {
        "face_id": face.face_id,
        "image_id": face.image_id,
        "external_image_id": face.external_image_id,
        "bounding_box_ratio": ratio_out(face.bounding_box),
        "confidence": round(face.confidence, 3),
        "user_id": face.user_id,
        "face_model_version": face.face_model_version,
    }


def face_out(face: StoredFace) -> FaceOut:
    return FaceOut(**_face_fields(face))


def face_matches_out(matches: Sequence[CollectionMatch]) -> list[FaceMatchOut]:
    return [FaceMatchOut(similarity=round(m.similarity, 4), face=face_out(m.face)) for m in matches]


def user_out(user_id: str, status: str) -> UserOut:
    return UserOut(user_id=user_id, status=status)


def user_matches_out(matches: Sequence[UserMatch]) -> list[UserMatchOut]:
    return [
        UserMatchOut(
            similarity=round(m.similarity, 4), user=user_out(m.user.user_id, m.user.status)
        )
        for m in matches
    ]


def probe_out(face: ImageFace, image: ImageInfo) -> ProbeFace:
    """A face of the uploaded probe: its pixel box clipped to the image (by way of the ratio
    box, as Rekognition's answer gives it, so both APIs describe the same box)."""
    ratio = face.box_px.to_ratio(image.width_px, image.height_px)
    return ProbeFace(
        bbox_px=pixels_out(ratio, image.width_px, image.height_px),
        confidence=round(face.confidence, 3),
    )


def unsearched_out(face: UnsearchedFace, image: ImageInfo) -> UnsearchedFaceOut:
    probe = probe_out(face.face, image)
    return UnsearchedFaceOut(
        bbox_px=probe.bbox_px, confidence=probe.confidence, reasons=list(face.reasons)
    )


def failures_out(failures: Sequence[FaceFailure]) -> list[UnsuccessfulFace]:
    """Faces a call did not change; ``confidence`` is, for LOW_MATCH_CONFIDENCE, the face's
    Similarity to the user."""
    return [
        UnsuccessfulFace(
            face_id=f.face_id,
            user_id=f.user_id,
            confidence=None if f.similarity is None else round(f.similarity, 4),
            reasons=list(f.reasons),
        )
        for f in failures
    ]


def search_users_out(result: UserSearchResult, requested: float) -> SearchUsersOut:
    return SearchUsersOut(
        face_model_version=result.face_model_version,
        threshold=result.threshold,
        requested_threshold=requested,
        searched_user_id=result.searched_user_id,
        searched_face_id=result.searched_face_id,
        matches=user_matches_out(result.matches),
        lead_id=result.lead_id,
        scale=scale_out(result.scale),
    )


# -- IndexFaces -------------------------------------------------------------------------------
def _indexed_box(face: StoredFace, analysed: AnalysedImage) -> BoxPx:
    """The stored face's box in pixels of its image: by the size stored with it, or, for a face
    stored before sizes were kept (a repeated IndexFaces), by the upload's size (the same
    image: same SHA-256)."""
    width_px, height_px = face.image_width_px, face.image_height_px
    if width_px is None or height_px is None:
        width_px, height_px = analysed.width_px, analysed.height_px
    return pixels_out(face.bounding_box, width_px, height_px)


def _unindexed_out(result: IndexFacesResult, analysed: AnalysedImage) -> list[UnindexedFaceOut]:
    """The refused faces with their pixel boxes (x1, y1, x2, y2 of the decoded upload, as
    detected) and confidences; ``face_index`` points into ``analysed.faces``."""
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


def index_faces_out(result: IndexFacesResult) -> IndexFacesOut:
    analysed = result.analysed
    if analysed is None:
        raise RuntimeError("IndexFacesResult of an upload has no analysed image")
    faces = [
        IndexedFace(
            **_face_fields(face),
            bbox_px=_indexed_box(face, analysed),
            face_index=index if index >= 0 else None,
        )
        for face, index in result.face_records
    ]
    return IndexFacesOut(
        face_model_version=result.face_model_version,
        image=image_out(analysed),
        duplicate=result.duplicate,
        faces=faces,
        unindexed_faces=_unindexed_out(result, analysed),
    )
