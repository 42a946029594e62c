"""A stored-video face search carries the scale like every other search (issue 14): its
effective threshold is the collection's size-following floor, and GetFaceSearch (response
headers, JSON unchanged), ``/v1/video/jobs/{id}`` (fields) and the job's ledger records (start
and end) state the collection's face count, the threshold, the expected FPIR and hit rate — the
values a SearchFacesByImage of the same collection reports — plus the people the job tracked
and the false candidates expected among them (``persons_tracked × FPIR``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.domain.scale import FLOOR_FROM_SIZE
from helpers.backends import BOTH_BACKENDS
from helpers.data import lfw_people
from helpers.rekognition import ShapeChecker, rekognition_client

COLLECTION = "video-scale"
# The headers every search sends about its scale (domain/scale.py ``SearchScale.headers``).
SCALE_HEADERS = (
    "x-faceledger-effective-threshold",
    "x-faceledger-face-count",
    "x-faceledger-floor",
    "x-faceledger-floor-source",
    "x-faceledger-target-fpir",
    "x-faceledger-target-reachable",
    "x-faceledger-fpir",
    "x-faceledger-fpir-upper",
    "x-faceledger-hit-rate",
    "x-faceledger-fmr",
    "x-faceledger-scale",
)


@pytest.fixture(scope="module")
def scene(live_server_settings: Settings, data_dir: Path) -> dict[str, Any]:
    """A 4 s video in the server's ``videos`` bucket (an enrolled person and a stranger, both
    on screen), and photos: the person's second photo (enrolled) and third (a probe)."""
    from helpers.videos import Actor, make_video

    (enrolled, photos), (stranger, others) = list(lfw_people(data_dir, 3, 2).items())
    actors = [
        Actor(enrolled, photos[0], 0.2, 3.8, (40, 100), (200, 120)),
        Actor(stranger, others[0], 0.2, 3.8, (420, 60), (380, 150)),
    ]
    folder = live_server_settings.video_dirs[0]
    make_video(folder / "scale.mp4", actors, duration_s=4.0)
    return {"enrol": photos[1], "probe": photos[2]}


@pytest.fixture(scope="module")
def native(live_server: str, api_key: tuple[str, str]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {api_key[0]}:{api_key[1]}"}
    with httpx.Client(base_url=live_server, headers=headers, timeout=120) as client:
        yield client


def _headers(response: dict[str, Any]) -> dict[str, str]:
    got: dict[str, str] = response["ResponseMetadata"]["HTTPHeaders"]
    return {name: got[name] for name in SCALE_HEADERS if name in got}


def _ledgered(settings: Settings, operation: str) -> list[dict[str, Any]]:
    with Ledger.from_settings(settings) as ledger:
        events = [e.event for e in ledger.entries(operation=operation) if e.event is not None]
    return [e.result for e in events if e.phase != "intent" and e.collection_id == COLLECTION]


@BOTH_BACKENDS
def test_a_video_face_search_states_the_scale_a_search_states(
    live_server: str,
    api_key: tuple[str, str],
    live_server_settings: Settings,
    native: httpx.Client,
    scene: dict[str, Any],
) -> None:
    rek = rekognition_client(live_server, *api_key)
    shapes = ShapeChecker()
    rek.meta.events.register("before-parse.rekognition", shapes)
    rek.create_collection(CollectionId=COLLECTION)
    rek.index_faces(
        CollectionId=COLLECTION, Image={"Bytes": scene["enrol"].read_bytes()}, ExternalImageId="a"
    )
    # the server pins floor 80 for collections without a policy: unpin this one's
    put = native.put(
        f"/v1/collections/{COLLECTION}/policy",
        json={"require_purpose": False, "threshold_floor": None},
    )
    assert put.status_code == 200, put.text

    # What a search of the collection states (a requested threshold below the floor).
    searched = rek.search_faces_by_image(
        CollectionId=COLLECTION,
        Image={"Bytes": scene["probe"].read_bytes()},
        FaceMatchThreshold=50,
    )
    expected = _headers(searched)
    assert set(expected) == set(SCALE_HEADERS)
    assert expected["x-faceledger-floor-source"] == FLOOR_FROM_SIZE
    assert expected["x-faceledger-face-count"] == "1"
    assert float(expected["x-faceledger-effective-threshold"]) == float(
        expected["x-faceledger-floor"]
    )
    by_v1 = native.post(
        f"/v1/collections/{COLLECTION}/search",
        files={"image": ("probe.jpg", scene["probe"].read_bytes(), "image/jpeg")},
        data={"threshold": "50"},
    )
    assert by_v1.status_code == 200, by_v1.text
    v1_scale = by_v1.json()["scale"]

    video = {"S3Object": {"Bucket": "videos", "Name": "scale.mp4"}}
    started = rek.start_face_search(Video=video, CollectionId=COLLECTION, FaceMatchThreshold=50)
    assert _headers(started) == expected
    job_id = started["JobId"]
    deadline = time.monotonic() + 300
    while (done := rek.get_face_search(JobId=job_id))["JobStatus"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")

    # GetFaceSearch: the same headers and values, and the job's own; the JSON is Rekognition's.
    assert _headers(done) == expected
    assert not shapes.problems, shapes.problems
    got = done["ResponseMetadata"]["HTTPHeaders"]
    tracked = int(got["x-faceledger-persons-tracked"])
    assert tracked >= 2  # both people in the video were tracked (and searched)
    assert f"{tracked} people tracked here" in got["x-faceledger-video-scale"]
    assert "each person tracked in the video is one search" in got["x-faceledger-video-scale"]

    # /v1: the same scale as the /v1 search's, with what it means for this job.
    job = native.get(f"/v1/video/jobs/{job_id}")
    assert job.status_code == 200, job.text
    body = job.json()
    scale = body["scale"]
    assert body["threshold"] == v1_scale["floor"] == scale["floor"]
    assert {k: scale[k] for k in v1_scale} == v1_scale
    assert scale["persons_tracked"] == tracked
    assert scale["expected_false_persons"] == pytest.approx(tracked * v1_scale["fpir"])
    assert got["x-faceledger-expected-false-persons"] == f"{tracked * v1_scale['fpir']:.3g}"

    # The ledger: the search's scale in the job's start record and in its end record.
    search_record = _ledgered(live_server_settings, "SearchFacesByImage")[-1]["scale"]
    start = _ledgered(live_server_settings, "StartFaceSearch")[-1]
    assert start["scale"] == search_record and start["threshold"] == v1_scale["floor"]
    end = _ledgered(live_server_settings, "FaceSearchJob")[-1]
    assert end["job_id"] == job_id
    assert end["scale"] == search_record
    assert end["persons_tracked"] == tracked
    assert end["expected_false_persons"] == pytest.approx(tracked * v1_scale["fpir"], rel=1e-2)
