"""The values the stores take and return, the same for both backends (``store/base.py`` names
the methods; ``store/sqlite/`` and ``store/postgres/`` implement them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import BoundingBox, StoredFace


# -- collections, faces, users -----------------------------------------------------------------
@dataclass(frozen=True)
class IntentChange:
    """One face a biometric change added or deleted, from the store's change log."""

    collection_id: str
    face_id: str
    deleted: bool


#: What a change of a user's faces did, as ``user_changes`` logs it under an intent.
UserChangeKind = Literal["associate", "disassociate", "delete_user"]


@dataclass(frozen=True)
class UserChange:
    """One association change committed under an intent record (``user_intent_changes``):
    the faces (dis)associated, or a user deleted (``face_ids``: the faces it let go). The
    user is not named: the intent record names it, and a deleted user leaves no trace in the
    store."""

    collection_id: str
    kind: UserChangeKind
    face_ids: tuple[str, ...]


@dataclass(frozen=True)
class NewFace:
    """A face to enrol (the store assigns ImageId, and FaceId unless ``face_id`` is given).

    ``sealed_crop``: the face's crop, already encrypted for ``face_id`` (``nonce ||
    ciphertext``; the store never sees a key or a plaintext image), written with the face in
    one transaction and deleted with it. It needs ``face_id``: the FaceId is the seal's
    associated data.
    """

    image_sha256: str
    external_image_id: str | None
    bounding_box: BoundingBox
    confidence: float
    embedding: NDArray[np.float32]
    image_width_px: int | None = None  # the source image's size, after EXIF orientation
    image_height_px: int | None = None
    face_id: str | None = None  # chosen by the caller (a kept crop is sealed for it)
    sealed_crop: bytes | None = None


@dataclass(frozen=True)
class RequestRecord:
    """A ClientRequestToken already used for an operation: the call's parameters and response
    (both JSON text, written by the service that recorded them)."""

    params: str
    response: str


@dataclass(frozen=True)
class UserFacesChange:
    """What one AssociateFaces / DisassociateFaces transaction did, face by face.

    ``changed``: faces (dis)associated now; ``not_found``: no such face in the collection;
    ``other_user``: (FaceId, the UserId it belongs to); faces already in the wanted state are
    in none of these. ``face_count`` is the user's faces after the transaction.
    ``limit_exceeded``: the association would have taken the user past its limit, so nothing
    was written.
    """

    changed: tuple[str, ...]
    not_found: tuple[str, ...]
    other_user: tuple[tuple[str, str], ...]
    face_count: int
    limit_exceeded: bool = False


@dataclass(frozen=True)
class FaceRow:
    row_id: int
    face: StoredFace


@dataclass(frozen=True)
class ChangePosition:
    """Where a collection's change log stands: its ``generation`` (a collection deleted and
    created again under the same id is a new generation, whose sequence starts over) and
    ``seq``, its last change's sequence number."""

    generation: int
    seq: int


@dataclass(frozen=True)
class FaceChanges:
    """A collection's changes after some sequence number (``changes_since``): faces added and
    still present (``ids``, ``vectors``), row ids deleted, and the newest sequence number
    (``last`` below the number asked means the log went back: the database was restored)."""

    generation: int
    ids: NDArray[np.int64]
    vectors: NDArray[np.float32]
    deleted: NDArray[np.int64]
    last: int

    @classmethod
    def none(cls, generation: int, seq: int, dim: int) -> FaceChanges:
        empty = np.zeros(0, np.int64)
        return cls(generation, empty, np.zeros((0, dim), np.float32), empty, seq)


# -- access keys ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AccessKey:
    """An access key as listed: never its secret. Times are epoch seconds.

    ``rate_per_second`` (sustained requests per second, 0 = unlimited) and ``burst`` (requests
    allowed at once) override the installation's defaults; None means the default.
    """

    key_id: str
    principal: str
    roles: tuple[str, ...]
    created_at: float
    revoked_at: float | None
    description: str
    rate_per_second: float | None = None
    burst: int | None = None

    @property
    def active(self) -> bool:
        """Whether the key may still authenticate (it has not been revoked)."""
        return self.revoked_at is None


#: What the key store says of a verified SigV4 request's key (``remember_signature``): "new"
#: (remembered now: accept it), "replay" (seen before, and this is the first time it came back),
#: "repeated_replay" (it came back before), "too_old" (it expires at or before the purge
#: horizon, so a row that would prove a replay may already be gone).
SignatureCheck = Literal["new", "replay", "repeated_replay", "too_old"]


# -- stored-video jobs and stream processors ------------------------------------------------
IN_PROGRESS, SUCCEEDED, FAILED = "IN_PROGRESS", "SUCCEEDED", "FAILED"


@dataclass(frozen=True)
class JobRow:
    job_id: str
    kind: str  # "faces" | "search" | "persons"
    status: str
    status_message: str
    video: dict[str, Any]
    params: dict[str, Any]
    job_tag: str | None
    client_token: str | None
    principal: str
    caller: dict[str, Any]
    created_at: float
    finished_at: float | None
    metadata: dict[str, Any] | None
    attempts: int
    claimed_by: str | None = None
    claimed_at: float | None = None


# A notification waits in the outbox until delivered (the row is then deleted) or given up.
PENDING = "PENDING"
GIVEN_UP = "GIVEN_UP"


@dataclass(frozen=True)
class OutboxRow:
    """A job's completion notification waiting for delivery: ``body`` is the exact text posted
    (signed again at each attempt); ``attempts`` made so far; ``next_attempt_at`` epoch seconds;
    ``status`` PENDING or GIVEN_UP (after the last attempt, with ``last_error``)."""

    message_id: str
    job_id: str
    topic_arn: str
    url: str
    body: str
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    status: str = PENDING
    last_error: str = ""
    claimed_by: str | None = None


@dataclass(frozen=True)
class ProcessorRow:
    name: str
    source: str
    outputs: dict[str, Any]
    settings: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "STOPPED"
    status_message: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    owner: str | None = None  # the process running it (while RUNNING)


# -- leads -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeadProbe:
    """The searched face of a lead, kept when its collection keeps face crops: the enrolled
    face that was searched (``face_id``: its own kept crop is shown, never copied), or the
    crop of the searched photo's face sealed for the lead (``sealed``: ``nonce ||
    ciphertext``)."""

    face_id: str | None = None
    sealed: bytes | None = None
