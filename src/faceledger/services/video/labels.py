"""Label detection in stored video (``StartLabelDetection`` / ``GetLabelDetection``).

**Sampling.** Labels are detected on two frames a second of player time
(``video.sampling.DEFAULT_SAMPLE_INTERVAL_MS`` = 500 ms: the first frame at or after each
multiple), with the labels pack of ``DetectLabels`` (``LabelService``: YOLOX, COCO classes
mapped to Rekognition's names with Parents and Categories; ancestors are labels too).
``MinConfidence`` (Rekognition's video default: 50) and ``Settings.GeneralLabels`` filters
apply at each sampled frame. The job stores one item per (sampled frame, label).

**Aggregation** (at ``GetLabelDetection``, so one job answers both):

* ``TIMESTAMPS``: one item per sampled frame and label, with the label's Instances (boxes)
  in that frame.
* ``SEGMENTS``: consecutive samples of a label merge into one segment; a sample without the
  label ends it. ``StartTimestampMillis`` is the first sample's time, ``EndTimestampMillis``
  the last sample's time plus one interval (at most the video's duration),
  ``DurationMillis`` their difference; the Confidence is the segment's highest. A segment
  carries no Instances (its boxes change over time; ask for TIMESTAMPS for them).

``SortBy`` ``TIMESTAMP`` orders by time then name, ``NAME`` by name then time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.video import VideoMetadata
from faceledger.inference.yolox import YoloxDetector
from faceledger.services.labels import LabelFilters, LabelService, labels_from_detections
from faceledger.services.video.common import jsonable
from faceledger.video.bodies import PersonDetector
from faceledger.video.sampling import DEFAULT_SAMPLE_INTERVAL_MS, sample_video

PERSON_CLASS = "person"
PERSON_CANDIDATE_SCORE = 0.08  # below the body tracker's low score (0.1): nothing is lost
DEFAULT_VIDEO_MIN_CONFIDENCE = 50.0  # Rekognition's default for StartLabelDetection
AGGREGATIONS = ("TIMESTAMPS", "SEGMENTS")
LABEL_SORTS = ("TIMESTAMP", "NAME")


def filters_to_json(filters: LabelFilters | None) -> dict[str, list[str]]:
    if filters is None:
        return {}
    return {
        "include": sorted(filters.include),
        "exclude": sorted(filters.exclude),
        "include_categories": sorted(filters.include_categories),
        "exclude_categories": sorted(filters.exclude_categories),
    }


def filters_from_json(data: dict[str, list[str]]) -> LabelFilters:
    return LabelFilters(
        include=frozenset(data.get("include", ())),
        exclude=frozenset(data.get("exclude", ())),
        include_categories=frozenset(data.get("include_categories", ())),
        exclude_categories=frozenset(data.get("exclude_categories", ())),
    )


def label_params(
    labels: LabelService, min_confidence_pct: float | None, filters: LabelFilters | None
) -> dict[str, Any]:
    """A label job's parameters, checked (stored with the job)."""
    confidence = DEFAULT_VIDEO_MIN_CONFIDENCE if min_confidence_pct is None else min_confidence_pct
    if not 0.0 <= float(confidence) <= 100.0:
        raise InvalidParameterError("MinConfidence must be between 0 and 100")
    return {
        "min_confidence": float(confidence),
        "filters": filters_to_json(filters),
        "interval_ms": DEFAULT_SAMPLE_INTERVAL_MS,
        "label_model_version": labels.manifest.label_model_version,
    }


def person_detector(labels: LabelService) -> PersonDetector | None:
    """The labels pack's ``person`` class as a person detector for tracking bodies (None when
    the pack has no such class). One pass over the whole frame, without the pack's tiles:
    a third of the work, at the cost of people smaller than about 40 px tall."""
    detector, manifest = labels.detector()
    if PERSON_CLASS not in manifest.classes:
        return None
    person = list(manifest.classes).index(PERSON_CLASS)
    whole = YoloxDetector(
        detector.session,
        detector.input_size_px,
        score_threshold=PERSON_CANDIDATE_SCORE,
        iou_threshold=detector.iou_threshold,
        tiles=False,
    )

    def detect(pixels: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        found = whole.detect(pixels)
        keep = found.class_ids == person
        return found.boxes_px[keep], found.scores[keep]

    return detect


def analyse_labels(
    path: str,
    labels: LabelService,
    params: dict[str, Any],
    *,
    cancelled: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[VideoMetadata, list[dict[str, Any]]]:
    """The video's metadata and one item ``{"timestamp_ms", "label"}`` per sampled frame and
    label (``SamplingCancelled`` when ``cancelled()`` says stop)."""
    detector, manifest = labels.detector()
    filters = filters_from_json(params.get("filters", {}))
    min_confidence = float(params.get("min_confidence", DEFAULT_VIDEO_MIN_CONFIDENCE))
    items: list[dict[str, Any]] = []

    def on_frame(timestamp_ms: int, pixels: NDArray[np.uint8]) -> None:
        h, w = pixels.shape[:2]
        found = labels_from_detections(
            detector.detect(pixels), manifest.classes, w, h, min_confidence_pct=min_confidence
        )
        for label in found:
            if filters.keeps(label):
                items.append({"timestamp_ms": timestamp_ms, "label": jsonable(label)})

    meta, _ = sample_video(
        path,
        on_frame,
        interval_ms=int(params.get("interval_ms", DEFAULT_SAMPLE_INTERVAL_MS)),
        cancelled=cancelled,
        progress=progress,
    )
    return meta, items


def _segments(
    items: list[dict[str, Any]], interval_ms: int, duration_ms: int
) -> list[dict[str, Any]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_name.setdefault(item["label"]["name"], []).append(item)
    out: list[dict[str, Any]] = []
    for samples in by_name.values():
        samples.sort(key=lambda i: i["timestamp_ms"])
        run: list[dict[str, Any]] = []
        ends: list[dict[str, Any] | None] = [*samples, None]
        for sample in ends:
            if sample is not None and (
                not run or sample["timestamp_ms"] - run[-1]["timestamp_ms"] <= 1.5 * interval_ms
            ):
                run.append(sample)
                continue
            start = run[0]["timestamp_ms"]
            end = run[-1]["timestamp_ms"] + interval_ms
            if duration_ms > 0:
                end = max(run[-1]["timestamp_ms"], min(end, duration_ms))
            label = dict(run[0]["label"])
            label["confidence_pct"] = max(i["label"]["confidence_pct"] for i in run)
            label["instances"] = []
            out.append(
                {
                    "timestamp_ms": start,
                    "start_ms": start,
                    "end_ms": end,
                    "duration_ms": end - start,
                    "label": label,
                }
            )
            run = [sample] if sample is not None else []
    return out


def aggregate_labels(
    items: list[dict[str, Any]],
    *,
    aggregate_by: str,
    sort_by: str,
    interval_ms: int,
    duration_ms: int,
) -> list[dict[str, Any]]:
    """The stored per-sample items as ``GetLabelDetection`` lists them (module docstring)."""
    if aggregate_by not in AGGREGATIONS:
        raise InvalidParameterError("AggregateBy must be TIMESTAMPS or SEGMENTS")
    if sort_by not in LABEL_SORTS:
        raise InvalidParameterError("SortBy must be TIMESTAMP or NAME")
    if aggregate_by == "TIMESTAMPS":
        out = list(items)
    else:
        out = _segments(items, interval_ms, duration_ms)
    if sort_by == "NAME":
        out.sort(key=lambda i: (i["label"]["name"], i["timestamp_ms"]))
    else:
        out.sort(key=lambda i: (i["timestamp_ms"], i["label"]["name"]))
    return out
