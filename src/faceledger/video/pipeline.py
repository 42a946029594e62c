"""Per-frame video processing: detect → track → embed the best face per track → search →
declare consistent matches. Shared by stored videos (``analyse_video``) and live sources
(``LiveProcessor``).

Per analysed frame (every ``detect_every_n_frames``-th frame of a file; the newest frame, at
most ``max_detect_fps`` a second, of a live source):

1. faces are detected at ``detect_long_side_px`` (one scale; crops and quality come from the
   full-resolution frame), down to the tracker's low score;
2. the tracker (``tracker.py``) gives each face a track and, once confirmed, a person index;
3. each confirmed track keeps its best-quality face since its last embedding; it is embedded
   when the track is new, when a face ``quality_gain`` times better than the last embedded
   one appears, and every ``reembed_interval_ms`` while the track lives (every
   ``reembed_matched_interval_ms`` once it has a declared match). All of a frame's
   embeddings go to the ``searcher`` in one call;
4. a (track, face) match is declared once consistent: the face was the top hit at or above
   the threshold for ``confirm_votes`` embeddings of the track, or once at or above
   ``strong_similarity``. Why: a single embedding of a blurred or turned face is where a
   false match comes from, and two different views agreeing is rare for a stranger (the
   pack's false-match rate at Similarity 80 is ≤ 1e-5 per pair, so two independent false
   top hits on the same face are ~1e-10), while a genuine person on screen for ≥ 2 s gets
   several embeddings. A single very strong hit (≥ 99 by default, far into the genuine range)
   is declared at once, so a person seen briefly and well is not missed. Each declared
   (track, face) emits one ``MatchEvent``.

Quality (for the best shot) = detector confidence × size factor (face width / 80 px, at most
1) × frontal factor (cos yaw × cos pitch) × (0.5 + sharpness / 200).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import FaceLedgerError, InvalidParameterError
from faceledger.domain.faces import LANDMARK_NAMES, Faces
from faceledger.domain.video import Hit, Landmark, MatchEvent, VideoFace
from faceledger.inference.engine import FaceEngine
from faceledger.video.tracker import Tracker, TrackerOptions

log = logging.getLogger(__name__)

#: ``searcher(embeddings (n, d) float32) -> n lists of hits, best first``.
Searcher = Callable[[NDArray[np.float32]], Sequence[Sequence[Hit]]]
EventCallback = Callable[[MatchEvent], None]
MODES = ("faces", "search", "persons")


class AnalysisCancelled(FaceLedgerError):
    """The caller's cancellation check said stop (a stored-video job was cancelled)."""

    code = "JobCancelled"
    http_status = 400


@dataclass(frozen=True)
class PipelineOptions:
    """Tunables of the per-frame pipeline (defaults measured in ``bench/video.py``)."""

    detect_every_n_frames: int = 2  # stored video: analyse every Nth decoded frame
    max_detect_fps: float = 12.5  # live: analyse at most this many frames a second
    detect_long_side_px: int = 640  # frames are detected scaled to this long side
    min_embed_face_px: float = 32.0  # narrower faces are tracked but never embedded
    reembed_interval_ms: int = 1000  # while the track has no declared match
    reembed_matched_interval_ms: int = 3000  # once it has one (a switch of person is rare)
    quality_gain: float = 1.2
    confirm_votes: int = 2
    strong_similarity: float = 99.0
    best_shot_margin: float = 0.3  # the best-shot JPEG: the face box grown by this each side
    tracker: TrackerOptions = field(default_factory=TrackerOptions)

    def __post_init__(self) -> None:
        if self.detect_every_n_frames < 1:
            raise InvalidParameterError("detect_every_n_frames must be at least 1")
        if not 64 <= self.detect_long_side_px <= 4096:
            raise InvalidParameterError("detect_long_side_px must be between 64 and 4096")
        if self.max_detect_fps <= 0:
            raise InvalidParameterError("max_detect_fps must be positive")
        if self.confirm_votes < 1:
            raise InvalidParameterError("confirm_votes must be at least 1")


def face_quality(faces: Faces) -> NDArray[np.float64]:
    """Best-shot quality per face (see the module docstring), 0–1."""
    assert faces.yaw_deg is not None and faces.pitch_deg is not None
    assert faces.sharpness is not None
    size = np.minimum(1.0, faces.widths_px.astype(np.float64) / 80.0)
    frontal = np.clip(np.cos(np.radians(faces.yaw_deg)), 0, 1) * np.clip(
        np.cos(np.radians(faces.pitch_deg)), 0, 1
    )
    return np.asarray(
        faces.scores * size * frontal * (0.5 + faces.sharpness / 200.0), dtype=np.float64
    )


def video_face(faces: Faces, i: int, width_px: int, height_px: int) -> VideoFace:
    """Face ``i`` of ``faces`` (with quality) as ratios of a ``width_px``×``height_px`` frame."""
    assert faces.yaw_deg is not None and faces.pitch_deg is not None
    assert faces.roll_deg is not None
    assert faces.brightness is not None and faces.sharpness is not None
    return VideoFace(
        box=_box_ratio(faces.boxes_px[i], width_px, height_px),
        confidence=float(faces.scores[i]) * 100.0,
        landmarks=tuple(
            Landmark(name, float(x) / width_px, float(y) / height_px)
            for name, (x, y) in zip(LANDMARK_NAMES, faces.landmarks_px[i], strict=True)
        ),
        yaw_deg=float(faces.yaw_deg[i]),
        pitch_deg=float(faces.pitch_deg[i]),
        roll_deg=float(faces.roll_deg[i]),
        brightness=float(faces.brightness[i]),
        sharpness=float(faces.sharpness[i]),
    )


def _box_ratio(box_px: NDArray[np.floating], width_px: int, height_px: int) -> BoundingBox:
    return BoundingBox.from_pixels(box_px, width_px, height_px)


@dataclass
class _Shot:
    """A candidate face of a track: its quality, aligned crop, box and timestamp."""

    quality: float
    crop: NDArray[np.uint8]  # aligned 112×112, for the embedder
    box_px: NDArray[np.float32]
    timestamp_ms: int
    view: NDArray[np.uint8] | None = None  # the face region with a margin, for the best shot


@dataclass
class _TrackState:
    track_id: int
    first_ms: int
    last_ms: int
    index: int | None = None
    pending: _Shot | None = None  # best face since the last embedding
    best: _Shot | None = None  # best face of the track (the best shot)
    embedded_quality: float = 0.0
    last_embed_ms: int | None = None
    embeddings: int = 0
    votes: dict[str, int] = field(default_factory=dict)
    best_hits: dict[str, Hit] = field(default_factory=dict)
    declared: list[str] = field(default_factory=list)
    observations: list[tuple[int, BoundingBox, VideoFace]] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class FrameResult:
    """What one analysed frame gave: the faces (with quality), their track ids and person
    indexes (-1: untracked / tentative) and the match events it declared."""

    timestamp_ms: int
    faces: Faces
    track_ids: NDArray[np.int64]
    indexes: NDArray[np.int64]
    events: tuple[MatchEvent, ...] = ()


class FramePipeline:
    """The per-frame pipeline for one video or stream (not thread-safe: one caller thread).

    ``searcher`` is needed only to search (``search=True``); ``keep_observations`` keeps every
    tracked face for the stored-video results; ``on_event`` receives each ``MatchEvent``.
    """

    def __init__(
        self,
        engine: FaceEngine,
        *,
        searcher: Searcher | None = None,
        threshold: float = 80.0,
        options: PipelineOptions | None = None,
        on_event: EventCallback | None = None,
        source_id: str = "",
        keep_observations: bool = False,
    ) -> None:
        if not 0 <= threshold <= 100:
            raise InvalidParameterError(f"threshold must be between 0 and 100, got {threshold}")
        self.engine = engine
        self.searcher = searcher
        self.threshold = float(threshold)
        self.options = options or PipelineOptions()
        self.on_event = on_event
        self.source_id = source_id
        self.keep_observations = keep_observations
        self.tracker = Tracker(self.options.tracker)
        self.frames_analysed = 0
        self.events_emitted = 0
        self.embeddings = 0
        self._states: dict[int, _TrackState] = {}
        self._frame_size = (1, 1)
        self.finished_tracks: list[_TrackState] = []

    # -- one frame ----------------------------------------------------------------------
    def process(
        self, pixels_bgr: NDArray[np.uint8], timestamp_ms: int, arrival_s: float | None = None
    ) -> FrameResult:
        opts = self.options
        arrival = time.time() if arrival_s is None else arrival_s
        faces, crops = self.engine.detect_frame(
            pixels_bgr,
            long_side_px=opts.detect_long_side_px,
            score_threshold=opts.tracker.low_score,
        )
        update = self.tracker.update(faces.boxes_px, faces.scores, timestamp_ms)
        self.frames_analysed += 1
        h, w = pixels_bgr.shape[:2]
        self._frame_size = (w, h)
        quality = face_quality(faces) if len(faces) else np.zeros(0)
        for i in range(len(faces)):
            tid = int(update.track_ids[i])
            if tid < 0:
                continue
            state = self._states.get(tid)
            if state is None:
                state = _TrackState(tid, timestamp_ms, timestamp_ms)
                self._states[tid] = state
            state.last_ms = timestamp_ms
            if update.indexes[i] >= 0:
                state.index = int(update.indexes[i])
            if self.keep_observations:
                vf = video_face(faces, i, w, h)
                state.observations.append((timestamp_ms, vf.box, vf))
            confident = faces.scores[i] >= opts.tracker.high_score
            if confident and faces.widths_px[i] >= opts.min_embed_face_px:
                q = float(quality[i])
                shot = _Shot(q, crops[i].copy(), faces.boxes_px[i].copy(), timestamp_ms)
                if state.pending is None or q > state.pending.quality:
                    state.pending = shot
                if state.best is None or q > state.best.quality:
                    if self.on_event is not None:
                        shot.view = self._view(pixels_bgr, faces.boxes_px[i])
                    state.best = shot
        for tid in update.removed:
            state = self._states.pop(tid, None)
            if state is not None and self.keep_observations and state.index is not None:
                self.finished_tracks.append(state)
        events: tuple[MatchEvent, ...] = ()
        if self.searcher is not None:
            events = self._search(timestamp_ms, arrival)
        return FrameResult(timestamp_ms, faces, update.track_ids, update.indexes, events)

    def finish(self) -> None:
        """End every track (end of the video); their states join ``finished_tracks``."""
        self.tracker.finish()
        for state in self._states.values():
            if self.keep_observations and state.index is not None:
                self.finished_tracks.append(state)
        self._states.clear()

    # -- embedding, search and decisions -------------------------------------------------
    def _due(self, state: _TrackState, timestamp_ms: int) -> bool:
        shot = state.pending
        if state.index is None or shot is None:
            return False
        if state.last_embed_ms is None:
            return True
        if shot.quality >= state.embedded_quality * self.options.quality_gain:
            return True
        interval = (
            self.options.reembed_matched_interval_ms
            if state.declared
            else self.options.reembed_interval_ms
        )
        return timestamp_ms - state.last_embed_ms >= interval

    def _search(self, timestamp_ms: int, arrival_s: float) -> tuple[MatchEvent, ...]:
        assert self.searcher is not None
        due = [s for s in self._states.values() if self._due(s, timestamp_ms)]
        if not due:
            return ()
        crops = np.stack([s.pending.crop for s in due if s.pending is not None])
        embeddings = self.engine.embed_crops(crops)
        results = self.searcher(embeddings)
        if len(results) != len(due):
            raise FaceLedgerError(f"the searcher gave {len(results)} results for {len(due)}")
        self.embeddings += len(due)
        events: list[MatchEvent] = []
        for state, hits in zip(due, results, strict=True):
            assert state.pending is not None
            state.embedded_quality = max(state.embedded_quality, state.pending.quality)
            state.last_embed_ms = timestamp_ms
            state.embeddings += 1
            state.pending = None
            if not hits:
                continue
            top = max(hits, key=lambda hit: hit.similarity)
            if top.similarity < self.threshold:
                continue
            state.votes[top.face_id] = state.votes.get(top.face_id, 0) + 1
            prev = state.best_hits.get(top.face_id)
            if prev is None or top.similarity > prev.similarity:
                state.best_hits[top.face_id] = top
            if top.face_id in state.declared:
                continue
            votes = state.votes[top.face_id]
            if (
                votes >= self.options.confirm_votes
                or top.similarity >= self.options.strong_similarity
            ):
                state.declared.append(top.face_id)
                event = self._event(state, state.best_hits[top.face_id], timestamp_ms, arrival_s)
                events.append(event)
        for event in events:
            self.events_emitted += 1
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:  # a sink's failure must not stop the video
                    log.exception("on_event failed for %s", event.face_id)
        return tuple(events)

    def _view(
        self, pixels_bgr: NDArray[np.uint8], box_px: NDArray[np.float32]
    ) -> NDArray[np.uint8]:
        h, w = pixels_bgr.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box_px)
        mx, my = (
            (x2 - x1) * self.options.best_shot_margin,
            (y2 - y1) * self.options.best_shot_margin,
        )
        left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
        right, bottom = min(w, int(x2 + mx + 1)), min(h, int(y2 + my + 1))
        return np.ascontiguousarray(pixels_bgr[top:bottom, left:right])

    def _event(
        self, state: _TrackState, hit: Hit, timestamp_ms: int, arrival_s: float
    ) -> MatchEvent:
        import cv2

        best = state.best
        assert best is not None
        jpeg = b""
        view = best.view if best.view is not None else None
        if view is not None and view.size:
            ok, encoded = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, 90])
            jpeg = encoded.tobytes() if ok else b""
        frame_w, frame_h = self._frame_size
        return MatchEvent(
            source_id=self.source_id,
            track_id=state.track_id,
            person_index=state.index if state.index is not None else -1,
            face_id=hit.face_id,
            external_image_id=hit.external_image_id,
            image_id=hit.image_id,
            similarity=hit.similarity,
            box=_box_ratio(best.box_px, frame_w, frame_h),
            best_shot_jpeg=jpeg,
            best_shot_timestamp_ms=best.timestamp_ms,
            first_timestamp_ms=state.first_ms,
            last_timestamp_ms=state.last_ms,
            frame_timestamp_ms=timestamp_ms,
            frame_arrival_s=arrival_s,
            emitted_s=time.time(),
            user_id=hit.user_id,
            votes=state.votes.get(hit.face_id, 1),
        )
