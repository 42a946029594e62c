"""Live ``ConnectedHome``-style person events: bodies tracked in a live source, one event per
person who appears.

Per analysed frame the person detector (the labels pack's ``person`` class) finds bodies and
the body tracker (``bodies.py``) follows them; a track's event is emitted once, at the first
frame where the track is confirmed (``min_hits`` frames in a row) and its detection's score is
at least ``min_confidence_pct``. No face is detected, embedded or searched: this is presence
detection (Rekognition's ConnectedHome with Labels ["PERSON"]), not identification.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.video import PersonEvent
from faceledger.video.bodies import BodyOptions, BodyTracker, PersonDetector
from faceledger.video.sinks import hand_out

log = logging.getLogger(__name__)
PersonEventCallback = Callable[[PersonEvent], None]


class PersonEventPipeline:
    """The per-frame work of a person-event processor (``LiveProcessor``'s ``pipeline``; one
    caller thread)."""

    def __init__(
        self,
        detect: PersonDetector,
        *,
        min_confidence_pct: float,
        on_event: PersonEventCallback | None = None,
        source_id: str = "",
        options: BodyOptions | None = None,
    ) -> None:
        if not 0 <= min_confidence_pct <= 100:
            raise InvalidParameterError("MinConfidence must be between 0 and 100")
        self.bodies = BodyTracker(detect, options)
        self.min_score = min_confidence_pct / 100.0
        self.on_event = on_event
        self.source_id = source_id
        self.frames_analysed = 0
        self.events_emitted = 0
        self._announced: set[int] = set()

    def process(
        self, pixels_bgr: NDArray[np.uint8], timestamp_ms: int, arrival_s: float | None = None
    ) -> tuple[PersonEvent, ...]:
        arrival = time.time() if arrival_s is None else arrival_s
        frame = self.bodies.update(pixels_bgr, timestamp_ms)
        self.frames_analysed += 1
        h, w = pixels_bgr.shape[:2]
        update = frame.update
        events: list[PersonEvent] = []
        for i, tid in enumerate(int(t) for t in update.track_ids):
            if tid < 0 or tid in self._announced or int(update.indexes[i]) < 0:
                continue
            score = float(frame.scores[i])
            if score < self.min_score:
                continue
            self._announced.add(tid)
            events.append(
                PersonEvent(
                    source_id=self.source_id,
                    track_id=tid,
                    label="PERSON",
                    confidence=score * 100.0,
                    box=BoundingBox.from_pixels(frame.boxes_px[i], w, h),
                    frame_timestamp_ms=timestamp_ms,
                    frame_arrival_s=arrival,
                    emitted_s=time.time(),
                    crop_jpeg=_jpeg(pixels_bgr, frame.boxes_px[i]),
                )
            )
        self.events_emitted += len(events)
        hand_out(events, self.on_event, lambda e: f"person track {e.track_id}", log)
        return tuple(events)


def _jpeg(pixels_bgr: NDArray[np.uint8], box_px: NDArray[np.float32]) -> bytes:
    import cv2

    h, w = pixels_bgr.shape[:2]
    x1, y1 = max(0, int(box_px[0])), max(0, int(box_px[1]))
    x2, y2 = min(w, int(box_px[2]) + 1), min(h, int(box_px[3]) + 1)
    if x2 <= x1 or y2 <= y1:
        return b""
    ok, encoded = cv2.imencode(".jpg", pixels_bgr[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return encoded.tobytes() if ok else b""
