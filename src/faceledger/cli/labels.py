"""CLI verbs for objects and text: ``labels PHOTO`` (DetectLabels) and ``text PHOTO`` (DetectText).

Each is one gateway verb as the local operator (a ledger record with the image's SHA-256 and
the counts, never the text read) and prints the same JSON as ``/v1/labels`` and ``/v1/text``:
pixel boxes (``bbox_px``: left, top, width, height), confidences in percent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceledger.api.native.labels import labels_json, text_json
from faceledger.cli.common import cli_caller, existing_file, open_gateway, print_json
from faceledger.services.labels import (
    DEFAULT_MAX_LABELS,
    DEFAULT_MIN_CONFIDENCE,
    LabelFilters,
    WordFilter,
)

PhotoArg = Annotated[Path, typer.Argument(help="A JPEG or PNG image.")]


def _names(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def labels(
    photo: PhotoArg,
    max_labels: Annotated[
        int, typer.Option("--max-labels", min=1, max=1000, help="At most this many labels.")
    ] = DEFAULT_MAX_LABELS,
    min_confidence: Annotated[
        float,
        typer.Option("--min-confidence", min=0, max=100, help="Lowest confidence shown (%)."),
    ] = DEFAULT_MIN_CONFIDENCE,
    include: Annotated[
        str, typer.Option("--include", help="Only these labels (comma-separated names).")
    ] = "",
    exclude: Annotated[
        str, typer.Option("--exclude", help="Never these labels (comma-separated names).")
    ] = "",
    properties: Annotated[
        bool,
        typer.Option(
            "--properties", help="Also brightness, sharpness, contrast and dominant colours."
        ),
    ] = False,
) -> None:
    """Objects and people in a photo (COCO's 80 classes; no scenes): JSON like /v1/labels."""
    existing_file(photo)
    features = ("GENERAL_LABELS", "IMAGE_PROPERTIES") if properties else ("GENERAL_LABELS",)
    with open_gateway() as gate:
        result = gate.detect_labels(
            cli_caller(),
            gate.read_image_file(photo),
            max_labels=max_labels,
            min_confidence_pct=min_confidence,
            features=features,
            filters=LabelFilters(include=_names(include), exclude=_names(exclude)),
        )
    print_json(labels_json(result))


def text(
    photo: PhotoArg,
    min_confidence: Annotated[
        float,
        typer.Option("--min-confidence", min=0, max=100, help="Drop words below this (%)."),
    ] = 0.0,
) -> None:
    """Lines and words of text in a photo: JSON like /v1/text."""
    existing_file(photo)
    with open_gateway() as gate:
        result = gate.detect_text(
            cli_caller(),
            gate.read_image_file(photo),
            word_filter=WordFilter(min_confidence_pct=min_confidence),
        )
    print_json(text_json(result))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (called by ``faceledger.cli.main``)."""
    app.command("labels")(labels)
    app.command("text")(text)
