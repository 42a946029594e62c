"""Completion notifications outlive a restart and are signed.

- A job ends while its notification endpoint is down; the server retries, is SIGTERMed (exit
  0) with the notification still undelivered, and the endpoint comes up. A second server
  process on the same store delivers it: a real local HTTP receiver gets the message, and
  ``verify_notification`` accepts it with the key ``faceledger video notification-key``
  prints (and refuses it with the body changed by one byte). Both store backends.
- A notification whose endpoint stays down is given up after ``notification_attempts``
  attempts: the outbox keeps it as GIVEN_UP and the ledger has a ``JobNotification`` record
  (outcome ``NotificationUndelivered``) for the caller who started the job.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from faceledger.audit import Ledger
from faceledger.config import Settings
from faceledger.domain.notification_signatures import NotificationRejected, verify_notification
from faceledger.store.factory import open_video_store
from faceledger.store.records import GIVEN_UP, OutboxRow
from helpers.live import create_key, start_live_server
from helpers.rekognition import rekognition_client
from helpers.serve import ServerProcess, free_port

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")

TOPIC = "arn:aws:sns:us-east-1:111122223333:video-done"
CHANNEL = {"SNSTopicArn": TOPIC, "RoleArn": "arn:aws:iam::111122223333:role/rekognition-sns"}


class _Receiver(http.server.BaseHTTPRequestHandler):
    posts: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).posts.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receive_on() -> Iterator[Callable[[int], None]]:
    """Start the receiver on a given port (later: the endpoint is down until then)."""
    _Receiver.posts = []
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(port: int) -> None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _clip(bucket: Path) -> None:
    bucket.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "1",
         "-pix_fmt", "yuv420p", str(bucket / "door.mp4")],
        check=True,
    )  # fmt: skip


def _wait(what: str, ready: Callable[[], bool], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.2)


def _outbox(settings: Settings) -> list[OutboxRow]:
    store = open_video_store(settings)
    try:
        return store.notifications()
    finally:
        store.close()


def test_a_notification_pending_at_sigterm_is_delivered_signed_after_the_restart(
    tmp_path: Path, database_url: str | None, receive_on: Callable[[int], None]
) -> None:
    _clip(tmp_path / "clips")
    data, key_file = tmp_path / "data", tmp_path / "keys" / "ledger.key"
    data.mkdir()
    settings = Settings(data_dir=data, database_url=database_url, ledger_key_file=key_file)
    key = create_key(settings, "aws-code", ["search"])
    receiver_port = free_port()  # nothing listens there yet: the endpoint is down
    env = {
        "FACELEDGER_DATA_DIR": str(data),
        "FACELEDGER_LEDGER_KEY_FILE": str(key_file),
        "FACELEDGER_S3_LOCAL_BUCKETS": f"clips={tmp_path / 'clips'}",
        "FACELEDGER_NOTIFICATION_TARGETS": f"{TOPIC}=http://127.0.0.1:{receiver_port}/done",
        "FACELEDGER_NOTIFICATION_RETRY_FIRST_S": "0.2",
        "FACELEDGER_NOTIFICATION_RETRY_MAX_S": "1",
        "FACELEDGER_NOTIFICATION_ATTEMPTS": "100",
        "FACELEDGER_WORKERS": "1",
        "FACELEDGER_LOG_LEVEL": "INFO",
        **({"FACELEDGER_DATABASE_URL": database_url} if database_url else {}),
    }
    log = tmp_path / "servers.log"
    first = ServerProcess(env, log).start()
    try:
        client = rekognition_client(first.url, *key)
        job_id = client.start_face_detection(
            Video={"S3Object": {"Bucket": "clips", "Name": "door.mp4"}},
            NotificationChannel=CHANNEL,
        )["JobId"]
        _wait(
            "the job succeeded",
            lambda: client.get_face_detection(JobId=job_id)["JobStatus"] == "SUCCEEDED",
        )
        _wait("two failed attempts", lambda: any(r.attempts >= 2 for r in _outbox(settings)))
        assert first.terminate() == 0, first.log()[-3000:]
    finally:
        first.kill()
    (pending,) = _outbox(settings)  # kept, and handed back by the stopped server
    assert pending.job_id == job_id and pending.status == "PENDING"
    assert pending.claimed_by is None and pending.attempts >= 2
    assert "Connection refused" in pending.last_error or "refused" in pending.last_error.lower()
    assert _Receiver.posts == []

    receive_on(receiver_port)  # the endpoint is back
    second = ServerProcess(env, log).start()
    try:
        _wait("the notification was delivered", lambda: len(_Receiver.posts) >= 1)
        _wait("the outbox emptied", lambda: _outbox(settings) == [], timeout_s=30)
    finally:
        assert second.terminate() == 0, second.log()[-3000:]
    (headers, body), *_ = _Receiver.posts
    envelope = json.loads(body)
    assert envelope["MessageId"] == pending.message_id
    assert json.loads(envelope["Message"])["JobId"] == job_id
    assert json.loads(envelope["Message"])["Status"] == "SUCCEEDED"

    shown = subprocess.run(
        [str(Path(sys.executable).with_name("faceledger")), "video", "notification-key", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    notification_key = bytes.fromhex(json.loads(shown.stdout)["key_hex"])
    verify_notification(body, headers, notification_key)  # signed at delivery: not stale
    with pytest.raises(NotificationRejected):
        verify_notification(body.replace(b"SUCCEEDED", b"SUCCEEDEd"), headers, notification_key)
    with pytest.raises(NotificationRejected):
        verify_notification(body, headers, bytes(32))


def test_an_undeliverable_notification_is_given_up_and_ledgered(tmp_path: Path) -> None:
    _clip(tmp_path / "clips")
    key_file = tmp_path / "keys" / "ledger.key"
    settings = Settings(
        data_dir=tmp_path / "data",
        ledger_key_file=key_file,
        s3_local_buckets={"clips": tmp_path / "clips"},
        notification_targets={TOPIC: f"http://127.0.0.1:{free_port()}/down"},
        notification_attempts=3,
        notification_retry_first_s=0.05,
        notification_retry_max_s=0.1,
    )
    key = create_key(settings, "aws-code", ["search"])
    with start_live_server(settings) as url:
        job_id = rekognition_client(url, *key).start_face_detection(
            Video={"S3Object": {"Bucket": "clips", "Name": "door.mp4"}},
            NotificationChannel=CHANNEL,
        )["JobId"]
        _wait("the notification was given up", lambda: bool(_outbox(settings)) and all(
            r.status == GIVEN_UP for r in _outbox(settings)
        ))  # fmt: skip
        (row,) = _outbox(settings)
        assert (row.job_id, row.attempts) == (job_id, 3)

        def ledgered() -> list[Any]:
            with Ledger(settings.data_dir / "ledger.sqlite3", key_file=key_file) as ledger:
                return [e.event for e in ledger.entries(operation="JobNotification")]

        _wait("the give-up was ledgered", lambda: bool(ledgered()), timeout_s=30)
    (event,) = ledgered()
    assert event.outcome == "NotificationUndelivered"
    assert event.principal == "aws-code" and event.source == "video"
    assert event.result["job_id"] == job_id and event.result["attempts"] == 3
    assert event.result["message_id"] == row.message_id
