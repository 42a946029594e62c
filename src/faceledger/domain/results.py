"""What the collection and user verbs return: frozen values in domain units, never wire dicts.

Boxes of faces in an uploaded image are pixels (``PixelBox``) with the image's size beside them
(``ImageInfo``); stored faces keep ratio boxes and, since revision 0006, their image's size
(``StoredFace``). ``similarity`` is the pack's calibrated 0–100 Similarity and ``confidence``
the detector's 0–100 confidence. The adapters shape these: ``api/rekognition/shapes.py``
(ratios, PascalCase) and the native API's mappers (pixels, snake_case).
"""

from __future__ import annotations

from dataclasses import dataclass

from faceledger.domain.collections import CollectionMatch, PixelBox, User, UserStatus
from faceledger.domain.faces import ImageInfo
from faceledger.domain.scale import SearchScale


@dataclass(frozen=True)
class FaceFailure:
    """A face a DeleteFaces, AssociateFaces or DisassociateFaces call did not change, and why.

    ``reasons``: FACE_NOT_FOUND, ASSOCIATED_TO_AN_EXISTING_USER, ASSOCIATED_TO_A_DIFFERENT_USER
    or LOW_MATCH_CONFIDENCE. ``user_id``: the user the face belongs to (or, for
    LOW_MATCH_CONFIDENCE, the user it was checked against); ``similarity``: for
    LOW_MATCH_CONFIDENCE, the face's Similarity to that user (Rekognition's ``Confidence``).
    """

    face_id: str
    reasons: tuple[str, ...]
    user_id: str | None = None
    similarity: float | None = None


@dataclass(frozen=True)
class AssociationOutcome:
    """AssociateFaces / DisassociateFaces: the FaceIds changed, the faces refused (in the
    order asked), and the user's status afterwards."""

    faces: tuple[str, ...]
    unsuccessful: tuple[FaceFailure, ...]
    user_status: UserStatus


@dataclass(frozen=True)
class ImageFace:
    """A face of a probe image: its box in pixels of that image and detector confidence."""

    box_px: PixelBox
    confidence: float


@dataclass(frozen=True)
class UnsearchedFace:
    face: ImageFace
    reasons: tuple[str, ...]  # UnsearchedFaceReason values


@dataclass(frozen=True)
class SearchByImageResult:
    """SearchFacesByImage: the probe image, its largest face (searched) and the matches."""

    image: ImageInfo
    searched_face: ImageFace
    matches: tuple[CollectionMatch, ...]
    face_model_version: str
    threshold: float
    scale: SearchScale | None = None  # set by the gateway: what a candidate means at this size
    lead_id: str | None = None  # set by the gateway when there is a candidate (domain/leads.py)


@dataclass(frozen=True)
class UserMatch:
    similarity: float  # calibrated 0–100, probe against the user's centroid
    user: User


@dataclass(frozen=True)
class UserSearchResult:
    """SearchUsers: matches best first, and what was searched (exactly one is set)."""

    matches: tuple[UserMatch, ...]
    face_model_version: str
    threshold: float
    searched_user_id: str | None = None
    searched_face_id: str | None = None
    lead_id: str | None = None  # set by the gateway when there is a candidate
    scale: SearchScale | None = None  # set by the gateway: what a candidate means at this size


@dataclass(frozen=True)
class UserSearchByImageResult:
    """SearchUsersByImage: ``searched_face`` is None when no usable face was found."""

    image: ImageInfo
    matches: tuple[UserMatch, ...]
    face_model_version: str
    threshold: float
    searched_face: ImageFace | None
    unsearched: tuple[UnsearchedFace, ...]
    lead_id: str | None = None  # set by the gateway when there is a candidate
    scale: SearchScale | None = None  # set by the gateway: what a candidate means at this size
