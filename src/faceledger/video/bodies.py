"""People as bodies: a person detector's boxes tracked over time, and faces given to them.

PersonTracking and the Persons of a face search follow *people*, not faces: a body box comes
from the labels pack's ``person`` class (YOLOX), tracked with the same ByteTrack-style
``Tracker`` as faces (its own options: body scores are lower and boxes larger than faces').
A person seen from behind, or too far away for a face, is still tracked.

**Which face is whose (the geometry rule).** A face belongs to a body when at least
``min_face_inside`` (70 %) of the face box lies inside the body box, the face's centre is in
the top ``face_top_share`` (60 %) of the body box (a head is at the top of a body), and the
face is narrower than the body. Where several pairs qualify, the pairs are taken greedily by
the share of the face inside (highest first), then by the smaller body (the tightest), each face
and each body once. A face given to no body stays a person of its own (a close-up shows no
body), tracked by its face as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from faceledger.video.tracker import Tracker, TrackerOptions, TrackUpdate

#: ``detect(pixels_bgr) -> (boxes_px (N, 4) x1 y1 x2 y2, scores (N,) 0–1)`` of people.
PersonDetector = Callable[[NDArray[np.uint8]], tuple[NDArray[np.float32], NDArray[np.float32]]]


def body_tracker_options() -> TrackerOptions:
    """Tracker options for bodies: YOLOX person scores run lower than face scores (a figure
    seen from behind scores 0.1–0.6 with YOLOX-nano), so tracks start at 0.5 and a confirmed
    track is extended by detections down to 0.1 that overlap its predicted box (IoU ≥ 0.3:
    ByteTrack's second stage, where a weak detection elsewhere cannot start anything); a body
    may be missed for 1.5 s (turning, crossing another) and keep its track."""
    return TrackerOptions(
        high_score=0.5,
        low_score=0.1,
        match_iou=0.3,
        low_match_iou=0.3,
        min_hits=2,
        lost_buffer_ms=1500,
    )


@dataclass(frozen=True)
class BodyOptions:
    tracker: TrackerOptions = field(default_factory=body_tracker_options)
    min_face_inside: float = 0.7
    face_top_share: float = 0.6


def _inside_share(face: NDArray[np.float64], body: NDArray[np.float64]) -> float:
    """The share of ``face``'s area inside ``body`` (x1 y1 x2 y2 boxes)."""
    w = max(0.0, min(face[2], body[2]) - max(face[0], body[0]))
    h = max(0.0, min(face[3], body[3]) - max(face[1], body[1]))
    area = max(1e-9, (face[2] - face[0]) * (face[3] - face[1]))
    return float(w * h / area)


def associate_faces(
    face_boxes_px: NDArray[np.floating],
    body_boxes_px: NDArray[np.floating],
    options: BodyOptions | None = None,
) -> NDArray[np.int64]:
    """Per face, the index of the body it belongs to (-1: none), by the module's rule."""
    opts = options or BodyOptions()
    faces = np.asarray(face_boxes_px, np.float64).reshape(-1, 4)
    bodies = np.asarray(body_boxes_px, np.float64).reshape(-1, 4)
    out = np.full(len(faces), -1, np.int64)
    pairs: list[tuple[float, float, int, int]] = []
    for f, face in enumerate(faces):
        cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
        for b, body in enumerate(bodies):
            top_limit = body[1] + opts.face_top_share * (body[3] - body[1])
            if not (body[0] <= cx <= body[2] and body[1] <= cy <= top_limit):
                continue
            if face[2] - face[0] > body[2] - body[0]:
                continue
            share = _inside_share(face, body)
            if share >= opts.min_face_inside:
                area = (body[2] - body[0]) * (body[3] - body[1])
                pairs.append((-share, float(area), f, b))
    used: set[int] = set()
    for _, _, f, b in sorted(pairs):
        if out[f] < 0 and b not in used:
            out[f] = b
            used.add(b)
    return out


@dataclass(frozen=True, eq=False)
class BodyFrame:
    """One analysed frame's people: boxes (px), scores, and the tracker's ids and indexes
    (aligned with the boxes; ``TrackUpdate``)."""

    boxes_px: NDArray[np.float32]
    scores: NDArray[np.float32]
    update: TrackUpdate


class BodyTracker:
    """Detects and tracks people's bodies, frame by frame (one caller thread)."""

    def __init__(self, detect: PersonDetector, options: BodyOptions | None = None) -> None:
        self.detect = detect
        self.options = options or BodyOptions()
        self.tracker = Tracker(self.options.tracker)

    def update(self, pixels_bgr: NDArray[np.uint8], timestamp_ms: int) -> BodyFrame:
        boxes, scores = self.detect(pixels_bgr)
        keep = np.asarray(scores) >= self.options.tracker.low_score
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[keep]
        scores = np.asarray(scores, np.float32).reshape(-1)[keep]
        return BodyFrame(boxes, scores, self.tracker.update(boxes, scores, timestamp_ms))

    def finish(self) -> None:
        self.tracker.finish()
