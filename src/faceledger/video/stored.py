"""Stored video: analyse a whole file for GetFaceDetection, GetFaceSearch or GetPersonTracking.

With a ``person_detector``, PersonTracking and face search follow people by their bodies
(``bodies.py``, joined with the face tracks in ``people.py``): a person's box is their body's,
with a Face when one is seen inside it; without one, people are tracked by their faces.

Decoding runs on its own thread (PyAV with FFmpeg's frame threads) one short queue ahead of
the analysis thread, so decoding overlaps detection (OpenCV runs its network without the
GIL). Every frame is decoded (inter-frame codecs need them) but only every
``detect_every_n_frames``-th is converted to pixels and analysed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import replace
from typing import Any

from faceledger.domain.errors import FaceLedgerError, InvalidParameterError
from faceledger.domain.video import (
    FaceDetectionAt,
    FaceSearchAt,
    PersonAt,
    VideoAnalysis,
    VideoMetadata,
)
from faceledger.inference.engine import FaceEngine
from faceledger.video.bodies import BodyTracker, PersonDetector
from faceledger.video.people import PeopleFrames
from faceledger.video.pipeline import (
    MODES,
    AnalysisCancelled,
    FramePipeline,
    PipelineOptions,
    Searcher,
    best_matched_view,
    video_face,
)
from faceledger.video.sources import (
    SourceSpec,
    decode_frames,
    metadata_of,
    open_input,
    parse_source,
    to_bgr,
)

ProgressCallback = Callable[[float], None]
CancelCheck = Callable[[], bool]
_QUEUE_FRAMES = 4
_END = object()


def analyse_video(
    source: str,
    engine: FaceEngine,
    *,
    mode: str,
    searcher: Searcher | None = None,
    threshold: float = 80.0,
    options: PipelineOptions | None = None,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    person_detector: PersonDetector | None = None,
) -> VideoAnalysis:
    """Analyse the video file ``source`` (a path or ``file://`` URL) in ``mode``:

    * ``"faces"``: every face at every analysed frame (``VideoAnalysis.faces``);
    * ``"persons"``: tracked people with a stable index (``VideoAnalysis.persons``);
    * ``"search"``: the tracked people matched to collection faces by ``searcher`` at
      ``threshold`` (0–100), with every timestamp of each matched person
      (``VideoAnalysis.matches``). A match needs the consistency ``FramePipeline`` describes.

    ``progress(fraction)`` is called as the video advances (0–1, at most ~100 times);
    ``cancelled()`` is checked every analysed frame and raises ``AnalysisCancelled`` when it
    returns True. Unreadable input raises ``InvalidParameterError``. ``options`` default to
    ``PipelineOptions.stored()``. ``person_detector`` (persons and search): track bodies too,
    on every analysed frame (module docstring).
    """
    opts = options or PipelineOptions.stored()
    container, stream = open_input(_stored_source(source, mode, searcher))
    frames: Generator[tuple[int, int, Any], None, None] | None = None
    try:
        meta = metadata_of(container, stream)
        if meta.frame_width <= 0 or meta.frame_height <= 0:
            raise InvalidParameterError("the video has no frame size")
        pipeline, people = _analysers(engine, mode, searcher, threshold, opts, person_detector)
        counted: list[int] = [0]
        frames = _decoded(container, stream, opts.detect_every_n_frames, counted)
        faces, frame_shape = _walk(
            frames,
            pipeline,
            keep_faces_from=engine.options.detect_score_threshold if mode == "faces" else None,
            duration_ms=meta.duration_ms,
            progress=progress,
            cancelled=cancelled,
            people=people,
            people_score=engine.options.detect_score_threshold,
        )
        if people is not None:
            people.finish()
    finally:
        if frames is not None:
            frames.close()  # stops and joins the decoding thread before the container closes
        container.close()
    decoded = counted[0]
    if progress is not None:
        progress(1.0)
    meta = _upright(meta, decoded, frame_shape)
    if people is not None:
        return _people_results(meta, mode, pipeline, people, decoded)
    return _results(meta, mode, pipeline, tuple(faces), decoded)


def _analysers(
    engine: FaceEngine,
    mode: str,
    searcher: Searcher | None,
    threshold: float,
    opts: PipelineOptions,
    person_detector: PersonDetector | None,
) -> tuple[FramePipeline, PeopleFrames | None]:
    """The frame pipeline for ``mode`` and, when bodies are tracked too, the people joiner."""
    pipeline = FramePipeline(
        engine,
        searcher=searcher if mode == "search" else None,
        threshold=threshold,
        options=opts,
        keep_observations=mode != "faces",
        identify=mode != "faces",
        keep_views=mode == "search",  # each matched person's best shot, for its lead
    )
    people = (
        PeopleFrames(BodyTracker(person_detector))
        if person_detector is not None and mode != "faces"
        else None
    )
    return pipeline, people


def _upright(
    meta: VideoMetadata, decoded: int, frame_shape: tuple[int, ...] | None
) -> VideoMetadata:
    """``meta`` with the frame size the decoded frames had (``InvalidParameterError`` when
    no frame was decoded)."""
    if decoded == 0 or frame_shape is None:
        raise InvalidParameterError("the video holds no decodable frame")
    if (frame_shape[1], frame_shape[0]) != (meta.frame_width, meta.frame_height):
        # a rotated video: report the upright size the results' ratios refer to
        meta = replace(meta, frame_width=frame_shape[1], frame_height=frame_shape[0])
    return meta


def _stored_source(source: str, mode: str, searcher: Searcher | None) -> SourceSpec:
    """The parsed ``source`` of a valid request (``InvalidParameterError`` otherwise)."""
    if mode not in MODES:
        raise InvalidParameterError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "search" and searcher is None:
        raise InvalidParameterError("a face search needs a searcher")
    spec = parse_source(source)
    if spec.live:
        raise InvalidParameterError("stored-video analysis takes a file, not a live stream")
    return spec


def _walk(
    frames: Iterable[tuple[int, int, Any]],
    pipeline: FramePipeline,
    *,
    keep_faces_from: float | None,
    duration_ms: int,
    progress: ProgressCallback | None,
    cancelled: CancelCheck | None,
    people: PeopleFrames | None = None,
    people_score: float = 0.0,
) -> tuple[list[FaceDetectionAt], tuple[int, ...] | None]:
    """Run ``pipeline`` over the decoded frames (and ``people``, the body tracker, when given),
    then finish the pipeline. Returns every face scoring at least ``keep_faces_from`` (None:
    none kept) and the shape of the first frame (None: none)."""
    faces: list[FaceDetectionAt] = []
    frame_shape: tuple[int, ...] | None = None
    last_progress = -1.0
    for _, ts, pixels in frames:
        if cancelled is not None and cancelled():
            raise AnalysisCancelled("the analysis was cancelled")
        frame_shape = frame_shape or pixels.shape
        result = pipeline.process(pixels, ts)
        if people is not None:
            people.add(pixels, result, people_score)
        if keep_faces_from is not None:
            h, w = pixels.shape[:2]
            found = result.faces
            for i in range(len(found)):
                if found.scores[i] >= keep_faces_from:
                    faces.append(FaceDetectionAt(ts, video_face(found, i, w, h)))
        if progress is not None and duration_ms > 0:
            fraction = min(1.0, ts / duration_ms)
            if fraction - last_progress >= 0.01:
                progress(fraction)
                last_progress = fraction
    pipeline.finish()
    return faces, frame_shape


def _people_results(
    meta: VideoMetadata, mode: str, pipeline: FramePipeline, people: PeopleFrames, decoded: int
) -> VideoAnalysis:
    """Persons (or matched persons) from bodies and faces; indexes 0, 1, 2… in order of first
    appearance."""
    persons: list[PersonAt] = []
    matches: list[FaceSearchAt] = []
    shots: list[tuple[int, bytes]] = []
    found = people.people(pipeline.finished_tracks)
    for index, person in enumerate(found):
        if mode == "persons":
            persons += [PersonAt(ts, index, box, face) for ts, box, face in person.observations]
        elif person.hits:
            matches += [
                FaceSearchAt(ts, index, box, face, person.hits)
                for ts, box, face in person.observations
            ]
            shots.append((index, person.best_shot_jpeg))
    persons.sort(key=lambda p: (p.timestamp_ms, p.index))
    matches.sort(key=lambda m: (m.timestamp_ms, m.index))
    return VideoAnalysis(
        metadata=meta,
        mode=mode,
        persons=tuple(persons),
        matches=tuple(matches),
        frames_decoded=decoded,
        frames_analysed=pipeline.frames_analysed,
        persons_tracked=len(found),
        best_shots=tuple(shots),
    )


def _results(
    meta: VideoMetadata,
    mode: str,
    pipeline: FramePipeline,
    faces: tuple[FaceDetectionAt, ...],
    decoded: int,
) -> VideoAnalysis:
    persons: list[PersonAt] = []
    matches: list[FaceSearchAt] = []
    tracks = pipeline.finished_tracks
    # person indexes 0, 1, 2… in order of first appearance (a reappearing person keeps theirs)
    order: dict[int, int] = {}
    for state in sorted(tracks, key=lambda s: s.observations[0][0]):
        assert state.index is not None
        order.setdefault(state.index, len(order))
    if mode == "persons":
        for state in tracks:
            assert state.index is not None
            index = order[state.index]
            persons += [PersonAt(ts, index, box, vf) for ts, box, vf in state.observations]
    elif mode == "search":
        for state in tracks:
            if not state.declared:
                continue
            assert state.index is not None
            hits = tuple(
                sorted(
                    (state.best_hits[f] for f in state.declared),
                    key=lambda hit: -hit.similarity,
                )
            )
            index = order[state.index]
            matches += [
                FaceSearchAt(ts, index, box, vf, hits) for ts, box, vf in state.observations
            ]
    persons.sort(key=lambda p: (p.timestamp_ms, p.index))
    matches.sort(key=lambda m: (m.timestamp_ms, m.index))
    return VideoAnalysis(
        metadata=meta,
        mode=mode,
        faces=faces,
        persons=tuple(persons),
        matches=tuple(matches),
        frames_decoded=decoded,
        frames_analysed=pipeline.frames_analysed,
        persons_tracked=len(order),
        best_shots=_best_shots(tracks, order) if mode == "search" else (),
    )


def _best_shots(tracks: Sequence[Any], order: dict[int, int]) -> tuple[tuple[int, bytes], ...]:
    """(person index, best matched face JPEG) of each person with a match."""
    by_person: dict[int, list[Any]] = {}
    for state in tracks:
        if state.declared and state.index is not None:
            by_person.setdefault(order[state.index], []).append(state)
    return tuple((index, best_matched_view(states)) for index, states in sorted(by_person.items()))


def _decoded(
    container: Any, stream: Any, every_nth: int, counted: list[int]
) -> Generator[tuple[int, int, Any], None, None]:
    """(index, timestamp_ms, BGR pixels) of every ``every_nth`` frame, decoded one thread
    ahead; ``counted[0]`` counts every decoded frame. Errors of the decoding thread are raised
    here."""
    frames: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_FRAMES)
    stop = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for index, ts, frame in decode_frames(container, stream):
                if stop.is_set():
                    return
                counted[0] = index + 1
                if index % every_nth == 0:
                    item = (index, ts, to_bgr(frame))
                    while not stop.is_set():
                        try:
                            frames.put(item, timeout=0.2)
                            break
                        except queue.Full:
                            continue
        except BaseException as exc:  # handed to the consumer
            failure.append(exc)
        finally:
            while not stop.is_set():
                try:
                    frames.put(_END, timeout=0.2)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=produce, name="video-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = frames.get()
            if item is _END:
                break
            yield item
        if failure:
            exc = failure[0]
            if isinstance(exc, FaceLedgerError):
                raise exc
            raise InvalidParameterError(f"the video could not be decoded ({type(exc).__name__})")
    finally:
        stop.set()
        thread.join(timeout=10)
