"""A small ByteTrack-style tracker for face boxes.

ByteTrack (Zhang et al., 2022) associates in two stages: confident detections first, against
every live track; then the low-score detections (which a plain tracker throws away, and which
are often the same face blurred or half-turned) against the tracks still unmatched, at a
stricter overlap. Here:

* motion is constant velocity per box coordinate, smoothed exponentially, in pixels per ms, so
  tracks are predicted to the time of the new detections whatever the detection interval;
* association is greedy by IoU between predicted track boxes and detections (face scenes hold a
  handful of faces; the Hungarian method buys nothing measurable there);
* a new track starts from an unmatched confident detection and is *tentative* until it has
  been matched ``min_hits`` times in a row; it then gets the next person index (0, 1, 2… in
  order of confirmation), which it keeps for life;
* a track not matched for ``lost_buffer_ms`` is removed (within that time it can be recovered
  at its predicted position, e.g. after a missed detection or a short occlusion).

``update`` never mutates its arguments and returns columnar results aligned with its input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class TrackerOptions:
    high_score: float = 0.75  # detections at least this confident start and extend tracks
    low_score: float = 0.45  # detections between low and high only extend existing tracks
    match_iou: float = 0.2  # stage 1: minimum IoU between a prediction and a detection
    low_match_iou: float = 0.4  # stage 2 (low-score detections): stricter
    min_hits: int = 2  # consecutive matches before a track is confirmed
    lost_buffer_ms: int = 1000  # an unmatched track is kept (and predicted) this long
    velocity_smoothing: float = 0.6  # weight of the newest velocity measurement


@dataclass
class _Track:
    track_id: int
    box: NDArray[np.float64]  # x1, y1, x2, y2 px at last_ms
    velocity: NDArray[np.float64]  # px per ms for each coordinate
    first_ms: int
    last_ms: int
    hits: int = 1
    index: int | None = None  # person index once confirmed

    def predict(self, t_ms: int) -> NDArray[np.float64]:
        dt = float(t_ms - self.last_ms)
        return self.box + self.velocity * dt


@dataclass(frozen=True, eq=False)
class TrackUpdate:
    """Per input detection: its ``track_ids`` (-1: not tracked, a low-score detection that
    matched nothing) and ``indexes`` (person index; -1 while the track is tentative);
    ``removed``: ids of tracks that ended at this update; ``confirmed``: ids of tracks that got
    their person index at this update."""

    track_ids: NDArray[np.int64]
    indexes: NDArray[np.int64]
    removed: tuple[int, ...] = ()
    confirmed: tuple[int, ...] = ()


def iou_matrix(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """Pairwise IoU of (N, 4) and (M, 4) x1, y1, x2, y2 boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _greedy(iou: NDArray[np.float64], min_iou: float) -> list[tuple[int, int]]:
    """(row, col) pairs by decreasing IoU, each row and column used once, IoU ≥ min_iou."""
    if iou.size == 0:
        return []
    rows, cols = np.nonzero(iou >= min_iou)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


@dataclass
class Tracker:
    """Stateful tracker; call ``update`` once per analysed frame, in timestamp order."""

    options: TrackerOptions = field(default_factory=TrackerOptions)
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1
    _next_index: int = 0

    @property
    def persons_seen(self) -> int:
        """Person indexes handed out so far."""
        return self._next_index

    def active(self) -> dict[int, int | None]:
        """Live track ids → person index (None while tentative)."""
        return {t.track_id: t.index for t in self._tracks}

    def update(
        self, boxes_px: NDArray[np.floating], scores: NDArray[np.floating], timestamp_ms: int
    ) -> TrackUpdate:
        opts = self.options
        boxes = np.asarray(boxes_px, np.float64).reshape(-1, 4)
        score_arr = np.asarray(scores, np.float64).reshape(-1)
        n = len(boxes)
        track_ids = np.full(n, -1, np.int64)
        indexes = np.full(n, -1, np.int64)
        high = np.nonzero(score_arr >= opts.high_score)[0]
        low = np.nonzero((score_arr >= opts.low_score) & (score_arr < opts.high_score))[0]
        assignments = self._associate(boxes, high, low, timestamp_ms)
        confirmed = self._follow(assignments, boxes, timestamp_ms, track_ids, indexes)
        removed = self._prune({r for r, _ in assignments}, timestamp_ms)
        assigned = {d for _, d in assignments}
        new = [d for d in (int(k) for k in high) if d not in assigned]
        confirmed += self._begin(new, boxes, timestamp_ms, track_ids, indexes)
        return TrackUpdate(track_ids, indexes, tuple(removed), tuple(confirmed))

    def _associate(
        self,
        boxes: NDArray[np.float64],
        high: NDArray[np.intp],
        low: NDArray[np.intp],
        timestamp_ms: int,
    ) -> list[tuple[int, int]]:
        """(track position, detection) pairs: confident detections against every live track,
        then low-score detections against the confirmed tracks still unmatched."""
        opts = self.options
        predicted = (
            np.stack([t.predict(timestamp_ms) for t in self._tracks])
            if self._tracks
            else np.zeros((0, 4))
        )
        # stage 1: confident detections against every live track
        pairs1 = _greedy(iou_matrix(predicted, boxes[high]), opts.match_iou)
        assignments = [(r, int(high[c])) for r, c in pairs1]
        matched_tracks = {r for r, _ in pairs1}
        # stage 2: low-score detections against the confirmed tracks still unmatched
        rest = [
            i
            for i in range(len(self._tracks))
            if i not in matched_tracks and self._tracks[i].index is not None
        ]
        if rest and len(low):
            pairs2 = _greedy(iou_matrix(predicted[rest], boxes[low]), opts.low_match_iou)
            assignments += [(rest[r], int(low[c])) for r, c in pairs2]
        return assignments

    def _follow(
        self,
        assignments: list[tuple[int, int]],
        boxes: NDArray[np.float64],
        timestamp_ms: int,
        track_ids: NDArray[np.int64],
        indexes: NDArray[np.int64],
    ) -> list[int]:
        """Move each matched track to its detection (smoothing its velocity) and label the
        detection (``track_ids``, ``indexes``: this update's own arrays); returns the ids of
        tracks confirmed by this hit."""
        opts = self.options
        confirmed: list[int] = []
        for r, d in assignments:
            track = self._tracks[r]
            dt = float(timestamp_ms - track.last_ms)
            if dt > 0:
                measured = (boxes[d] - track.box) / dt
                a = opts.velocity_smoothing if track.hits > 1 else 1.0
                track.velocity = a * measured + (1 - a) * track.velocity
            track.box = boxes[d].copy()
            track.last_ms = timestamp_ms
            track.hits += 1
            if track.index is None and track.hits >= opts.min_hits:
                track.index = self._next_index
                self._next_index += 1
                confirmed.append(track.track_id)
            track_ids[d] = track.track_id
            indexes[d] = -1 if track.index is None else track.index
        return confirmed

    def _prune(self, matched_tracks: set[int], timestamp_ms: int) -> list[int]:
        """Drop unmatched tentative tracks and tracks lost for too long; returns their ids."""
        removed: list[int] = []
        kept: list[_Track] = []
        for i, track in enumerate(self._tracks):
            if i in matched_tracks:
                kept.append(track)
            elif track.index is None or timestamp_ms - track.last_ms > self.options.lost_buffer_ms:
                removed.append(track.track_id)  # a tentative track must match every frame
            else:
                kept.append(track)
        self._tracks = kept
        return removed

    def _begin(
        self,
        detections: list[int],
        boxes: NDArray[np.float64],
        timestamp_ms: int,
        track_ids: NDArray[np.int64],
        indexes: NDArray[np.int64],
    ) -> list[int]:
        """Start a track at each of ``detections`` (confident, unmatched); returns the ids of
        those confirmed at once (``min_hits`` ≤ 1)."""
        confirmed: list[int] = []
        for d in detections:
            track = _Track(
                track_id=self._next_id,
                box=boxes[d].copy(),
                velocity=np.zeros(4),
                first_ms=timestamp_ms,
                last_ms=timestamp_ms,
            )
            self._next_id += 1
            if self.options.min_hits <= 1:
                track.index = self._next_index
                self._next_index += 1
                confirmed.append(track.track_id)
                indexes[d] = track.index
            self._tracks.append(track)
            track_ids[d] = track.track_id
        return confirmed

    def split(self, track_id: int) -> int:
        """Give the live track ``track_id`` a new id (another person took its place: the
        pipeline's identity check said so) and return it; box and motion carry on."""
        for t in self._tracks:
            if t.track_id == track_id:
                t.track_id = self._next_id
                self._next_id += 1
                return t.track_id
        raise KeyError(track_id)

    def finish(self) -> tuple[int, ...]:
        """End every live track (the end of a video, or a scene cut); returns their ids."""
        ids = tuple(t.track_id for t in self._tracks)
        self._tracks = []
        return ids
