"""Request and response models of the ``/v1/collections`` routes (the spec at ``/docs``).

Units: ``bbox_px`` pixels of the uploaded image after EXIF orientation; ``bounding_box_ratio``
ratios (0–1) of a stored face's image; ``similarity`` the calibrated 0–100 Similarity;
``confidence`` detector confidence 0–100; ``created_at`` epoch seconds.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from faceledger.api.native.collections.params import (
    ClientRequestToken,
    FaceId,
    pattern,
)
from faceledger.domain.collections import COLLECTION_ID_RE, USER_ID_RE
from faceledger.services.users import DEFAULT_ASSOCIATE_THRESHOLD

EFFECTIVE_THRESHOLD_DOC = (
    "The threshold applied: the requested one, raised to the collection's threshold floor."
)
REQUESTED_THRESHOLD_DOC = "The threshold the request asked for."


class CollectionOut(BaseModel):
    collection_id: str
    face_model_version: str = Field(
        description="The model pack whose vectors the collection holds (pinned at creation)."
    )
    created_at: float = Field(description="Epoch seconds.")
    face_count: int
    user_count: int


class CollectionList(BaseModel):
    collections: list[CollectionOut]
    next_token: str | None = Field(description="Pass it back for the next page; null at the end.")


class CreateCollectionIn(BaseModel):
    collection_id: Annotated[
        str, Field(description="New id.", json_schema_extra=pattern(COLLECTION_ID_RE))
    ]


class BoxPx(BaseModel):
    """Pixels of the uploaded image after EXIF orientation."""

    left: float
    top: float
    width: float
    height: float


class BoxRatio(BaseModel):
    """Ratios (0–1) of the source image's width (left, width) and height (top, height)."""

    left: float
    top: float
    width: float
    height: float


class FaceOut(BaseModel):
    face_id: str
    image_id: str = Field(description="Id of the image the face was indexed from.")
    external_image_id: str | None
    bounding_box_ratio: BoxRatio = Field(
        description="Box as ratios of the source image's size. The image is not kept, so "
        "stored faces have no pixel box."
    )
    confidence: float = Field(description="Detector confidence, 0–100.")
    user_id: str | None = Field(description="The user the face is associated with, if any.")
    face_model_version: str


class FaceList(BaseModel):
    faces: list[FaceOut]
    next_token: str | None = Field(description="Pass it back for the next page; null at the end.")


class ImageOut(BaseModel):
    width_px: int = Field(description="After EXIF orientation.")
    height_px: int
    format: str = Field(description='"jpeg" or "png".')
    size_bytes: int
    sha256: str = Field(description="SHA-256 of the uploaded bytes.")


class IndexedFace(FaceOut):
    bbox_px: BoxPx
    face_index: int | None = Field(
        description="Index among the image's detected faces (largest first); null only when "
        "the image was indexed before (``duplicate``) and none of today's detections matches "
        "the stored box."
    )


class UnindexedFaceOut(BaseModel):
    face_index: int = Field(description="Index among the image's detected faces, largest first.")
    bbox_px: BoxPx
    confidence: float = Field(description="Detector confidence, 0–100.")
    reasons: list[str] = Field(
        description="EXCEEDS_MAX_FACES, EXTREME_POSE, LOW_BRIGHTNESS, LOW_SHARPNESS, "
        "LOW_CONFIDENCE, SMALL_BOUNDING_BOX; NOT_THE_SUBJECT from bulk enrolment only."
    )


class IndexFacesOut(BaseModel):
    face_model_version: str
    image: ImageOut
    duplicate: bool = Field(
        description="True when the same image (SHA-256) and external_image_id were indexed "
        "before: the faces then are returned and nothing is added."
    )
    faces: list[IndexedFace]
    unindexed_faces: list[UnindexedFaceOut]


class DeleteFacesIn(BaseModel):
    face_ids: list[FaceId] = Field(description="1 to 4,096 FaceIds.")


class UnsuccessfulFace(BaseModel):
    face_id: str
    user_id: str | None = Field(
        default=None, description="The user the face belongs to, when that is the reason."
    )
    confidence: float | None = Field(
        default=None, description="LOW_MATCH_CONFIDENCE: the face's Similarity to the user."
    )
    reasons: list[str] = Field(
        description="FACE_NOT_FOUND, ASSOCIATED_TO_AN_EXISTING_USER, "
        "ASSOCIATED_TO_A_DIFFERENT_USER or LOW_MATCH_CONFIDENCE."
    )


class DeleteFacesOut(BaseModel):
    deleted_face_ids: list[str]
    unsuccessful: list[UnsuccessfulFace]


class ProbeFace(BaseModel):
    bbox_px: BoxPx
    confidence: float = Field(description="Detector confidence, 0–100.")


class FaceMatchOut(BaseModel):
    similarity: float = Field(description="Calibrated Similarity, 0–100.")
    face: FaceOut


class SearchScaleOut(BaseModel):
    """What a candidate means at the scale of this search."""

    face_count: int = Field(description="Faces in the collection when it was searched.")
    floor: float = Field(description="The collection's floor (follows its size or pinned).")
    floor_source: str = Field(description="'collection size' or 'policy'.")
    fpir: float | None = Field(
        description="Expected false-positive identification rate at the effective threshold "
        "and this size: the share of searches for someone not in the collection that return "
        "any candidate. null: the model pack has no open-set table."
    )
    fpir_upper: float | None = Field(description="Upper bound of fpir (95th percentile).")
    one_in: int | None = Field(
        description="About 1 in this many searches for someone not enrolled returns a "
        "candidate (1 / fpir)."
    )
    hit_rate: float | None = Field(
        description="Expected share of searches for someone enrolled that find them first."
    )
    fmr: float | None = Field(description="Per-comparison false-match rate at the threshold.")
    target_fpir: float = Field(description="The FPIR a default floor keeps to.")
    target_reachable: bool = Field(
        description="False: no Similarity keeps FPIR within the target at this size."
    )
    statement: str = Field(description="The same, in one sentence.")


LEAD_DOC = (
    "The lead this search made (it had candidates): a reviewer records a decision on each "
    "candidate at /v1/leads/{lead_id}. null when there is no candidate."
)


class SearchFacesByImageOut(BaseModel):
    face_model_version: str
    threshold: float = Field(description=EFFECTIVE_THRESHOLD_DOC)
    requested_threshold: float = Field(description=REQUESTED_THRESHOLD_DOC)
    image: ImageOut
    searched_face: ProbeFace = Field(description="The image's largest face, which was searched.")
    matches: list[FaceMatchOut] = Field(description="Highest similarity first.")
    scale: SearchScaleOut | None = Field(description="What a candidate means at this size.")
    lead_id: str | None = Field(default=None, description=LEAD_DOC)


class SearchFacesOut(BaseModel):
    searched_face_id: str
    threshold: float = Field(description=EFFECTIVE_THRESHOLD_DOC)
    requested_threshold: float = Field(description=REQUESTED_THRESHOLD_DOC)
    matches: list[FaceMatchOut] = Field(description="Highest similarity first; never the face.")
    scale: SearchScaleOut | None = Field(description="What a candidate means at this size.")
    lead_id: str | None = Field(default=None, description=LEAD_DOC)


class CreateUserIn(BaseModel):
    user_id: Annotated[str, Field(description="New id.", json_schema_extra=pattern(USER_ID_RE))]
    client_request_token: ClientRequestToken = None


class CreatedUser(BaseModel):
    collection_id: str
    user_id: str


class UserOut(BaseModel):
    user_id: str
    status: str = Field(description="ACTIVE (has faces) or CREATED (no faces yet).")


class UserList(BaseModel):
    users: list[UserOut]
    next_token: str | None = Field(description="Pass it back for the next page; null at the end.")


class AssociateFacesIn(BaseModel):
    face_ids: list[FaceId] = Field(description="1 to 100 FaceIds.")
    user_match_threshold: float = Field(
        default=DEFAULT_ASSOCIATE_THRESHOLD,
        ge=0.0,
        le=100.0,
        description="A face joins a user that has faces only if its Similarity to the user "
        "reaches this (0–100).",
    )
    client_request_token: ClientRequestToken = None


class DisassociateFacesIn(BaseModel):
    face_ids: list[FaceId] = Field(description="1 to 100 FaceIds.")
    client_request_token: ClientRequestToken = None


class AssociateFacesOut(BaseModel):
    associated_face_ids: list[str]
    unsuccessful: list[UnsuccessfulFace]
    user_status: str


class DisassociateFacesOut(BaseModel):
    disassociated_face_ids: list[str]
    unsuccessful: list[UnsuccessfulFace]
    user_status: str


class UserMatchOut(BaseModel):
    similarity: float = Field(
        description="Calibrated Similarity (0–100) of the probe to the user's faces combined."
    )
    user: UserOut


class SearchUsersOut(BaseModel):
    face_model_version: str
    threshold: float = Field(description=EFFECTIVE_THRESHOLD_DOC)
    requested_threshold: float = Field(description=REQUESTED_THRESHOLD_DOC)
    searched_user_id: str | None
    searched_face_id: str | None
    matches: list[UserMatchOut] = Field(description="Highest similarity first.")
    lead_id: str | None = Field(default=None, description=LEAD_DOC)
    scale: SearchScaleOut | None = Field(
        default=None, description="What a candidate means at this size."
    )


class UnsearchedFaceOut(ProbeFace):
    reasons: list[str] = Field(description="FACE_NOT_LARGEST or the largest face's quality faults.")


class SearchUsersByImageOut(BaseModel):
    face_model_version: str
    threshold: float = Field(description=EFFECTIVE_THRESHOLD_DOC)
    requested_threshold: float = Field(description=REQUESTED_THRESHOLD_DOC)
    image: ImageOut
    searched_face: ProbeFace | None = Field(
        description="The largest face, searched; null when the image has no usable face."
    )
    matches: list[UserMatchOut] = Field(description="Highest similarity first.")
    unsearched_faces: list[UnsearchedFaceOut]
    lead_id: str | None = Field(default=None, description=LEAD_DOC)
    scale: SearchScaleOut | None = Field(
        default=None, description="What a candidate means at this size."
    )


class CollectionPolicyIn(BaseModel):
    """A collection's accountability policy (it replaces the installation's defaults)."""

    require_purpose: bool = Field(
        description="Searches must carry a purpose and a case reference (fields or headers)."
    )
    threshold_floor: float | None = Field(
        default=None,
        ge=0.0,
        le=100.0,
        description="Lowest effective match threshold (calibrated Similarity, 0–100): a lower "
        "requested threshold is raised to it. null: the floor follows the collection's size "
        "(the lowest Similarity whose expected FPIR at its face count is within 0.1 %).",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="How long the collection's data may be kept, in days; null for no limit.",
    )
    keep_face_crops: bool = Field(
        default=False,
        description="Keep a small encrypted JPEG crop of each face enrolled from now on, for "
        "reviewers and searchers (every view is ledgered; deleted with the face).",
    )


class CollectionPolicyOut(CollectionPolicyIn):
    collection_id: str
