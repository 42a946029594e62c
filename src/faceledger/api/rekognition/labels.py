"""Rekognition's ``DetectLabels`` and ``DetectText``: handlers for the dispatch table.

Shapes follow botocore's service model: ratio boxes, percent confidences, Parents and Categories
as lists of ``{"Name"}``. The default labels pack has COCO's 80 object classes and no scene
classes, so no scene labels are ever answered. ``ImageProperties`` carries Quality (Brightness,
Sharpness, Contrast) and DominantColors of the whole image (no Foreground/Background split).
"""

from __future__ import annotations

from typing import Any

from faceledger.api.rekognition import shapes
from faceledger.api.rekognition.dispatch import Context, operation
from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.labels import (
    DominantColour,
    ImageProperties,
    Label,
    LabelsResult,
    TextItem,
)
from faceledger.services.labels import LabelFilters, Region, WordFilter

_ROUND = shapes.SCORE_DIGITS


def _colour(c: DominantColour) -> dict[str, Any]:
    return {
        "Red": c.red,
        "Blue": c.blue,
        "Green": c.green,
        "HexCode": c.hex_code,
        "CSSColor": c.css_colour,
        "SimplifiedColor": c.simplified_colour,
        "PixelPercent": round(c.pixel_pct, _ROUND),
    }


def image_properties(props: ImageProperties) -> dict[str, Any]:
    return {
        "Quality": {
            "Brightness": round(props.quality.brightness, _ROUND),
            "Sharpness": round(props.quality.sharpness, _ROUND),
            "Contrast": round(props.quality.contrast, _ROUND),
        },
        "DominantColors": [_colour(c) for c in props.dominant_colours],
    }


def label(item: Label) -> dict[str, Any]:
    return {
        "Name": item.name,
        "Confidence": round(item.confidence_pct, _ROUND),
        "Instances": [
            {
                "BoundingBox": shapes.bounding_box(i.box),
                "Confidence": round(i.confidence_pct, _ROUND),
            }
            for i in item.instances
        ],
        "Parents": [{"Name": p} for p in item.parents],
        "Aliases": [],
        "Categories": [{"Name": item.category}] if item.category else [],
    }


def labels_response(result: LabelsResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Labels": [label(item) for item in result.labels],
        "LabelModelVersion": result.label_model_version,
    }
    if result.image_properties is not None:
        out["ImageProperties"] = image_properties(result.image_properties)
    return out


def text_detection(item: TextItem) -> dict[str, Any]:
    out: dict[str, Any] = {
        "DetectedText": item.text,
        "Type": item.kind,
        "Id": item.id,
        "Confidence": round(item.confidence_pct, _ROUND),
        "Geometry": {
            "BoundingBox": shapes.bounding_box(item.box),
            "Polygon": [
                {"X": round(x, shapes.DIGITS), "Y": round(y, shapes.DIGITS)}
                for x, y in item.polygon
            ],
        },
    }
    if item.parent_id is not None:
        out["ParentId"] = item.parent_id
    return out


def general_label_filters(settings: dict[str, Any]) -> LabelFilters | None:
    """``Settings.GeneralLabels`` (DetectLabels, StartLabelDetection) as filters."""
    general = settings.get("GeneralLabels")
    if not general:
        return None
    return LabelFilters(
        include=frozenset(general.get("LabelInclusionFilters", ())),
        exclude=frozenset(general.get("LabelExclusionFilters", ())),
        include_categories=frozenset(general.get("LabelCategoryInclusionFilters", ())),
        exclude_categories=frozenset(general.get("LabelCategoryExclusionFilters", ())),
    )


@operation
def detect_labels(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    features = tuple(p.get("Features") or ("GENERAL_LABELS",))
    settings = p.get("Settings") or {}
    colours = (settings.get("ImageProperties") or {}).get("MaxDominantColors")
    result = ctx.gate.detect_labels(
        ctx.caller,
        ctx.image(p["Image"]),
        max_labels=p.get("MaxLabels"),
        min_confidence_pct=p.get("MinConfidence"),
        features=features,
        filters=general_label_filters(settings),
        max_dominant_colours=colours,
    )
    return labels_response(result)


def _region(r: dict[str, Any], i: int) -> Region:
    if "BoundingBox" in r:
        b = r["BoundingBox"]
        missing = [k for k in ("Left", "Top", "Width", "Height") if k not in b]
        if missing:
            raise InvalidParameterError(
                f"RegionsOfInterest[{i}].BoundingBox needs {', '.join(missing)}"
            )
        return BoundingBox(left=b["Left"], top=b["Top"], width=b["Width"], height=b["Height"])
    points = r.get("Polygon") or []
    if len(points) < 3 or any("X" not in q or "Y" not in q for q in points):
        raise InvalidParameterError(
            f"RegionsOfInterest[{i}] needs a BoundingBox or a Polygon of at least 3 points"
        )
    return tuple((float(q["X"]), float(q["Y"])) for q in points)


@operation
def detect_text(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    filters = p.get("Filters") or {}
    word = filters.get("WordFilter") or {}
    result = ctx.gate.detect_text(
        ctx.caller,
        ctx.image(p["Image"]),
        word_filter=WordFilter(
            min_confidence_pct=float(word.get("MinConfidence", 0.0)),
            min_height_ratio=float(word.get("MinBoundingBoxHeight", 0.0)),
            min_width_ratio=float(word.get("MinBoundingBoxWidth", 0.0)),
        ),
        regions=tuple(_region(r, i) for i, r in enumerate(filters.get("RegionsOfInterest") or ())),
    )
    return {
        "TextDetections": [text_detection(item) for item in result.items],
        "TextModelVersion": result.text_model_version,
    }
