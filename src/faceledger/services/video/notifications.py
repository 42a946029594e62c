"""A stored-video job's completion message: Rekognition Video's ``NotificationChannel``, posted
SNS-style to the webhook the operator mapped its topic to (``Settings.notification_targets``),
queued and retried with back-off by one ``WebhookSink`` per target."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

from faceledger.config import Settings
from faceledger.domain.errors import InvalidParameterError
from faceledger.services.video.common import KINDS
from faceledger.store.records import JobRow
from faceledger.video.sinks import WebhookSink

logger = logging.getLogger(__name__)


def completion_message(job: JobRow, status: str) -> dict[str, Any]:
    """Rekognition Video's completion message: JobId, Status, API, JobTag, Timestamp (epoch
    ms) and Video (S3ObjectName, S3Bucket)."""
    video: dict[str, Any] = {}
    if "S3Object" in job.video:
        video = {
            "S3ObjectName": job.video["S3Object"].get("Name"),
            "S3Bucket": job.video["S3Object"].get("Bucket"),
        }
    elif "path" in job.video:
        video = {"S3ObjectName": str(job.video["path"])}
    return {
        "JobId": job.job_id,
        "Status": status,
        "API": KINDS[job.kind],
        "JobTag": job.job_tag,
        "Timestamp": int(time.time() * 1000),
        "Video": video,
    }


def sns_envelope(topic_arn: str, message: dict[str, Any]) -> dict[str, Any]:
    """An SNS HTTP(S) notification carrying ``message`` as its JSON ``Message`` (what an SNS
    topic posts to an HTTP subscriber; unsigned)."""
    now = time.time()
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Subject": None,
        "Message": json.dumps(message, separators=(",", ":")),
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        + f".{int(now * 1000) % 1000:03d}Z",
        "SignatureVersion": None,
        "Signature": None,
    }


class CompletionNotifier:
    """Checks a job's ``NotificationChannel`` when it starts and posts its completion message
    when it ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._sinks: dict[str, WebhookSink] = {}  # completion webhooks by URL

    def check_channel(self, channel: dict[str, Any]) -> dict[str, str]:
        """A ``NotificationChannel`` whose topic the operator mapped to a webhook."""
        topic = channel.get("SNSTopicArn") if isinstance(channel, dict) else None
        if not isinstance(topic, str) or not topic:
            raise InvalidParameterError("NotificationChannel needs an SNSTopicArn")
        if topic not in self.settings.notification_targets:
            raise InvalidParameterError(
                f"NotificationChannel.SNSTopicArn {topic!r} is not mapped to a webhook on this "
                "server: the operator maps topics with FACELEDGER_NOTIFICATION_TARGETS "
                "(topic ARN=URL)"
            )
        out = {"SNSTopicArn": topic}
        if isinstance(channel.get("RoleArn"), str):
            out["RoleArn"] = channel["RoleArn"]
        return out

    def notify(self, job: JobRow, status: str) -> None:
        """Post the job's completion message to its notification channel's webhook (queued;
        retried with back-off by a ``WebhookSink`` per target)."""
        channel = job.params.get("notification_channel")
        if not channel:
            return
        topic = channel["SNSTopicArn"]
        url = self.settings.notification_targets.get(topic)
        if url is None:  # unmapped since the job started
            logger.warning("job %s: topic %s is no longer mapped; not notified", job.job_id, topic)
            return
        with self._lock:
            sink = self._sinks.get(url)
            if sink is None:
                sink = WebhookSink(url, headers={"x-amz-sns-message-type": "Notification"})
                self._sinks[url] = sink
        sink.send(sns_envelope(topic, completion_message(job, status)))

    def close(self) -> None:
        with self._lock:
            sinks = list(self._sinks.values())
            self._sinks.clear()
        for sink in sinks:
            sink.close()
