"""``VideoService``: stored-video jobs and stream processors, wired together for the gateway.

It opens the video store, names this process (the owner of the jobs it runs and the
processors it watches), and orders start-up (orphaned processors recorded as stopped, then the
job workers, then the jobs a previous run left queued again) and shutdown (workers, then
processors, then completion webhooks, then the store).
"""

from __future__ import annotations

from faceledger.config import Settings
from faceledger.services.collections import CollectionService
from faceledger.services.labels import LabelService
from faceledger.services.objects import ImageObjects
from faceledger.services.tokens import TokenSigner, load_or_create_secret
from faceledger.services.video.common import Record, new_owner
from faceledger.services.video.jobs import VideoJobs
from faceledger.services.video.processors import StreamProcessors
from faceledger.store.base import VideoStore
from faceledger.store.factory import open_video_store
from faceledger.video.sinks import EventHub


class VideoService:
    """Stored-video jobs (``jobs``) and stream processors (``processors``); ``record``
    appends a ledger event."""

    def __init__(
        self,
        settings: Settings,
        collections: CollectionService,
        objects: ImageObjects,
        record: Record,
        *,
        store: VideoStore | None = None,
        labels: LabelService | None = None,
    ) -> None:
        """``store``: the process's video store, shared; without one the service opens (and
        closes) its own from ``settings``. ``labels``: the labels pack's service, shared with
        ``DetectLabels`` (label detection jobs, person detection for tracking bodies)."""
        self.settings = settings
        self._owns_store = store is None
        self.store = store if store is not None else open_video_store(settings)
        self.hub = EventHub()
        tokens = TokenSigner(load_or_create_secret(settings.data_dir / "token.key"))
        labels = labels if labels is not None else LabelService(settings)
        owner = new_owner()
        self.jobs = VideoJobs(
            settings,
            store=self.store,
            collections=collections,
            objects=objects,
            record=record,
            tokens=tokens,
            owner=owner,
            labels=labels,
        )
        self.processors = StreamProcessors(
            settings,
            store=self.store,
            collections=collections,
            record=record,
            hub=self.hub,
            tokens=tokens,
            owner=owner,
            labels=labels,
        )

    def start_workers(self) -> None:
        """Record the processors a previous run left as stopped, start the job workers and
        queue the jobs a previous run left unfinished (once)."""
        if self.jobs.running:
            return
        self.processors.stop_orphans()
        self.jobs.start_workers()

    def close(self) -> None:
        self.jobs.stop_workers()
        self.processors.stop_all("stopped: the server is shutting down")
        self.jobs.notifier.close()
        if self._owns_store:
            self.store.close()
