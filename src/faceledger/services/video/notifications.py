"""A stored-video job's completion message: Rekognition Video's ``NotificationChannel``, posted
SNS-style to the webhook the operator mapped its topic to (``Settings.notification_targets``),
signed with the notification key (``X-FaceLedger-Signature``; ``docs/NOTIFICATIONS.md``), kept
in the video store's outbox until delivered and retried with back-off across restarts
(``outbox.py``)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from faceledger.config import Settings
from faceledger.domain.errors import InvalidParameterError, NotificationKeyError
from faceledger.services.video.common import KINDS
from faceledger.services.video.notification_keys import NotificationSigner
from faceledger.services.video.outbox import NotificationOutbox
from faceledger.store.base import VideoStore
from faceledger.store.records import JobRow, OutboxRow

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
    topic posts to an HTTP subscriber). SNS's own certificate signature fields stay empty: the
    post is signed in FaceLedger's headers instead."""
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
    """Checks a job's ``NotificationChannel`` when it starts, and when it ends puts its
    completion message in the outbox, whose sender posts it (``owner``: this process;
    ``on_give_up``: called with a row given up after the last attempt)."""

    def __init__(
        self,
        settings: Settings,
        store: VideoStore,
        *,
        owner: str,
        on_give_up: Callable[[OutboxRow], None] | None = None,
    ) -> None:
        self.settings = settings
        self.signer = NotificationSigner(settings)
        self.outbox = NotificationOutbox(
            settings, store, owner=owner, signer=self.signer, on_give_up=on_give_up
        )

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
        """Keep the job's completion message for its notification channel's webhook in the
        outbox (posted, signed, by the outbox's sender; retried there, across restarts)."""
        channel = job.params.get("notification_channel")
        if not channel:
            return
        topic = channel["SNSTopicArn"]
        url = self.settings.notification_targets.get(topic)
        if url is None:  # unmapped since the job started
            logger.warning("job %s: topic %s is no longer mapped; not notified", job.job_id, topic)
            return
        envelope = sns_envelope(topic, completion_message(job, status))
        now = time.time()
        self.outbox.add(
            OutboxRow(
                message_id=envelope["MessageId"],
                job_id=job.job_id,
                topic_arn=topic,
                url=url,
                body=json.dumps(envelope, separators=(",", ":"), sort_keys=True),
                created_at=now,
                next_attempt_at=now,
            )
        )

    def start(self) -> None:
        """Start sending (the server: what earlier runs left pending goes first). A key that
        cannot be used is logged now; each attempt then fails with the reason, and the
        notification is given up (and ledgered) after the last."""
        if self.settings.notification_targets:
            try:
                self.signer.key()
            except NotificationKeyError as exc:
                logger.error("completion notifications cannot be signed: %s", exc.message)
        self.outbox.start()

    def close(self) -> None:
        self.outbox.close()
