"""YOLOX-style object detection: letterbox, decode of the raw head outputs, class-wise NMS.

Written once for every YOLOX export of the ``demo/ONNXRuntime`` layout (nano, tiny, s, m, l, x):
one input ``1×3×S×S`` of BGR pixels in 0–255 (no mean or scale), the image resized to fit and
padded with grey 114 at the bottom and right (never centred); one output ``1×A×(5+C)`` whose
rows are, per anchor point of the stride-8/16/32 grids in row-major order, ``(tx, ty, tw, th,
objectness, class scores…)`` with objectness and class scores already sigmoid-activated and the
box still relative to its grid cell: centre ``(tx + gx)·stride``, size ``exp(tw)·stride``.

Boxes leave in pixels of the original image (``x1, y1, x2, y2``); scores are 0–1.

The input is the export's ``input_size_px`` (letterboxed) unless the detector is given
``max_side_px``; then the graph must accept any height and width (multiples of 32; see
``dynamic_image_size``) and each image goes in at its own aspect ratio (no grey bands spent on
a wide image; ``fit_input_size``), twice when it is larger than the export's size:

* a **coarse** pass with the longer side at the export's size (416 for YOLOX-nano), for large
  objects: the model was trained at about that scale and boxes a person filling a photo badly
  when shown it at 1024 px;
* a **fine** pass with the longer side at the image's own, up to ``max_side_px``, for small
  objects (a 70 px person on 1280×720 is 23 px at 416 and 56 px at 1024); its boxes larger than
  ``FINE_MAX_OBJECT`` × the export's size in its input are the coarse pass's.

Both passes' candidates go through one class-wise NMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from faceledger.inference.sessions import Session

STRIDES: tuple[int, ...] = (8, 16, 32)
PAD_VALUE = 114
# Tile detections larger than this share of the tile's side are left to the whole-image pass.
TILE_MAX_OBJECT = 0.5

# In the fine pass, boxes whose longer side exceeds this share of the export's input size are
# left to the coarse pass: 320 px for YOLOX-nano's 416 (see the module docstring).
FINE_MAX_OBJECT = 0.77


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the model input: ``input = image · scale``, top-left."""

    scale: float
    input_size_px: tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class Detections:
    """Columnar detections: ``boxes_px`` (N, 4) x1 y1 x2 y2, ``scores`` (N,) 0–1, ``class_ids``."""

    boxes_px: NDArray[np.float32]
    scores: NDArray[np.float32]
    class_ids: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        )


def letterbox(
    pixels_bgr: NDArray[np.uint8], input_size_px: tuple[int, int]
) -> tuple[NDArray[np.float32], Letterbox]:
    """The NCHW float32 batch of one image fitted into ``input_size_px`` (width, height)."""
    import cv2

    width, height = input_size_px
    h, w = pixels_bgr.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    # area averaging where pixels merge by more than 2:1 (no aliasing); bilinear above, ≈ 5×
    # cheaper (6.6 vs 1.3 ms CPU for 1280×720 → 1024×576)
    interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    canvas[:new_h, :new_w] = cv2.resize(pixels_bgr, (new_w, new_h), interpolation=interpolation)
    batch = canvas.transpose(2, 0, 1)[None].astype(np.float32)
    return batch, Letterbox(scale=scale, input_size_px=input_size_px)


def fit_input_size(width_px: int, height_px: int, long_side_px: int) -> tuple[int, int]:
    """The input (width, height) for an image fed at its own aspect ratio with its longer side
    scaled to ``long_side_px``, both sides rounded up to a multiple of 32 (the letterbox pads
    the rest)."""
    scale = long_side_px / max(width_px, height_px)

    def up32(side_px: int) -> int:
        return max(32, -(-round(side_px * scale) // 32) * 32)

    return up32(width_px), up32(height_px)


def dynamic_image_size(model_bytes: bytes) -> bytes:
    """The graph with its input's height and width, and its output's anchor count, made
    symbolic, so that ONNX Runtime accepts any input size (a YOLOX export whose head reshapes
    with ``-1``, as ``demo/ONNXRuntime``'s does; ``YoloxDetector.probe`` checks it runs)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ValueError("a YOLOX graph has one NCHW input")
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        out_dims = output.type.tensor_type.shape.dim
        if len(out_dims) == 3:
            out_dims[1].dim_param = "anchors"
    del model.graph.value_info[:]
    return bytes(model.SerializeToString())


def grids(input_size_px: tuple[int, int]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Per anchor point: its grid cell (A, 2) and its stride (A, 1), in the head's order."""
    width, height = input_size_px
    cells, strides = [], []
    for stride in STRIDES:
        gw, gh = width // stride, height // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((gw * gh, 1), stride))
    return (
        np.concatenate(cells).astype(np.float32),
        np.concatenate(strides).astype(np.float32),
    )


def decode(raw: NDArray[np.float32], box: Letterbox, *, score_threshold: float) -> Detections:
    """Raw head rows (A, 5+C) → candidate boxes in original-image pixels, before NMS.

    A candidate is an anchor's best class when objectness × class score ≥ ``score_threshold``.
    """
    raw = np.asarray(raw, dtype=np.float32).reshape(-1, raw.shape[-1])
    cells, strides = grids(box.input_size_px)
    if len(cells) != len(raw):
        raise ValueError(
            f"the model gave {len(raw)} rows; a {box.input_size_px} input has {len(cells)} "
            "anchor points (is it a YOLOX export with strides 8/16/32?)"
        )
    class_scores = raw[:, 5:] * raw[:, 4:5]
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(raw)), class_ids]
    keep = scores >= score_threshold
    if not keep.any():
        return Detections.empty()
    centres = (raw[keep, :2] + cells[keep]) * strides[keep]
    sizes = np.exp(np.minimum(raw[keep, 2:4], 20.0)) * strides[keep]
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / box.scale
    return Detections(
        boxes.astype(np.float32), scores[keep].astype(np.float32), class_ids[keep].astype(np.int64)
    )


def iou_one_to_many(box: NDArray[np.float32], boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    """Intersection over union of one x1y1x2y2 box with each of ``boxes``."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return (inter / np.maximum(area + areas - inter, 1e-9)).astype(np.float32)


def nms_class_wise(dets: Detections, *, iou_threshold: float) -> Detections:
    """Greedy non-maximum suppression within each class; the result is sorted by score."""
    order = np.argsort(-dets.scores, kind="stable")
    kept: list[int] = []
    suppressed = np.zeros(len(dets), dtype=bool)
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        kept.append(int(i))
        rest = order[rank + 1 :]
        rest = rest[(~suppressed[rest]) & (dets.class_ids[rest] == dets.class_ids[i])]
        if len(rest):
            overlap = iou_one_to_many(dets.boxes_px[i], dets.boxes_px[rest])
            suppressed[rest[overlap > iou_threshold]] = True
    idx = np.asarray(kept, dtype=np.int64)
    return Detections(dets.boxes_px[idx], dets.scores[idx], dets.class_ids[idx])


def clip_boxes(dets: Detections, width_px: int, height_px: int) -> Detections:
    boxes = dets.boxes_px.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width_px)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height_px)
    ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return Detections(boxes[ok], dets.scores[ok], dets.class_ids[ok])


def square_tiles(
    width_px: int, height_px: int, *, min_ratio: float = 1.3
) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x1, y1, x2, y2) along the long side of a wide or tall image,
    each as large as the short side; none when the image is nearly square."""
    short, long = min(width_px, height_px), max(width_px, height_px)
    if long < min_ratio * short:
        return []
    count = int(np.ceil(long / short))
    starts = np.linspace(0, long - short, count).round().astype(int)
    if width_px >= height_px:
        return [(int(s), 0, int(s) + short, height_px) for s in starts]
    return [(0, int(s), width_px, int(s) + short) for s in starts]


def _drop_cut(
    dets: Detections,
    tile: tuple[int, int, int, int],
    width_px: int,
    height_px: int,
    margin_px: float,
) -> Detections:
    """Tile detections touching a tile edge that is inside the image (the object is cut there;
    the whole-image pass or the neighbouring tile sees it whole)."""
    x1, y1, x2, y2 = tile
    b = dets.boxes_px
    cut = np.zeros(len(dets), dtype=bool)
    if x1 > 0:
        cut |= b[:, 0] <= x1 + margin_px
    if y1 > 0:
        cut |= b[:, 1] <= y1 + margin_px
    if x2 < width_px:
        cut |= b[:, 2] >= x2 - margin_px
    if y2 < height_px:
        cut |= b[:, 3] >= y2 - margin_px
    # tiles are for small objects: a large one is the whole-image pass's (at a larger scale a
    # tile may also box two neighbours as one)
    large = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) > TILE_MAX_OBJECT * (y2 - y1)
    keep = ~(cut | large)
    return Detections(dets.boxes_px[keep], dets.scores[keep], dets.class_ids[keep])


def _concat(parts: list[Detections]) -> Detections:
    return Detections(
        np.concatenate([p.boxes_px for p in parts]).astype(np.float32),
        np.concatenate([p.scores for p in parts]).astype(np.float32),
        np.concatenate([p.class_ids for p in parts]).astype(np.int64),
    )


class YoloxDetector:
    """Runs one YOLOX session on BGR images. Thread-safe when its session is.

    With ``max_side_px`` an image goes in at its own aspect ratio, coarse and fine (see the
    module docstring); otherwise letterboxed into ``input_size_px``.

    With ``tiles`` a wide (or tall) image is also seen as overlapping square tiles at a larger
    scale (small objects gain up to 1.8× on 16:9), and the whole-image and tile candidates go
    through one class-wise NMS; tile boxes cut by an inner tile edge, or larger than half the
    tile, are dropped first.
    """

    def __init__(
        self,
        session: Session,
        input_size_px: tuple[int, int],
        *,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        tiles: bool = False,
        max_side_px: int | None = None,
    ) -> None:
        self.session = session
        self.input_size_px = input_size_px
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.tiles = tiles
        self.max_side_px = max_side_px

    def passes(self, width_px: int, height_px: int) -> list[tuple[tuple[int, int], int | None]]:
        """The inputs (width, height) an image of this size is fed at, each with the largest
        object (longer side, input pixels) that pass answers for (None: any)."""
        if self.max_side_px is None:
            return [(self.input_size_px, None)]
        native = max(self.input_size_px)
        out: list[tuple[tuple[int, int], int | None]] = [
            (fit_input_size(width_px, height_px, native), None)
        ]
        fine = min(max(width_px, height_px), self.max_side_px)
        if fine > native:
            limit = round(FINE_MAX_OBJECT * native)
            out.append((fit_input_size(width_px, height_px, fine), limit))
        return out

    def probe(self) -> None:
        """Run the session once on a blank image of each input shape kind it will be given
        (wide and tall when the size follows the image); raises when the graph refuses."""
        for width_px, height_px in ((640, 360), (360, 640)):
            self._candidates(np.full((height_px, width_px, 3), PAD_VALUE, np.uint8))

    def _run(
        self,
        pixels_bgr: NDArray[np.uint8],
        input_size_px: tuple[int, int],
        max_object_px: int | None,
    ) -> Detections:
        batch, box = letterbox(pixels_bgr, input_size_px)
        raw = self.session.run(batch)[0]
        found = decode(raw[0], box, score_threshold=self.score_threshold)
        if max_object_px is None:
            return found
        b = found.boxes_px
        small = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * box.scale <= max_object_px
        return Detections(found.boxes_px[small], found.scores[small], found.class_ids[small])

    def _candidates(self, pixels_bgr: NDArray[np.uint8]) -> Detections:
        h, w = pixels_bgr.shape[:2]
        parts = [self._run(pixels_bgr, size, limit) for size, limit in self.passes(w, h)]
        return _concat(parts) if len(parts) > 1 else parts[0]

    def detect(self, pixels_bgr: NDArray[np.uint8]) -> Detections:
        h, w = pixels_bgr.shape[:2]
        parts = [self._candidates(pixels_bgr)]
        if self.tiles:
            for tile in square_tiles(w, h):
                x1, y1, x2, y2 = tile
                found = self._candidates(np.ascontiguousarray(pixels_bgr[y1:y2, x1:x2]))
                shifted = found.boxes_px + np.asarray([x1, y1, x1, y1], np.float32)
                moved = Detections(shifted, found.scores, found.class_ids)
                parts.append(_drop_cut(moved, tile, w, h, margin_px=0.01 * min(w, h)))
        candidates = _concat(parts) if len(parts) > 1 else parts[0]
        return clip_boxes(nms_class_wise(candidates, iou_threshold=self.iou_threshold), w, h)
