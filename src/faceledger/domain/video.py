"""Video values: metadata, timestamped results of stored-video analyses, live match events.

The shapes mirror Rekognition's ``GetFaceDetection`` (``FaceDetection``: Timestamp + FaceDetail),
``GetPersonTracking`` (``PersonDetection``: Timestamp + PersonDetail) and ``GetFaceSearch``
(``PersonMatch``: Timestamp + PersonDetail + FaceMatches), so an adapter serialises them member
by member. Units: ``*_ms`` are player time, milliseconds from the container's presentation
start as a video player shows them (Rekognition's ``Timestamp``; a file whose video starts
after its audio has a first frame later than 0); boxes and landmarks are ratios of the frame's
width and height (``BoundingBox``); ``confidence`` and ``similarity`` are 0–100; ``*_s``
wall-clock times are epoch seconds (``time.time()``).

FaceLedger tracks people by their faces: a person's ``box`` is the box of their face.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from faceledger.domain.collections import BoundingBox


@dataclass(frozen=True)
class VideoMetadata:
    """Rekognition's ``VideoMetadata`` (Codec, DurationMillis, Format, FrameRate, FrameHeight,
    FrameWidth, ColorRange)."""

    codec: str  # "h264", "hevc", "mpeg4", …
    duration_ms: int
    frame_rate: float
    frame_width: int
    frame_height: int
    format: str  # container: "QuickTime / MOV", "Matroska / WebM", …
    colour_range: str | None = None  # "FULL" | "LIMITED" | None when the file does not say


@dataclass(frozen=True)
class Landmark:
    """One of the five landmarks (``LANDMARK_NAMES``), as ratios of the frame size."""

    type: str
    x: float
    y: float


@dataclass(frozen=True)
class VideoFace:
    """What FaceLedger measures of a face in a frame (the members of a ``FaceDetail`` it fills)."""

    box: BoundingBox
    confidence: float  # detector confidence, 0–100
    landmarks: tuple[Landmark, ...]
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    brightness: float  # 0–100
    sharpness: float  # 0–100


@dataclass(frozen=True)
class FaceDetectionAt:
    """A ``FaceDetection``: one face at one analysed frame."""

    timestamp_ms: int
    face: VideoFace


@dataclass(frozen=True)
class PersonAt:
    """A ``PersonDetection``: person ``index`` (0, 1, 2… in order of first appearance, stable
    across the video) at one analysed frame."""

    timestamp_ms: int
    index: int
    box: BoundingBox  # the body's box (or the face's, for a person seen by the face only)
    face: VideoFace | None = None


@dataclass(frozen=True)
class Hit:
    """One collection face returned by a ``searcher`` for one embedding (best first)."""

    face_id: str
    similarity: float  # calibrated, 0–100
    external_image_id: str | None = None
    image_id: str | None = None
    box: BoundingBox | None = None  # the stored face's box in its own image
    confidence: float | None = None  # the stored face's detector confidence, 0–100
    user_id: str | None = None


@dataclass(frozen=True)
class FaceSearchAt:
    """A ``PersonMatch``: a tracked person at one analysed frame and the collection faces the
    person was matched to (each with the best Similarity the person's track reached)."""

    timestamp_ms: int
    index: int
    box: BoundingBox
    face: VideoFace | None
    matches: tuple[Hit, ...]


@dataclass(frozen=True)
class VideoAnalysis:
    """The outcome of a stored-video analysis: metadata plus the timestamped results of the
    requested mode (the other lists are empty), each sorted by timestamp then index."""

    metadata: VideoMetadata
    mode: str  # "faces" | "search" | "persons"
    faces: tuple[FaceDetectionAt, ...] = ()
    persons: tuple[PersonAt, ...] = ()
    matches: tuple[FaceSearchAt, ...] = ()
    frames_decoded: int = 0
    frames_analysed: int = 0
    persons_tracked: int = 0
    # face search: (person index, JPEG of the person's best matched face), for the leads
    best_shots: tuple[tuple[int, bytes], ...] = ()

    def best_shot(self, index: int) -> bytes:
        """The best-shot JPEG of matched person ``index`` (empty when none was kept)."""
        return next((jpeg for i, jpeg in self.best_shots if i == index), b"")


@dataclass(frozen=True, eq=False)
class MatchEvent:
    """A live match: a tracked person declared to be ``face_id`` (emitted once per track and
    face).

    ``first_timestamp_ms``/``last_timestamp_ms`` span the track part (one person) up to the
    decision; ``frame_timestamp_ms`` is the player time of the frame whose embedding made the match
    consistent, and ``frame_arrival_s`` the wall-clock time that frame was read from the source
    (``emitted_s - frame_arrival_s`` is the frame-to-event latency). ``best_shot_jpeg`` is the
    JPEG of the track's best-quality face crop (the face box with a margin), and ``box`` that
    face's box in its frame.
    """

    source_id: str
    track_id: int
    person_index: int
    face_id: str
    external_image_id: str | None
    image_id: str | None
    similarity: float
    box: BoundingBox
    best_shot_jpeg: bytes = field(repr=False)
    best_shot_timestamp_ms: int
    first_timestamp_ms: int
    last_timestamp_ms: int
    frame_timestamp_ms: int
    frame_arrival_s: float
    emitted_s: float
    user_id: str | None = None
    votes: int = 1  # embeddings of the track whose top hit was this face above the threshold


class StreamState(StrEnum):
    """A live source's state (Rekognition's StreamProcessorStatus plus RECONNECTING)."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    RECONNECTING = "RECONNECTING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class StreamStatus:
    """A snapshot of a live source and its processing."""

    state: StreamState
    message: str = ""
    frames_read: int = 0
    frames_dropped: int = 0  # read but replaced by a newer frame before they were analysed
    reconnects: int = 0
    frames_analysed: int = 0
    events: int = 0
    last_frame_s: float | None = None  # wall clock of the last frame read


@dataclass(frozen=True, eq=False)
class PersonEvent:
    """A live ``ConnectedHome``-style label event: a person (a body track) appeared.

    Emitted once per body track, at the first analysed frame where the track is confirmed and
    its detection reaches the processor's MinConfidence; ``confidence`` is that detection's
    score (0–100), ``box`` its body box (ratios), ``frame_timestamp_ms`` the frame's player
    time and ``frame_arrival_s`` the wall-clock time it was read; ``frame_jpeg`` the whole
    frame and ``crop_jpeg`` the person's box, as JPEG.
    """

    source_id: str
    track_id: int
    label: str  # "PERSON"
    confidence: float
    box: BoundingBox
    frame_timestamp_ms: int
    frame_arrival_s: float
    emitted_s: float
    crop_jpeg: bytes = field(repr=False, default=b"")
