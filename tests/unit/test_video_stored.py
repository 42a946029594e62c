"""Stored-video analysis against synthetic videos with known ground truth (LFW faces)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from faceledger.domain.video import MatchEvent, VideoAnalysis
from faceledger.video import AnalysisCancelled, FramePipeline, analyse_video, iter_frames
from helpers.videos import Scene, exact_searcher, make_video, single_face_people, standard_scene

pytestmark = pytest.mark.lfw

TOLERANCE_MS = 250  # detection runs every other frame (80 ms) and tracks confirm on a second hit


@pytest.fixture(scope="module")
def scene(data_dir: Path, tmp_path_factory: pytest.TempPathFactory, engine) -> Scene:
    people = single_face_people(engine, data_dir, 6)
    return standard_scene(people, tmp_path_factory.mktemp("scene") / "scene.mp4")


@pytest.fixture(scope="module")
def searcher(scene: Scene, engine):
    return exact_searcher(engine, scene.enrolled)


@pytest.fixture(scope="module")
def search_result(scene: Scene, engine, searcher) -> VideoAnalysis:
    return analyse_video(str(scene.truth.path), engine, mode="search", searcher=searcher)


@pytest.fixture(scope="module")
def persons_result(scene: Scene, engine) -> VideoAnalysis:
    return analyse_video(str(scene.truth.path), engine, mode="persons")


def _centre(box, truth) -> tuple[float, float]:
    return (box.left + box.width / 2) * truth.width, (box.top + box.height / 2) * truth.height


def test_metadata(search_result: VideoAnalysis, scene: Scene) -> None:
    meta = search_result.metadata
    assert (meta.codec, meta.frame_width, meta.frame_height) == ("h264", 640, 360)
    assert meta.frame_rate == pytest.approx(25)
    assert abs(meta.duration_ms - scene.truth.duration_ms) <= 40
    assert search_result.frames_analysed == pytest.approx(scene.truth.frames / 2, abs=1)


def test_enrolled_people_are_found_at_the_right_timestamps(
    search_result: VideoAnalysis, scene: Scene
) -> None:
    truth = scene.truth
    spans: dict[str, list[int]] = defaultdict(list)
    for entry in search_result.matches:
        names = {hit.external_image_id for hit in entry.matches}
        assert len(names) == 1, names
        name = names.pop()
        assert name is not None
        # the matched face is where that person is drawn
        assert truth.who_at(entry.timestamp_ms, *_centre(entry.box, truth)) == name
        spans[name].append(entry.timestamp_ms)
    shown_enrolled = [n for n in scene.enrolled if n not in scene.absent]
    assert sorted(spans) == sorted(shown_enrolled)
    for name in shown_enrolled:
        first, last = truth.on_screen_ms(name)
        assert abs(min(spans[name]) - first) <= TOLERANCE_MS, name
        assert abs(max(spans[name]) - last) <= TOLERANCE_MS, name
        # present at (nearly) every analysed frame in between
        expected = (last - first) / 80
        assert len(spans[name]) >= 0.9 * expected, name


def test_never_enrolled_people_are_never_matched(
    search_result: VideoAnalysis, scene: Scene
) -> None:
    truth = scene.truth
    for entry in search_result.matches:
        who = truth.who_at(entry.timestamp_ms, *_centre(entry.box, truth))
        assert who not in scene.strangers
        assert all(hit.external_image_id not in scene.absent for hit in entry.matches)
    assert all(0 < hit.similarity <= 100 for e in search_result.matches for hit in e.matches)


def test_persons_keep_their_index_across_frames(
    persons_result: VideoAnalysis, scene: Scene
) -> None:
    truth = scene.truth
    who_by_index: dict[int, set[str | None]] = defaultdict(set)
    first_seen: dict[int, int] = {}
    for p in persons_result.persons:
        who_by_index[p.index].add(truth.who_at(p.timestamp_ms, *_centre(p.box, truth)))
        first_seen.setdefault(p.index, p.timestamp_ms)
        assert p.face is not None and p.face.box == p.box
    # one index per person on screen, each index always the same person
    assert len(who_by_index) == len(truth.actors)
    assert all(len(names) == 1 and None not in names for names in who_by_index.values())
    assert {next(iter(n)) for n in who_by_index.values()} == {a.name for a in truth.actors}
    # indexes are given in order of first appearance
    by_time = sorted(first_seen, key=lambda i: first_seen[i])
    assert by_time == sorted(first_seen)
    # results sorted by timestamp, then index
    keys = [(p.timestamp_ms, p.index) for p in persons_result.persons]
    assert keys == sorted(keys)


def test_face_detection_counts_the_faces_on_screen(scene: Scene, engine) -> None:
    result = analyse_video(str(scene.truth.path), engine, mode="faces")
    truth = scene.truth
    per_ts: dict[int, int] = defaultdict(int)
    for f in result.faces:
        per_ts[f.timestamp_ms] += 1
        assert len(f.face.landmarks) == 5 and 0 < f.face.confidence <= 100
    stamps = range(0, truth.duration_ms, 80)
    agree = sum(
        per_ts.get(t, 0) == sum(truth.square_at(a.name, t) is not None for a in truth.actors)
        for t in stamps
    )
    assert agree >= 0.95 * len(stamps)
    assert not result.persons and not result.matches


def test_progress_and_cancellation(scene: Scene, engine) -> None:
    seen: list[float] = []
    analyse_video(str(scene.truth.path), engine, mode="persons", progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 10
    calls = 0

    def cancel_after_ten() -> bool:
        nonlocal calls
        calls += 1
        return calls > 10

    with pytest.raises(AnalysisCancelled):
        analyse_video(str(scene.truth.path), engine, mode="faces", cancelled=cancel_after_ten)
    assert calls == 11


def test_search_needs_a_searcher_and_a_known_mode(scene: Scene, engine) -> None:
    from faceledger.domain.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="searcher"):
        analyse_video(str(scene.truth.path), engine, mode="search")
    with pytest.raises(InvalidParameterError, match="mode"):
        analyse_video(str(scene.truth.path), engine, mode="labels")


@pytest.mark.parametrize("suffix", [".mkv", ".avi"])
def test_other_containers_give_the_same_people(
    scene: Scene, engine, searcher, tmp_path: Path, suffix: str
) -> None:
    truth = scene.truth
    copy = make_video(tmp_path / f"scene{suffix}", list(truth.actors), duration_s=8.0)
    result = analyse_video(str(copy.path), engine, mode="search", searcher=searcher)
    found = {hit.external_image_id for e in result.matches for hit in e.matches}
    assert found == {n for n in scene.enrolled if n not in scene.absent}


def test_frame_pipeline_emits_one_event_per_track_and_face(scene: Scene, engine, searcher) -> None:
    """The live building block on the same frames: events, their spans and best shots."""
    import cv2

    events: list[MatchEvent] = []
    pipeline = FramePipeline(engine, searcher=searcher, on_event=events.append, source_id="cam")
    for frame in iter_frames(str(scene.truth.path), every_nth=2):
        pipeline.process(frame.pixels_bgr, frame.timestamp_ms, frame.arrival_s)
    truth = scene.truth
    names = [e.external_image_id for e in events]
    assert sorted(names) == sorted(n for n in scene.enrolled if n not in scene.absent)
    for event in events:
        assert event.external_image_id is not None
        first, last = truth.on_screen_ms(event.external_image_id)
        assert abs(event.first_timestamp_ms - first) <= TOLERANCE_MS
        # declared while the person is on screen, within ~2.5 s of their entrance
        assert first <= event.frame_timestamp_ms <= min(last, first + 2500)
        assert event.source_id == "cam" and event.similarity >= 80
        shot = cv2.imdecode(np.frombuffer(event.best_shot_jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert shot is not None and min(shot.shape[:2]) >= 60
        t = event.best_shot_timestamp_ms
        cx = (event.box.left + event.box.width / 2) * truth.width
        cy = (event.box.top + event.box.height / 2) * truth.height
        assert truth.who_at(t, cx, cy) == event.external_image_id


@pytest.fixture(scope="module")
def one_person_frames(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> list:
    """Every other frame of a 6 s clip showing one enrolled person the whole time."""
    from helpers.videos import Actor

    first = scene.truth.actors[0]
    actor = Actor(first.name, first.photo, 0.0, 6.0, (100, 60), (380, 80))
    clip = make_video(tmp_path_factory.mktemp("one") / "one.mp4", [actor], duration_s=6.0)
    return list(iter_frames(str(clip.path), every_nth=2))


def _scripted(similarities: list[float]):
    """A searcher answering its k-th call with face f-1 at ``similarities[k]`` (the last value
    once the script runs out), recording how many calls it got."""
    from faceledger.domain.video import Hit

    calls: list[int] = []

    def search(embeddings):
        out = []
        for _ in range(len(embeddings)):
            k = len(calls)
            calls.append(k)
            out.append([Hit("f-1", similarities[min(k, len(similarities) - 1)], "one")])
        return out

    return search, calls


@pytest.mark.parametrize(
    ("script", "declared_on_call"),
    [
        ([85.0], 2),  # consistent: the second embedding above the threshold declares it
        ([85.0, 60.0], None),  # one hit above the threshold, then none: never declared
        ([99.5], 1),  # one very strong hit is enough
        ([60.0, 70.0, 85.0, 50.0, 81.0], 5),  # votes need not be consecutive
    ],
)
def test_a_match_is_declared_only_once_consistent(
    engine, one_person_frames: list, script: list[float], declared_on_call: int | None
) -> None:
    searcher, calls = _scripted(script)
    events: list[MatchEvent] = []
    pipeline = FramePipeline(engine, searcher=searcher, threshold=80, on_event=events.append)
    calls_at_event: list[int] = []
    for frame in one_person_frames:
        before = len(events)
        pipeline.process(frame.pixels_bgr, frame.timestamp_ms, frame.arrival_s)
        if len(events) > before:
            calls_at_event.append(len(calls))
    if not events:
        assert len(calls) >= 5  # re-embedded about once a second while undecided
    if declared_on_call is None:
        assert events == []
    else:
        assert calls_at_event == [declared_on_call]  # one event per (track, face)
        assert events[0].face_id == "f-1" and events[0].person_index == 0
