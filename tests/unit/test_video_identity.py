"""A track is one person: scene cuts, identity checks, splits and stable person indexes, on a
synthetic video built to break an IoU tracker (``videos.cut_scene``) and on small units."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from faceledger.domain.video import MatchEvent, VideoAnalysis
from faceledger.video import (
    FramePipeline,
    LatestFrameReader,
    ReaderOptions,
    Tracker,
    analyse_video,
    iter_frames,
    parse_source,
)
from faceledger.video.identity import PersonRegistry, SceneCutDetector
from helpers.videos import (
    CutScene,
    GroundTruth,
    background,
    cut_scene,
    exact_searcher,
    single_face_people,
    turned_face,
    with_leading_audio,
)

ANALYSED_FRAME_MS = 80  # every other frame at 25 fps


@pytest.fixture(scope="module")
def scene(data_dir: Path, tmp_path_factory: pytest.TempPathFactory, engine) -> CutScene:
    people = {n: p for n, p in single_face_people(engine, data_dir, 12).items() if len(p) >= 3}
    profile = turned_face(engine, people)
    return cut_scene(people, profile, tmp_path_factory.mktemp("cuts") / "cuts.mp4")


@pytest.fixture(scope="module")
def searcher(scene: CutScene, engine):
    return exact_searcher(engine, scene.enrolled)


@pytest.fixture(scope="module")
def search_result(scene: CutScene, engine, searcher) -> VideoAnalysis:
    return analyse_video(str(scene.truth.path), engine, mode="search", searcher=searcher)


def _who(truth: GroundTruth, t_ms: int, box) -> set[str | None]:
    """Who is at the box's centre at ``t_ms`` ± one analysed frame."""
    cx = (box.left + box.width / 2) * truth.width
    cy = (box.top + box.height / 2) * truth.height
    return {truth.who_at(t_ms + d, cx, cy) for d in (-ANALYSED_FRAME_MS, 0, ANALYSED_FRAME_MS)}


def wrong_labels(truth: GroundTruth, result: VideoAnalysis) -> list[tuple[int, str | None]]:
    """Results labelled with a person who is not at that place then (± one analysed frame)."""
    return [
        (entry.timestamp_ms, hit.external_image_id)
        for entry in result.matches
        for hit in entry.matches
        if hit.external_image_id not in _who(truth, entry.timestamp_ms, entry.box)
    ]


def found_appearances(truth: GroundTruth, result: VideoAnalysis, name: str) -> list[bool]:
    """Per appearance of ``name``: whether some result labelled ``name`` lies inside it."""
    out = []
    for actor in (a for a in truth.actors if a.name == name):
        start = truth.offset_ms + actor.enter_s * 1000
        end = truth.offset_ms + actor.leave_s * 1000
        out.append(
            any(
                start <= e.timestamp_ms < end
                and any(h.external_image_id == name for h in e.matches)
                for e in result.matches
            )
        )
    return out


@pytest.mark.lfw
def test_no_result_names_a_person_outside_their_frames(
    search_result: VideoAnalysis, scene: CutScene
) -> None:
    assert search_result.matches, "nothing matched at all"
    assert wrong_labels(scene.truth, search_result) == []
    labelled = {h.external_image_id for e in search_result.matches for h in e.matches}
    assert scene.stranger not in labelled


@pytest.mark.lfw
def test_every_enrolled_appearance_is_found(search_result: VideoAnalysis, scene: CutScene) -> None:
    """Including the person who comes back and the bystander with a turned face after a cut."""
    assert found_appearances(scene.truth, search_result, scene.first) == [True, True]
    assert found_appearances(scene.truth, search_result, scene.successor) == [True]
    assert found_appearances(scene.truth, search_result, scene.bystander) == [True]


@pytest.mark.lfw
def test_person_indexes_follow_identity_across_cuts_and_reappearances(
    scene: CutScene, engine
) -> None:
    result = analyse_video(str(scene.truth.path), engine, mode="persons")
    indexes: dict[str | None, set[int]] = defaultdict(set)
    for person in result.persons:
        box = person.box
        cx = (box.left + box.width / 2) * scene.truth.width
        cy = (box.top + box.height / 2) * scene.truth.height
        who = scene.truth.who_at(person.timestamp_ms, cx, cy)
        assert who is not None, person.timestamp_ms
        indexes[who].add(person.index)
    people = (scene.first, scene.stranger, scene.successor, scene.bystander)
    assert all(len(indexes[name]) == 1 for name in people), dict(indexes)
    assert len({next(iter(indexes[name])) for name in people}) == 4  # one index per person
    assert indexes[scene.first] == {0}  # numbered in order of first appearance
    assert result.persons_tracked == 4


@pytest.mark.lfw
def test_scene_cuts_end_tracks_and_a_new_person_splits_the_track(
    scene: CutScene, engine, searcher
) -> None:
    """The live building block: two cuts, one split where the successor replaces the stranger
    in place, and each event's track starts with its own person (no match carried over)."""
    events: list[MatchEvent] = []
    pipeline = FramePipeline(engine, searcher=searcher, on_event=events.append)
    tracks_at: dict[int, set[int]] = defaultdict(set)
    for frame in iter_frames(str(scene.truth.path), every_nth=2):
        result = pipeline.process(frame.pixels_bgr, frame.timestamp_ms, frame.arrival_s)
        for tid in result.track_ids:
            tracks_at[int(tid)].add(frame.timestamp_ms)
    assert pipeline.scene_cuts == 2
    assert pipeline.splits >= 1
    assert any(split for _, split in pipeline.identity_checks)
    truth = scene.truth
    for event in events:
        assert event.external_image_id is not None
        span = sorted(t for t in tracks_at[event.track_id] if t <= event.frame_timestamp_ms)
        assert all(truth.on_screen(event.external_image_id, t) for t in span[1:]), event
    assert sorted(e.external_image_id or "" for e in events) == sorted(
        [scene.first, scene.first, scene.successor, scene.bystander]
    )
    first_visit, second_visit = (e for e in events if e.external_image_id == scene.first)
    assert first_visit.person_index == second_visit.person_index
    assert first_visit.track_id != second_visit.track_id


def test_scene_cut_detector_fires_on_a_new_shot_only() -> None:
    rng = np.random.default_rng(1)
    shot = background(640, 360)
    moved = shot.copy()
    moved[100:260, 240:400] = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)  # a new face
    detector = SceneCutDetector()
    assert not detector.is_cut(shot)
    assert not detector.is_cut(moved)
    assert detector.is_cut(np.ascontiguousarray(255 - shot[:, ::-1]))


def test_person_registry_reuses_an_index_only_for_an_agreeing_absent_person() -> None:
    rng = np.random.default_rng(2)
    a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 128)))
    registry = PersonRegistry(same_person_cosine=0.45)
    first = registry.new()
    assert registry.resolve(first, a, busy=set()) == first
    second = registry.new()
    assert registry.resolve(second, b, busy=set()) == second  # another person
    third = registry.new()
    assert registry.resolve(third, a + 0.01 * b, busy={first}) == third  # first is on screen
    fourth = registry.new()
    assert registry.resolve(fourth, a + 0.01 * b, busy={third}) == first  # first came back


def test_tracker_split_gives_a_new_id_and_keeps_the_box() -> None:
    tracker = Tracker()
    box = np.array([[100.0, 100.0, 200.0, 200.0]])
    first = tracker.update(box, np.array([0.9]), 0).track_ids[0]
    new_id = tracker.split(int(first))
    assert new_id != first
    assert tracker.update(box, np.array([0.9]), 40).track_ids[0] == new_id
    with pytest.raises(KeyError):
        tracker.split(int(first))


# -- player time: a first frame that starts after the container -----------------------------


@pytest.fixture(scope="module")
def late_scene(scene: CutScene, tmp_path_factory: pytest.TempPathFactory) -> CutScene:
    """The cut scene behind 1.5 s of audio: a player shows its first frame at 1500 ms."""
    path = tmp_path_factory.mktemp("late") / "late.mp4"
    return dataclasses.replace(scene, truth=with_leading_audio(scene.truth, path, 1.5))


@pytest.mark.lfw
def test_stored_results_are_in_player_time(late_scene: CutScene, engine, searcher) -> None:
    truth = late_scene.truth
    frames = iter_frames(str(truth.path))
    assert next(frames).timestamp_ms == 1500
    result = analyse_video(str(truth.path), engine, mode="search", searcher=searcher)
    assert min(e.timestamp_ms for e in result.matches) >= 1500
    assert wrong_labels(truth, result) == []
    assert found_appearances(truth, result, late_scene.first) == [True, True]
    assert found_appearances(truth, result, late_scene.successor) == [True]


@pytest.mark.lfw
def test_live_reader_frames_are_in_player_time(late_scene: CutScene) -> None:
    """A live source's frames carry player time too (the pipeline's events and the ledger's
    records take the frame's timestamp): frame n of the 25 fps clip is at 1500 + 40·n ms,
    whichever frames the latest-frame queue drops."""
    truth = late_scene.truth
    reader = LatestFrameReader(
        parse_source(str(truth.path)), options=ReaderOptions(pace_files=False)
    )
    reader.start()
    seen = []
    try:
        while (frame := reader.get(timeout_s=10)) is not None:
            seen.append((frame.index, frame.timestamp_ms))
    finally:
        reader.stop()
    assert len(seen) >= 2
    assert all(ts == 1500 + round(index * 1000 / truth.fps) for index, ts in seen)
