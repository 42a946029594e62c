"""A live stream processor through the native API, fed by a real ffmpeg over HTTP on loopback.

ffmpeg serves an MPEG-TS stream (``-listen 1``) of a synthetic clip with an enrolled person;
the processor reads it, matches arrive as server-sent events and in the JSONL output, and every
match is in the ledger with the purpose and case reference given at start. Killing ffmpeg
mid-stream turns the processor's live state to RECONNECTING; a new ffmpeg on the same port
brings it back to RUNNING with frames flowing again.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from helpers.data import lfw_people

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")

START = {"purpose": "missing person report", "case_reference": "MP-7"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(check: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def lobby(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An 8 s clip of one LFW person (looped by ffmpeg) and another photo of them."""
    from helpers.videos import Actor, make_video

    name, photos = next(iter(lfw_people(data_dir, 2, 1).items()))
    path = tmp_path_factory.mktemp("lobby") / "lobby.mp4"
    make_video(path, [Actor(name, photos[0], 0.0, 8.0, (80, 60), (360, 120))], duration_s=8)
    return path, photos[1]


@pytest.fixture
def ffmpeg_http(lobby: tuple[Path, Path]) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """``serve()`` starts (or restarts) ffmpeg serving the looped clip on one fixed port."""
    port = _free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def serve() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(lobby[0]),
             "-c", "copy", "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/s.ts"],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(proc)
        return proc

    serve.url = f"http://127.0.0.1:{port}/s.ts"  # type: ignore[attr-defined]
    yield serve
    for proc in procs:
        proc.kill()
        proc.wait(10)


def _rekognition(url: str, key: tuple[str, str]) -> Any:
    import boto3

    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
    )


def test_live_http_stream_matches_and_reconnects(
    api: httpx.Client,
    live_server: str,
    api_key: tuple[str, str],
    live_server_settings: Settings,
    lobby: tuple[Path, Path],
    ffmpeg_http: Any,
    make_key: Callable[[str, list[str]], tuple[str, str]],
) -> None:
    _, enrol_photo = lobby
    assert api.post("/v1/collections", json={"collection_id": "lobby"}).status_code == 201
    kept = api.put(  # Rekognition's floor, and a searched face kept with each match's lead
        "/v1/collections/lobby/policy",
        json={"require_purpose": False, "threshold_floor": 80, "keep_face_crops": True},
    )
    assert kept.status_code == 200, kept.text
    enrolled = api.post(
        "/v1/collections/lobby/faces",
        files={"image": ("p.jpg", enrol_photo.read_bytes(), "image/jpeg")},
        data={"external_image_id": "wanted"},
    )
    assert enrolled.status_code == 200, enrolled.text
    server = ffmpeg_http()
    created = api.post(
        "/v1/stream-processors",
        json={
            "name": "lobby-cam",
            "source": ffmpeg_http.url,
            "collection_id": "lobby",
            "outputs": {"jsonl": "lobby"},
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["threshold"] == 80 and created.json()["status"] == "STOPPED"

    refused = api.get("/v1/stream-processors/lobby-cam/events")
    assert refused.status_code == 403, refused.text  # watching is a search
    assert refused.json()["error"]["code"] == "AccessDeniedException"
    with api.stream(
        "GET", "/v1/stream-processors/lobby-cam/events", params=START, timeout=60
    ) as events:
        started = api.post("/v1/stream-processors/lobby-cam/start", json=START)
        assert started.status_code == 200, started.text
        match: dict[str, Any] = {}
        for line in events.iter_lines():
            if line.startswith("data: "):
                match = json.loads(line[6:])
                if match.get("type") == "match":
                    break
    assert match["external_image_id"] == "wanted" and match["similarity"] >= 80
    assert match["crop_jpeg_base64"] and match["session_id"] == started.json()["session_id"]

    def live() -> dict[str, Any]:
        described = api.get("/v1/stream-processors/lobby-cam").json()
        return dict(described["live"])

    _until(lambda: live().get("state") == "RUNNING", "RUNNING")
    server.kill()
    server.wait(10)
    _until(lambda: live().get("state") == "RECONNECTING", "RECONNECTING after the kill")
    assert api.get("/v1/stream-processors/lobby-cam").json()["status"] == "RECONNECTING"
    # Rekognition keeps its allowed values: RUNNING, the state in StatusMessage
    rekognition = _rekognition(live_server, api_key)
    described = rekognition.describe_stream_processor(Name="lobby-cam")
    assert described["Status"] == "RUNNING"
    assert described["StatusMessage"].startswith("RECONNECTING")
    listed = rekognition.list_stream_processors()["StreamProcessors"]
    assert {"Name": "lobby-cam", "Status": "RUNNING"} in listed
    ffmpeg_http()  # the camera comes back on the same address
    read_before = live()["frames_read"]
    back = _until(
        lambda: (s := live()).get("state") == "RUNNING" and s["frames_read"] > read_before + 10,
        "frames after the reconnect",
    )
    assert back
    assert live()["reconnects"] >= 1

    assert api.post("/v1/stream-processors/lobby-cam/stop").status_code == 200
    assert api.get("/v1/stream-processors/lobby-cam").json()["status"] == "STOPPED"
    lines = (live_server_settings.data_dir / "streams" / "lobby.jsonl").read_text().splitlines()
    assert lines and all(json.loads(x)["external_image_id"] == "wanted" for x in lines)

    with Ledger.from_settings(live_server_settings) as ledger:
        records = [e.event for e in ledger.entries(collection_id="lobby") if e.event is not None]
        ops = [r.operation for r in records]
        assert "StreamFaceMatch" in ops
        matched = [r for r in records if r.operation == "StreamFaceMatch"]
        assert all(
            (r.source, r.purpose, r.case_reference) == ("video", *START.values()) for r in matched
        )
        assert len(matched) == len(lines)  # every reported match is on the record
        stamps = [json.loads(x)["timestamp_ms"] for x in lines]
        assert [r.result["timestamp_ms"] for r in matched] == stamps
        lead_ids = [r.result["lead_id"] for r in matched]  # each match is a lead
        # each match says what a candidate means at the collection's size, as searches do
        assert all(r.result["scale"]["face_count"] >= 1 for r in matched)
        assert all(json.loads(x)["scale"]["threshold"] == matched[0].result["scale"]["threshold"]
                   for x in lines)  # fmt: skip
        # … in the same sentence as every search (and a stored-video face search)
        assert all(json.loads(x)["scale"]["statement"].startswith("at this threshold ")
                   for x in lines)  # fmt: skip
        assert all(isinstance(t, int) and t >= 0 for t in stamps)
        every = [e.event.operation for e in ledger.entries() if e.event is not None]
        assert "StartStreamProcessor" in every and "StopStreamProcessor" in every
        watched = [
            e.event
            for e in ledger.entries()
            if e.event is not None and e.event.operation == "GetStreamEvents"
        ]
        assert any(r.outcome == "AccessDeniedException" for r in watched)
        assert [
            (r.purpose, r.case_reference)
            for r in watched
            if r.outcome == "ok" and r.result.get("name") == "lobby-cam"
        ] == [tuple(START.values())]
    assert api.delete("/v1/stream-processors/lobby-cam").status_code == 204
    reviewer = make_key("lobby-reviewer", ["review"])
    with httpx.Client(
        base_url=live_server, headers={"Authorization": f"Bearer {reviewer[0]}:{reviewer[1]}"}
    ) as review:
        for lead_id in lead_ids:
            lead = review.get(f"/v1/leads/{lead_id}").json()
            assert (lead["operation"], lead["source"], lead["state"]) == (
                "StreamFaceMatch",
                "video",
                "open",
            )
            assert [c["external_image_id"] for c in lead["candidates"]] == ["wanted"]
            assert lead["case_reference"] == START["case_reference"]
            probe = review.get(f"/v1/leads/{lead_id}/probe-crop")  # the match's best shot
            assert probe.status_code == 200 and probe.content.startswith(b"\xff\xd8\xff")


def test_native_stream_errors(api: httpx.Client) -> None:
    missing = api.post("/v1/stream-processors/no-such/start", json=START)
    assert missing.status_code == 400  # as the rest of /v1 answers an unknown resource
    assert missing.json()["error"]["code"] == "ResourceNotFoundException"
    assert api.post("/v1/collections", json={"collection_id": "sp-errors"}).status_code == 201
    bad = api.post(
        "/v1/stream-processors",
        json={"name": "bad", "source": "ftp://x/y", "collection_id": "sp-errors"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidParameterException"
    job = api.get("/v1/video/jobs/does-not-exist")
    assert job.json()["error"]["code"] == "ResourceNotFoundException"
    both = api.post("/v1/video/jobs", json={"kind": "faces"})
    assert both.status_code == 400
