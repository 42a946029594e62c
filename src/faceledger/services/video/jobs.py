"""Stored-video jobs (``StartFaceDetection`` / ``StartFaceSearch`` / ``StartPersonTracking`` /
``StartLabelDetection``): the worker pool, leases and restart recovery, and paging the results.

The job row is durable before the JobId is returned; a pool of ``Settings.video_workers``
threads runs jobs in order, each holding a lease on its job that it renews while it runs. A
server that stops mid-job finds the job ``IN_PROGRESS`` on its next start and queues it again
from the beginning; a job whose video is gone by then is marked ``FAILED`` with the reason; a
job whose lease ran out (its process died) is taken over. Results are stored once, when the
job succeeds, and paged by ``get_job``. Each job's end is ledgered through ``record`` (by the
principal who started it, source ``video``, with the matched FaceIds for a face search) and
announced on its notification channel (``notifications.py``; a notification given up after its
last attempt is ledgered too). A server that stops gracefully hands its running jobs back
(their leases cleared), so another server takes them at once instead of after the lease.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import (
    FaceLedgerError,
    InvalidParameterError,
    ResourceNotFoundError,
)
from faceledger.domain.leads import LeadCandidate
from faceledger.domain.scale import SearchScale, VideoSearchScale
from faceledger.domain.video import Hit, VideoAnalysis
from faceledger.services.collections import CollectionService
from faceledger.services.gateway_base import scale_summary
from faceledger.services.labels import LabelFilters, LabelService
from faceledger.services.leads import LeadService
from faceledger.services.objects import ImageObjects
from faceledger.services.tokens import TokenSigner
from faceledger.services.video.common import (
    KINDS,
    MAX_RESULTS,
    Record,
    caller_from_json,
    caller_to_json,
    collection_searcher,
    jsonable,
    local_video,
    owner_gone,
)
from faceledger.services.video.labels import (
    aggregate_labels,
    analyse_labels,
    label_params,
    person_detector,
)
from faceledger.services.video.notifications import CompletionNotifier
from faceledger.store.base import VideoStore
from faceledger.store.records import (
    FAILED,
    IN_PROGRESS,
    SUCCEEDED,
    JobRow,
    OutboxRow,
)
from faceledger.video.pipeline import AnalysisCancelled
from faceledger.video.sampling import SamplingCancelled
from faceledger.video.stored import analyse_video

logger = logging.getLogger(__name__)

DEFAULT_JOB_THRESHOLD = 80.0
# A worker renews its claim on a running job at least every tenth of this; a job whose claim is
# older is taken over (its process died).
JOB_LEASE_S = 300.0
# An idle worker pool looks for jobs nobody holds (handed back by a stopping server, or left by
# a dead one) this often, so a server running beside the one that stopped takes them soon.
JOB_POLL_S = 30.0


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


def job_candidates(analysis: VideoAnalysis) -> dict[int, tuple[LeadCandidate, ...]]:
    """The faces a face-search job matched, per matched person (index, in order of first
    appearance): each person's lead candidates, best Similarity first."""
    best: dict[int, dict[str, Hit]] = {}
    for person in analysis.matches:
        mine = best.setdefault(person.index, {})
        for hit in person.matches:
            if hit.face_id not in mine or hit.similarity > mine[hit.face_id].similarity:
                mine[hit.face_id] = hit
    out: dict[int, tuple[LeadCandidate, ...]] = {}
    for index in sorted(best):
        ranked = sorted(best[index].values(), key=lambda h: (-h.similarity, h.face_id))
        out[index] = tuple(
            LeadCandidate(h.face_id, "face", round(h.similarity, 3), rank, h.external_image_id)
            for rank, h in enumerate(ranked)
        )
    return out


def job_scale(job: JobRow) -> VideoSearchScale | None:
    """A face-search job's scale: the collection's when the job started, with the people the
    job tracked once it has succeeded; None for other kinds (and jobs started without one)."""
    kept = job.params.get("scale")
    if job.kind != "search" or not isinstance(kept, dict):
        return None
    tracked = (job.metadata or {}).get("persons_tracked") if job.status == SUCCEEDED else None
    return VideoSearchScale(SearchScale.from_dict(kept), tracked)


def _scale_of_done(job: JobRow, persons_tracked: int) -> dict[str, Any]:
    """A face-search job's scale for its end record: the scale it started with, the people it
    tracked and the false candidates expected among them if none is enrolled."""
    kept = job.params.get("scale")
    if not isinstance(kept, dict):
        return {}
    done = VideoSearchScale(SearchScale.from_dict(kept), persons_tracked)
    expected = done.expected_false_persons
    return {
        "scale": scale_summary(done.scale),
        "persons_tracked": persons_tracked,
        "expected_false_persons": None if expected is None else float(f"{expected:.3g}"),
    }


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """What a Start… call asks for, as the gateway (which applies a face search's policy) and
    ``VideoJobs.start_job`` both take it. ``video``: ``{"S3Object": {"Bucket", "Name"[,
    "Version"]}}``, or ``{"path": …}`` inside ``Settings.video_dirs`` (/v1 and the CLI);
    ``collection_id`` and ``threshold``: a face search's; ``notification``: Rekognition's
    NotificationChannel (a completion message); ``min_confidence_pct`` and ``label_filters``
    (Settings.GeneralLabels): label detection's."""

    kind: str  # one of KINDS: faces, search, persons, labels
    video: dict[str, Any]
    collection_id: str | None = None
    threshold: float | None = None
    job_tag: str | None = None
    client_token: str | None = None
    notification: dict[str, Any] | None = None
    min_confidence_pct: float | None = None
    label_filters: LabelFilters | None = None


@dataclasses.dataclass(frozen=True)
class JobPage:
    job: JobRow
    items: list[dict[str, Any]]
    next_token: str | None
    scale: VideoSearchScale | None = None  # a face search's (``job_scale``)


class VideoJobs:
    """Stored-video jobs: queued, run by this process's workers (or by ``run_now``), paged."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: VideoStore,
        collections: CollectionService,
        objects: ImageObjects,
        record: Record,
        tokens: TokenSigner,
        owner: str,
        labels: LabelService | None = None,
        leads: LeadService | None = None,
    ) -> None:
        """``labels``: the labels pack's service (label detection jobs); without one the jobs
        build their own from ``settings`` (its model loads on the first label job).
        ``leads``: where a face-search job with matches becomes one lead; None: no leads."""
        self.settings = settings
        self.store = store
        self.collections = collections
        self.labels = labels if labels is not None else LabelService(settings)
        self.objects = objects
        self.record = record
        self.leads = leads
        self._tokens = tokens
        self._owner = owner
        self.notifier = CompletionNotifier(
            settings, store, owner=owner, on_give_up=self._notification_given_up
        )
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._renewed: dict[str, float] = {}
        self._pending: set[str] = set()  # queued or running in this process
        self._take_from: dict[str, str] = {}  # job → the dead owner it is taken from

    # -- the worker pool -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether this process's workers run (a process without them runs jobs itself)."""
        return bool(self._workers)

    def start_workers(self) -> None:
        """Start ``Settings.video_workers`` job workers and queue the jobs a previous run left
        unfinished (once)."""
        if self._workers:
            return
        for i in range(self.settings.video_workers):
            thread = threading.Thread(
                target=self._work, args=(i == 0,), name=f"video-job-{i}", daemon=True
            )
            thread.start()
            self._workers.append(thread)
        self.requeue_unclaimed()
        self.notifier.start()  # and post what an earlier run left undelivered

    def requeue_unclaimed(self) -> int:
        """Queue the jobs in progress that no live worker holds (left by a stopped process, or
        by one whose lease ran out); the server's maintenance calls this too."""
        if not self._workers:  # a process without workers (the CLI) runs its jobs itself
            return 0
        queued = 0
        expired = time.time() - JOB_LEASE_S
        for job in self.store.unfinished_jobs():
            holder = job.claimed_by
            if holder is None or (job.claimed_at or 0) < expired or owner_gone(holder, self._owner):
                queued += self._enqueue(job.job_id, take_from=holder)
        return queued

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

    def stop_workers(self) -> None:
        """Cancel the running analyses and end the workers; each job cancelled stays
        ``IN_PROGRESS`` and is handed back (its lease cleared: any server takes it at once)."""
        self._cancel.set()
        for _ in self._workers:
            self._queue.put(None)
        for thread in self._workers:
            thread.join(timeout=30)
        self._workers.clear()

    # -- starting a job ------------------------------------------------------------------------
    def start_job(
        self, caller: Caller, request: JobRequest, *, scale: SearchScale | None = None
    ) -> JobRow:
        """Queue a job. ``request.threshold`` is a face search's effective one; ``scale`` (a
        face search's, at the collection's size now) is kept with the job and stated with its
        results."""
        kind, collection_id, threshold = request.kind, request.collection_id, request.threshold
        min_confidence_pct, label_filters = request.min_confidence_pct, request.label_filters
        if kind not in KINDS:
            raise InvalidParameterError(f"unknown video job kind {kind!r}")
        self._check_video(request.video)
        params: dict[str, Any] = {}
        if kind == "labels":
            params = label_params(self.labels, min_confidence_pct, label_filters)
        elif min_confidence_pct is not None or label_filters is not None:
            raise InvalidParameterError("MinConfidence and label filters are for label jobs")
        if request.notification is not None:
            params["notification_channel"] = self.notifier.check_channel(request.notification)
        if kind == "search":
            if collection_id is None:
                raise InvalidParameterError("a face search needs a CollectionId")
            self.collections.describe_collection(collection_id)  # ResourceNotFound early
            params = {
                **params,
                "collection_id": collection_id,
                "threshold": DEFAULT_JOB_THRESHOLD if threshold is None else float(threshold),
                **({"scale": scale.as_dict()} if scale is not None else {}),
            }
        job = JobRow(
            job_id=uuid.uuid4().hex,
            kind=kind,
            status=IN_PROGRESS,
            status_message="",
            video=request.video,
            params=params,
            job_tag=request.job_tag,
            client_token=request.client_token,
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
            local_video(self.settings, str(video["path"]))
            return
        raise InvalidParameterError("a video is given as Video.S3Object (or a path, /v1 only)")

    def _resolve(self, job: JobRow) -> tuple[Path, bool]:
        """The job's video as a local file, and whether it is a temporary download."""
        if "path" in job.video:
            return local_video(self.settings, str(job.video["path"])), False
        obj = job.video["S3Object"]
        path = self.objects.video_file(
            obj["Bucket"],
            obj["Name"],
            obj.get("Version"),
            cache_dir=self.settings.data_dir / "video-cache",
            max_bytes=self.settings.max_video_bytes,
        )
        return path, obj["Bucket"] not in self.settings.s3_local_buckets

    # -- running a job -------------------------------------------------------------------------
    def run_now(self, job_id: str) -> None:
        """Run a queued job in this thread (the CLI, which has no worker pool)."""
        self._run_job(self.store.job(job_id))

    def _work(self, polls: bool = False) -> None:
        """Run queued jobs until told to stop; the worker that ``polls`` looks for unheld jobs
        whenever it has waited ``JOB_POLL_S`` without one."""
        while True:
            try:
                job_id = self._queue.get(timeout=JOB_POLL_S if polls else None)
            except queue.Empty:
                self._poll()
                continue
            if job_id is None:
                return
            try:
                self._run_job(self.store.job(job_id))
            except Exception:  # a bug, not a bad video: keep the worker alive, fail the job
                logger.exception("video job %s failed", job_id)
                self.store.finish_job(job_id, status=FAILED, message="internal error")
                self.notifier.notify(self.store.job(job_id), FAILED)
            finally:
                with self._lock:
                    self._pending.discard(job_id)
                self._renewed.pop(job_id, None)

    def _poll(self) -> None:
        if self._cancel.is_set():
            return
        try:
            self.requeue_unclaimed()
        except Exception:  # the store is unreachable for now: the next poll tries again
            logger.exception("looking for unheld video jobs failed")

    def _run_job(self, job: JobRow) -> None:
        with self._lock:
            take_from = self._take_from.pop(job.job_id, None)
        if self._cancel.is_set():
            return  # stopping: a job still queued here is left to the next server
        if job.status != IN_PROGRESS or not self.store.claim_job(
            job.job_id, self._owner, JOB_LEASE_S, take_from=take_from
        ):
            return  # done meanwhile, or another process runs it
        caller = caller_from_json(job.caller)
        operation = KINDS[job.kind].replace("Start", "") + "Job"
        collection_id = job.params.get("collection_id")
        summary: dict[str, Any] = {"job_id": job.job_id}
        try:
            if job.kind == "labels":
                meta, items = self._analyse_labels(job)
                metadata = jsonable(meta)
                summary["labels"] = sorted({i["label"]["name"] for i in items})[:100]
            else:
                analysis = self._analyse(job)
                items = [jsonable(item) for item in analysis_items(analysis)]
                metadata = jsonable(analysis.metadata)
                if job.kind == "search":
                    summary["matches"] = matched_faces(analysis)
                    metadata["persons_tracked"] = analysis.persons_tracked
        except AnalysisCancelled:  # shutting down: the job stays IN_PROGRESS, handed back
            if self.store.release_claim(job.job_id, self._owner):
                logger.info("video job %s handed back at shutdown", job.job_id)
            return
        except FaceLedgerError as exc:
            self.store.finish_job(job.job_id, status=FAILED, message=exc.message[:1000])
            self.record(caller, operation, collection_id, {"job_id": job.job_id}, exc.code)
            self.notifier.notify(job, FAILED)
            return
        self.store.finish_job(job.job_id, status=SUCCEEDED, metadata=metadata, results=items)
        summary["items"] = len(items)
        if job.kind == "search":
            summary.update(_scale_of_done(job, analysis.persons_tracked))
            summary["lead_ids"] = self._open_leads(job, caller, operation, analysis)
        self.record(caller, operation, collection_id, summary, "ok")
        self.notifier.notify(job, SUCCEEDED)

    def _open_leads(
        self, job: JobRow, caller: Caller, operation: str, analysis: VideoAnalysis
    ) -> list[str]:
        """One lead per person the face-search job matched, in order of first appearance,
        each with the person's best shot as its searched face (kept when the collection keeps
        crops); written before the job's end record, which names them. A lead that could not
        be written is logged and left out (the job's end is still recorded)."""
        collection_id = job.params.get("collection_id")
        if self.leads is None or not isinstance(collection_id, str):
            return []
        threshold = float(job.params.get("threshold", DEFAULT_JOB_THRESHOLD))
        scale = kept.scale if (kept := job_scale(job)) is not None else None
        lead_ids: list[str] = []
        for index, candidates in job_candidates(analysis).items():
            try:
                lead_id = self.leads.open_lead(
                    caller,
                    operation,
                    collection_id,
                    threshold,
                    candidates,
                    scale,
                    probe_jpeg=analysis.best_shot(index),
                )
            except Exception:
                logger.exception("video job %s: a person's lead could not be written", job.job_id)
                continue
            if lead_id is not None:
                lead_ids.append(lead_id)
        return lead_ids

    def _analyse(self, job: JobRow) -> VideoAnalysis:
        """Analyse the job's video, renewing its lease as frames go by (a temporary download
        is removed after)."""
        collection_id = job.params.get("collection_id")
        temporary = False
        path: Path | None = None
        try:
            path, temporary = self._resolve(job)
            searcher = None
            threshold = float(job.params.get("threshold", DEFAULT_JOB_THRESHOLD))
            if job.kind == "search":
                assert collection_id is not None
                searcher = collection_searcher(self.collections, collection_id, threshold)
            return analyse_video(
                str(path),
                self.collections.faces.engine,
                mode=job.kind,
                searcher=searcher,
                threshold=threshold,
                cancelled=self._cancel.is_set,
                progress=lambda _: self._renew(job.job_id),
                person_detector=person_detector(self.labels) if job.kind != "faces" else None,
            )
        finally:
            if temporary and path is not None:
                path.unlink(missing_ok=True)

    def _analyse_labels(self, job: JobRow) -> tuple[Any, list[dict[str, Any]]]:
        """Labels of the job's video at its sampling rate (``services/video/labels.py``)."""
        temporary = False
        path: Path | None = None
        try:
            path, temporary = self._resolve(job)
            return analyse_labels(
                str(path),
                self.labels,
                job.params,
                cancelled=self._cancel.is_set,
                progress=lambda _: self._renew(job.job_id),
            )
        except SamplingCancelled:
            raise AnalysisCancelled("the analysis was cancelled") from None
        finally:
            if temporary and path is not None:
                path.unlink(missing_ok=True)

    def _renew(self, job_id: str) -> None:
        now = time.monotonic()
        if now - self._renewed.get(job_id, 0.0) >= JOB_LEASE_S / 10:
            self._renewed[job_id] = now
            self.store.renew_claim(job_id, self._owner)

    def _notification_given_up(self, row: OutboxRow) -> None:
        """Ledger a completion notification given up after its last attempt, for the caller
        who started the job (``JobNotification``, outcome ``NotificationUndelivered``)."""
        job = self.store.job(row.job_id)
        self.record(
            caller_from_json(job.caller),
            "JobNotification",
            job.params.get("collection_id"),
            {
                "job_id": row.job_id,
                "message_id": row.message_id,
                "topic_arn": row.topic_arn,
                "attempts": row.attempts,
                "last_error": row.last_error[:300],
            },
            "NotificationUndelivered",
        )

    # -- results -------------------------------------------------------------------------------
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
        aggregate_by: str | None = None,
    ) -> JobPage:
        """A page of a job's results. Label jobs: ``sort_by`` TIMESTAMP or NAME and
        ``aggregate_by`` TIMESTAMPS (default) or SEGMENTS; the others: TIMESTAMP or INDEX."""
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidParameterError(f"MaxResults must be 1–{MAX_RESULTS}")
        sorts = ("TIMESTAMP", "NAME") if kind == "labels" else ("TIMESTAMP", "INDEX")
        if sort_by not in sorts:
            raise InvalidParameterError(f"SortBy must be {' or '.join(sorts)}")
        if aggregate_by is not None and kind != "labels":
            raise InvalidParameterError("AggregateBy is for label detection jobs")
        aggregation = aggregate_by or "TIMESTAMPS"
        job = self.store.job(job_id)
        if job.kind != kind:
            raise ResourceNotFoundError(f"the job {job_id!r} is not a {KINDS[kind][5:]} job")
        if job.status != SUCCEEDED:
            return JobPage(job, [], None, job_scale(job))
        start = 0
        scope = f"{job_id}:{sort_by}" + (f":{aggregation}" if kind == "labels" else "")
        if next_token:
            start = int(self._tokens.decode(next_token, "video-job", scope))
        items = self.store.job_results(job_id)
        if kind == "labels":
            items = aggregate_labels(
                items,
                aggregate_by=aggregation,
                sort_by=sort_by,
                interval_ms=int(job.params.get("interval_ms", 500)),
                duration_ms=int((job.metadata or {}).get("duration_ms", 0)),
            )
        elif sort_by == "INDEX":
            items.sort(key=lambda i: (i.get("index", -1), i.get("timestamp_ms", 0)))
        page = items[start : start + max_results]
        more = start + max_results < len(items)
        token = self._tokens.encode("video-job", scope, start + max_results) if more else None
        return JobPage(job, page, token, job_scale(job))
