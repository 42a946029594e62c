"""Rekognition's video operations: stored-video jobs and stream processors.

Stored video comes from ``Video.S3Object`` through the same bucket mapping as images (local
bucket folders or an S3-compatible store). Stream processors take their source from
``Input.KinesisVideoStream.Arn``, which must match Kinesis's ARN pattern; FaceLedger reads the
resource part: ``…:stream/<name>/…`` opens the source named ``<name>`` in
``FACELEDGER_VIDEO_SOURCES``, and ``…:source/<URL>`` opens the URL itself (rtsp://, http(s)://,
file:// under ``FACELEDGER_VIDEO_DIRS``, camera:N). Outputs: ``KinesisDataStream.Arn``
``…:stream/<name>`` writes JSON Lines to ``<data_dir>/streams/<name>.jsonl``;
``S3Destination`` writes ``<KeyPrefix><processor>.jsonl`` into a local bucket's folder.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from faceledger.api.rekognition import shapes
from faceledger.api.rekognition.dispatch import Context, operation
from faceledger.api.rekognition.labels import general_label_filters
from faceledger.domain.errors import InvalidParameterError, ResourceNotFoundError
from faceledger.domain.scale import VideoSearchScale
from faceledger.services.video.jobs import JobPage, JobRequest, job_scale
from faceledger.services.video.processors import rekognition_status
from faceledger.store.records import ProcessorRow

_KVS_ARN = re.compile(r"arn:[a-z\d-]+:kinesisvideo:[a-z\d-]+:\d{12}:(?P<resource>.+)")
_KDS_ARN = re.compile(r"arn:[a-z\d-]+:kinesis:[a-z\d-]+:\d{12}:stream/(?P<name>[a-zA-Z0-9_.\-]+)")


def _start(ctx: Context, kind: str, p: dict[str, Any]) -> dict[str, Any]:
    video = p["Video"]
    if "S3Object" not in video:
        raise ctx.refuse(InvalidParameterError("Video must have an S3Object"))
    request = JobRequest(
        kind,
        {"S3Object": video["S3Object"]},
        collection_id=p.get("CollectionId"),
        threshold=p.get("FaceMatchThreshold"),
        job_tag=p.get("JobTag"),
        client_token=p.get("ClientRequestToken"),
        notification=p.get("NotificationChannel"),
    )
    job = ctx.gate.start_video_job(ctx.caller, request)
    if job.params.get("threshold") is not None and kind == "search":
        ctx.effective_threshold(float(job.params["threshold"]))
    _job_scale(ctx, job_scale(job))
    return {"JobId": job.job_id}


def _job_scale(ctx: Context, scale: VideoSearchScale | None) -> None:
    """A face-search job's scale as response headers: the ones every search sends (the same
    values a search of the collection at the job's start reported), plus the job's own
    (x-faceledger-persons-tracked, -expected-false-persons, -video-scale)."""
    if scale is not None:
        ctx.effective_threshold(scale.scale.threshold)
        ctx.headers.update(scale.headers())


def _get(ctx: Context, kind: str, p: dict[str, Any], member: str) -> dict[str, Any]:
    options: dict[str, Any] = {"max_results": p.get("MaxResults", 1000)}
    if "NextToken" in p:
        options["next_token"] = p["NextToken"]
    if "SortBy" in p:
        options["sort_by"] = p["SortBy"]
    page: JobPage = ctx.gate.get_video_job(ctx.caller, kind, p["JobId"], **options)
    _job_scale(ctx, page.scale)
    job = page.job
    out: dict[str, Any] = {"JobId": job.job_id, "JobStatus": job.status, member: []}
    if job.status_message:
        out["StatusMessage"] = job.status_message
    if job.metadata is not None:
        out["VideoMetadata"] = shapes.video_metadata(job.metadata)
    if "S3Object" in job.video:
        out["Video"] = {"S3Object": job.video["S3Object"]}
    if job.job_tag is not None:
        out["JobTag"] = job.job_tag
    out[member] = [shapes.video_item(kind, item) for item in page.items]
    if page.next_token is not None:
        out["NextToken"] = page.next_token
    return out


@operation
def start_face_detection(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _start(ctx, "faces", p)


@operation
def get_face_detection(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _get(ctx, "faces", p, "Faces")


@operation
def start_face_search(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _start(ctx, "search", p)


@operation
def get_face_search(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _get(ctx, "search", p, "Persons")


@operation
def start_person_tracking(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _start(ctx, "persons", p)


@operation
def get_person_tracking(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _get(ctx, "persons", p, "Persons")


# -- label detection -----------------------------------------------------------------------------
@operation
def start_label_detection(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    """Labels on two frames a second (``services/video/labels.py``); Features GENERAL_LABELS."""
    video = p["Video"]
    if "S3Object" not in video:
        raise ctx.refuse(InvalidParameterError("Video must have an S3Object"))
    features = p.get("Features") or ["GENERAL_LABELS"]
    if list(features) != ["GENERAL_LABELS"]:
        raise ctx.refuse(InvalidParameterError("Features may only be GENERAL_LABELS"))
    request = JobRequest(
        "labels",
        {"S3Object": video["S3Object"]},
        job_tag=p.get("JobTag"),
        client_token=p.get("ClientRequestToken"),
        notification=p.get("NotificationChannel"),
        min_confidence_pct=p.get("MinConfidence"),
        label_filters=general_label_filters(p.get("Settings") or {}),
    )
    job = ctx.gate.start_video_job(ctx.caller, request)
    return {"JobId": job.job_id}


def video_label(item: dict[str, Any]) -> dict[str, Any]:
    """A LabelDetection from a stored (or aggregated) label item."""
    label = item["label"]
    out: dict[str, Any] = {
        "Timestamp": item["timestamp_ms"],
        "Label": {
            "Name": label["name"],
            "Confidence": round(label["confidence_pct"], shapes.SCORE_DIGITS),
            "Instances": [
                {
                    "BoundingBox": shapes.video_box(i["box"]),
                    "Confidence": round(i["confidence_pct"], shapes.SCORE_DIGITS),
                }
                for i in label.get("instances", ())
            ],
            "Parents": [{"Name": n} for n in label.get("parents", ())],
            "Aliases": [],
            "Categories": [{"Name": label["category"]}] if label.get("category") else [],
        },
    }
    if "start_ms" in item:
        out["StartTimestampMillis"] = item["start_ms"]
        out["EndTimestampMillis"] = item["end_ms"]
        out["DurationMillis"] = item["duration_ms"]
    return out


@operation
def get_label_detection(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    sort_by = p.get("SortBy", "TIMESTAMP")
    aggregate_by = p.get("AggregateBy", "TIMESTAMPS")
    options: dict[str, Any] = {
        "max_results": p.get("MaxResults", 1000),
        "sort_by": sort_by,
        "aggregate_by": aggregate_by,
    }
    if "NextToken" in p:
        options["next_token"] = p["NextToken"]
    page: JobPage = ctx.gate.get_video_job(ctx.caller, "labels", p["JobId"], **options)
    job = page.job
    out: dict[str, Any] = {"JobId": job.job_id, "JobStatus": job.status, "Labels": []}
    if job.status_message:
        out["StatusMessage"] = job.status_message
    if job.metadata is not None:
        out["VideoMetadata"] = shapes.video_metadata(job.metadata)
    if "S3Object" in job.video:
        out["Video"] = {"S3Object": job.video["S3Object"]}
    if job.job_tag is not None:
        out["JobTag"] = job.job_tag
    if "label_model_version" in job.params:
        out["LabelModelVersion"] = job.params["label_model_version"]
    out["Labels"] = [video_label(item) for item in page.items]
    if page.next_token is not None:
        out["NextToken"] = page.next_token
    out["GetRequestMetadata"] = {"SortBy": sort_by, "AggregateBy": aggregate_by}
    return out


# -- stream processors ---------------------------------------------------------------------------
def _source(ctx: Context, arn: str) -> str:
    match = _KVS_ARN.fullmatch(arn)
    if match is None:
        raise ctx.refuse(
            InvalidParameterError(f"Input.KinesisVideoStream.Arn {arn!r} is not a Kinesis ARN")
        )
    resource = match["resource"]
    if resource.startswith("source/"):
        return resource.removeprefix("source/")
    name = resource.removeprefix("stream/").split("/", 1)[0]
    source = ctx.settings.video_sources.get(name)
    if not resource.startswith("stream/") or source is None:
        raise ctx.refuse(
            ResourceNotFoundError(
                f"no video source named {name!r}: list it in FACELEDGER_VIDEO_SOURCES "
                "(name=URL), or give the URL in the ARN as …:source/<URL>"
            )
        )
    return source


def _outputs(ctx: Context, name: str, output: dict[str, Any]) -> dict[str, Any]:
    if "KinesisDataStream" in output:
        arn = output["KinesisDataStream"].get("Arn", "")
        match = _KDS_ARN.fullmatch(arn)
        if match is None:
            raise ctx.refuse(
                InvalidParameterError(f"Output.KinesisDataStream.Arn {arn!r} is invalid")
            )
        return {"jsonl": match["name"]}
    if "S3Destination" in output:
        dest = output["S3Destination"]
        bucket = dest.get("Bucket", "")
        folder = ctx.settings.s3_local_buckets.get(bucket)
        if folder is None:
            raise ctx.refuse(
                InvalidParameterError(
                    f"Output.S3Destination: bucket {bucket!r} is not a local bucket "
                    "(FACELEDGER_S3_LOCAL_BUCKETS); only local buckets take stream output"
                )
            )
        prefix = PurePosixPath(dest.get("KeyPrefix", "") + f"{name}.jsonl")
        root = Path(folder).resolve()
        path = (root / prefix).resolve()
        if prefix.is_absolute() or ".." in prefix.parts or not path.is_relative_to(root):
            raise ctx.refuse(
                InvalidParameterError("Output.S3Destination.KeyPrefix must stay in the bucket")
            )
        return {"jsonl_path": str(path)}
    raise ctx.refuse(InvalidParameterError("Output needs KinesisDataStream or S3Destination"))


_KEPT = ("RegionsOfInterest", "DataSharingPreference", "NotificationChannel", "KmsKeyId")


@operation
def create_stream_processor(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    settings = p["Settings"]
    if ("FaceSearch" in settings) == ("ConnectedHome" in settings):
        raise ctx.refuse(
            InvalidParameterError("Settings needs exactly one of FaceSearch and ConnectedHome")
        )
    search = settings.get("FaceSearch")
    home = settings.get("ConnectedHome")
    if search is not None and "CollectionId" not in search:
        raise ctx.refuse(InvalidParameterError("Settings.FaceSearch.CollectionId is required"))
    name = p["Name"]
    extra = {k: p[k] for k in _KEPT if k in p}
    extra.update({"Input": p["Input"], "Output": p["Output"], "RoleArn": p["RoleArn"]})
    ctx.gate.create_stream_processor(
        ctx.caller,
        name,
        _source(ctx, p["Input"].get("KinesisVideoStream", {}).get("Arn", "")),
        collection_id=search["CollectionId"] if search is not None else None,
        threshold=search.get("FaceMatchThreshold") if search is not None else None,
        outputs=_outputs(ctx, name, p["Output"]),
        extra={"rekognition": extra, "tags": p.get("Tags", {})},
        connected_home=(
            {"labels": home["Labels"], **_min_confidence(home)} if home is not None else None
        ),
    )
    return {
        "StreamProcessorArn": shapes.stream_processor_arn(
            ctx.settings.region, ctx.settings.account_id, name
        )
    }


def _min_confidence(home: dict[str, Any]) -> dict[str, Any]:
    return {"min_confidence": home["MinConfidence"]} if "MinConfidence" in home else {}


def _settings(row: ProcessorRow) -> dict[str, Any]:
    home = row.settings.get("connected_home")
    if home is not None:
        return {
            "ConnectedHome": {"Labels": home["labels"], "MinConfidence": home["min_confidence"]}
        }
    return {
        "FaceSearch": {
            "CollectionId": row.settings["collection_id"],
            "FaceMatchThreshold": row.settings["threshold"],
        }
    }


def _describe(ctx: Context, row: ProcessorRow) -> dict[str, Any]:
    kept = row.extra.get("rekognition", {})
    status, message = rekognition_status(row.status, row.status_message)
    out: dict[str, Any] = {
        "Name": row.name,
        "StreamProcessorArn": shapes.stream_processor_arn(
            ctx.settings.region, ctx.settings.account_id, row.name
        ),
        "Status": status,
        "CreationTimestamp": row.created_at,
        "LastUpdateTimestamp": row.updated_at,
        "Settings": _settings(row),
    }
    if message:
        out["StatusMessage"] = message
    for key in ("Input", "Output", "RoleArn", *_KEPT):
        if key in kept:
            out[key] = kept[key]
    return out


@operation
def describe_stream_processor(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row, _ = ctx.gate.describe_stream_processor(ctx.caller, p["Name"])
    return _describe(ctx, row)


@operation
def list_stream_processors(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    rows, token = ctx.gate.list_stream_processors(
        ctx.caller, next_token=p.get("NextToken"), max_results=p.get("MaxResults", 1000)
    )
    out: dict[str, Any] = {
        "StreamProcessors": [
            {"Name": r.name, "Status": rekognition_status(r.status, "")[0]} for r in rows
        ]
    }
    if token is not None:
        out["NextToken"] = token
    return out


@operation
def start_stream_processor(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    if "StartSelector" in p or "StopSelector" in p:
        raise ctx.refuse(
            InvalidParameterError(
                "StartSelector and StopSelector apply to Kinesis video streams only"
            )
        )
    return {"SessionId": ctx.gate.start_stream_processor(ctx.caller, p["Name"])}


@operation
def stop_stream_processor(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    ctx.gate.stop_stream_processor(ctx.caller, p["Name"])
    return {}


@operation
def update_stream_processor(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    if "SettingsForUpdate" in p:
        raise ctx.refuse(InvalidParameterError("ConnectedHome settings are not supported"))
    row, _ = ctx.gate.describe_stream_processor(ctx.caller, p["Name"])
    kept = dict(row.extra.get("rekognition", {}))
    if "RegionsOfInterestForUpdate" in p:
        kept["RegionsOfInterest"] = p["RegionsOfInterestForUpdate"]
    if "DataSharingPreferenceForUpdate" in p:
        kept["DataSharingPreference"] = p["DataSharingPreferenceForUpdate"]
    for gone in p.get("ParametersToDelete", ()):
        if gone == "RegionsOfInterest":
            kept.pop("RegionsOfInterest", None)
    ctx.gate.update_stream_processor(ctx.caller, p["Name"], extra={"rekognition": kept})
    return {}


@operation
def delete_stream_processor(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    ctx.gate.delete_stream_processor(ctx.caller, p["Name"])
    return {}
