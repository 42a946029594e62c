"""The gateway's video verbs: stored-video jobs and stream processors. A face search applies
the collection's policy when it starts; the video service ledgers what happens later (a job's
end, each stream match) on behalf of the caller who started it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from faceledger.domain.audit import Caller
from faceledger.domain.errors import AccessDeniedError
from faceledger.domain.notification_signatures import key_id_of
from faceledger.domain.scale import SearchScale
from faceledger.services.collections import DEFAULT_FACE_MATCH_THRESHOLD
from faceledger.services.gateway_base import scale_summary
from faceledger.services.gateway_policy import PolicyVerbs
from faceledger.services.video.jobs import JobPage, JobRequest, job_scale
from faceledger.services.video.notification_keys import notification_key_file
from faceledger.store.records import JobRow, ProcessorRow

# The Rekognition operation that starts / gets each kind of stored-video job (the records'
# names; a job's end is recorded as e.g. "LabelDetectionJob").
START_OPERATIONS = {
    "faces": "StartFaceDetection",
    "search": "StartFaceSearch",
    "persons": "StartPersonTracking",
    "labels": "StartLabelDetection",
}
GET_OPERATIONS = {
    "faces": "GetFaceDetection",
    "search": "GetFaceSearch",
    "persons": "GetPersonTracking",
    "labels": "GetLabelDetection",
}


@dataclass(frozen=True)
class NotificationKey:
    """The notification signing key as an operator hands it to a receiver."""

    key_id: str
    key: bytes
    key_file: Path


class VideoVerbs(PolicyVerbs):
    """Stored-video jobs and stream processors."""

    def run_video_job(self, job_id: str) -> None:
        """Run a queued stored-video job in this process now (the CLI); its start was ledgered
        by ``start_video_job`` and its end is ledgered by the video service."""
        self._video.jobs.run_now(job_id)

    def start_video_workers(self) -> None:
        """Start the job workers (and re-queue jobs a previous run left unfinished)."""
        self._video.start_workers()

    def get_notification_key(self, caller: Caller) -> NotificationKey:
        """The key that signs completion notifications (created if absent), for the operator
        to give to a receiver (``domain/notification_signatures.py``). Admin only; ledgered as
        GetNotificationKey with the key's id and file, never the key."""

        def work() -> NotificationKey:
            signer = self._video.jobs.notifier.signer
            key = signer.key()
            return NotificationKey(key_id_of(key), key, notification_key_file(self.settings))

        return self._run(
            caller,
            "GetNotificationKey",
            work,
            summary=lambda got: {"key_id": got.key_id, "key_file": str(got.key_file)},
        )

    def start_video_job(self, caller: Caller, request: JobRequest) -> JobRow:
        """Queue a stored-video job (``request.kind``: faces, search, persons, labels). A face
        search applies the collection's policy now: purpose required, threshold raised to the
        floor, and the collection's scale at this size kept with the job (``job_scale``)."""
        operation = START_OPERATIONS.get(request.kind, "StartPersonTracking")
        collection_id, threshold = request.collection_id, request.threshold

        def work() -> JobRow:
            if request.kind != "search" or collection_id is None:
                return self._video.jobs.start_job(caller, request)
            policy = self._search_policy(caller, collection_id)
            requested = DEFAULT_FACE_MATCH_THRESHOLD if threshold is None else threshold
            scale = self.search_scale(collection_id, policy, requested)
            effective = replace(request, threshold=scale.threshold)
            return self._video.jobs.start_job(caller, effective, scale=scale)

        return self._run(
            caller,
            operation,
            work,
            collection_id=collection_id,
            summary=lambda job: {
                "job_id": job.job_id,
                "video": job.video,
                "requested_threshold": threshold,
                "threshold": job.params.get("threshold"),
                **({"scale": scale_summary(kept.scale)} if (kept := job_scale(job)) else {}),
                **(
                    {"min_confidence": job.params["min_confidence"]}
                    if "min_confidence" in job.params
                    else {}
                ),
            },
        )

    def get_video_job(
        self, caller: Caller, kind: str | None, job_id: str, **options: Any
    ) -> JobPage:
        """A page of a job's results; ``kind`` None (the native API) takes the job's own."""
        if kind is None:
            kind = self._video.jobs.kind_of(job_id)
        operation = GET_OPERATIONS.get(kind, "GetPersonTracking")
        return self._run(
            caller,
            operation,
            lambda: self._video.jobs.get_job(job_id, kind, **options),
            summary=lambda page: {
                "job_id": job_id,
                "status": page.job.status,
                "items": len(page.items),
            },
        )

    def create_stream_processor(
        self,
        caller: Caller,
        name: str,
        source: str,
        *,
        collection_id: str | None = None,
        threshold: float | None = None,
        outputs: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        connected_home: dict[str, Any] | None = None,
    ) -> ProcessorRow:
        """A face-search processor (``collection_id``, ``threshold``) or a person-event one
        (``connected_home``: ``labels`` ["PERSON"], ``min_confidence``)."""
        return self._run(
            caller,
            "CreateStreamProcessor",
            lambda: self._video.processors.create_processor(
                name,
                source,
                collection_id=collection_id,
                threshold=threshold,
                outputs=outputs or {},
                extra=extra,
                connected_home=connected_home,
            ),
            collection_id=collection_id,
            summary=lambda row: {
                "name": name,
                "source": row.source,
                "outputs": row.outputs,
                "threshold": row.settings["threshold"],
                **(
                    {"connected_home": row.settings["connected_home"]}
                    if "connected_home" in row.settings
                    else {}
                ),
            },
        )

    def describe_stream_processor(
        self, caller: Caller, name: str
    ) -> tuple[ProcessorRow, dict[str, Any]]:
        return self._run(
            caller,
            "DescribeStreamProcessor",
            lambda: self._video.processors.describe_processor(name),
            summary=lambda out: {"name": name, "status": out[0].status},
        )

    def list_stream_processors(
        self, caller: Caller, *, next_token: str | None = None, max_results: int = 1000
    ) -> tuple[list[ProcessorRow], str | None]:
        return self._run(
            caller,
            "ListStreamProcessors",
            lambda: self._video.processors.list_processors(
                next_token=next_token, max_results=max_results
            ),
            summary=lambda out: {"count": len(out[0])},
        )

    def update_stream_processor(self, caller: Caller, name: str, **changes: Any) -> ProcessorRow:
        return self._run(
            caller,
            "UpdateStreamProcessor",
            lambda: self._video.processors.update_processor(name, **changes),
            summary=lambda row: {"name": name, "threshold": row.settings.get("threshold")},
        )

    def delete_stream_processor(self, caller: Caller, name: str) -> None:
        self._run(
            caller,
            "DeleteStreamProcessor",
            lambda: self._video.processors.delete_processor(name),
            summary=lambda _: {"name": name},
        )

    def start_stream_processor(self, caller: Caller, name: str) -> str:
        """Start watching; the collection's policy applies (purpose, threshold floor), and
        every match is ledgered with this caller, purpose and case reference. A person-event
        processor has no collection: each event is ledgered with this caller, purpose and
        case reference."""
        collection: list[str] = []
        scales: list[SearchScale] = []

        def work() -> str:
            row = self._video.store.processor(name)
            collection_id = row.settings["collection_id"]
            threshold = float(row.settings["threshold"])
            if collection_id is None:  # ConnectedHome: presence only, no search
                return self._video.processors.start_processor(caller, name, threshold=threshold)
            collection.append(collection_id)
            policy = self._search_policy(caller, collection_id)
            scale = self.search_scale(collection_id, policy, threshold)
            scales.append(scale)
            return self._video.processors.start_processor(
                caller, name, threshold=scale.threshold, scale=scale
            )

        return self._run(
            caller,
            "StartStreamProcessor",
            work,
            summary=lambda session: {
                "name": name,
                "session_id": session,
                "collection_id": collection[0] if collection else None,
                "scale": scale_summary(scales[0]) if scales else None,
            },
        )

    def stream_events(self, caller: Caller, name: str) -> Any:
        """A live subscription to a processor's matches from now on (a context manager; an
        empty name: every processor's); nothing earlier is replayed. Watching is a search:
        it needs a purpose and a case reference, and is ledgered with them."""
        collection: list[str] = []

        def work() -> Any:
            if name:
                collection.append(self._video.store.processor(name).settings["collection_id"])
            if not (caller.purpose and caller.case_reference):
                raise AccessDeniedError(
                    "watching stream matches is a search: state a purpose and a case reference "
                    "(the headers X-FaceLedger-Purpose and X-FaceLedger-Case, the query "
                    "parameters purpose and case_reference, or --purpose and --case)"
                )
            return self._video.hub.subscribe(name or None)

        return self._run(
            caller,
            "GetStreamEvents",
            work,
            summary=lambda _: {
                "name": name,
                "collection_id": collection[0] if collection else None,
            },
        )

    def stop_stream_processor(self, caller: Caller, name: str) -> None:
        self._run(
            caller,
            "StopStreamProcessor",
            lambda: self._video.processors.stop_processor(name),
            summary=lambda _: {"name": name},
        )
