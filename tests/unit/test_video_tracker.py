"""The ByteTrack-style tracker on synthetic boxes (no models, no video)."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.video.tracker import Tracker, TrackerOptions, iou_matrix


def box(cx: float, cy: float, size: float = 100.0) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def step(tracker: Tracker, t_ms: int, boxes: list[list[float]], scores: list[float]):
    return tracker.update(
        np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), t_ms
    )


def test_iou_matrix_known_values() -> None:
    a = np.array([box(50, 50)])
    b = np.array([box(50, 50), box(100, 50), box(400, 400)])
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 1 / 3, 0.0], atol=1e-9)


def test_two_moving_faces_keep_their_index_and_order_of_appearance() -> None:
    tracker = Tracker()
    seen: dict[int, set[int]] = {0: set(), 1: set()}  # person index → positions of the face
    for k in range(50):  # 80 ms apart (every other frame at 25 fps)
        t = k * 80
        boxes = [box(100 + 6 * k, 100)]  # moves right 75 px/s
        scores = [0.9]
        if k >= 5:  # second face appears later, moving left and down
            boxes.append(box(700 - 5 * (k - 5), 300 + 2 * (k - 5)))
            scores.append(0.85)
        up = step(tracker, t, boxes, scores)
        for i, index in enumerate(up.indexes):
            if index >= 0:
                seen[int(index)].add(i)
    # index 0 was always the first face (appeared first), 1 always the second
    assert seen == {0: {0}, 1: {1}}
    assert tracker.persons_seen == 2


def test_new_track_is_tentative_until_min_hits() -> None:
    tracker = Tracker(TrackerOptions(min_hits=2))
    first = step(tracker, 0, [box(100, 100)], [0.9])
    assert first.track_ids[0] > 0 and first.indexes[0] == -1 and first.confirmed == ()
    second = step(tracker, 80, [box(104, 100)], [0.9])
    assert second.track_ids[0] == first.track_ids[0]
    assert second.indexes[0] == 0 and second.confirmed == (int(first.track_ids[0]),)


def test_a_single_spurious_detection_never_becomes_a_person() -> None:
    tracker = Tracker()
    step(tracker, 0, [box(100, 100), box(500, 300)], [0.9, 0.9])
    up = step(tracker, 80, [box(103, 100)], [0.9])  # the second was a one-frame false alarm
    assert list(up.indexes) == [0]
    assert len(up.removed) == 1
    assert tracker.persons_seen == 1


def test_low_score_detection_extends_a_track_but_starts_none() -> None:
    tracker = Tracker()
    for k in range(3):
        step(tracker, k * 80, [box(100 + 5 * k, 100)], [0.9])
    # the face turns away: detector confidence drops below high_score
    up = step(tracker, 240, [box(115, 100), box(600, 300)], [0.5, 0.5])
    assert up.indexes[0] == 0  # stage 2 kept the track
    assert up.track_ids[1] == -1  # a lone low-score detection starts nothing
    assert tracker.persons_seen == 1


def test_missed_detections_within_the_lost_buffer_keep_the_index() -> None:
    tracker = Tracker(TrackerOptions(lost_buffer_ms=1000))
    for k in range(10):
        step(tracker, k * 80, [box(100 + 8 * k, 200)], [0.9])
    for k in range(10, 18):  # 640 ms without any detection (occlusion)
        step(tracker, k * 80, [], [])
    # reappears where constant velocity predicts it
    up = step(tracker, 18 * 80, [box(100 + 8 * 18, 200)], [0.9])
    assert up.indexes[0] == 0
    assert tracker.persons_seen == 1


def test_a_track_lost_for_longer_than_the_buffer_ends_and_a_new_index_is_given() -> None:
    tracker = Tracker(TrackerOptions(lost_buffer_ms=500))
    for k in range(5):
        step(tracker, k * 80, [box(100, 100)], [0.9])
    ended = step(tracker, 1200, [], [])
    assert len(ended.removed) == 1
    step(tracker, 1280, [box(100, 100)], [0.9])
    up = step(tracker, 1360, [box(100, 100)], [0.9])
    assert up.indexes[0] == 1


@pytest.mark.parametrize("speed_px_per_frame", [10, 25])
def test_fast_motion_is_followed_with_velocity(speed_px_per_frame: int) -> None:
    """A 100 px face moving 25 px per analysed frame overlaps its previous box by IoU 0.6;
    with velocity the prediction overlaps almost fully, so the index never changes."""
    tracker = Tracker()
    indexes = set()
    for k in range(40):
        up = step(tracker, k * 80, [box(100 + speed_px_per_frame * k, 300)], [0.9])
        if up.indexes[0] >= 0:
            indexes.add(int(up.indexes[0]))
    assert indexes == {0}


def test_crossing_faces_keep_identities() -> None:
    """Two faces pass each other vertically apart by less than a face height."""
    tracker = Tracker()
    first: dict[int, list[float]] = {}
    for k in range(40):
        a = box(100 + 15 * k, 200)
        b = box(700 - 15 * k, 260)
        up = step(tracker, k * 80, [a, b], [0.9, 0.9])
        for i, index in enumerate(up.indexes):
            if index >= 0:
                first.setdefault(int(index), []).append(i)
    assert first[0] == [0] * len(first[0])
    assert first[1] == [1] * len(first[1])


def test_update_does_not_mutate_its_arguments() -> None:
    tracker = Tracker()
    boxes = np.asarray([box(100, 100)], np.float32)
    scores = np.asarray([0.9], np.float32)
    before = boxes.copy()
    tracker.update(boxes, scores, 0)
    tracker.update(boxes + 3, scores, 80)
    np.testing.assert_array_equal(boxes, before)
