"""Live stream processors: definitions (source, collection, threshold, outputs), starting and
stopping them, and their outputs.

A processor either searches faces against a collection (Rekognition's ``FaceSearch``) or
reports people appearing (``ConnectedHome`` with Labels ["PERSON"], ``person_events.py``: bodies
from the labels pack, no face work); each person event is ledgered (``StreamPersonDetected``,
with the purpose and case reference of whoever started the processor) before any output.

The definition is stored; ``start_processor`` runs the video layer's live processor
(latest-frame reader + detection + tracking + search) and sends each match event to the ledger
first (a match the ledger cannot record is reported nowhere), then to the processor's JSONL
file, its webhook and the live subscribers (server-sent events, ``hub``). A server restart
leaves every processor ``STOPPED`` ("stopped by a server restart"): watching resumes only when
someone starts it again, with a purpose, on the record.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import (
    FaceLedgerError,
    InvalidParameterError,
    ResourceInUseError,
    ResourceNotFoundError,
)
from faceledger.domain.leads import LeadCandidate
from faceledger.domain.scale import SearchScale
from faceledger.domain.video import MatchEvent, PersonEvent
from faceledger.services.collections import CollectionService
from faceledger.services.labels import LabelService
from faceledger.services.leads import LeadService
from faceledger.services.tokens import TokenSigner
from faceledger.services.video.common import (
    MAX_RESULTS,
    Record,
    collection_searcher,
    jsonable,
    local_video,
    owner_gone,
)
from faceledger.services.video.labels import person_detector
from faceledger.store.base import VideoStore
from faceledger.store.records import ProcessorRow
from faceledger.video.live import LiveProcessor
from faceledger.video.person_events import PersonEventPipeline
from faceledger.video.sinks import EventHub, JsonlSink, Sink, WebhookSink
from faceledger.video.sources import parse_source

logger = logging.getLogger(__name__)

# Rekognition's stream processors search at 80 or above (FaceSearchSettings); ours too.
STREAM_THRESHOLD_FLOOR = 80.0
NAME_RE = re.compile(r"[a-zA-Z0-9_.\-]{1,128}")
CONNECTED_HOME_LABELS = ("PERSON",)  # the labels pack has people, not pets or packages
DEFAULT_PERSON_CONFIDENCE = 50.0


def check_connected_home(settings: dict[str, Any]) -> dict[str, Any]:
    """ConnectedHome settings checked: Labels (PERSON only) and MinConfidence (0–100)."""
    labels = [str(label).upper() for label in settings.get("labels", ())]
    if not labels or any(label not in CONNECTED_HOME_LABELS for label in labels):
        raise InvalidParameterError(
            "ConnectedHome Labels may only be PERSON here (the labels pack detects people, "
            "not pets or packages)"
        )
    confidence = float(settings.get("min_confidence", DEFAULT_PERSON_CONFIDENCE))
    if not 0 <= confidence <= 100:
        raise InvalidParameterError("ConnectedHome MinConfidence must be 0–100")
    return {"labels": sorted(set(labels)), "min_confidence": confidence}


def event_json(event: MatchEvent) -> dict[str, Any]:
    """A match event as sent to sinks (without the best-shot JPEG)."""
    data = jsonable(event)
    data.pop("best_shot_jpeg", None)
    data["timestamp_ms"] = event.frame_timestamp_ms  # player time of the deciding frame
    data["latency_ms"] = round((event.emitted_s - event.frame_arrival_s) * 1000, 1)
    return data


def person_event_json(event: PersonEvent, processor: str, session_id: str) -> dict[str, Any]:
    """A person event as sent to sinks: the members of Rekognition's ConnectedHome
    notification (``eventNamespace``, ``labels`` with ``name``, ``confidence`` and
    ``boundingBox`` in ratios, ``sessionId``) plus FaceLedger's own ``type``, ``processor``,
    ``timestamp_ms`` (player time) and ``latency_ms``."""
    box = event.box
    return {
        "type": "person",
        "processor": processor,
        "eventNamespace": {"type": "LABEL_DETECTED"},
        "eventId": f"{session_id}:{event.track_id}",
        "sessionId": session_id,
        "labels": [
            {
                "id": str(event.track_id),
                "name": event.label,
                "confidence": round(event.confidence, 3),
                "boundingBox": {
                    "width": round(box.width, 6),
                    "height": round(box.height, 6),
                    "left": round(box.left, 6),
                    "top": round(box.top, 6),
                },
            }
        ],
        "timestamp_ms": event.frame_timestamp_ms,
        "latency_ms": round((event.emitted_s - event.frame_arrival_s) * 1000, 1),
    }


REKOGNITION_STREAM_STATUSES = ("STOPPED", "STARTING", "RUNNING", "FAILED", "STOPPING", "UPDATING")


def rekognition_status(status: str, message: str) -> tuple[str, str]:
    """A processor's (status, message) as Rekognition may say them: its StreamProcessorStatus
    has no RECONNECTING, so a reconnecting processor is RUNNING with the state leading the
    StatusMessage."""
    if status in REKOGNITION_STREAM_STATUSES:
        return status, message
    return "RUNNING", f"{status}: {message}" if message else status


class StreamProcessors:
    """Stream processor definitions and the ones this process runs; ``record`` appends a
    ledger event, ``hub`` carries matches and status changes to live subscribers."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: VideoStore,
        collections: CollectionService,
        record: Record,
        hub: EventHub,
        tokens: TokenSigner,
        owner: str,
        labels: LabelService | None = None,
        leads: LeadService | None = None,
    ) -> None:
        """``labels``: the labels pack's service (person events); built from ``settings``
        when not given. ``leads``: where each match becomes a lead (``docs/REVIEW.md``); None:
        no leads."""
        self.settings = settings
        self.store = store
        self.collections = collections
        self.labels = labels if labels is not None else LabelService(settings)
        self.record = record
        self.leads = leads
        self.hub = hub
        self._tokens = tokens
        self._owner = owner
        self._running: dict[str, _RunningProcessor] = {}
        self._lock = threading.Lock()

    def stop_orphans(self) -> None:
        """Record as ``STOPPED`` the processors whose server process is gone (at start)."""
        for row in self.store.list_processors(after=None, limit=1_000_000):
            if row.status not in ("STOPPED", "FAILED") and owner_gone(row.owner, self._owner):
                self.store.update_processor(
                    row.name,
                    status="STOPPED",
                    status_message="stopped by a server restart",
                    owner=None,
                )

    def stop_all(self, message: str) -> None:
        """Stop every processor this process runs (the server is shutting down)."""
        with self._lock:
            running = list(self._running.values())
        for processor in running:
            processor.stop(message)

    def check_source(self, source: str) -> str:
        """A live source the installation may open (the video layer checks the syntax:
        rtsp(s)/http(s) URLs, cameras); a file must lie under ``Settings.video_dirs``."""
        spec = parse_source(source)
        if spec.kind == "file":
            local_video(self.settings, spec.url)
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
        collection_id: str | None,
        threshold: float | None,
        outputs: dict[str, Any],
        extra: dict[str, Any] | None = None,
        connected_home: dict[str, Any] | None = None,
    ) -> ProcessorRow:
        """A face search processor (``collection_id``) or a person-event one
        (``connected_home``: ``labels``, ``min_confidence``); exactly one of the two."""
        if not NAME_RE.fullmatch(name):
            raise InvalidParameterError(
                "a stream processor name is 1–128 letters, digits, '.', '-' and '_'"
            )
        if (collection_id is None) == (connected_home is None):
            raise InvalidParameterError(
                "a stream processor needs exactly one of a collection (FaceSearch) and "
                "ConnectedHome settings"
            )
        kind_settings: dict[str, Any]
        if connected_home is not None:
            home = check_connected_home(connected_home)
            kind_settings = {
                "collection_id": None,
                "threshold": home["min_confidence"],
                "connected_home": home,
            }
        else:
            assert collection_id is not None
            self.collections.describe_collection(collection_id)
            requested = STREAM_THRESHOLD_FLOOR if threshold is None else float(threshold)
            if not 0 <= requested <= 100:
                raise InvalidParameterError("FaceMatchThreshold must be 0–100")
            kind_settings = {
                "collection_id": collection_id,
                "threshold": max(requested, STREAM_THRESHOLD_FLOOR),
            }
        now = time.time()
        row = ProcessorRow(
            name=name,
            source=self.check_source(source),
            outputs=self.check_outputs(outputs),
            settings=kind_settings,
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
        if threshold is not None and "connected_home" in row.settings:
            raise InvalidParameterError("a person-event processor has no FaceMatchThreshold")
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

    def start_processor(
        self, caller: Caller, name: str, *, threshold: float, scale: SearchScale | None = None
    ) -> str:
        """Start watching; ``threshold`` is the effective one (after the collection's floor);
        ``scale``: what a match means at that threshold and the collection's size when the
        processor starts (carried by every match's record and event)."""
        row = self.store.processor(name)
        self._check_not_elsewhere(row)
        with self._lock:
            if name in self._running:
                raise ResourceInUseError(f"the stream processor {name!r} is already running")
            session_id = str(uuid.uuid4())
            running = _RunningProcessor(self, row, caller, session_id, threshold)
            running.scale = scale
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
        ours = row.owner == self._owner
        if row.status == "RUNNING" and not ours and not owner_gone(row.owner, self._owner):
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
        service: StreamProcessors,
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
        self.scale: SearchScale | None = None  # set by ``start_processor``
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
        home = row.settings.get("connected_home")
        if home is not None:
            detect = person_detector(service.labels)
            if detect is None:
                raise InvalidParameterError("the labels pack has no person class")
            self.live = LiveProcessor(
                row.source,
                service.collections.faces.engine,
                searcher=None,
                source_id=row.name,
                pipeline=PersonEventPipeline(
                    detect,
                    min_confidence_pct=float(home["min_confidence"]),
                    on_event=self._on_person,
                    source_id=row.name,
                ),
            )
        else:
            self.live = LiveProcessor(
                row.source,
                service.collections.faces.engine,
                searcher=collection_searcher(service.collections, collection_id, threshold),
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

    def _on_person(self, event: PersonEvent) -> None:
        """A person appeared: ledgered first (with the starter's purpose and case reference),
        then sent to the outputs in the shape of Rekognition's ConnectedHome notification."""
        data = person_event_json(event, self.row.name, self.session_id)
        try:
            self.service.record(
                self.caller,
                "StreamPersonDetected",
                None,
                {
                    "processor": self.row.name,
                    "session_id": self.session_id,
                    "label": event.label,
                    "confidence": round(event.confidence, 3),
                    "track_id": event.track_id,
                    "timestamp_ms": event.frame_timestamp_ms,
                },
                "ok",
            )
        except FaceLedgerError:
            logger.exception(
                "stream %s: a person event could not be ledgered; not reported", self.row.name
            )
            return
        self.matches += 1
        for sink in self.sinks:
            try:
                sink.send(data)
            except OSError:
                logger.exception("stream %s: a sink failed", self.row.name)
        crop = base64.b64encode(event.crop_jpeg).decode() if event.crop_jpeg else None
        self.service.hub.publish({**data, "crop_jpeg_base64": crop})

    def _open_lead(self, event: MatchEvent) -> str | None:
        """The lead of a match (written before its record); None when this service makes no
        leads or the lead could not be written (the match is still recorded and reported)."""
        leads = self.service.leads
        if leads is None:
            return None
        candidate = LeadCandidate(
            candidate_id=event.face_id,
            kind="face",
            similarity=round(event.similarity, 3),
            rank=0,
            external_image_id=event.external_image_id,
        )
        try:
            return leads.open_lead(
                self.caller,
                "StreamFaceMatch",
                self.row.settings["collection_id"],
                self.threshold,
                (candidate,),
                self.scale,
                probe_jpeg=event.best_shot_jpeg,  # kept when the collection keeps crops
            )
        except Exception:
            logger.exception("stream %s: a match's lead could not be written", self.row.name)
            return None

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
        scale = self.scale.as_dict() if self.scale is not None else None
        if self.scale is not None:  # with the sentence every search's answer states
            data["scale"] = {**self.scale.as_dict(), "statement": self.scale.statement}
        lead_id = self._open_lead(event)
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
                    "scale": scale,
                    "lead_id": lead_id,
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
