"""People in a stored video: body tracks (``bodies.py``) joined with the face pipeline's tracks.

Frame by frame, ``PeopleFrames.add`` tracks the bodies and gives each body the face inside it
(``associate_faces``). At the end, ``people`` joins the face tracks (``FramePipeline``'s
finished tracks: identity, person index, declared matches) to the bodies:

* a body track is cut where the face inside it becomes another person's face track (the body
  tracker follows boxes and may slip onto someone crossing; face tracks are identity-checked);
  frames without a face stay with the part before them;
* each part is one person: with the person index of its face track (the one with most frames),
  so a person who leaves and comes back keeps the index their face earned
  (``identity.PersonRegistry``), and a person's body parts join; a part never seen with a face
  is a person of its own (seen from behind, or too far away for a face);
* a face track given to no body is a person of its own, boxed by the face (as before bodies);
* a person's face matches are those declared on any of their face tracks; a person's
  observations are the body boxes of their body tracks, each with the Face seen inside it at
  that frame, if any; at frames where their body was not detected but their face was, the
  face's box (the person stays tracked through a missed body detection).

Only confirmed body tracks count (the tracker's ``min_hits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import BoundingBox
from faceledger.domain.video import Hit, VideoFace
from faceledger.video.bodies import BodyTracker, associate_faces
from faceledger.video.pipeline import FrameResult, best_matched_view, video_face

Observation = tuple[int, BoundingBox, VideoFace | None]


@dataclass
class _BodyTrack:
    track_id: int
    confirmed: bool = False
    observations: list[Observation] = field(default_factory=list)


@dataclass
class _Part:
    """Frames of one person from one track: observations, the face tracks seen in them."""

    observations: list[Observation]
    states: list[Any]
    body: bool


@dataclass(frozen=True)
class Person:
    """One person of the video: its observations (timestamp, box, face) in time order and the
    collection faces it matched (best Similarity first)."""

    first_ms: int
    observations: tuple[Observation, ...]
    hits: tuple[Hit, ...]
    has_body: bool
    best_shot_jpeg: bytes = b""  # the best face of its matched face tracks (kept views only)


class PeopleFrames:
    """Collects bodies and their faces frame by frame (one caller thread)."""

    def __init__(self, bodies: BodyTracker) -> None:
        self.bodies = bodies
        self._tracks: dict[int, _BodyTrack] = {}
        self._face_owner: dict[tuple[int, BoundingBox], int] = {}  # (ms, face box) → body
        self.faces_given = 0

    def add(
        self, pixels_bgr: NDArray[np.uint8], result: FrameResult, min_face_score: float
    ) -> None:
        """Track this frame's bodies and give them the frame's faces (``result``: the face
        pipeline's answer for the same frame; faces below ``min_face_score`` are not given)."""
        h, w = pixels_bgr.shape[:2]
        ts = result.timestamp_ms
        frame = self.bodies.update(pixels_bgr, ts)
        faces = result.faces
        usable = [i for i in range(len(faces)) if faces.scores[i] >= min_face_score]
        owners = associate_faces(
            faces.boxes_px[usable].reshape(-1, 4), frame.boxes_px, self.bodies.options
        )
        face_of_body = {int(b): usable[k] for k, b in enumerate(owners) if b >= 0}
        update = frame.update
        for b, tid in enumerate(int(t) for t in update.track_ids):
            if tid < 0:
                continue
            track = self._tracks.setdefault(tid, _BodyTrack(tid))
            track.confirmed = track.confirmed or int(update.indexes[b]) >= 0
            face = None
            if b in face_of_body:
                face = video_face(faces, face_of_body[b], w, h)
                self._face_owner[(ts, face.box)] = tid
                self.faces_given += 1
            box = BoundingBox.from_pixels(frame.boxes_px[b], w, h)
            track.observations.append((ts, box, face))

    def finish(self) -> None:
        self.bodies.finish()

    def people(self, face_tracks: Sequence[Any]) -> list[Person]:
        """The people (module docstring), in order of first appearance. ``face_tracks``: the
        face pipeline's finished tracks (``index``, ``observations``, ``declared``,
        ``best_hits``)."""
        state_at = {(ts, box): s for s in face_tracks for ts, box, _ in s.observations}
        grouped: dict[tuple[str, int], list[_Part]] = {}
        joined: dict[int, tuple[str, int]] = {}  # face track → the person it joined
        for tid, track in self._tracks.items():
            if not (track.confirmed and track.observations):
                continue
            for part in self._split_by_face(tid, track, state_at):
                if part.states:
                    owner = max(part.states, key=lambda s: len(s.observations))
                    key = ("face", int(owner.index))
                else:
                    key = ("body", tid)
                for state in part.states:
                    joined.setdefault(id(state), key)
                grouped.setdefault(key, []).append(part)
        for state in face_tracks:
            # a face track's own frames: the whole person when it joined no body, else the
            # frames where its body was missed (a body box wins where both exist)
            key = joined.get(id(state), ("face", int(state.index)))
            part = _Part(list(state.observations), [state], body=False)
            grouped.setdefault(key, []).append(part)
        people = [self._person(parts) for parts in grouped.values()]
        return sorted(people, key=lambda p: p.first_ms)

    @staticmethod
    def _split_by_face(
        tid: int, track: _BodyTrack, state_at: dict[tuple[int, BoundingBox], Any]
    ) -> list[_Part]:
        """A body track cut wherever the face inside it becomes another person's (the body
        tracker follows boxes and may slip onto someone crossing; the face pipeline checks
        identities): frames without a face stay with the part before them."""
        parts: list[_Part] = []
        current: _Part | None = None
        current_index: int | None = None
        for obs in track.observations:
            face = obs[2]
            state = state_at.get((obs[0], face.box)) if face is not None else None
            index = None if state is None else int(state.index)
            if current is None or (
                index is not None and current_index is not None and index != current_index
            ):
                current = _Part([], [], body=True)
                parts.append(current)
                current_index = None
            current.observations.append(obs)
            if state is not None:
                current_index = index
                if all(s is not state for s in current.states):
                    current.states.append(state)
        return parts

    @staticmethod
    def _person(parts: list[_Part]) -> Person:
        seen: dict[int, Observation] = {}
        best: dict[str, Hit] = {}
        has_body = False
        # bodies first: where a body and a face-only frame share a timestamp, the body wins
        for part in sorted(parts, key=lambda p: not p.body):
            has_body = has_body or part.body
            for obs in part.observations:
                seen.setdefault(obs[0], obs)
            for state in part.states:
                for face_id in state.declared:
                    hit = state.best_hits[face_id]
                    if face_id not in best or hit.similarity > best[face_id].similarity:
                        best[face_id] = hit
        ordered = tuple(seen[ts] for ts in sorted(seen))
        hits = tuple(sorted(best.values(), key=lambda h: -h.similarity))
        states = [state for part in parts for state in part.states]
        return Person(ordered[0][0], ordered, hits, has_body, best_matched_view(states))
