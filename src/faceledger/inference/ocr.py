"""Text in images: RapidOCR (PP-OCRv4 detector + recogniser, ONNX Runtime) into lines and words.

``rapidocr-onnxruntime`` (Apache-2.0, pinned in ``pyproject.toml``) ships its ONNX models inside
the wheel, so this works offline. It gives, per detected text line, a four-point box, the text
and per-character boxes; words are the runs of characters between spaces, each word's polygon
spans from its first character's left edge to its last character's right edge, and its
confidence is the mean of its characters' confidences.

Settings chosen for Rekognition-like input (horizontal Latin text, photos up to a few MP):
the detector sees the image with its longer side at most ``DET_MAX_SIDE_PX`` (the library's
default upscales the shorter side to 736 px, ≈ 2× slower on 720p for no gain on such text);
the 180° orientation classifier is off (Rekognition reads upright text).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

TEXT_MODEL_VERSION = "rapidocr-1.4.4-ppocrv4"
DET_MAX_SIDE_PX = 960
MIN_TEXT_SCORE = 0.5  # lines the recogniser scores lower are dropped (the library's default)

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


def words_of_line(
    chars: list[str], char_quads: list[Any], char_scores: list[float]
) -> tuple[OcrWord, ...]:
    """Group a line's characters into words at spaces (written once; tested on known input)."""
    words: list[OcrWord] = []
    run: list[int] = []

    def flush() -> None:
        if not run:
            return
        first, last = _quad(char_quads[run[0]]), _quad(char_quads[run[-1]])
        quad = (first[0], last[1], last[2], first[3])
        score = float(np.mean([char_scores[i] for i in run]))
        words.append(OcrWord("".join(chars[i] for i in run), score, quad))
        run.clear()

    for i, ch in enumerate(chars):
        if ch.isspace():
            flush()
        else:
            run.append(i)
    flush()
    return tuple(words)


class TextReader:
    """One RapidOCR engine, loaded on first use; calls are serialised (the library keeps
    per-call settings on the engine)."""

    def __init__(self, *, threads: int = 0) -> None:
        self._threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        from rapidocr_onnxruntime import RapidOCR

        threads = self._threads if self._threads > 0 else -1
        return RapidOCR(
            print_verbose=False,
            use_cls=False,
            det_limit_type="max",
            det_limit_side_len=DET_MAX_SIDE_PX,
            intra_op_num_threads=threads,
        )

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def read(self, pixels_bgr: NDArray[np.uint8]) -> tuple[OcrLine, ...]:
        """The text lines of a BGR image, top to bottom, with their words."""
        with self._lock:
            if self._engine is None:
                self._engine = self._load()
            result, _ = self._engine(
                np.ascontiguousarray(pixels_bgr), return_word_box=True, text_score=MIN_TEXT_SCORE
            )
        lines = []
        for row in result or ():
            box, text, score = row[0], str(row[1]), float(row[2])
            chars = list(row[4]) if len(row) > 4 else []
            quads = list(row[3]) if len(row) > 3 else []
            scores = [float(s) for s in row[5]] if len(row) > 5 else []
            if chars and len(chars) == len(quads) == len(scores):
                words = words_of_line(chars, quads, scores)
            else:  # no character boxes: the line is one word per its whitespace-split text
                words = tuple(OcrWord(w, score, _quad(box)) for w in text.split()[:1])
            text = " ".join(text.split())
            if text and words:
                lines.append(OcrLine(text, score, _quad(box), words))
        lines.sort(key=lambda line: (min(p[1] for p in line.quad_px), line.quad_px[0][0]))
        return tuple(lines)
