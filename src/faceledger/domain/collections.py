"""Collections, enrolled faces, users and search results (Rekognition's vocabulary).

Bounding boxes of stored faces are ratios of the image's width and height (Rekognition's
``BoundingBox``), because the image itself is not kept. Timestamps are epoch seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.faces import AnalysedImage

# Patterns and lengths from botocore's Rekognition service model.
COLLECTION_ID_RE = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
EXTERNAL_IMAGE_ID_RE = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")
USER_ID_RE = re.compile(r"[a-zA-Z0-9_.\-:]{1,128}")
TAG_KEY_RE = re.compile(r"(?!aws:)[\w\s.:/=+\-@]{1,128}")
TAG_VALUE_RE = re.compile(r"[\w\s.:/=+\-@]{0,256}")
MAX_TAGS = 200  # TagMap's limit in the service model
FACE_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

QualityFilter = Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"]
QUALITY_FILTERS: tuple[str, ...] = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")
UnindexedReason = Literal[
    "EXCEEDS_MAX_FACES",
    "EXTREME_POSE",
    "LOW_BRIGHTNESS",
    "LOW_SHARPNESS",
    "LOW_CONFIDENCE",
    "SMALL_BOUNDING_BOX",
    "LOW_FACE_QUALITY",
    # not Rekognition's: bulk enrolment (``subject_only``) skipped a face that is not the
    # photo's subject (never produced by the IndexFaces operation)
    "NOT_THE_SUBJECT",
]


def check_id(value: str, pattern: re.Pattern[str], name: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidParameterError(f"{name} {value!r} is invalid: it must match {pattern.pattern}")
    return value


@dataclass(frozen=True)
class BoundingBox:
    """Ratios of the image size (0–1), Rekognition's convention."""

    left: float
    top: float
    width: float
    height: float

    @classmethod
    def from_pixels(cls, box_px: Iterable[float], width_px: int, height_px: int) -> BoundingBox:
        """The ratio box of pixel corners ``(x1, y1, x2, y2)``, clipped to the image: a face
        crossing an edge keeps only its visible part, so every member stays within [0, 1]
        and ``left + width`` ≤ 1."""
        x1, y1, x2, y2 = (float(v) for v in box_px)
        w, h = float(width_px), float(height_px)
        return cls(x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h).clipped()

    def clipped(self) -> BoundingBox:
        """This box cut to the image ([0, 1] on both axes)."""
        left, top = min(max(self.left, 0.0), 1.0), min(max(self.top, 0.0), 1.0)
        right = min(max(self.left + self.width, left), 1.0)
        bottom = min(max(self.top + self.height, top), 1.0)
        return BoundingBox(left, top, right - left, bottom - top)


@dataclass(frozen=True)
class PixelBox:
    """A box in pixels of its image after EXIF orientation: corners as the detector gave them
    (not clipped to the image; the adapters clip)."""

    left_px: float
    top_px: float
    right_px: float
    bottom_px: float

    @classmethod
    def of(cls, corners_px: Iterable[float]) -> PixelBox:
        """The box of pixel corners ``(x1, y1, x2, y2)`` (a row of ``Faces.boxes_px``)."""
        left, top, right, bottom = (float(v) for v in corners_px)
        return cls(left, top, right, bottom)

    @property
    def corners_px(self) -> tuple[float, float, float, float]:
        return (self.left_px, self.top_px, self.right_px, self.bottom_px)

    def to_ratio(self, image_width_px: int, image_height_px: int) -> BoundingBox:
        """Ratios of the image size, clipped to the image (``BoundingBox.from_pixels``)."""
        return BoundingBox.from_pixels(self.corners_px, image_width_px, image_height_px)


@dataclass(frozen=True)
class Collection:
    collection_id: str
    face_model_version: str
    created_at: float
    face_count: int = 0
    user_count: int = 0


@dataclass(frozen=True)
class StoredFace:
    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: BoundingBox
    confidence: float  # detector confidence, 0–100
    user_id: str | None = None
    face_model_version: str = ""
    # The size of the image the face was indexed from (after EXIF orientation); None for faces
    # stored before the size was kept.
    image_width_px: int | None = None
    image_height_px: int | None = None


UserStatus = Literal["ACTIVE", "UPDATING", "CREATING", "CREATED"]


@dataclass(frozen=True)
class User:
    user_id: str
    status: UserStatus = "ACTIVE"


@dataclass(frozen=True)
class CollectionMatch:
    similarity: float  # calibrated 0–100
    face: StoredFace


@dataclass(frozen=True)
class UnindexedFace:
    reasons: tuple[UnindexedReason, ...]
    face_index: int  # index into the image's detected faces (largest first)


@dataclass(frozen=True)
class IndexFacesResult:
    face_records: tuple[tuple[StoredFace, int], ...]  # (stored face, detected-face index)
    unindexed: tuple[UnindexedFace, ...]
    face_model_version: str
    duplicate: bool = False  # the same image and ExternalImageId were indexed before
    analysed: AnalysedImage | None = None  # the image's detected faces (for FaceDetails)


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``next_token`` is opaque, None on the last page."""

    items: tuple[object, ...]
    next_token: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
