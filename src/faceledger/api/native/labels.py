"""``/v1/labels`` and ``/v1/text``: objects and text in an image, in pixel units.

Both need an API key whose roles allow DetectLabels / DetectText (the ``search`` role), call
one ``Gateway`` verb (roles, ledger record with the image's SHA-256 and counts, never the
text read) and answer boxes in pixels (``bbox_px``: left, top, width, height) and confidences in
percent. The default labels pack has COCO's 80 object classes and no scenes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep
from faceledger.api.native.routes import COMMON_ERRORS, ErrorResponse, read_upload
from faceledger.domain.collections import BoundingBox
from faceledger.domain.labels import LabelsResult, TextResult
from faceledger.services.labels import (
    DEFAULT_MAX_DOMINANT_COLOURS,
    DEFAULT_MAX_LABELS,
    DEFAULT_MIN_CONFIDENCE,
    LabelFilters,
    WordFilter,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "InvalidParameterException (bad field), InvalidImageFormatException "
        "(not a complete JPEG/PNG) or ImageTooLargeException.",
    },
    **COMMON_ERRORS,
}

router = APIRouter(prefix="/v1", tags=["labels and text"], responses=_ERRORS)


def _px(box: BoundingBox, width_px: int, height_px: int) -> list[float]:
    return [
        round(box.left * width_px, 1),
        round(box.top * height_px, 1),
        round(box.width * width_px, 1),
        round(box.height * height_px, 1),
    ]


def _names(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def labels_json(result: LabelsResult) -> dict[str, Any]:
    w, h = result.width_px, result.height_px
    out: dict[str, Any] = {
        "label_model_version": result.label_model_version,
        "image": {"width_px": w, "height_px": h},
        "labels": [
            {
                "name": label.name,
                "confidence": round(label.confidence_pct, 2),
                "parents": list(label.parents),
                "category": label.category or None,
                "instances": [
                    {"bbox_px": _px(i.box, w, h), "confidence": round(i.confidence_pct, 2)}
                    for i in label.instances
                ],
            }
            for label in result.labels
        ],
    }
    props = result.image_properties
    if props is not None:
        out["image_properties"] = {
            "brightness": props.quality.brightness,
            "sharpness": props.quality.sharpness,
            "contrast": props.quality.contrast,
            "dominant_colours": [
                {
                    "rgb": [c.red, c.green, c.blue],
                    "hex": c.hex_code,
                    "css": c.css_colour,
                    "simplified": c.simplified_colour,
                    "pixel_percent": c.pixel_pct,
                }
                for c in props.dominant_colours
            ],
        }
    return out


def text_json(result: TextResult) -> dict[str, Any]:
    w, h = result.width_px, result.height_px
    return {
        "text_model_version": result.text_model_version,
        "image": {"width_px": w, "height_px": h},
        "detections": [
            {
                "id": item.id,
                "parent_id": item.parent_id,
                "type": item.kind,
                "text": item.text,
                "confidence": round(item.confidence_pct, 2),
                "bbox_px": _px(item.box, w, h),
                "polygon_px": [[round(x * w, 1), round(y * h, 1)] for x, y in item.polygon],
            }
            for item in result.items
        ],
    }


@router.post("/labels", summary="Detect objects (labels) in an image")
async def labels(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    image: Annotated[UploadFile, File(description="A JPEG or PNG image, at most 5 MiB.")],
    max_labels: Annotated[int, Form(ge=0, description="At most this many labels.")] = (
        DEFAULT_MAX_LABELS
    ),
    min_confidence: Annotated[
        float, Form(ge=0, le=100, description="Drop labels and instances below this (0–100).")
    ] = DEFAULT_MIN_CONFIDENCE,
    include: Annotated[str, Form(description="Comma-separated label names to keep.")] = "",
    exclude: Annotated[str, Form(description="Comma-separated label names to drop.")] = "",
    image_properties: Annotated[
        bool, Form(description="Also measure brightness, sharpness, contrast and colours.")
    ] = False,
    max_dominant_colours: Annotated[int, Form(ge=0, le=20)] = DEFAULT_MAX_DOMINANT_COLOURS,
) -> dict[str, Any]:
    """Labels, highest confidence first: `name`, `confidence`, `parents` (nearest first),
    `category`, and `instances` with `bbox_px` (left, top, width, height). Ancestor labels
    (e.g. Vehicle for a Car) have no instances. No scene labels: the pack has none."""
    data = await read_upload(image, "image", gate.settings.max_image_bytes)
    features = ("GENERAL_LABELS", "IMAGE_PROPERTIES") if image_properties else ("GENERAL_LABELS",)
    result = await run_blocking(
        request,
        lambda: gate.detect_labels(
            caller,
            data,
            max_labels=max_labels,
            min_confidence_pct=min_confidence,
            features=features,
            filters=LabelFilters(include=_names(include), exclude=_names(exclude)),
            max_dominant_colours=max_dominant_colours,
        ),
    )
    return labels_json(result)


@router.post("/text", summary="Detect lines and words of text in an image")
async def text(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    image: Annotated[UploadFile, File(description="A JPEG or PNG image, at most 5 MiB.")],
    min_confidence: Annotated[
        float, Form(ge=0, le=100, description="Drop words below this confidence (0–100).")
    ] = 0.0,
) -> dict[str, Any]:
    """Lines (ids 0…) then words (`parent_id` = their line), in pixel units."""
    data = await read_upload(image, "image", gate.settings.max_image_bytes)
    result = await run_blocking(
        request,
        lambda: gate.detect_text(
            caller, data, word_filter=WordFilter(min_confidence_pct=min_confidence)
        ),
    )
    return text_json(result)
