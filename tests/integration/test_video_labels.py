"""Label detection in stored video on the real server: boto3 StartLabelDetection /
GetLabelDetection (AggregateBy, SortBy, pagination, bad parameters), the native
``/v1/video/jobs`` kind ``labels``, the CLI ``faceledger video labels`` and their ledger records.

The clip (4 s, 640×360, 10 fps) shows a drawn stop sign all along (Stop Sign → Road Sign →
Sign → Symbol) and a person (an LFW head-and-shoulders figure) from 0 to 2 s and again from 3
to 4 s: two Person segments.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from helpers.cli import script
from helpers.data import lfw_people
from helpers.native import finished_job
from helpers.rekognition import rekognition_client, wait_for_job

VIDEO = {"S3Object": {"Bucket": "videos", "Name": "labels.mp4"}}
SIGN_FAMILY = {"Stop Sign", "Road Sign", "Sign", "Symbol"}


@pytest.fixture(scope="module")
def clip(live_server_settings: Settings, data_dir: Path) -> Path:
    from helpers.body_videos import Figure, make_figure_video

    name, photos = next(iter(lfw_people(data_dir, 2, 1).items()))
    path = live_server_settings.video_dirs[0] / "labels.mp4"
    figures = [
        Figure(name, photos[0], 0.0, 2.0, (40, 60), (160, 60)),
        Figure(name, photos[0], 3.0, 4.0, (200, 60), (240, 60)),
    ]
    make_figure_video(path, figures, duration_s=4.0, stop_sign=(540, 150, 110))
    return path


@pytest.fixture(scope="module")
def rek(live_server: str, api_key: tuple[str, str]) -> Any:
    return rekognition_client(live_server, *api_key)


@pytest.fixture(scope="module")
def raw_rek(live_server: str, api_key: tuple[str, str]) -> Any:
    """Without client-side validation, to reach the server's own checks."""
    return rekognition_client(live_server, *api_key, parameter_validation=False)


@pytest.fixture(scope="module")
def job(rek: Any, clip: Path) -> str:
    job_id: str = rek.start_label_detection(Video=VIDEO, JobTag="labels", MinConfidence=40)["JobId"]
    done = wait_for_job(rek.get_label_detection, job_id)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    return job_id


def _all_pages(rek: Any, job_id: str, **options: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = rek.get_label_detection(
            JobId=job_id, **options, **({"NextToken": token} if token else {})
        )
        items += page["Labels"]
        token = page.get("NextToken")
        if not token:
            return items


def test_timestamps_labels_instances_and_metadata(rek: Any, job: str) -> None:
    out = rek.get_label_detection(JobId=job)
    assert out["JobTag"] == "labels" and out["Video"] == VIDEO
    assert out["LabelModelVersion"]
    assert out["GetRequestMetadata"] == {"SortBy": "TIMESTAMP", "AggregateBy": "TIMESTAMPS"}
    meta = out["VideoMetadata"]
    assert (meta["FrameWidth"], meta["FrameHeight"]) == (640, 360) and meta["Codec"] == "h264"
    labels = out["Labels"]
    keys = [(x["Timestamp"], x["Label"]["Name"]) for x in labels]
    assert keys == sorted(keys)
    # two samples a second
    assert sorted({x["Timestamp"] for x in labels}) == [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]
    people = [x for x in labels if x["Label"]["Name"] == "Person"]
    assert {x["Timestamp"] for x in people} == {0, 500, 1000, 1500, 3000, 3500}
    for x in people:
        (instance,) = x["Label"]["Instances"]
        box = instance["BoundingBox"]
        assert box["Height"] > 0.5 and box["Left"] < 0.5  # the figure, left of the sign
        assert x["Label"]["Confidence"] >= 40 and "StartTimestampMillis" not in x
    sign = [x for x in labels if x["Label"]["Name"] == "Stop Sign"]
    assert len(sign) == 8
    assert [p["Name"] for p in sign[0]["Label"]["Parents"]] == ["Road Sign", "Sign", "Symbol"]
    assert sign[0]["Label"]["Categories"] and sign[0]["Label"]["Instances"]
    # ancestors are labels too, without instances
    symbol = [x for x in labels if x["Label"]["Name"] == "Symbol"]
    assert len(symbol) == 8 and all(not x["Label"]["Instances"] for x in symbol)


def test_segments_sort_by_name_and_pagination(rek: Any, job: str) -> None:
    segments = _all_pages(rek, job, AggregateBy="SEGMENTS", SortBy="NAME")
    names = [(x["Label"]["Name"], x["Timestamp"]) for x in segments]
    assert names == sorted(names)
    person = [x for x in segments if x["Label"]["Name"] == "Person"]
    assert [(x["StartTimestampMillis"], x["EndTimestampMillis"]) for x in person] == [
        (0, 2000),
        (3000, 4000),
    ]
    assert all(x["DurationMillis"] == x["EndTimestampMillis"] - x["StartTimestampMillis"]
               for x in segments)  # fmt: skip
    assert all(not x["Label"]["Instances"] for x in segments)
    sign = [x for x in segments if x["Label"]["Name"] in SIGN_FAMILY]
    assert {(x["StartTimestampMillis"], x["EndTimestampMillis"]) for x in sign} == {(0, 4000)}

    every = rek.get_label_detection(JobId=job)["Labels"]
    assert _all_pages(rek, job, MaxResults=3) == every
    first = rek.get_label_detection(JobId=job, MaxResults=3)
    assert len(first["Labels"]) == 3 and first["NextToken"]
    # a token is bound to its job, order and aggregation
    with pytest.raises(rek.exceptions.InvalidPaginationTokenException):
        rek.get_label_detection(JobId=job, NextToken=first["NextToken"], SortBy="NAME")
    by_name = rek.get_label_detection(JobId=job, SortBy="NAME")["Labels"]
    assert sorted(by_name, key=lambda x: (x["Timestamp"], x["Label"]["Name"])) == every


def test_general_label_filters(rek: Any, clip: Path) -> None:
    job_id = rek.start_label_detection(
        Video=VIDEO,
        Settings={"GeneralLabels": {"LabelInclusionFilters": ["Person"]}},
    )["JobId"]
    done = wait_for_job(rek.get_label_detection, job_id)
    assert {x["Label"]["Name"] for x in done["Labels"]} == {"Person"}
    high = rek.start_label_detection(Video=VIDEO, MinConfidence=99.9)["JobId"]
    assert wait_for_job(rek.get_label_detection, high)["Labels"] == []


def test_bad_parameters(rek: Any, raw_rek: Any, job: str) -> None:
    def code(call: Any) -> str:
        with pytest.raises(ClientError) as info:
            call()
        return str(info.value.response["Error"]["Code"])

    invalid = "InvalidParameterException"
    assert code(lambda: raw_rek.start_label_detection(Video=VIDEO, MinConfidence=150)) == invalid
    assert code(lambda: raw_rek.start_label_detection(Video={})) == invalid
    assert code(lambda: raw_rek.get_label_detection(JobId=job, AggregateBy="FRAMES")) == invalid
    assert code(lambda: raw_rek.get_label_detection(JobId=job, SortBy="INDEX")) == invalid
    assert code(lambda: raw_rek.get_label_detection(JobId=job, MaxResults=0)) == invalid
    assert code(lambda: raw_rek.get_label_detection(JobId=job, MaxResults=5000)) == invalid
    assert (
        code(lambda: raw_rek.start_label_detection(Video=VIDEO, Features=["IMAGE_PROPERTIES"]))
        == invalid
    )
    missing = {"S3Object": {"Bucket": "videos", "Name": "no-such.mp4"}}
    assert code(lambda: rek.start_label_detection(Video=missing)) == "InvalidS3ObjectException"
    assert code(lambda: rek.get_label_detection(JobId="nosuchjob")) == "ResourceNotFoundException"
    # a job of another kind is not a label job
    faces = rek.start_face_detection(Video=VIDEO)["JobId"]
    assert code(lambda: rek.get_label_detection(JobId=faces)) == "ResourceNotFoundException"


def _records(settings: Settings, operation: str) -> list[Any]:
    with Ledger.from_settings(settings) as ledger:
        return [
            e.event
            for e in ledger.entries()
            if e.event is not None and e.event.operation == operation
        ]


def test_native_labels_job_and_records(
    api: Any, job: str, clip: Path, live_server_settings: Settings
) -> None:
    started = api.post(
        "/v1/video/jobs",
        json={
            "kind": "labels",
            "path": clip.name,
            "min_confidence": 40,
            "label_filters": {"exclude_categories": ["Person Description"]},
        },
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    out = finished_job(api, job_id)
    assert out["status"] == "SUCCEEDED" and out["kind"] == "labels" and out["label_model_version"]
    names = {x["label"]["name"] for x in out["results"]}
    assert "Stop Sign" in names and "Person" not in names
    segments = api.get(
        f"/v1/video/jobs/{job_id}", params={"aggregate_by": "SEGMENTS", "sort_by": "NAME"}
    ).json()["results"]
    assert {x["label"]["name"] for x in segments} == names
    assert all(x["end_ms"] > x["start_ms"] for x in segments)
    bad = api.get(f"/v1/video/jobs/{job_id}", params={"sort_by": "INDEX"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidParameterException"
    bad = api.post(
        "/v1/video/jobs", json={"kind": "labels", "path": clip.name, "min_confidence": 101}
    )
    assert bad.status_code in (400, 422)

    # one record per call: starts, gets and each job's end, with the search role's caller
    starts = _records(live_server_settings, "StartLabelDetection")
    ends = _records(live_server_settings, "LabelDetectionJob")
    gets = _records(live_server_settings, "GetLabelDetection")
    assert any(r.result.get("job_id") == job and r.outcome == "ok" for r in starts)
    assert any(r.result.get("job_id") == job_id and r.source == "native" for r in starts)
    end = next(r for r in ends if r.result.get("job_id") == job)
    assert end.outcome == "ok" and "Stop Sign" in end.result["labels"]
    assert end.principal == "test-admin" and end.source == "video"
    assert sum(1 for r in gets if r.result.get("job_id") == job) >= 5
    assert any(r.outcome == "InvalidParameterException" for r in gets)


def test_cli_video_labels(tmp_path: Path, clip: Path) -> None:
    env = {**os.environ, "FACELEDGER_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [script(), "video", "labels", str(clip), "--min-confidence", "40"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "0 – 2000 ms: Person" in "\n".join(lines) and "3000 – 4000 ms: Person" in done.stdout
    assert any(line.startswith("0 – 4000 ms: Stop Sign") for line in lines), done.stdout
    missing = subprocess.run(
        [script(), "video", "labels", str(tmp_path / "nope.mp4")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    with Ledger.from_settings(Settings(data_dir=tmp_path / "data")) as ledger:
        ops = [e.event.operation for e in ledger.entries() if e.event is not None]
    assert ops == ["StartLabelDetection", "LabelDetectionJob", "GetLabelDetection"]
