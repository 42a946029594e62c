"""Per-frame video processing: detect → track → embed the best face per track → search →
declare consistent matches. Shared by stored videos (``analyse_video``) and live sources
(``LiveProcessor``).

Per analysed frame (every ``detect_every_n_frames``-th frame of a file; the newest frame, at
most ``max_detect_fps`` a second, of a live source):

1. faces are detected at ``detect_long_side_px`` (one scale; crops and quality come from the
   full-resolution frame), down to the tracker's low score;
2. a hard scene cut (``identity.SceneCutDetector``) ends every track first; the tracker
   (``tracker.py``) then gives each face a track, and a confirmed track a person index
   (``identity.PersonRegistry``: a reappearing person whose embeddings agree gets the index
   they had);
3. each confirmed track keeps its best-quality face since its last embedding; it is embedded
   when the track is new, when a face ``quality_gain`` times better than the last embedded
   one appears, and while the track lives: every ``first_match_interval_ms`` while it is
   unmatched and younger than ``first_match_window_ms`` (a face that just appeared gets its
   second, confirming embedding quickly: the first match comes within about a second), every
   ``reembed_interval_ms`` while unmatched after that (a stranger costs little), and every
   ``reembed_matched_interval_ms`` once it has a declared match. The interval was chosen with
   ``bench/video.py --sweep`` (60 s of the cut video, ``bench/results/video_rule.json``): from
   a person's appearance to the match event, p95 of video time 663 / 423 / 183 ms at 500 /
   250 / 80 ms (every analysed frame), with no wrong-person event at any interval and 173 /
   227 / 599 embeddings. All of a frame's embeddings go to the ``searcher`` in one call.
   A track is one person: every embedding is compared with the mean of the track's earlier
   ones, and below the same-person bound (``same_person_similarity``, on the pack's
   calibrated scale: Similarity 50 is where the pack's measured false-match rate is 1e-3 and
   its genuine pairs of *different photos* fall below it 0.25 % of the time) the track is
   split where its face crop changed most since the previous embedding; the new part starts
   with no votes and no matches. When a track's face crop changes abruptly from one analysed
   frame to the next (``identity.signature_correlation`` below ``suspect_correlation``), that
   frame's face is embedded at once, so a change of person is checked where it happens;
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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import FaceLedgerError, InvalidParameterError
from faceledger.domain.faces import LANDMARK_NAMES, Faces
from faceledger.domain.video import Hit, Landmark, MatchEvent, VideoFace
from faceledger.inference.engine import FaceEngine
from faceledger.video.identity import (
    Identity,
    PersonRegistry,
    SceneCutDetector,
    crop_signature,
    signature_correlation,
)
from faceledger.video.sinks import hand_out
from faceledger.video.tracker import Tracker, TrackerOptions

log = logging.getLogger(__name__)

#: ``searcher(embeddings (n, d) float32) -> n lists of hits, best first``.
Searcher = Callable[[NDArray[np.float32]], Sequence[Sequence[Hit]]]
EventCallback = Callable[[MatchEvent], None]
MODES = ("faces", "search", "persons")
MAX_KEPT_CHECKS = 1000  # bounded histories: a live pipeline runs for months


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
    first_match_interval_ms: int = 80  # unmatched, in its first first_match_window_ms
    first_match_window_ms: int = 3000
    reembed_interval_ms: int = 1000  # unmatched, after that window
    reembed_matched_interval_ms: int = 3000  # once it has one (a switch of person is rare)
    quality_gain: float = 1.2
    confirm_votes: int = 2
    strong_similarity: float = 99.0
    best_shot_margin: float = 0.3  # the best-shot JPEG: the face box grown by this each side
    same_person_similarity: float = 50.0  # a track's embeddings agree at or above this
    reappear_similarity: float = 70.0  # a new track takes an earlier person's index above this
    suspect_correlation: float = 0.6  # crop-signature correlation below which to embed at once
    cut_difference: float = 0.07  # thumbnail mean absolute difference of a scene cut (0–1)
    tracker: TrackerOptions = field(default_factory=TrackerOptions)

    @classmethod
    def stored(cls) -> PipelineOptions:
        """The defaults for stored video: no quick first-match embeddings (a stored result
        labels the whole track part, so how soon a match is declared does not matter there;
        measured: 4.2× against 6.2× real time per two cores of CPU on ``bench/video.py``)."""
        return cls(first_match_interval_ms=cls.reembed_interval_ms)

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
    """One track part: one person's frames (a split or a scene cut starts a new part)."""

    track_id: int
    first_ms: int
    last_ms: int
    index: int | None = None
    resolved: bool = False  # whether ``index`` went through the person registry
    pending: _Shot | None = None  # best face since the last embedding
    best: _Shot | None = None  # best face of the track (the best shot)
    embedded_quality: float = 0.0
    last_embed_ms: int | None = None
    embeddings: int = 0
    votes: dict[str, int] = field(default_factory=dict)
    best_hits: dict[str, Hit] = field(default_factory=dict)
    declared: list[str] = field(default_factory=list)
    observations: list[tuple[int, BoundingBox, VideoFace]] = field(default_factory=list)
    identity: Identity = field(default_factory=Identity)
    signature: NDArray[np.float32] | None = None  # the last face crop's signature
    changes: list[tuple[int, float]] = field(default_factory=list)  # (ms, correlation)
    last_shot_ms: int = -1  # timestamp of the last embedded face
    suspect_ms: int | None = None  # the crop changed abruptly here: embed a face from here
    split_from: int | None = None  # the person index of the part this one was split from


@dataclass(frozen=True, eq=False)
class FrameResult:
    """What one analysed frame gave: the faces (with quality), their track ids and person
    indexes (-1: untracked / tentative) and the match events it declared."""

    timestamp_ms: int
    faces: Faces
    track_ids: NDArray[np.int64]
    indexes: NDArray[np.int64]
    events: tuple[MatchEvent, ...] = ()


def view_jpeg(view: NDArray[np.uint8] | None) -> bytes:
    """A best shot's face region as JPEG (quality 90); empty without one."""
    import cv2

    if view is None or not view.size:
        return b""
    ok, encoded = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return encoded.tobytes() if ok else b""


def best_matched_view(states: Sequence[Any]) -> bytes:
    """The best shot (highest quality, kept views only) among the track parts of ``states``
    that declared a match, as JPEG; empty when none kept a view. Stored face searches keep it
    as the searched face of the person's lead."""
    shots = [
        s.best for s in states if s.declared and s.best is not None and s.best.view is not None
    ]
    if not shots:
        return b""
    return view_jpeg(max(shots, key=lambda shot: shot.quality).view)


def _offer(state: _TrackState, shot: _Shot) -> bool:
    """Keep ``shot`` as the track's face to embed next if it is better than the pending one
    (or that one predates the track turning suspect), and as its best face if it is; whether
    it was kept either way."""
    stale = state.suspect_ms is not None and (
        state.pending is None or state.pending.timestamp_ms < state.suspect_ms
    )
    kept = False
    if state.pending is None or shot.quality > state.pending.quality or stale:
        state.pending = shot
        kept = True
    if state.best is None or shot.quality > state.best.quality:
        state.best = shot
        kept = True
    return kept


class FramePipeline:
    """The per-frame pipeline for one video or stream (not thread-safe: one caller thread).

    ``searcher`` is needed only to search; ``keep_observations`` keeps every tracked face for
    the stored-video results; ``on_event`` receives each ``MatchEvent``; ``identify`` (default:
    whether there is a searcher) embeds tracks' faces to keep each track to one person and
    person indexes stable across reappearances, even without a search (PersonTracking).
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
        identify: bool | None = None,
        keep_views: bool = False,
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
        # keep each shot's face region (for best-shot JPEGs): always with ``on_event``
        self.keep_views = keep_views or on_event is not None
        self.identify = searcher is not None if identify is None else identify
        self.tracker = Tracker(self.options.tracker)
        self.frames_analysed = 0
        self.events_emitted = 0
        self.embeddings = 0
        self.splits = 0  # tracks split because an embedding disagreed
        self.scene_cuts = 0
        self._states: dict[int, _TrackState] = {}
        self._frame_size = (1, 1)
        self.finished_tracks: list[_TrackState] = []
        calibration = engine.calibration
        self._split_cosine = float(calibration.cosine(self.options.same_person_similarity))
        self.persons = PersonRegistry(float(calibration.cosine(self.options.reappear_similarity)))
        self._cuts = SceneCutDetector(self.options.cut_difference)
        #: the latest identity checks: (cosine to the track's mean, whether it split the track)
        self.identity_checks: deque[tuple[float, bool]] = deque(maxlen=MAX_KEPT_CHECKS)

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
        if self._cuts.is_cut(pixels_bgr):
            self.scene_cuts += 1
            self._end_all()
        update = self.tracker.update(faces.boxes_px, faces.scores, timestamp_ms)
        self.frames_analysed += 1
        h, w = pixels_bgr.shape[:2]
        self._frame_size = (w, h)
        quality = face_quality(faces) if len(faces) else np.zeros(0)
        for i in range(len(faces)):
            tid = int(update.track_ids[i])
            if tid < 0:
                continue
            state = self._state_of(tid, timestamp_ms, confirmed=update.indexes[i] >= 0)
            if self.identify:
                self._note_signature(state, crops[i], timestamp_ms)
            if self.keep_observations:
                vf = video_face(faces, i, w, h)
                state.observations.append((timestamp_ms, vf.box, vf))
            confident = faces.scores[i] >= opts.tracker.high_score
            if confident and faces.widths_px[i] >= opts.min_embed_face_px:
                shot = _Shot(
                    float(quality[i]), crops[i].copy(), faces.boxes_px[i].copy(), timestamp_ms
                )
                if _offer(state, shot) and self.keep_views:  # only a kept shot needs its view
                    shot.view = self._view(pixels_bgr, faces.boxes_px[i])
        for tid in update.removed:
            ended = self._states.pop(tid, None)
            if ended is not None:
                self._finished(ended)
        events: tuple[MatchEvent, ...] = ()
        renamed: dict[int, int] = {}
        if self.identify:
            events = self._embed(timestamp_ms, arrival, renamed)
        track_ids = np.array([renamed.get(int(t), int(t)) for t in update.track_ids], np.int64)
        indexes = np.array(
            [
                -1 if (st := self._states.get(int(t))) is None or st.index is None else st.index
                for t in track_ids
            ],
            np.int64,
        )
        return FrameResult(timestamp_ms, faces, track_ids, indexes, events)

    def _state_of(self, tid: int, timestamp_ms: int, *, confirmed: bool) -> _TrackState:
        """Track ``tid``'s state, made when it is new, seen at ``timestamp_ms``; a person index
        once the tracker has ``confirmed`` it."""
        state = self._states.get(tid)
        if state is None:
            state = _TrackState(tid, timestamp_ms, timestamp_ms)
            self._states[tid] = state
        state.last_ms = timestamp_ms
        if confirmed and state.index is None:
            state.index = self.persons.new()
        return state

    def _note_signature(
        self, state: _TrackState, crop: NDArray[np.uint8], timestamp_ms: int
    ) -> None:
        """Compare the face crop with the track's last one; an abrupt change makes the track
        suspect (its identity is checked at the next embedding)."""
        signature = crop_signature(crop)
        correlation = signature_correlation(state.signature, signature)
        state.signature = signature
        state.changes.append((timestamp_ms, correlation))
        if len(state.changes) > MAX_KEPT_CHECKS:  # a face never embedded (too small)
            del state.changes[: -MAX_KEPT_CHECKS // 2]
        if correlation < self.options.suspect_correlation and state.identity.count:
            state.suspect_ms = timestamp_ms

    def finish(self) -> None:
        """End every track (end of the video); their states join ``finished_tracks``."""
        self._end_all()

    def _end_all(self) -> None:
        self.tracker.finish()
        for state in self._states.values():
            self._finished(state)
        self._states.clear()

    def _finished(self, state: _TrackState) -> None:
        if self.keep_observations and state.index is not None and state.observations:
            self.finished_tracks.append(state)

    # -- embedding, search and decisions -------------------------------------------------
    def _due(self, state: _TrackState, timestamp_ms: int) -> bool:
        shot = state.pending
        if state.index is None or shot is None:
            return False
        if state.last_embed_ms is None:
            return True
        if state.suspect_ms is not None and shot.timestamp_ms >= state.suspect_ms:
            return True  # the crop changed abruptly: check who this is now
        if shot.quality >= state.embedded_quality * self.options.quality_gain:
            return True
        opts = self.options
        if state.declared:
            interval = opts.reembed_matched_interval_ms
        elif timestamp_ms - state.first_ms <= opts.first_match_window_ms:
            interval = opts.first_match_interval_ms  # a new face: its first match soon
        else:
            interval = opts.reembed_interval_ms
        return timestamp_ms - state.last_embed_ms >= interval

    def _embed(
        self, timestamp_ms: int, arrival_s: float, renamed: dict[int, int]
    ) -> tuple[MatchEvent, ...]:
        """Embed the due tracks' faces, check each against its track's identity (splitting on
        disagreement; ``renamed`` gets old → new track ids), then search and decide."""
        due = [s for s in self._states.values() if self._due(s, timestamp_ms)]
        if not due:
            return ()
        shots = [s.pending for s in due if s.pending is not None]
        embeddings = self.engine.embed_crops(np.stack([shot.crop for shot in shots]))
        self.embeddings += len(due)
        checked = [
            self._embedded(state, shot, embedding, timestamp_ms, renamed)
            for state, shot, embedding in zip(due, shots, embeddings, strict=True)
        ]
        if self.searcher is None:
            return ()
        results = self.searcher(embeddings)
        if len(results) != len(checked):
            raise FaceLedgerError(f"the searcher gave {len(results)} results for {len(checked)}")
        events = [
            event
            for state, hits in zip(checked, results, strict=True)
            if (event := self._vote(state, hits, timestamp_ms, arrival_s)) is not None
        ]
        self.events_emitted += len(events)
        hand_out(events, self.on_event, lambda e: e.face_id, log)
        return tuple(events)

    def _embedded(
        self,
        state: _TrackState,
        shot: _Shot,
        embedding: NDArray[np.float32],
        timestamp_ms: int,
        renamed: dict[int, int],
    ) -> _TrackState:
        """Take ``shot``'s embedding into its track: split the track first when it disagrees
        with the track's identity; give the track its person. Returns the (maybe new) state."""
        cosine = state.identity.cosine(embedding)
        split = cosine is not None and cosine < self._split_cosine
        if cosine is not None:
            self.identity_checks.append((cosine, split))
        if split:
            old_id = state.track_id
            state = self._split(state, shot)
            renamed[old_id] = state.track_id
        state.pending = None
        state.suspect_ms = None
        state.changes.clear()
        state.embedded_quality = max(state.embedded_quality, shot.quality)
        state.last_embed_ms = timestamp_ms
        state.last_shot_ms = shot.timestamp_ms
        state.embeddings += 1
        state.identity.add(embedding)
        assert state.index is not None
        if state.resolved:
            self.persons.add(state.index, embedding)
        else:
            busy = {
                s.index for s in self._states.values() if s is not state and s.index is not None
            }
            if state.split_from is not None:
                busy.add(state.split_from)
            state.index = self.persons.resolve(state.index, embedding, busy)
            state.resolved = True
        return state

    def _vote(
        self, state: _TrackState, hits: Sequence[Hit], timestamp_ms: int, arrival_s: float
    ) -> MatchEvent | None:
        """Count the track's top hit (at or above the threshold) as a vote; the event when the
        face is declared now (enough votes, or one strong hit; once per face)."""
        if not hits:
            return None
        top = max(hits, key=lambda hit: hit.similarity)
        if top.similarity < self.threshold:
            return None
        state.votes[top.face_id] = state.votes.get(top.face_id, 0) + 1
        prev = state.best_hits.get(top.face_id)
        if prev is None or top.similarity > prev.similarity:
            state.best_hits[top.face_id] = top
        if top.face_id in state.declared:
            return None
        votes = state.votes[top.face_id]
        if votes < self.options.confirm_votes and top.similarity < self.options.strong_similarity:
            return None
        state.declared.append(top.face_id)
        return self._event(state, state.best_hits[top.face_id], timestamp_ms, arrival_s)

    def _split(self, state: _TrackState, shot: _Shot) -> _TrackState:
        """End ``state`` where another person took its place and return the new part, which
        carries the frames from there on and nothing else of the old part (no votes, no
        matches, a new track id and, until its first embedding resolves it, a new index).

        The split point is the frame, after the last embedded face and at or before ``shot``,
        whose face crop changed most from the frame before (``shot``'s frame if none)."""
        candidates = [
            (correlation, ms)
            for ms, correlation in state.changes
            if state.last_shot_ms < ms <= shot.timestamp_ms
        ]
        split_ms = min(candidates)[1] if candidates else shot.timestamp_ms
        new_id = self.tracker.split(state.track_id)
        part = _TrackState(new_id, split_ms, state.last_ms, index=self.persons.new())
        part.split_from = state.index
        part.observations = [o for o in state.observations if o[0] >= split_ms]
        state.observations = [o for o in state.observations if o[0] < split_ms]
        state.last_ms = state.observations[-1][0] if state.observations else state.first_ms
        part.signature = state.signature
        if state.best is not None and state.best.timestamp_ms >= split_ms:
            part.best = state.best
        else:
            part.best = shot
        del self._states[state.track_id]
        self._states[new_id] = part
        self._finished(state)
        self.splits += 1
        log.debug("track %d split at %d ms into %d", state.track_id, split_ms, new_id)
        return part

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
        best = state.best
        assert best is not None
        jpeg = view_jpeg(best.view)
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
