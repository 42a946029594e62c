"""Native video routes: stored-video jobs and stream processors, with live events (SSE).

Jobs take a server-side ``path`` (inside ``FACELEDGER_VIDEO_DIRS``) or an ``s3_object``;
results are the domain's values as JSON (timestamps in ms, boxes as ratios). Stream processors
take a plain ``source`` (rtsp://, http(s)://, file://, camera:N) and outputs ``jsonl`` (a file
name under ``<data_dir>/streams/``) and ``webhook`` (an http(s) URL). ``GET
/v1/stream-processors/{name}/events`` is a server-sent event stream of its matches (each with
the best-shot crop as base64 JPEG) and status changes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep, with_purpose
from faceledger.api.native.collections.schemas import SearchScaleOut
from faceledger.api.native.routes import COMMON_ERRORS
from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.policy import MAX_CASE_CHARS, MAX_PURPOSE_CHARS
from faceledger.domain.scale import VideoSearchScale
from faceledger.services.labels import LabelFilters
from faceledger.services.video.jobs import JobPage, JobRequest, job_scale
from faceledger.store.records import ProcessorRow

router = APIRouter(prefix="/v1", responses=COMMON_ERRORS)

NamePath = Annotated[str, Path(pattern=r"^[a-zA-Z0-9_.\-]{1,128}$")]
JobIdPath = Annotated[str, Path(pattern=r"^[a-zA-Z0-9\-_]{1,64}$")]
Purpose = Annotated[str | None, Field(max_length=MAX_PURPOSE_CHARS)]
Case = Annotated[str | None, Field(max_length=MAX_CASE_CHARS)]


class S3ObjectIn(BaseModel):
    bucket: str
    name: str
    version: str | None = None


class LabelFiltersIn(BaseModel):
    """Rekognition's Settings.GeneralLabels: label names and categories to keep or drop."""

    include: list[str] = Field(default_factory=list, max_length=100)
    exclude: list[str] = Field(default_factory=list, max_length=100)
    include_categories: list[str] = Field(default_factory=list, max_length=100)
    exclude_categories: list[str] = Field(default_factory=list, max_length=100)


class StartJobIn(BaseModel):
    kind: Literal["faces", "search", "persons", "labels"]
    path: str | None = Field(None, description="A video file inside FACELEDGER_VIDEO_DIRS.")
    s3_object: S3ObjectIn | None = None
    collection_id: str | None = Field(None, description="For kind 'search'.")
    threshold: float | None = Field(None, ge=0, le=100)
    min_confidence: float | None = Field(
        None, ge=0, le=100, description="For kind 'labels' (default 50)."
    )
    label_filters: LabelFiltersIn | None = Field(None, description="For kind 'labels'.")
    job_tag: str | None = Field(None, max_length=1024)
    client_token: str | None = Field(None, max_length=64, pattern=r"^[a-zA-Z0-9\-_]+$")
    purpose: Purpose = None
    case_reference: Case = None


class VideoSearchScaleOut(SearchScaleOut):
    """A face-search job's scale: the collection's at the job's start (as a search of it then
    would state), and what it means for the people the job tracked."""

    persons_tracked: int | None = Field(
        description="People tracked in the video, each searched as one search (null until "
        "the job succeeded)."
    )
    expected_false_persons: float | None = Field(
        description="persons_tracked × fpir: how many of them would be expected to get a "
        "false candidate if none of them is enrolled (an upper bound)."
    )
    video_statement: str = Field(description="The same, in one sentence.")


class JobOut(BaseModel):
    job_id: str
    kind: str
    status: str
    status_message: str | None = None
    metadata: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    next_token: str | None = None
    label_model_version: str | None = None
    threshold: float | None = Field(None, description="A face search's effective threshold.")
    scale: VideoSearchScaleOut | None = Field(
        None, description="A face search's: what a candidate means at the collection's size."
    )


class PersonEventsIn(BaseModel):
    """Rekognition's ConnectedHome settings: report people appearing (no face search)."""

    labels: list[str] = Field(default_factory=lambda: ["PERSON"], min_length=1, max_length=4)
    min_confidence: float = Field(50.0, ge=0, le=100)


class ProcessorIn(BaseModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.\-]{1,128}$")
    source: str = Field(min_length=1, max_length=2048)
    collection_id: str | None = Field(None, description="Search faces against it …")
    person_events: PersonEventsIn | None = Field(None, description="… or report people.")
    threshold: float | None = Field(None, ge=0, le=100)
    outputs: dict[str, str] = Field(default_factory=dict)


class ProcessorUpdate(BaseModel):
    threshold: float | None = Field(None, ge=0, le=100)
    outputs: dict[str, str] | None = None


class ProcessorOut(BaseModel):
    name: str
    source: str
    collection_id: str | None
    person_events: dict[str, Any] | None = None
    threshold: float
    outputs: dict[str, Any]
    status: str
    status_message: str = ""
    created_at: float
    updated_at: float
    live: dict[str, Any] = {}


class ProcessorList(BaseModel):
    stream_processors: list[ProcessorOut]
    next_token: str | None = None


class StartIn(BaseModel):
    purpose: Purpose = None
    case_reference: Case = None


def _scale(scale: VideoSearchScale | None) -> VideoSearchScaleOut | None:
    if scale is None:
        return None
    data = scale.as_dict()
    return VideoSearchScaleOut(
        **{k: v for k, v in data.items() if k in VideoSearchScaleOut.model_fields}
    )


def _job(page: JobPage) -> JobOut:
    job = page.job
    return JobOut(
        job_id=job.job_id,
        kind=job.kind,
        status=job.status,
        status_message=job.status_message or None,
        metadata=job.metadata,
        results=page.items,
        next_token=page.next_token,
        label_model_version=job.params.get("label_model_version"),
        threshold=job.params.get("threshold") if job.kind == "search" else None,
        scale=_scale(page.scale),
    )


def _processor(row: ProcessorRow, live: dict[str, Any] | None = None) -> ProcessorOut:
    return ProcessorOut(
        name=row.name,
        source=row.source,
        collection_id=row.settings["collection_id"],
        person_events=row.settings.get("connected_home"),
        threshold=row.settings["threshold"],
        outputs=row.outputs,
        status=row.status,
        status_message=row.status_message,
        created_at=row.created_at,
        updated_at=row.updated_at,
        live=live or {},
    )


@router.post("/video/jobs", status_code=202, tags=["video"], summary="Start a stored-video job")
async def start_job(
    request: Request, gate: GatewayDep, caller: CallerDep, body: StartJobIn
) -> JobOut:
    """Face detection, face search (against a collection), person tracking or label detection
    (two frames a second) of a video; poll ``GET /v1/video/jobs/{job_id}``."""
    if (body.path is None) == (body.s3_object is None):
        raise InvalidParameterError("give exactly one of path and s3_object")
    video: dict[str, Any]
    if body.path is not None:
        video = {"path": body.path}
    else:
        assert body.s3_object is not None
        obj = {"Bucket": body.s3_object.bucket, "Name": body.s3_object.name}
        if body.s3_object.version is not None:
            obj["Version"] = body.s3_object.version
        video = {"S3Object": obj}
    caller = with_purpose(caller, body.purpose, body.case_reference)
    filters = None
    if body.label_filters is not None:
        f = body.label_filters
        filters = LabelFilters(
            include=frozenset(f.include),
            exclude=frozenset(f.exclude),
            include_categories=frozenset(f.include_categories),
            exclude_categories=frozenset(f.exclude_categories),
        )
    asked = JobRequest(
        body.kind,
        video,
        collection_id=body.collection_id,
        threshold=body.threshold,
        job_tag=body.job_tag,
        client_token=body.client_token,
        min_confidence_pct=body.min_confidence,
        label_filters=filters,
    )
    job = await run_blocking(request, gate.start_video_job, caller, asked)
    return JobOut(
        job_id=job.job_id,
        kind=job.kind,
        status=job.status,
        threshold=job.params.get("threshold") if job.kind == "search" else None,
        scale=_scale(job_scale(job)),
    )


@router.get("/video/jobs/{job_id}", tags=["video"], summary="A stored-video job and its results")
async def get_job(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    job_id: JobIdPath,
    max_results: Annotated[int, Query(ge=1, le=1000)] = 1000,
    next_token: Annotated[str | None, Query(max_length=255)] = None,
    sort_by: Annotated[Literal["TIMESTAMP", "INDEX", "NAME"], Query()] = "TIMESTAMP",
    aggregate_by: Annotated[
        Literal["TIMESTAMPS", "SEGMENTS"] | None,
        Query(description="Label jobs: one item per sampled frame (default) or per segment."),
    ] = None,
) -> JobOut:
    """Results in pages. Label jobs sort by TIMESTAMP or NAME; the others by TIMESTAMP or
    INDEX."""
    page = await run_blocking(
        request,
        gate.get_video_job,
        caller,
        None,
        job_id,
        max_results=max_results,
        next_token=next_token,
        sort_by=sort_by,
        aggregate_by=aggregate_by,
    )
    return _job(page)


@router.post(
    "/stream-processors", status_code=201, tags=["streams"], summary="Create a stream processor"
)
async def create_processor(
    request: Request, gate: GatewayDep, caller: CallerDep, body: ProcessorIn
) -> ProcessorOut:
    row = await run_blocking(
        request,
        gate.create_stream_processor,
        caller,
        body.name,
        body.source,
        collection_id=body.collection_id,
        threshold=body.threshold,
        outputs=dict(body.outputs),
        connected_home=body.person_events.model_dump() if body.person_events else None,
    )
    return _processor(row)


@router.get("/stream-processors", tags=["streams"], summary="List stream processors")
async def list_processors(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    next_token: Annotated[str | None, Query(max_length=255)] = None,
    max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ProcessorList:
    rows, token = await run_blocking(
        request,
        gate.list_stream_processors,
        caller,
        next_token=next_token,
        max_results=max_results,
    )
    return ProcessorList(stream_processors=[_processor(r) for r in rows], next_token=token)


@router.get("/stream-processors/{name}", tags=["streams"], summary="Describe a stream processor")
async def describe_processor(
    request: Request, gate: GatewayDep, caller: CallerDep, name: NamePath
) -> ProcessorOut:
    """With ``live``: state (RUNNING, RECONNECTING…), frames read/dropped/analysed, reconnects,
    matches, while it runs."""
    row, live = await run_blocking(request, gate.describe_stream_processor, caller, name)
    return _processor(row, live)


@router.patch("/stream-processors/{name}", tags=["streams"], summary="Update a stopped processor")
async def update_processor(
    request: Request, gate: GatewayDep, caller: CallerDep, name: NamePath, body: ProcessorUpdate
) -> ProcessorOut:
    changes: dict[str, Any] = {}
    if body.threshold is not None:
        changes["threshold"] = body.threshold
    if body.outputs is not None:
        changes["outputs"] = dict(body.outputs)
    row = await run_blocking(request, gate.update_stream_processor, caller, name, **changes)
    return _processor(row)


@router.delete(
    "/stream-processors/{name}", status_code=204, tags=["streams"], summary="Delete a processor"
)
async def delete_processor(
    request: Request, gate: GatewayDep, caller: CallerDep, name: NamePath
) -> Response:
    await run_blocking(request, gate.delete_stream_processor, caller, name)
    return Response(status_code=204)


@router.post("/stream-processors/{name}/start", tags=["streams"], summary="Start watching")
async def start_processor(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    name: NamePath,
    body: StartIn | None = None,
) -> dict[str, str]:
    """The collection's policy applies: purpose and case reference when it requires them (in
    the body or the headers); every match is ledgered with them."""
    if body is not None:
        caller = with_purpose(caller, body.purpose, body.case_reference)
    session = await run_blocking(request, gate.start_stream_processor, caller, name)
    return {"session_id": session}


@router.post("/stream-processors/{name}/stop", tags=["streams"], summary="Stop watching")
async def stop_processor(
    request: Request, gate: GatewayDep, caller: CallerDep, name: NamePath
) -> dict[str, str]:
    await run_blocking(request, gate.stop_stream_processor, caller, name)
    return {"status": "STOPPED"}


async def event_stream(request: Request, subscription_cm: Any) -> AsyncIterator[bytes]:
    """Server-sent events from a hub subscription; a comment every 15 s keeps proxies open."""
    with subscription_cm as subscription:
        yield b": connected\n\n"
        idle = 0.0
        while not await request.is_disconnected():
            event = await anyio.to_thread.run_sync(subscription.get, 1.0)
            if event is None:
                idle += 1.0
                if idle >= 15.0:
                    idle = 0.0
                    yield b": keep-alive\n\n"
                continue
            idle = 0.0
            kind = str(event.get("type", "message"))
            yield f"event: {kind}\ndata: {json.dumps(event)}\n\n".encode()


@router.get(
    "/stream-processors/{name}/events", tags=["streams"], summary="Live events (server-sent)"
)
async def processor_events(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    name: NamePath,
    purpose: Annotated[
        str | None,
        Query(max_length=MAX_PURPOSE_CHARS, description="Why (wins over X-FaceLedger-Purpose)."),
    ] = None,
    case_reference: Annotated[
        str | None,
        Query(max_length=MAX_CASE_CHARS, description="Case (wins over X-FaceLedger-Case)."),
    ] = None,
) -> StreamingResponse:
    """``event: match`` with the match (face id, Similarity, person index, player-time
    timestamps, best-shot crop as base64 JPEG) and ``event: status`` when the processor stops
    or fails. Watching is a search: a purpose and a case reference are required (query
    parameters, for EventSource clients, or the headers), and the opening is ledgered with
    them. Only matches made from the moment it opens are sent; none of earlier runs."""
    caller = with_purpose(caller, purpose, case_reference)
    subscription = await run_blocking(request, gate.stream_events, caller, name)
    return StreamingResponse(
        event_stream(request, subscription),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
