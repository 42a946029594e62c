"""Video through the gateway: jobs survive restarts, sinks deliver, all is ledgered."""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import (
    AccessDeniedError,
    InvalidParameterError,
    ResourceNotFoundError,
)
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway
from faceledger.services.video.jobs import JobRequest
from faceledger.video.sinks import EventHub, JsonlSink, WebhookSink
from helpers.data import lfw_people

ROOT = Caller(Principal("video-tester", ROLES, "KEY"), "native", "r1", "test", "case-1")


def _wait(gate: Gateway, job_id: str, timeout_s: float = 300) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        page = gate.get_video_job(ROOT, None, job_id)
        if page.job.status != "IN_PROGRESS":
            return page
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path, str]:
    """A 4 s clip with one LFW person (another photo of whom is returned for enrolment)."""
    from helpers.videos import Actor, make_video

    folder = tmp_path_factory.mktemp("videos")
    name, photos = next(iter(lfw_people(data_dir, 2, 1).items()))
    make_video(
        folder / "one.mp4", [Actor(name, photos[0], 0.2, 3.8, (60, 80), (300, 120))], duration_s=4
    )
    return folder, photos[1], name


def _settings(root: Path, videos: Path) -> Settings:
    return Settings(
        data_dir=root / "data",
        ledger_key_file=root / "keys" / "ledger.key",
        video_dirs=[videos],
        default_threshold_floor=80,
    )


def test_jobs_left_unfinished_are_run_on_the_next_start(
    tmp_path: Path, clip: tuple[Path, Path, str]
) -> None:
    videos, enrol_photo, _ = clip
    settings = _settings(tmp_path, videos)
    (videos / "gone.mp4").write_bytes((videos / "one.mp4").read_bytes())
    first = Gateway(settings)  # no workers: as if the process died before running them
    first.create_collection(ROOT, "c")
    first.put_policy(ROOT, "c", CollectionPolicy(keep_face_crops=True))
    first.index_faces(ROOT, "c", enrol_photo.read_bytes(), external_image_id="them")
    kept = first.start_video_job(ROOT, JobRequest("search", {"path": "one.mp4"}, "c"))
    lost = first.start_video_job(ROOT, JobRequest("faces", {"path": "gone.mp4"}))
    assert first.get_video_job(ROOT, None, kept.job_id).job.status == "IN_PROGRESS"
    first.close()
    (videos / "gone.mp4").unlink()

    second = Gateway(settings)
    try:
        second.start_video_workers()
        done = _wait(second, kept.job_id)
        assert done.job.status == "SUCCEEDED"
        assert any(hit["external_image_id"] == "them" for p in done.items for hit in p["matches"])
        failed = _wait(second, lost.job_id)
        assert failed.job.status == "FAILED" and "gone.mp4" in failed.job.status_message
        # the start and the end of each job are in the ledger, by the caller who started it
        records = [e.event for e in second._ledger.entries(principal="video-tester")]
        ops = [(r.operation, r.outcome, r.source) for r in records if r is not None]
        assert ("StartFaceSearch", "ok", "native") in ops
        assert ("FaceSearchJob", "ok", "video") in ops
        assert ("FaceDetectionJob", "InvalidParameterException", "video") in ops
        end = next(r for r in records if r is not None and r.operation == "FaceSearchJob")
        assert end.result["matches"] and end.purpose == "test" and end.case_reference == "case-1"
        # each person a face-search job matched is one lead, named by its end record, and
        # keeps the person's best shot from the video as its searched face (crops are kept)
        reviewer = Caller(Principal("video-reviewer", ("review",), "KR"), "native", "rev")
        (lead_id,) = end.result["lead_ids"]
        lead = second.get_lead(reviewer, lead_id)
        assert (lead.operation, lead.source, lead.state) == ("FaceSearchJob", "video", "open")
        assert [c.external_image_id for c in lead.candidates] == ["them"]
        assert lead.case_reference == "case-1"
        assert lead_id in {one.lead_id for one in second.list_leads(reviewer).leads}  # recorded
        probe = second.get_lead_probe_crop(reviewer, lead_id)
        _, _, compared = second.compare_faces(ROOT, enrol_photo.read_bytes(), probe)
        assert compared.matches[0].similarity >= 80  # the video's face of the enrolled person
        assert second._ledger.verify().ok
    finally:
        second.close()


def test_video_paths_stay_inside_the_video_dirs(
    tmp_path: Path, clip: tuple[Path, Path, str]
) -> None:
    videos, _, _ = clip
    gate = Gateway(_settings(tmp_path, videos))
    try:
        for path in ("../one.mp4", "/etc/passwd", str(tmp_path), "missing.mp4"):
            with pytest.raises(InvalidParameterError):
                gate.start_video_job(ROOT, JobRequest("faces", {"path": path}))
        with pytest.raises(ResourceNotFoundError):
            gate.create_stream_processor(ROOT, "p", "rtsp://127.0.0.1:1/x", collection_id="x")
        gate.create_collection(ROOT, "x")
        with pytest.raises(InvalidParameterError):
            gate.create_stream_processor(ROOT, "p", "file:///etc/passwd", collection_id="x")
        for bad in ("ftp://host/x", "rtsp://", "camera:abc", "/dev/sda"):
            with pytest.raises(InvalidParameterError):
                gate.create_stream_processor(ROOT, "p", bad, collection_id="x")
        with pytest.raises(InvalidParameterError):
            gate.create_stream_processor(
                ROOT, "p", "rtsp://h/x", collection_id="x", outputs={"jsonl": "../../etc/x"}
            )
        with pytest.raises(InvalidParameterError):
            gate.get_video_job(ROOT, None, "x" * 20, max_results=1001)
    finally:
        gate.close()


# -- sinks --------------------------------------------------------------------------------------
class _FlakyReceiver(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.answers.pop(0) if self.answers else 200
        if status == 200:
            self.bodies.append(body)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_FlakyReceiver]]]:
    handler = type("Receiver", (_FlakyReceiver,), {"answers": [500, 503], "bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()


def test_webhook_retries_with_back_off(receiver: tuple[str, Any]) -> None:
    url, handler = receiver
    sink = WebhookSink(url, first_delay=0.05, max_delay=0.2)
    started = time.monotonic()
    sink.send({"type": "match", "face_id": "f1"})
    while sink.delivered == 0 and time.monotonic() - started < 20:
        time.sleep(0.02)
    sink.close()
    assert sink.delivered == 1 and sink.failed == 0
    assert handler.answers == []  # both failures were answered, then the retry landed
    assert [json.loads(b) for b in handler.bodies] == [{"face_id": "f1", "type": "match"}]


def test_webhook_gives_up_and_counts(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/", attempts=3, first_delay=0.01, timeout=1)
    sink.send({"n": 1})
    deadline = time.monotonic() + 20
    while sink.failed == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close()
    assert (sink.delivered, sink.failed) == (0, 1)


def test_jsonl_and_hub(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "streams" / "x.jsonl")
    hub = EventHub(queue_size=2)
    with hub.subscribe("a") as only_a, hub.subscribe() as everything:
        for i in range(3):
            event = {"processor": "a" if i < 2 else "b", "n": i}
            sink.send(event)
            hub.publish(event)
        assert [only_a.get(0.1), only_a.get(0.1), only_a.get(0.1)] == [
            {"processor": "a", "n": 0},
            {"processor": "a", "n": 1},
            None,
        ]
        assert everything.get(0.1) == {"processor": "a", "n": 1}  # the oldest was dropped
        assert everything.dropped == 1
    assert hub.subscribers == 0
    with hub.subscribe("a") as late:  # opened after the events: none of them replayed
        assert late.get(0.05) is None
        hub.publish({"processor": "a", "n": 3})
        assert late.get(0.1) == {"processor": "a", "n": 3}
    sink.close()
    lines = (tmp_path / "streams" / "x.jsonl").read_text().splitlines()
    assert [json.loads(x)["n"] for x in lines] == [0, 1, 2]


# -- a real crash ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "faceledger"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited during start-up"
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("the server did not start")


def test_a_job_survives_kill_9_of_the_server(tmp_path: Path, clip: tuple[Path, Path, str]) -> None:
    from faceledger.services.keys import KeyService

    videos, _, _ = clip
    settings = _settings(tmp_path, videos)
    keys = KeyService(settings)
    made, secret = keys.create("video-crash", ["search"])
    key = made.key_id
    keys.close()
    env = {
        **os.environ,
        "FACELEDGER_DATA_DIR": str(settings.data_dir),
        "FACELEDGER_LEDGER_KEY_FILE": str(settings.ledger_key_file),
        "FACELEDGER_VIDEO_DIRS": str(videos),
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}:{secret}"}
    proc = _serve(env, port)
    try:
        _wait_healthy(url, proc)
        started = httpx.post(
            url + "/v1/video/jobs", json={"kind": "persons", "path": "one.mp4"}, headers=headers
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        os.kill(proc.pid, signal.SIGKILL)  # the job was acknowledged; it may be mid-run
        proc.wait(30)
        proc = _serve(env, port)
        _wait_healthy(url, proc)
        deadline = time.monotonic() + 300
        while True:
            got = httpx.get(f"{url}/v1/video/jobs/{job_id}", headers=headers).json()
            if got["status"] != "IN_PROGRESS":
                break
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert got["status"] == "SUCCEEDED", got
        assert got["results"] and got["metadata"]["codec"] == "h264"
    finally:
        proc.kill()
        proc.wait(30)


# -- the job store, on both backends --------------------------------------------------------------
def test_a_job_is_claimed_by_one_worker_and_taken_over_from_a_dead_one(
    tmp_path: Path, database_url: str | None
) -> None:
    from faceledger.domain.errors import IdempotentParameterMismatchError
    from faceledger.store.factory import open_video_store
    from faceledger.store.sqlite.video import JobRow

    store = open_video_store(Settings(data_dir=tmp_path, database_url=database_url))
    try:
        job = JobRow(
            job_id="j1", kind="faces", status="IN_PROGRESS", status_message="",
            video={"path": "a.mp4"}, params={}, job_tag=None, client_token="t1",
            principal="p", caller={"principal": "p"}, created_at=time.time(),
            finished_at=None, metadata=None, attempts=0,
        )  # fmt: skip
        assert store.create_job(job).job_id == "j1"
        again = store.create_job(JobRow(**{**job.__dict__, "job_id": "j2"}))
        assert again.job_id == "j1"  # the same token and request: the same job
        with pytest.raises(IdempotentParameterMismatchError):
            store.create_job(JobRow(**{**job.__dict__, "job_id": "j3", "job_tag": "other"}))
        assert store.claim_job("j1", "host:1:a", 300)
        assert not store.claim_job("j1", "host:2:b", 300)  # held by a live lease
        assert store.claim_job("j1", "host:2:b", 300, take_from="host:1:a")  # a dead owner
        assert not store.claim_job("j1", "host:1:a", 300)
        assert [(j.job_id, j.claimed_by, j.attempts) for j in store.unfinished_jobs()] == [
            ("j1", "host:2:b", 2)
        ]
        assert store.job_counts() == {"IN_PROGRESS": 1}  # the metrics' jobs by state
        store.finish_job("j1", status="SUCCEEDED", metadata={"codec": "h264"}, results=[{"n": 1}])
        assert store.job_results("j1") == [{"n": 1}] and store.unfinished_jobs() == []
        assert store.job_counts() == {"SUCCEEDED": 1}
        assert not store.claim_job("j1", "host:3:c", 0)  # finished jobs are never claimed
        with pytest.raises(ResourceNotFoundError):
            store.job("nope")
    finally:
        store.close()


def test_watching_is_a_search_from_now_on(tmp_path: Path) -> None:
    """Opening a processor's events needs a purpose and a case reference, is ledgered with
    them, and delivers only the matches made after it opened (no earlier run's)."""
    gate = Gateway(_settings(tmp_path, tmp_path))
    try:
        gate.create_collection(ROOT, "x")
        gate.create_stream_processor(ROOT, "door", "rtsp://127.0.0.1:1/x", collection_id="x")
        earlier = {"type": "match", "processor": "door", "session_id": "old", "face_id": "f1"}
        gate._video.hub.publish(earlier)  # a match of an earlier run, before anyone watched
        bare = dataclasses.replace(ROOT, purpose=None, case_reference=None)
        with pytest.raises(AccessDeniedError, match="purpose and a case reference"):
            gate.stream_events(bare, "door")
        with pytest.raises(AccessDeniedError):
            gate.stream_events(dataclasses.replace(bare, purpose="patrol"), "door")
        watcher = dataclasses.replace(ROOT, purpose="missing person", case_reference="MP-3")
        with gate.stream_events(watcher, "door") as events:
            assert events.get(0.05) is None  # nothing replayed
            now = {**earlier, "session_id": "new", "face_id": "f2"}
            gate._video.hub.publish(now)
            assert events.get(1.0) == now
        records = [
            e.event
            for e in gate._ledger.entries()
            if e.event is not None and e.event.operation == "GetStreamEvents"
        ]
        assert [(r.outcome, r.purpose, r.case_reference) for r in records] == [
            ("AccessDeniedException", None, None),
            ("AccessDeniedException", "patrol", None),
            ("ok", "missing person", "MP-3"),
        ]
        assert records[-1].result["collection_id"] == "x"
    finally:
        gate.close()
