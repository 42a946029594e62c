"""Video: stored-video jobs (worker pool, restart-safe) and live stream processors.

Stored video (``StartFaceDetection`` / ``StartFaceSearch`` / ``StartPersonTracking``): the
job row is durable before the JobId is returned; a job with a ``NotificationChannel`` posts an
SNS-style completion message to the webhook its topic maps to
(``Settings.notification_targets``), with retries, when it succeeds or fails; a pool of
``Settings.video_workers`` threads runs jobs in order. A server that stops mid-job finds the
job ``IN_PROGRESS`` on its next start and queues it again from the beginning (``resume``); a
job whose video is gone by then is marked ``FAILED`` with the reason. Results are stored once,
when the job succeeds, and paged by ``get_job``. Each job's end is ledgered (by the principal
who started it, source ``video``, with the matched FaceIds for a face search).

Live (stream processors): the definition is stored; ``start`` runs the video layer's live
processor (latest-frame reader + detection + tracking + search) and sends each match event to
the ledger first (a match the ledger cannot record is reported nowhere), then to the
processor's JSONL file, its webhook and the live subscribers (server-sent events). A server
restart leaves every processor ``STOPPED`` ("stopped by a server restart"): watching resumes
only when someone starts it again, with a purpose, on the record.

The gateway (``services/gateway.py``) authorises and ledgers the calls; this
module does the work and ledgers what happens later (job ends, matches) through ``record``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import os
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.collections import CollectionMatch
from faceledger.domain.errors import (
    FaceLedgerError,
    InvalidParameterError,
    ResourceInUseError,
    ResourceNotFoundError,
)
from faceledger.domain.principals import Principal
from faceledger.domain.video import Hit, MatchEvent, VideoAnalysis
from faceledger.services.collections import CollectionService
from faceledger.services.objects import ImageObjects
from faceledger.services.tokens import TokenSigner, load_or_create_secret
from faceledger.store.base import VideoStore
from faceledger.store.factory import open_video_store
from faceledger.store.records import (
    FAILED,
    IN_PROGRESS,
    SUCCEEDED,
    JobRow,
    ProcessorRow,
)
from faceledger.video.live import LiveProcessor
from faceledger.video.pipeline import AnalysisCancelled
from faceledger.video.sinks import EventHub, JsonlSink, Sink, WebhookSink
from faceledger.video.sources import parse_source
from faceledger.video.stored import analyse_video

logger = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "faces": "StartFaceDetection",
    "search": "StartFaceSearch",
    "persons": "StartPersonTracking",
}
GET_OPERATIONS: dict[str, str] = {
    "faces": "GetFaceDetection",
    "search": "GetFaceSearch",
    "persons": "GetPersonTracking",
}
# Rekognition's stream processors search at 80 or above (FaceSearchSettings); ours too.
STREAM_THRESHOLD_FLOOR = 80.0
DEFAULT_JOB_THRESHOLD = 80.0
MAX_RESULTS = 1000
# A worker renews its claim on a running job at least every tenth of this; a job whose claim is
# older is taken over (its process died).
JOB_LEASE_S = 300.0
NAME_RE = re.compile(r"[a-zA-Z0-9_.\-]{1,128}")

Record = Callable[[Caller, str, str | None, dict[str, Any], str], None]


def caller_to_json(caller: Caller) -> dict[str, Any]:
    return {
        "principal": caller.principal.name,
        "roles": list(caller.principal.roles),
        "key_id": caller.principal.key_id,
        "source": caller.source,
        "request_id": caller.request_id,
        "purpose": caller.purpose,
        "case_reference": caller.case_reference,
    }


def caller_from_json(data: dict[str, Any], *, source: str = "video") -> Caller:
    return Caller(
        Principal(data["principal"], tuple(data["roles"]), data["key_id"]),
        source=source,
        request_id=data.get("request_id", ""),
        purpose=data.get("purpose"),
        case_reference=data.get("case_reference"),
    )


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return None  # crops stay out of stored results
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


Searcher = Callable[[np.ndarray], list[list[Hit]]]


def hit_of(match: CollectionMatch) -> Hit:
    face = match.face
    return Hit(
        face_id=face.face_id,
        similarity=match.similarity,
        external_image_id=face.external_image_id,
        image_id=face.image_id,
        box=face.bounding_box,
        confidence=face.confidence,
        user_id=face.user_id,
    )


def analysis_items(analysis: VideoAnalysis) -> tuple[Any, ...]:
    """The result list of the analysis's mode (what Get… pages through)."""
    return {"faces": analysis.faces, "persons": analysis.persons}.get(
        analysis.mode, analysis.matches
    )


def matched_faces(analysis: VideoAnalysis) -> list[list[Any]]:
    """``[[FaceId, best Similarity], …]`` of a face search, for the ledger."""
    best: dict[str, float] = {}
    for person in analysis.matches:
        for hit in person.matches:
            best[hit.face_id] = max(best.get(hit.face_id, 0.0), hit.similarity)
    return [[face_id, round(sim, 3)] for face_id, sim in sorted(best.items())]


def event_json(event: MatchEvent) -> dict[str, Any]:
    """A match event as sent to sinks (without the best-shot JPEG)."""
    data = _jsonable(event)
    data.pop("best_shot_jpeg", None)
    data["timestamp_ms"] = event.frame_timestamp_ms  # player time of the deciding frame
    data["latency_ms"] = round((event.emitted_s - event.frame_arrival_s) * 1000, 1)
    return data


REKOGNITION_STREAM_STATUSES = ("STOPPED", "STARTING", "RUNNING", "FAILED", "STOPPING", "UPDATING")


def rekognition_status(status: str, message: str) -> tuple[str, str]:
    """A processor's (status, message) as Rekognition may say them: its StreamProcessorStatus
    has no RECONNECTING, so a reconnecting processor is RUNNING with the state leading the
    StatusMessage."""
    if status in REKOGNITION_STREAM_STATUSES:
        return status, message
    return "RUNNING", f"{status}: {message}" if message else status


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


@dataclasses.dataclass(frozen=True)
class JobPage:
    job: JobRow
    items: list[dict[str, Any]]
    next_token: str | None


class VideoService:
    """Stored-video jobs and stream processors; ``record`` appends a ledger event."""

    def __init__(
        self,
        settings: Settings,
        collections: CollectionService,
        objects: ImageObjects,
        record: Record,
        *,
        store: VideoStore | None = None,
    ) -> None:
        """``store``: the process's video store (``services/container.py``); without one the
        service opens (and closes) its own from ``settings``."""
        self.settings = settings
        self.collections = collections
        self.objects = objects
        self.record = record
        self._owns_store = store is None
        self.store: VideoStore = store if store is not None else open_video_store(settings)
        self.hub = EventHub()
        self._tokens = TokenSigner(load_or_create_secret(settings.data_dir / "token.key"))
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._cancel = threading.Event()
        self._running: dict[str, _RunningProcessor] = {}
        self._lock = threading.Lock()
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renewed: dict[str, float] = {}
        self._pending: set[str] = set()  # queued or running in this process
        self._take_from: dict[str, str] = {}  # job → the dead owner it is taken from
        self._notifiers: dict[str, WebhookSink] = {}  # completion webhooks by URL

    # -- life cycle ----------------------------------------------------------------------------
    def start_workers(self) -> None:
        """Start the job workers and queue the jobs a previous run left unfinished."""
        if self._workers:
            return
        for row in self.store.list_processors(after=None, limit=1_000_000):
            if row.status not in ("STOPPED", "FAILED") and self._dead(row.owner):
                self.store.update_processor(
                    row.name,
                    status="STOPPED",
                    status_message="stopped by a server restart",
                    owner=None,
                )
        for i in range(self.settings.video_workers):
            thread = threading.Thread(target=self._work, name=f"video-job-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)
        self.requeue_unclaimed()

    def requeue_unclaimed(self) -> int:
        """Queue the jobs in progress that no live worker holds (left by a stopped process, or
        by one whose lease ran out); the server's maintenance calls this too."""
        if not self._workers:  # a process without workers (the CLI) runs its jobs itself
            return 0
        queued = 0
        expired = time.time() - JOB_LEASE_S
        for job in self.store.unfinished_jobs():
            holder = job.claimed_by
            if holder is None or (job.claimed_at or 0) < expired or self._dead(holder):
                queued += self._enqueue(job.job_id, take_from=holder)
        return queued

    def _dead(self, owner: str | None) -> bool:
        """Whether ``owner`` (a job's or a processor's process) is surely gone: none, or a
        process of this host that no longer exists (other hosts' processes time out)."""
        if owner is None:
            return True
        if owner == self._owner:
            return False
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    def _enqueue(self, job_id: str, take_from: str | None = None) -> bool:
        """Queue a job unless this process already has it queued or running."""
        with self._lock:
            if job_id in self._pending:
                return False
            self._pending.add(job_id)
            if take_from is not None:
                self._take_from[job_id] = take_from
        self._queue.put(job_id)
        return True

    def close(self) -> None:
        self._cancel.set()
        for _ in self._workers:
            self._queue.put(None)
        for thread in self._workers:
            thread.join(timeout=30)
        self._workers.clear()
        with self._lock:
            running = list(self._running.values())
        for processor in running:
            processor.stop("stopped: the server is shutting down")
        with self._lock:
            notifiers = list(self._notifiers.values())
            self._notifiers.clear()
        for sink in notifiers:
            sink.close()
        if self._owns_store:
            self.store.close()

    # -- stored-video jobs ---------------------------------------------------------------------
    def start_job(
        self,
        caller: Caller,
        kind: str,
        video: dict[str, Any],
        *,
        collection_id: str | None = None,
        threshold: float | None = None,
        job_tag: str | None = None,
        client_token: str | None = None,
        notification: dict[str, Any] | None = None,
    ) -> JobRow:
        if kind not in KINDS:
            raise InvalidParameterError(f"unknown video job kind {kind!r}")
        self._check_video(video)
        params: dict[str, Any] = {}
        if notification is not None:
            params["notification_channel"] = self._check_notification(notification)
        if kind == "search":
            if collection_id is None:
                raise InvalidParameterError("a face search needs a CollectionId")
            self.collections.describe_collection(collection_id)  # ResourceNotFound early
            params = {
                **params,
                "collection_id": collection_id,
                "threshold": DEFAULT_JOB_THRESHOLD if threshold is None else float(threshold),
            }
        job = JobRow(
            job_id=uuid.uuid4().hex,
            kind=kind,
            status=IN_PROGRESS,
            status_message="",
            video=video,
            params=params,
            job_tag=job_tag,
            client_token=client_token,
            principal=caller.principal.name,
            caller=caller_to_json(caller),
            created_at=time.time(),
            finished_at=None,
            metadata=None,
            attempts=0,
        )
        stored = self.store.create_job(job)
        if stored.job_id == job.job_id:
            self._enqueue(job.job_id)
        return stored

    def _check_notification(self, channel: dict[str, Any]) -> dict[str, str]:
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

    def _notify(self, job: JobRow, status: str) -> None:
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
            sink = self._notifiers.get(url)
            if sink is None:
                sink = WebhookSink(url, headers={"x-amz-sns-message-type": "Notification"})
                self._notifiers[url] = sink
        sink.send(sns_envelope(topic, completion_message(job, status)))

    def _check_video(self, video: dict[str, Any]) -> None:
        if "S3Object" in video:
            obj = video["S3Object"]
            if not isinstance(obj, dict) or "Bucket" not in obj or "Name" not in obj:
                raise InvalidParameterError("Video.S3Object needs both Bucket and Name")
            if obj["Bucket"] in self.settings.s3_local_buckets:  # cheap: check it exists now
                self.objects.video_file(
                    obj["Bucket"],
                    obj["Name"],
                    obj.get("Version"),
                    cache_dir=self.settings.data_dir / "video-cache",
                    max_bytes=self.settings.max_video_bytes,
                )
            return
        if "path" in video:
            self.local_video(str(video["path"]))
            return
        raise InvalidParameterError("a video is given as Video.S3Object (or a path, /v1 only)")

    def local_video(self, path: str) -> Path:
        """A server-side video path, which must lie inside one of ``Settings.video_dirs``."""
        candidate = Path(path)
        roots = [Path(d).resolve() for d in self.settings.video_dirs]
        if not roots:
            raise InvalidParameterError(
                "server-side video paths are not enabled: set FACELEDGER_VIDEO_DIRS to the "
                "folders videos may be read from"
            )
        resolved = candidate.resolve() if candidate.is_absolute() else None
        for root in roots:
            target = resolved if resolved is not None else (root / candidate).resolve()
            if target.is_relative_to(root) and target != root:
                if not target.is_file():
                    raise InvalidParameterError(f"no video file at {path!r}")
                return target
        raise InvalidParameterError(
            f"{path!r} is not inside a folder listed in FACELEDGER_VIDEO_DIRS"
        )

    def _resolve(self, job: JobRow) -> tuple[Path, bool]:
        """The job's video as a local file, and whether it is a temporary download."""
        if "path" in job.video:
            return self.local_video(str(job.video["path"])), False
        obj = job.video["S3Object"]
        path = self.objects.video_file(
            obj["Bucket"],
            obj["Name"],
            obj.get("Version"),
            cache_dir=self.settings.data_dir / "video-cache",
            max_bytes=self.settings.max_video_bytes,
        )
        return path, obj["Bucket"] not in self.settings.s3_local_buckets

    def run_now(self, job_id: str) -> None:
        """Run a queued job in this thread (the CLI, which has no worker pool)."""
        self._run_job(self.store.job(job_id))

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run_job(self.store.job(job_id))
            except Exception:  # a bug, not a bad video: keep the worker alive, fail the job
                logger.exception("video job %s failed", job_id)
                self.store.finish_job(job_id, status=FAILED, message="internal error")
                self._notify(self.store.job(job_id), FAILED)
            finally:
                with self._lock:
                    self._pending.discard(job_id)
                self._renewed.pop(job_id, None)

    def _run_job(self, job: JobRow) -> None:
        with self._lock:
            take_from = self._take_from.pop(job.job_id, None)
        if job.status != IN_PROGRESS or not self.store.claim_job(
            job.job_id, self._owner, JOB_LEASE_S, take_from=take_from
        ):
            return  # done meanwhile, or another process runs it
        caller = caller_from_json(job.caller)
        operation = KINDS[job.kind].replace("Start", "") + "Job"
        collection_id = job.params.get("collection_id")
        temporary = False
        path: Path | None = None
        try:
            path, temporary = self._resolve(job)
            searcher = None
            threshold = float(job.params.get("threshold", DEFAULT_JOB_THRESHOLD))
            if job.kind == "search":
                assert collection_id is not None
                searcher = self._searcher(collection_id, threshold)
            analysis = analyse_video(
                str(path),
                self.collections.faces.engine,
                mode=job.kind,
                searcher=searcher,
                threshold=threshold,
                cancelled=self._cancel.is_set,
                progress=lambda _: self._renew(job.job_id),
            )
        except AnalysisCancelled:
            return  # shutting down: the job stays IN_PROGRESS and is queued on the next start
        except FaceLedgerError as exc:
            self.store.finish_job(job.job_id, status=FAILED, message=exc.message[:1000])
            self.record(caller, operation, collection_id, {"job_id": job.job_id}, exc.code)
            self._notify(job, FAILED)
            return
        finally:
            if temporary and path is not None:
                path.unlink(missing_ok=True)
        items = [_jsonable(item) for item in analysis_items(analysis)]
        metadata = _jsonable(analysis.metadata)
        self.store.finish_job(job.job_id, status=SUCCEEDED, metadata=metadata, results=items)
        summary: dict[str, Any] = {"job_id": job.job_id, "items": len(items)}
        if job.kind == "search":
            summary["matches"] = matched_faces(analysis)
        self.record(caller, operation, collection_id, summary, "ok")
        self._notify(job, SUCCEEDED)

    def _renew(self, job_id: str) -> None:
        now = time.monotonic()
        if now - self._renewed.get(job_id, 0.0) >= JOB_LEASE_S / 10:
            self._renewed[job_id] = now
            self.store.renew_claim(job_id, self._owner)

    def _searcher(self, collection_id: str, threshold: float) -> Searcher:
        def search(embeddings: np.ndarray) -> list[list[Hit]]:
            out = []
            for vector in embeddings:
                matches = self.collections.search_embedding(
                    collection_id, vector, max_faces=5, threshold=threshold
                )
                out.append([hit_of(m) for m in matches])
            return out

        return search

    def kind_of(self, job_id: str) -> str:
        """A job's kind ("search" for an unknown id, whose Get… then fails as not found)."""
        try:
            return self.store.job(job_id).kind
        except ResourceNotFoundError:
            return "search"

    def get_job(
        self,
        job_id: str,
        kind: str,
        *,
        max_results: int = MAX_RESULTS,
        next_token: str | None = None,
        sort_by: str = "TIMESTAMP",
    ) -> JobPage:
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidParameterError(f"MaxResults must be 1–{MAX_RESULTS}")
        if sort_by not in ("TIMESTAMP", "INDEX"):
            raise InvalidParameterError("SortBy must be TIMESTAMP or INDEX")
        job = self.store.job(job_id)
        if job.kind != kind:
            raise ResourceNotFoundError(f"the job {job_id!r} is not a {KINDS[kind][5:]} job")
        if job.status != SUCCEEDED:
            return JobPage(job, [], None)
        start = 0
        scope = f"{job_id}:{sort_by}"
        if next_token:
            start = int(self._tokens.decode(next_token, "video-job", scope))
        items = self.store.job_results(job_id)
        if sort_by == "INDEX":
            items.sort(key=lambda i: (i.get("index", -1), i.get("timestamp_ms", 0)))
        page = items[start : start + max_results]
        more = start + max_results < len(items)
        token = self._tokens.encode("video-job", scope, start + max_results) if more else None
        return JobPage(job, page, token)

    # -- stream processors ---------------------------------------------------------------------
    def check_source(self, source: str) -> str:
        """A live source the installation may open (the video layer checks the syntax:
        rtsp(s)/http(s) URLs, cameras); a file must lie under ``Settings.video_dirs``."""
        spec = parse_source(source)
        if spec.kind == "file":
            self.local_video(spec.url)
        elif spec.kind == "network" and not urlparse(spec.url).hostname:
            raise InvalidParameterError(f"the stream URL {source!r} has no host")
        return source

    def check_outputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        jsonl = outputs.get("jsonl")
        if jsonl is not None:
            if not isinstance(jsonl, str) or not NAME_RE.fullmatch(jsonl):
                raise InvalidParameterError(
                    "outputs.jsonl is a file name (letters, digits, '.', '-', '_'), written "
                    "under the data directory's streams/ folder"
                )
            out["jsonl"] = jsonl
        if outputs.get("jsonl_path") is not None:
            out["jsonl_path"] = str(outputs["jsonl_path"])  # set by the Rekognition adapter
        webhook = outputs.get("webhook")
        if webhook is not None:
            parsed = urlparse(str(webhook))
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise InvalidParameterError("outputs.webhook must be an http(s) URL")
            out["webhook"] = str(webhook)
        return out

    def create_processor(
        self,
        name: str,
        source: str,
        *,
        collection_id: str,
        threshold: float | None,
        outputs: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> ProcessorRow:
        if not NAME_RE.fullmatch(name):
            raise InvalidParameterError(
                "a stream processor name is 1–128 letters, digits, '.', '-' and '_'"
            )
        self.collections.describe_collection(collection_id)
        requested = STREAM_THRESHOLD_FLOOR if threshold is None else float(threshold)
        if not 0 <= requested <= 100:
            raise InvalidParameterError("FaceMatchThreshold must be 0–100")
        now = time.time()
        row = ProcessorRow(
            name=name,
            source=self.check_source(source),
            outputs=self.check_outputs(outputs),
            settings={
                "collection_id": collection_id,
                "threshold": max(requested, STREAM_THRESHOLD_FLOOR),
            },
            extra=extra or {},
            status="STOPPED",
            status_message="",
            created_at=now,
            updated_at=now,
        )
        self.store.create_processor(row)
        return row

    def describe_processor(self, name: str) -> tuple[ProcessorRow, dict[str, Any]]:
        """The stored definition and, while it runs, its live status and counters."""
        row = self.store.processor(name)
        with self._lock:
            running = self._running.get(name)
        if running is None or running.check_ended():
            return self.store.processor(name), {}
        status = running.status()
        row = dataclasses.replace(
            row, status=status["status"], status_message=status.get("message", "")
        )
        return row, status

    def list_processors(
        self, *, next_token: str | None, max_results: int
    ) -> tuple[list[ProcessorRow], str | None]:
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidParameterError(f"MaxResults must be 1–{MAX_RESULTS}")
        after = self._tokens.decode(next_token, "processors", "") if next_token else None
        rows = self.store.list_processors(after=after, limit=max_results + 1)
        more = len(rows) > max_results
        rows = rows[:max_results]
        token = self._tokens.encode("processors", "", rows[-1].name) if more and rows else None
        return [self.describe_processor(r.name)[0] for r in rows], token

    def update_processor(
        self,
        name: str,
        *,
        threshold: float | None = None,
        outputs: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ProcessorRow:
        row = self.store.processor(name)
        if self._is_running(name):
            raise ResourceInUseError(f"stop the stream processor {name!r} before updating it")
        changes: dict[str, Any] = {}
        if threshold is not None:
            if not 0 <= threshold <= 100:
                raise InvalidParameterError("FaceMatchThreshold must be 0–100")
            changes["settings"] = {
                **row.settings,
                "threshold": max(float(threshold), STREAM_THRESHOLD_FLOOR),
            }
        if outputs is not None:
            changes["outputs"] = self.check_outputs(outputs)
        if extra is not None:
            changes["extra"] = {**row.extra, **extra}
        return self.store.update_processor(name, **changes) if changes else row

    def delete_processor(self, name: str) -> None:
        self.store.processor(name)
        if self._is_running(name):
            raise ResourceInUseError(f"stop the stream processor {name!r} before deleting it")
        self.store.delete_processor(name)

    def _is_running(self, name: str) -> bool:
        with self._lock:
            running = self._running.get(name)
        return running is not None and not running.check_ended()

    def start_processor(self, caller: Caller, name: str, *, threshold: float) -> str:
        """Start watching; ``threshold`` is the effective one (after the collection's floor)."""
        row = self.store.processor(name)
        self._check_not_elsewhere(row)
        with self._lock:
            if name in self._running:
                raise ResourceInUseError(f"the stream processor {name!r} is already running")
            session_id = str(uuid.uuid4())
            running = _RunningProcessor(self, row, caller, session_id, threshold)
            self._running[name] = running
        try:
            running.start()
        except BaseException:
            with self._lock:
                self._running.pop(name, None)
            raise
        self.store.update_processor(name, status="RUNNING", status_message="", owner=self._owner)
        return session_id

    def stop_processor(self, name: str) -> None:
        self.store.processor(name)
        with self._lock:
            running = self._running.get(name)
        if running is None or running.check_ended():
            row = self.store.processor(name)
            self._check_not_elsewhere(row)
            if row.status == "RUNNING":  # its process died: record that it no longer runs
                self._stopped(name, "STOPPED", "its server process had stopped")
                return
            raise ResourceInUseError(f"the stream processor {name!r} is not running")
        running.stop("")

    def _check_not_elsewhere(self, row: ProcessorRow) -> None:
        """Refuse to start or stop a processor that another live server process runs."""
        if row.status == "RUNNING" and row.owner != self._owner and not self._dead(row.owner):
            raise ResourceInUseError(
                f"the stream processor {row.name!r} runs in another server process "
                f"({row.owner}); start and stop it through that process"
            )

    def _stopped(self, name: str, status: str, message: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):  # the store first, then forget it
            self.store.update_processor(name, status=status, status_message=message, owner=None)
        with self._lock:
            self._running.pop(name, None)
        self.hub.publish({"type": "status", "processor": name, "status": status})

    def jsonl_path(self, file_name: str) -> Path:
        return self.settings.data_dir / "streams" / f"{file_name}.jsonl"


class _RunningProcessor:
    """One started stream processor: the video layer's live processor plus its sinks."""

    def __init__(
        self,
        service: VideoService,
        row: ProcessorRow,
        caller: Caller,
        session_id: str,
        threshold: float,
    ) -> None:
        self.service = service
        self.row = row
        self.caller = dataclasses.replace(caller, source="video")
        self.session_id = session_id
        self.threshold = threshold
        self.matches = 0
        self.sinks: list[Sink] = []
        outputs = row.outputs
        if "jsonl" in outputs:
            self.sinks.append(JsonlSink(service.jsonl_path(outputs["jsonl"])))
        if "jsonl_path" in outputs:
            self.sinks.append(JsonlSink(Path(outputs["jsonl_path"])))
        if "webhook" in outputs:
            self.sinks.append(WebhookSink(outputs["webhook"]))
        collection_id = row.settings["collection_id"]
        self.live = LiveProcessor(
            row.source,
            service.collections.faces.engine,
            searcher=service._searcher(collection_id, threshold),
            threshold=threshold,
            on_event=self._on_event,
            source_id=row.name,
        )
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._finish_lock = threading.Lock()
        self._watcher = threading.Thread(
            target=self._watch, name=f"watch:{row.name}"[:60], daemon=True
        )

    def start(self) -> None:
        self.live.start()
        self._watcher.start()

    def _watch(self) -> None:
        """Notice when the live processor ends by itself (a file source ran out, or the
        source failed for good) and record it."""
        while not self._stopping.wait(0.5):
            if self.check_ended():
                return

    def check_ended(self) -> bool:
        """True once the processor's end is recorded; records it first if the live processor
        ended by itself (False while it runs, or while ``stop`` is under way)."""
        with self._finish_lock:
            if self._closed.is_set():
                return True
            if self._stopping.is_set() or self.live.running:
                return False
            status = self.live.status()
            failed = str(status.state) == "FAILED"
            message = status.message or ("the source ended" if not failed else "failed")
            self._finish_locked("FAILED" if failed else "STOPPED", message)
            return True

    def status(self) -> dict[str, Any]:
        """The live state (STARTING, RUNNING, RECONNECTING, STOPPED, FAILED), its message and
        counters; ``status`` is what the native API and the web app show (RECONNECTING while
        the source is away; the Rekognition adapter maps it to RUNNING with the state in
        StatusMessage, see ``rekognition_status``)."""
        live = self.live.status()
        state = str(live.state)
        message = live.message
        if state == "RECONNECTING":
            message = message or f"reconnecting to the source (reconnects: {live.reconnects})"
        # the source ended (STOPPED, FAILED): the last frames still run, so STOPPING
        shown = "STOPPING" if state in ("STOPPED", "FAILED") else state
        return {
            "status": shown,
            "state": state,
            "message": message,
            "frames_read": live.frames_read,
            "frames_dropped": live.frames_dropped,
            "frames_analysed": live.frames_analysed,
            "reconnects": live.reconnects,
            "last_frame_s": live.last_frame_s,
            "matches": self.matches,
            "session_id": self.session_id,
        }

    def stop(self, message: str) -> None:
        self._stopping.set()
        self.live.stop()
        self._finish("STOPPED", message)

    def _finish(self, status: str, message: str) -> None:
        self._stopping.set()
        with self._finish_lock:
            self._finish_locked(status, message)

    def _finish_locked(self, status: str, message: str) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._stopping.set()
        for sink in self.sinks:
            sink.close()
        self.service._stopped(self.row.name, status, message)

    def _on_event(self, event: MatchEvent) -> None:
        data = event_json(event)
        data.update(
            {
                "type": "match",
                "processor": self.row.name,
                "session_id": self.session_id,
                "collection_id": self.row.settings["collection_id"],
            }
        )
        try:
            self.service.record(
                self.caller,
                "StreamFaceMatch",
                self.row.settings["collection_id"],
                {
                    "processor": self.row.name,
                    "session_id": self.session_id,
                    "matches": [[data.get("face_id"), data.get("similarity")]],
                    "person_index": data.get("person_index"),
                    "timestamp_ms": event.frame_timestamp_ms,
                    "first_timestamp_ms": event.first_timestamp_ms,
                    "effective_threshold": self.threshold,
                },
                "ok",
            )
        except FaceLedgerError:
            logger.exception(
                "stream %s: a match could not be ledgered; not reported", self.row.name
            )
            return
        self.matches += 1
        crop = base64.b64encode(event.best_shot_jpeg).decode() if event.best_shot_jpeg else None
        for sink in self.sinks:
            try:
                sink.send(data)
            except OSError:
                logger.exception("stream %s: a sink failed", self.row.name)
        self.service.hub.publish({**data, "crop_jpeg_base64": crop})
