"""Text in images: RapidOCR (PP-OCRv4 detector + recogniser, ONNX Runtime) into lines and words.

``rapidocr-onnxruntime`` (Apache-2.0, 1.4.4, installed by the Makefile: see
``pyproject.toml``) ships its ONNX models inside the wheel, so this works offline. It gives,
per detected text line, a four-point box, the text and per-character boxes; words are the runs
of characters between spaces, each word's polygon spans its ink at the line's height, and its
confidence is the mean of its characters' confidences. Words break at recognised spaces and at
blank gaps in the line's ink at least ``WORD_GAP_RATIO`` × the line's height wide: PP-OCR often
drops the space between two words ("HELLOWORLD"), the gap in the pixels does not lie. A line's
text is its words joined by one space.

Settings chosen for Rekognition-like input (horizontal Latin text, photos up to a few MP), and
measured in ``docs/labels_and_text.md``:

* the text *detector* sees a copy reduced to a longer side of at most ``DET_MAX_SIDE_PX``
  (RapidOCR's own ``det_limit_side_len`` is ignored with ``det_limit_type="max"``: 1.4.4 picks
  960/1500/2000 from the image's size, so a 1280×720 image was detected at full size, ≈ 3.5×
  the work of 800 px); the *recogniser* reads crops of the full-resolution image, so small
  letters keep their pixels;
* lines are recognised one at a time (``REC_BATCH``): a batch pads every crop to the widest,
  ≈ 1.6× the work on five lines of different lengths;
* the text detector's ONNX Runtime session keeps its memory arena (RapidOCR turns it off, so
  the detector's activations were allocated anew on every call: 131 vs 93 ms CPU at 800×448);
* the 180° orientation classifier is off (Rekognition reads upright text).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

TEXT_MODEL_VERSION = "rapidocr-1.4.4-ppocrv4"
# Longer side of the copy the text detector sees: 12 px letters on 1280×720 are still found.
DET_MAX_SIDE_PX = 800
REC_BATCH = 1
MIN_TEXT_SCORE = 0.5  # lines the recogniser scores lower are dropped (the library's default)
# A blank gap at least this share of the line's height separates two words.
WORD_GAP_RATIO = 0.3

Quad = tuple[tuple[float, float], ...]  # four (x, y) pixel points: TL, TR, BR, BL


@dataclass(frozen=True)
class OcrWord:
    text: str
    confidence: float  # 0–1
    quad_px: Quad


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float  # 0–1
    quad_px: Quad
    words: tuple[OcrWord, ...]


def _quad(points: Any) -> Quad:
    arr = np.asarray(points, dtype=np.float64).reshape(4, 2)
    return tuple((float(x), float(y)) for x, y in arr)


def ink_segments(
    line_gray: NDArray[np.uint8], *, min_gap_ratio: float = WORD_GAP_RATIO
) -> list[tuple[int, int]]:
    """Column ranges ``[x0, x1)`` of the ink runs of a horizontal line crop that are separated by
    blank gaps at least ``min_gap_ratio`` × the crop's height wide (the words)."""
    import cv2

    if line_gray.size == 0:
        return []
    _, binary = cv2.threshold(line_gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = binary > 0
    if ink.mean() > 0.5:  # dark text on a light ground: ink is the minority class
        ink = ~ink
    columns = ink.sum(axis=0) > max(1, round(0.04 * line_gray.shape[0]))
    segments: list[tuple[int, int]] = []
    min_gap = max(2, round(min_gap_ratio * line_gray.shape[0]))
    x, width = 0, len(columns)
    while x < width:
        if not columns[x]:
            x += 1
            continue
        start = x
        while x < width and columns[x]:
            x += 1
        if segments and start - segments[-1][1] < min_gap:
            segments[-1] = (segments[-1][0], x)
        else:
            segments.append((start, x))
    return segments


def words_of_line(
    chars: list[str],
    char_quads: list[Any],
    char_scores: list[float],
    line_quad: Quad,
    segments: list[tuple[int, int]] | None = None,
) -> tuple[OcrWord, ...]:
    """Group a line's characters into words (written once; tested on known input).

    Words break at recognised spaces and, when ``segments`` (ink runs of the line, in pixels of
    the image, from ``ink_segments``) are given, between characters whose centres fall in
    different runs: the recogniser often drops the space between words, the ink gap does not.
    A word's polygon spans its ink run (or its characters) at the line's height."""
    centres = [float(np.mean([p[0] for p in _quad(q)])) for q in char_quads]

    def segment_of(x: float) -> int:
        if not segments:
            return 0
        best, best_d = 0, float("inf")
        for k, (x0, x1) in enumerate(segments):
            d = 0.0 if x0 <= x <= x1 else min(abs(x - x0), abs(x - x1))
            if d < best_d:
                best, best_d = k, d
        return best

    groups: list[tuple[int, list[int]]] = []
    for i, ch in enumerate(chars):
        if ch.isspace():
            if groups and groups[-1][1]:
                groups.append((groups[-1][0], []))
            continue
        seg = segment_of(centres[i])
        if not groups or groups[-1][0] != seg:
            if groups and not groups[-1][1]:
                groups[-1] = (seg, [])
            else:
                groups.append((seg, []))
        groups[-1][1].append(i)
    words = []
    for seg, members in groups:
        if not members:
            continue
        first, last = _quad(char_quads[members[0]]), _quad(char_quads[members[-1]])
        x0, x1 = first[0][0], last[1][0]
        if segments:
            sx0, sx1 = segments[seg]
            x0, x1 = float(sx0), float(sx1)
        quad = _span(line_quad, x0, x1)
        score = float(np.mean([char_scores[i] for i in members]))
        words.append(OcrWord("".join(chars[i] for i in members), score, quad))
    return tuple(words)


def _span(line_quad: Quad, x0: float, x1: float) -> Quad:
    """The part of a line's quad between image columns ``x0`` and ``x1``."""
    (lx0, ly0), (rx0, ry0), (rx1, ry1), (lx1, ly1) = line_quad

    def at(xa: float, ya: float, xb: float, yb: float, x: float) -> tuple[float, float]:
        t = 0.0 if xb == xa else (x - xa) / (xb - xa)
        return (x, ya + (yb - ya) * t)

    return (
        at(lx0, ly0, rx0, ry0, x0),
        at(lx0, ly0, rx0, ry0, x1),
        at(lx1, ly1, rx1, ry1, x1),
        at(lx1, ly1, rx1, ry1, x0),
    )


def line_crop_segments(gray: NDArray[np.uint8], line_quad: Quad) -> list[tuple[int, int]]:
    """Ink runs of a line in image columns (the line's axis-aligned bounding box is used; lines
    tilted by more than a few degrees give one run per line-width and so fall back to spaces)."""
    h, w = gray.shape[:2]
    xs = [p[0] for p in line_quad]
    ys = [p[1] for p in line_quad]
    x0, x1 = max(0, int(min(xs))), min(w, int(np.ceil(max(xs))))
    y0, y1 = max(0, int(min(ys))), min(h, int(np.ceil(max(ys))))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return []
    return [(x0 + a, x0 + b) for a, b in ink_segments(gray[y0:y1, x0:x1])]


def _recognise(engine: Any, pixels_bgr: NDArray[np.uint8], det_max_side_px: int) -> list[list[Any]]:
    """RapidOCR's pipeline (its own parts, in its order) with detection on a reduced copy.

    Rows as ``RapidOCR.__call__(…, return_word_box=True)`` gives them: line quad (full-image
    pixels), text, score, character quads, characters, character scores; lines the recogniser
    scores under ``MIN_TEXT_SCORE`` are dropped."""
    import cv2

    height, width = pixels_bgr.shape[:2]
    scale = min(1.0, det_max_side_px / max(height, width))
    small = pixels_bgr
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(cv2.resize(pixels_bgr, size, interpolation=cv2.INTER_AREA), np.uint8)
    boxes, _ = engine(small, use_cls=False, use_rec=False)
    if not boxes:
        return []
    quads = [np.asarray(box, dtype=np.float32) / scale for box in boxes]
    crops = engine.get_crop_img_list(pixels_bgr, quads)
    recognised, _ = engine.text_rec(crops, True)
    rows = engine.cal_rec_boxes(crops, quads, recognised)
    return [[quad, *row] for quad, row in zip(quads, rows, strict=True) if row[1] >= MIN_TEXT_SCORE]


def _detector_session(threads: int) -> Any:
    """RapidOCR's text-detector model in a session with ONNX Runtime's default memory arena."""
    import onnxruntime as ort
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    path = update_model_path(read_yaml(DEFAULT_CFG_PATH))["Det"]["model_path"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class TextReader:
    """One RapidOCR engine, loaded on first use; calls are serialised (the library keeps
    per-call settings on the engine). ``det_max_side_px``, ``rec_batch`` and
    ``detector_arena`` are for benchmarks (the defaults are the measured choices)."""

    def __init__(
        self,
        *,
        threads: int = 1,
        det_max_side_px: int = DET_MAX_SIDE_PX,
        rec_batch: int = REC_BATCH,
        detector_arena: bool = True,
    ) -> None:
        self._threads = threads
        self._det_max_side_px = det_max_side_px
        self._rec_batch = rec_batch
        self._detector_arena = detector_arena
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        from rapidocr_onnxruntime import RapidOCR

        threads = self._threads if self._threads > 0 else 1
        engine = RapidOCR(
            print_verbose=False,
            use_cls=False,
            det_limit_type="max",  # never upscale for detection ("min" would, to 736 px)
            rec_batch_num=self._rec_batch,
            intra_op_num_threads=threads,
        )
        if self._detector_arena:
            engine.text_det.infer.session = _detector_session(threads)
        return engine

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def read(self, pixels_bgr: NDArray[np.uint8]) -> tuple[OcrLine, ...]:
        """The text lines of a BGR image, top to bottom, with their words."""
        pixels_bgr = np.ascontiguousarray(pixels_bgr)
        with self._lock:
            if self._engine is None:
                self._engine = self._load()
            result = _recognise(self._engine, pixels_bgr, self._det_max_side_px)
        import cv2

        gray = np.asarray(cv2.cvtColor(pixels_bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        lines = []
        for row in result:
            box, text, score = row[0], str(row[1]), float(row[2])
            chars = list(row[4]) if len(row) > 4 else []
            quads = list(row[3]) if len(row) > 3 else []
            scores = [float(s) for s in row[5]] if len(row) > 5 else []
            line_quad = _quad(box)
            if chars and len(chars) == len(quads) == len(scores):
                segments = line_crop_segments(gray, line_quad)
                words = words_of_line(chars, quads, scores, line_quad, segments)
            else:  # no character boxes: the whole line is one word
                words = (OcrWord("".join(text.split()), score, line_quad),)
            text = " ".join(word.text for word in words)
            if text:
                lines.append(OcrLine(text, score, line_quad, words))
        lines.sort(key=lambda line: (min(p[1] for p in line.quad_px), line.quad_px[0][0]))
        return tuple(lines)
