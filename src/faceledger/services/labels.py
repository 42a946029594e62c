"""Objects and text in images, without a collection: ``DetectLabels`` and ``DetectText``.

``LabelService`` is built from ``Settings``; the labels pack (``settings.labels_pack``, by
default the vendored YOLOX-nano) and the OCR engine load on first use, once, thread-safely.
Results are domain values in Rekognition's units (ratio boxes, percent confidences); the
adapters only rename fields. This module imports neither FastAPI nor Typer.

Defaults are Rekognition's: MinConfidence 55, at most 1000 labels, ten dominant colours, at
most 100 words of text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from faceledger.config import Settings
from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.faces import Image
from faceledger.domain.labels import (
    Label,
    LabelInstance,
    LabelsResult,
    TextItem,
    TextResult,
    category_of,
    label_info,
)
from faceledger.inference.image_properties import image_properties
from faceledger.inference.imaging import decode_image
from faceledger.inference.labels_packs import (
    LabelsPackManifest,
    LabelsPackRegistry,
    detector_for_pack,
)
from faceledger.inference.ocr import TEXT_MODEL_VERSION, OcrLine, Quad, TextReader
from faceledger.inference.yolox import Detections, YoloxDetector

DEFAULT_MIN_CONFIDENCE = 55.0
DEFAULT_MAX_LABELS = 1000
DEFAULT_MAX_DOMINANT_COLOURS = 10
MAX_WORDS = 100
FEATURES = ("GENERAL_LABELS", "IMAGE_PROPERTIES")


@dataclass(frozen=True)
class LabelFilters:
    """Settings.GeneralLabels: names and categories to keep (if any given) or drop."""

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    include_categories: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()

    def keeps(self, label: Label) -> bool:
        if self.include and label.name not in self.include:
            return False
        if label.name in self.exclude:
            return False
        if self.include_categories and label.category not in self.include_categories:
            return False
        return label.category not in self.exclude_categories


# A region of interest in ratios: a box, or a polygon of (x, y) points.
Region = BoundingBox | tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class WordFilter:
    min_confidence_pct: float = 0.0
    min_height_ratio: float = 0.0
    min_width_ratio: float = 0.0


def labels_from_detections(
    dets: Detections,
    classes: Sequence[str],
    width_px: int,
    height_px: int,
    *,
    min_confidence_pct: float,
) -> list[Label]:
    """Group detections into labels (one per name, instances sorted by confidence) and add
    each label's ancestors with the confidence of their best child and no instances."""
    instances: dict[str, list[LabelInstance]] = {}
    infos = {}
    for box, score, class_id in zip(dets.boxes_px, dets.scores, dets.class_ids, strict=True):
        confidence = float(score) * 100.0
        if confidence < min_confidence_pct or not 0 <= class_id < len(classes):
            continue
        info = label_info(classes[int(class_id)])
        infos[info.name] = info
        x1, y1, x2, y2 = (float(v) for v in box)
        ratio = BoundingBox(
            left=x1 / width_px,
            top=y1 / height_px,
            width=(x2 - x1) / width_px,
            height=(y2 - y1) / height_px,
        )
        instances.setdefault(info.name, []).append(LabelInstance(ratio, confidence))
    labels: dict[str, Label] = {}
    for name, found in instances.items():
        found.sort(key=lambda i: -i.confidence_pct)
        info = infos[name]
        best = found[0].confidence_pct
        labels[name] = Label(name, best, tuple(found), info.parents, info.category)
        for depth, parent in enumerate(info.parents):
            known = labels.get(parent)
            if known is not None and (known.instances or known.confidence_pct >= best):
                continue
            labels[parent] = Label(parent, best, (), info.parents[depth + 1 :], category_of(parent))
    return sorted(labels.values(), key=lambda label: (-label.confidence_pct, label.name))


def _quad_box(quad: Quad, width_px: int, height_px: int) -> BoundingBox:
    xs = [min(max(p[0], 0.0), width_px) for p in quad]
    ys = [min(max(p[1], 0.0), height_px) for p in quad]
    return BoundingBox(
        left=min(xs) / width_px,
        top=min(ys) / height_px,
        width=(max(xs) - min(xs)) / width_px,
        height=(max(ys) - min(ys)) / height_px,
    )


def _in_region(box: BoundingBox, region: Region) -> bool:
    """A word is in a region when at least half its box is (a box region), or when its centre
    is inside (a polygon region)."""
    if isinstance(region, BoundingBox):
        x1, y1 = max(box.left, region.left), max(box.top, region.top)
        x2 = min(box.left + box.width, region.left + region.width)
        y2 = min(box.top + box.height, region.top + region.height)
        inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        return inter >= 0.5 * box.width * box.height and box.width * box.height > 0
    import cv2

    polygon = np.asarray(region, dtype=np.float32).reshape(-1, 1, 2)
    centre = (box.left + box.width / 2, box.top + box.height / 2)
    return bool(cv2.pointPolygonTest(polygon, centre, False) >= 0)


# A word kept for DetectText: its text, confidence (percent), box (ratios), quad (pixels).
_Word = tuple[str, float, BoundingBox, Quad]


def _ratio_polygon(quad: Quad, width_px: int, height_px: int) -> tuple[tuple[float, float], ...]:
    return tuple(
        (min(max(x, 0.0), width_px) / width_px, min(max(y, 0.0), height_px) / height_px)
        for x, y in quad
    )


def _kept_words(
    lines: Iterable[OcrLine],
    width_px: int,
    height_px: int,
    *,
    word_filter: WordFilter,
    regions: Sequence[Region],
) -> list[tuple[OcrLine, list[_Word]]]:
    """Each line with its words that pass the filter and lie in a region (at most
    ``MAX_WORDS`` in all, in reading order); lines left without words are dropped."""
    kept: list[tuple[OcrLine, list[_Word]]] = []
    budget = MAX_WORDS
    for line in lines:
        words = []
        for word in line.words:
            box = _quad_box(word.quad_px, width_px, height_px)
            confidence = word.confidence * 100.0
            if (
                confidence < word_filter.min_confidence_pct
                or box.height < word_filter.min_height_ratio
                or box.width < word_filter.min_width_ratio
            ):
                continue
            if regions and not any(_in_region(box, r) for r in regions):
                continue
            if budget == 0:
                break
            budget -= 1
            words.append((word.text, confidence, box, word.quad_px))
        if words:
            kept.append((line, words))
    return kept


def text_items(
    lines: Iterable[OcrLine],
    width_px: int,
    height_px: int,
    *,
    word_filter: WordFilter,
    regions: Sequence[Region] = (),
) -> tuple[TextItem, ...]:
    """LINEs (ids 0…) then WORDs (ids after the lines, ParentId its line), Rekognition's order.

    Words failing the filter or outside every region are dropped; a line keeps only its
    remaining words (its text is rebuilt from them) and is dropped when none remain."""
    kept = _kept_words(lines, width_px, height_px, word_filter=word_filter, regions=regions)
    items: list[TextItem] = []
    word_items: list[TextItem] = []
    next_word_id = len(kept)
    for line_id, (line, words) in enumerate(kept):
        full = len(words) == len(line.words)
        quad = (
            line.quad_px
            if full
            else (words[0][3][0], words[-1][3][1], words[-1][3][2], words[0][3][3])
        )
        items.append(
            TextItem(
                id=line_id,
                parent_id=None,
                kind="LINE",
                text=line.text if full else " ".join(w[0] for w in words),
                confidence_pct=(
                    line.confidence * 100.0 if full else float(np.mean([w[1] for w in words]))
                ),
                box=_quad_box(quad, width_px, height_px),
                polygon=_ratio_polygon(quad, width_px, height_px),
            )
        )
        for text, confidence, box, word_quad in words:
            polygon = _ratio_polygon(word_quad, width_px, height_px)
            word_items.append(
                TextItem(next_word_id, line_id, "WORD", text, confidence, box, polygon)
            )
            next_word_id += 1
    return tuple(items + word_items)


class LabelService:
    """Detect labels and text. Cheap to construct; models load on first use."""

    def __init__(self, settings: Settings, *, registry: LabelsPackRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or LabelsPackRegistry(
            settings.model_dirs, accepted_licences=settings.accept_model_licences
        )
        self._detector: YoloxDetector | None = None
        self._manifest: LabelsPackManifest | None = None
        self._lock = threading.Lock()
        self.text_reader = TextReader()

    @property
    def manifest(self) -> LabelsPackManifest:
        return self.registry.manifest(self.settings.labels_pack)

    def detector(self) -> tuple[YoloxDetector, LabelsPackManifest]:
        """The labels pack's detector, loaded (and its digest checked) once."""
        if self._detector is None or self._manifest is None:
            with self._lock:
                if self._detector is None or self._manifest is None:
                    files = self.registry.load(self.settings.labels_pack)
                    self._detector = detector_for_pack(files)
                    self._manifest = files.manifest
        return self._detector, self._manifest

    def image(self, data: bytes | Image) -> Image:
        if isinstance(data, Image):
            return data
        return decode_image(
            bytes(data),
            max_bytes=self.settings.max_image_bytes,
            max_decode_bytes=self.settings.max_decode_bytes,
        )

    def detect_labels(
        self,
        data: bytes | Image,
        *,
        max_labels: int = DEFAULT_MAX_LABELS,
        min_confidence_pct: float = DEFAULT_MIN_CONFIDENCE,
        features: Sequence[str] = ("GENERAL_LABELS",),
        filters: LabelFilters | None = None,
        max_dominant_colours: int = DEFAULT_MAX_DOMINANT_COLOURS,
    ) -> LabelsResult:
        """Labels of the image, highest confidence first, and its properties when asked."""
        unknown = sorted(set(features) - set(FEATURES))
        if unknown:
            raise InvalidParameterError(f"unknown Features {unknown}; known: {list(FEATURES)}")
        if max_labels < 0:
            raise InvalidParameterError("MaxLabels must be at least 0")
        if not 0.0 <= min_confidence_pct <= 100.0:
            raise InvalidParameterError("MinConfidence must be between 0 and 100")
        image = self.image(data)
        detector, manifest = self.detector()
        labels: list[Label] = []
        if "GENERAL_LABELS" in features or not features:
            dets = detector.detect(image.pixels_bgr)
            labels = labels_from_detections(
                dets,
                manifest.classes,
                image.width_px,
                image.height_px,
                min_confidence_pct=min_confidence_pct,
            )
            if filters is not None:
                labels = [label for label in labels if filters.keeps(label)]
            labels = labels[:max_labels]
        properties = None
        if "IMAGE_PROPERTIES" in features:
            properties = image_properties(image.pixels_bgr, max_dominant_colours)
        return LabelsResult(
            tuple(labels),
            manifest.label_model_version,
            properties,
            image.width_px,
            image.height_px,
        )

    def detect_text(
        self,
        data: bytes | Image,
        *,
        word_filter: WordFilter | None = None,
        regions: Sequence[Region] = (),
    ) -> TextResult:
        """Lines and words of text, Rekognition's order (lines, then words)."""
        image = self.image(data)
        lines = self.text_reader.read(image.pixels_bgr)
        items = text_items(
            lines,
            image.width_px,
            image.height_px,
            word_filter=word_filter or WordFilter(),
            regions=regions,
        )
        return TextResult(items, TEXT_MODEL_VERSION, image.width_px, image.height_px)
