"""Person tracking of bodies: the geometry rule that gives faces to bodies, and PersonTracking /
face search on the real server (boto3 and ``/v1``) with a person whose face is shown, then
covered (seen from behind): the person keeps one Index, has a body BoundingBox throughout and a
Face only while it shows; a face match attaches to the whole track; every call is ledgered.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.video.bodies import associate_faces
from helpers.data import lfw_people
from helpers.native import finished_job
from helpers.rekognition import rekognition_client, wait_for_job

HIDE_FROM_MS = 2000
VIDEO = {"S3Object": {"Bucket": "videos", "Name": "behind.mp4"}}


@pytest.mark.parametrize(
    ("faces", "bodies", "expected"),
    [
        ([[40, 20, 60, 45]], [[20, 10, 80, 200]], [0]),  # head at the top of the body
        ([[40, 150, 60, 175]], [[20, 10, 80, 200]], [-1]),  # low in the box: not its head
        ([[10, 10, 100, 100]], [[30, 20, 70, 200]], [-1]),  # wider than the body
        ([[70, 20, 95, 45]], [[20, 10, 80, 200]], [-1]),  # mostly outside the box
        ([[40, 20, 60, 45]], [[0, 0, 300, 300], [20, 10, 80, 200]], [1]),  # the tighter body
        ([[40, 20, 60, 45], [42, 22, 58, 40]], [[20, 10, 80, 200]], [0, -1]),  # one face a body
        ([[40, 20, 60, 45]], np.zeros((0, 4)), [-1]),
    ],
)
def test_faces_go_to_bodies_by_geometry(
    faces: list[list[float]], bodies: Any, expected: list[int]
) -> None:
    assert associate_faces(np.array(faces, float), np.asarray(bodies, float)).tolist() == expected


@pytest.fixture(scope="module")
def figure(live_server_settings: Settings, data_dir: Path, engine: Any) -> tuple[str, list[Path]]:
    """An LFW person (figure) the person detector finds with and without a visible face; a
    4 s clip of them walking right, the face covered from 2 s on."""
    from faceledger.services.labels import LabelService
    from faceledger.services.video.labels import person_detector
    from helpers.body_videos import Figure, make_figure_video, seen_from_behind_people

    detect = person_detector(LabelService(live_server_settings))
    assert detect is not None

    def count_faces(frame: Any) -> int:
        return len(engine.detect_frame(frame, score_threshold=0.45)[0])

    chosen = seen_from_behind_people(detect, count_faces, lfw_people(data_dir, 2, 40), 1)
    if not chosen:
        pytest.skip("no LFW figure that the person detector finds with its face covered")
    name, photos = next(iter(chosen.items()))
    make_figure_video(
        live_server_settings.video_dirs[0] / "behind.mp4",
        [Figure(name, photos[0], 0.0, 4.0, (40, 60), (330, 70), hide_from_s=2.0, hide_until_s=9)],
        duration_s=4.0,
    )
    return name, photos


@pytest.fixture(scope="module")
def rek(live_server: str, api_key: tuple[str, str]) -> Any:
    return rekognition_client(live_server, *api_key)


def _inside(face: dict[str, float], body: dict[str, float]) -> bool:
    return (
        body["Left"] <= face["Left"] + face["Width"] / 2 <= body["Left"] + body["Width"]
        and body["Top"] <= face["Top"] + face["Height"] / 2 <= body["Top"] + body["Height"]
    )


def test_person_tracked_by_body_before_and_after_the_face_hides(
    rek: Any, figure: tuple[str, list[Path]]
) -> None:
    job_id = rek.start_person_tracking(Video=VIDEO)["JobId"]
    done = wait_for_job(rek.get_person_tracking, job_id)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    persons = done["Persons"]
    assert {p["Person"]["Index"] for p in persons} == {0}  # one person, one index throughout
    shown = [p for p in persons if p["Timestamp"] < HIDE_FROM_MS]
    hidden = [p for p in persons if p["Timestamp"] >= HIDE_FROM_MS + 200]
    # analysed every second frame of a 10 fps clip: 10 frames in each half
    assert len(shown) >= 8 and len(hidden) >= 6, [p["Timestamp"] for p in persons]
    # the body (head and shoulders), not a face box: always while the face is covered; a
    # frame whose body detection was missed but whose face was seen keeps the face's box
    tall = [p for p in persons if p["Person"]["BoundingBox"]["Height"] > 0.5]
    assert len(tall) >= 0.9 * len(persons)
    assert all(p["Person"]["BoundingBox"]["Height"] > 0.5 for p in hidden)
    assert all("Face" not in p["Person"] for p in hidden)
    with_face = [p for p in shown if "Face" in p["Person"]]
    assert len(with_face) >= len(shown) - 1
    for p in with_face:
        face = p["Person"]["Face"]["BoundingBox"]
        assert _inside(face, p["Person"]["BoundingBox"])
        assert face["Height"] < p["Person"]["BoundingBox"]["Height"] - 0.2  # not the same box


def test_a_face_match_attaches_to_the_persons_track(
    rek: Any, figure: tuple[str, list[Path]], live_server_settings: Settings
) -> None:
    _, photos = figure
    rek.create_collection(CollectionId="behind")
    rek.index_faces(
        CollectionId="behind", Image={"Bytes": photos[1].read_bytes()}, ExternalImageId="them"
    )
    job_id = rek.start_face_search(Video=VIDEO, CollectionId="behind")["JobId"]
    done = wait_for_job(rek.get_face_search, job_id)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    matched = [p for p in done["Persons"] if p.get("FaceMatches")]
    assert matched, "the enrolled person was never matched"
    assert {m["Face"]["ExternalImageId"] for p in matched for m in p["FaceMatches"]} == {"them"}
    assert {p["Person"]["Index"] for p in matched} == {0}
    # matched on the face, the person stays matched while seen from behind
    late = [p for p in matched if p["Timestamp"] >= HIDE_FROM_MS + 200]
    assert late and all("Face" not in p["Person"] for p in late)

    with Ledger.from_settings(live_server_settings) as ledger:
        events = [e.event for e in ledger.entries() if e.event is not None]
    end = next(
        e for e in events if e.operation == "FaceSearchJob" and e.result.get("job_id") == job_id
    )
    assert end.outcome == "ok" and end.collection_id == "behind" and end.result["matches"]


def test_native_persons_job_and_records(
    api: Any, figure: tuple[str, list[Path]], live_server_settings: Settings
) -> None:
    started = api.post("/v1/video/jobs", json={"kind": "persons", "path": "behind.mp4"})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    out = finished_job(api, job_id)
    assert out["status"] == "SUCCEEDED"
    items = out["results"]
    assert {i["index"] for i in items} == {0}
    assert any(i["face"] is None and i["timestamp_ms"] >= HIDE_FROM_MS for i in items)
    assert any(i["face"] is not None for i in items)
    assert sum(i["box"]["height"] > 0.5 for i in items) >= 0.9 * len(items)

    with Ledger.from_settings(live_server_settings) as ledger:
        events = [e.event for e in ledger.entries() if e.event is not None]
    mine = [e for e in events if e.result.get("job_id") == job_id]
    ops = [(e.operation, e.outcome) for e in mine]
    assert ops[0] == ("StartPersonTracking", "ok")
    assert ops.count(("PersonTrackingJob", "ok")) == 1  # the job's end, recorded once
    assert ops[-1] == ("GetPersonTracking", "ok") and len(ops) >= 3
    assert all(e.principal == "test-admin" for e in mine)


def test_connected_home_person_events_are_ledgered(
    rek: Any, api: Any, figure: tuple[str, list[Path]], live_server_settings: Settings
) -> None:
    import json

    account = "000000000000"
    path = live_server_settings.video_dirs[0] / "behind.mp4"
    source = f"arn:aws:kinesisvideo:us-east-1:{account}:source/file://{path}"
    common = {
        "Input": {"KinesisVideoStream": {"Arn": source}},
        "Output": {
            "KinesisDataStream": {"Arn": f"arn:aws:kinesis:us-east-1:{account}:stream/porch"}
        },
        "RoleArn": f"arn:aws:iam::{account}:role/rekognition",
    }
    for bad in (
        {"ConnectedHome": {"Labels": ["PET"]}},
        {"ConnectedHome": {"Labels": ["PERSON"]}, "FaceSearch": {"CollectionId": "behind"}},
    ):
        with pytest.raises(rek.exceptions.InvalidParameterException):
            rek.create_stream_processor(Name="porch-bad", Settings=bad, **common)
    rek.create_stream_processor(
        Name="porch",
        Settings={"ConnectedHome": {"Labels": ["PERSON"], "MinConfidence": 40}},
        **common,
    )
    described = rek.describe_stream_processor(Name="porch")
    assert described["Settings"] == {"ConnectedHome": {"Labels": ["PERSON"], "MinConfidence": 40.0}}
    started = api.post(
        "/v1/stream-processors/porch/start",
        json={"purpose": "porch watch", "case_reference": "H-1"},
    )
    assert started.status_code == 200, started.text
    deadline = time.monotonic() + 120
    running = ("STARTING", "RUNNING", "STOPPING")  # until the file source has ended
    while rek.describe_stream_processor(Name="porch")["Status"] in running:
        assert time.monotonic() < deadline, "the file source never ended"
        time.sleep(0.5)
    lines = (live_server_settings.data_dir / "streams" / "porch.jsonl").read_text().splitlines()
    events = [json.loads(x) for x in lines]
    assert events and all(e["eventNamespace"] == {"type": "LABEL_DETECTED"} for e in events)
    for e in events:
        (label,) = e["labels"]
        assert label["name"] == "PERSON" and label["confidence"] >= 40
        assert label["boundingBox"]["height"] > 0.5
    with Ledger.from_settings(live_server_settings) as ledger:
        records = [
            e.event
            for e in ledger.entries()
            if e.event is not None and e.event.operation == "StreamPersonDetected"
        ]
    mine = [r for r in records if r.result.get("processor") == "porch"]
    assert len(mine) == len(events)
    assert all(r.purpose == "porch watch" and r.case_reference == "H-1" for r in mine)
    assert all(r.principal == "test-admin" and r.result["label"] == "PERSON" for r in mine)


def test_cli_stream_create_person_events(
    tmp_path: Path, figure: Any, live_server_settings: Any
) -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys

    beside = Path(sys.executable).parent / "faceledger"
    script = str(beside) if beside.is_file() else shutil.which("faceledger")
    if script is None:
        pytest.skip("the faceledger console script is not installed (pip install -e .)")
    folder = live_server_settings.video_dirs[0]
    env = {
        **os.environ,
        "FACELEDGER_DATA_DIR": str(tmp_path / "data"),
        "FACELEDGER_VIDEO_DIRS": str(folder),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, *args], env=env, capture_output=True, text=True, timeout=120)

    source = f"file://{folder / 'behind.mp4'}"
    made = cli("stream", "create", "porch", "--source", source, "--person-events",
               "--min-confidence", "45", "--jsonl", "porch")  # fmt: skip
    assert made.returncode == 0, made.stderr
    row = json.loads(made.stdout)
    assert row["collection_id"] is None
    assert row["person_events"] == {"labels": ["PERSON"], "min_confidence": 45.0}
    neither = cli("stream", "create", "porch2", "--source", source)
    assert neither.returncode != 0 and "--person-events" in neither.stderr
    assert "Traceback" not in neither.stderr
