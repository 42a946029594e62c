"""Completion notifications: a Start… with a NotificationChannel posts an SNS-style message to
the webhook its topic is mapped to (FACELEDGER_NOTIFICATION_TARGETS), retrying failures; a
local HTTP receiver stands in for the SNS subscriber, boto3 for the AWS code."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.exceptions import ClientError

from faceledger.config import Settings
from helpers.live import create_key, start_live_server

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")

TOPIC = "arn:aws:sns:us-east-1:111122223333:video-done"
ROLE = "arn:aws:iam::111122223333:role/rekognition-sns"


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 500 to the first ``fail_first`` posts, 200 after; keeps what it got."""

    posts: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first: ClassVar[int] = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(500 if len(type(self).posts) <= type(self).fail_first else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.posts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rekognition-done"
    server.shutdown()
    server.server_close()


def test_a_job_posts_its_completion_to_the_mapped_webhook_with_retries(
    tmp_path: Path, receiver: str
) -> None:
    bucket = tmp_path / "clips"
    bucket.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "1",
         "-pix_fmt", "yuv420p", str(bucket / "door.mp4")],
        check=True,
    )  # fmt: skip
    settings = Settings(
        data_dir=tmp_path / "data",
        s3_local_buckets={"clips": bucket},
        notification_targets={TOPIC: receiver},
    )
    key, secret = create_key(settings, "aws-code", ["admin", "search"])
    with start_live_server(settings) as url:
        client = boto3.client(
            "rekognition",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )
        video = {"S3Object": {"Bucket": "clips", "Name": "door.mp4"}}
        with pytest.raises(ClientError) as refused:  # a topic nobody mapped: not ignored
            client.start_face_detection(
                Video=video,
                NotificationChannel={"SNSTopicArn": TOPIC + "-other", "RoleArn": ROLE},
            )
        assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
        assert "FACELEDGER_NOTIFICATION_TARGETS" in refused.value.response["Error"]["Message"]
        job_id = client.start_face_detection(
            Video=video,
            NotificationChannel={"SNSTopicArn": TOPIC, "RoleArn": ROLE},
            JobTag="door-1",
        )["JobId"]
        deadline = time.monotonic() + 120
        while len(_Receiver.posts) < 2:  # the first post fails (500); the retry delivers
            assert time.monotonic() < deadline, f"{len(_Receiver.posts)} posts"
            time.sleep(0.2)
        status = client.get_face_detection(JobId=job_id)["JobStatus"]
    assert status == "SUCCEEDED"
    (_, first), (headers, body) = _Receiver.posts[:2]
    assert first == body  # the same message, retried
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["content-type"] == "application/json"
    envelope = json.loads(body)
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == TOPIC
    message = json.loads(envelope["Message"])
    assert set(message) == {"JobId", "Status", "API", "JobTag", "Timestamp", "Video"}
    assert message["JobId"] == job_id and message["Status"] == "SUCCEEDED"
    assert message["API"] == "StartFaceDetection" and message["JobTag"] == "door-1"
    assert message["Video"] == {"S3ObjectName": "door.mp4", "S3Bucket": "clips"}
    assert abs(message["Timestamp"] / 1000 - time.time()) < 600


@pytest.mark.parametrize(
    "targets",
    ["video-done=http://127.0.0.1:9/x", f"{TOPIC}=ftp://127.0.0.1/x", f"{TOPIC}"],
)
def test_notification_targets_are_checked_at_start_up(tmp_path: Path, targets: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, notification_targets=targets)  # type: ignore[arg-type]
