"""Synthetic group photos: LFW faces pasted at known sizes onto a face-free background.

Used to measure detection on many-face photos (recall by face size, false detections) without
hand-labelled group photos. Deterministic: the same LFW folder, arguments and seeded
``numpy.random.Generator`` give the same pixels and boxes.

How a photo is composed:

* **Background** — smooth colour gradients, low-frequency noise, blurred random rectangles and
  fine sensor noise; no faces, nothing face-like on purpose.
* **Faces** — ``n_faces`` different people, each one random image of theirs (LFW's
  deep-funnelled 250×250 images have the face near the centre). The face box is *measured*: the
  measuring engine runs on the LFW image once and the detection nearest the centre is taken as
  the face, so the ground truth is the detector's own notion of a face box at full resolution.
  The pasted region is that box grown ``CROP_MARGIN`` (1.6×) about its centre, so the face keeps
  its hair, ears and neck. An image is skipped when no face is near its centre, or when any
  other detected face (at the measuring engine's threshold; 0.3 by default, so weak, cut-off
  faces count too) overlaps that region — no second face can leak into a photo.
* **Sizes** — each face's *box width* is drawn uniformly from ``[min_face_px, max_face_px]``;
  the region is resized so that the face box has that width.
* **Placement** — in rows, like a group photo: the faces' protected boxes (face box grown
  ``PROTECT_MARGIN``) are laid out without overlapping, rows in random order with random
  spacing and jitter (see ``_rows_layout``). The pasted regions around them overlap each other's
  margins (people stand close in a crowd) but never a face. Random placement does not fit:
  100 faces of 30–120 px need their protected boxes to cover about 54 % of 1920×1080, about
  the jamming limit of random sequential placement, and strictly disjoint 1.6× regions would
  need about 2.1 million px², more than the canvas.
* **Blending** — each region is alpha-blended with a feathered mask (1 over the protected
  box, falling smoothly to 0 at the region's edge), so there are no hard rectangles; then each
  face is blended once more, opaque over its face box and feathered out to its protected box,
  so every face is whole and fully visible whatever overlaps its margins.

Ground truth boxes are x1, y1, x2, y2 in canvas pixels (float32), widest face first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from faceledger.domain.errors import InvalidParameterError
from faceledger.inference.imaging import load_image

if TYPE_CHECKING:
    from faceledger.inference.engine import FaceEngine

__all__ = [
    "CROP_MARGIN",
    "MEASURE_SCORE_THRESHOLD",
    "PROTECT_MARGIN",
    "LfwFace",
    "iou_matrix",
    "make_group_photo",
    "make_measuring_engine",
    "match_detections",
    "measure_lfw_face",
]

CROP_MARGIN = 1.6  # pasted region = face box, width and height × 1.6, about its centre
PROTECT_MARGIN = 1.15  # face box × 1.15: laid out disjoint, never covered by another region
MEASURE_SCORE_THRESHOLD = 0.3  # default measuring engine: weak second faces count as leaks
# The central face must have its centre within this distance (px) of the LFW image centre.
_MAX_CENTRE_OFFSET_PX = 40.0


@dataclass(frozen=True)
class LfwFace:
    """One LFW image's central face: its box and the region to paste (LFW image pixels)."""

    path: Path
    face_box_px: tuple[float, float, float, float]  # x1, y1, x2, y2
    crop_box_px: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive), inside the image


def make_measuring_engine() -> FaceEngine:
    """The default pack at ``MEASURE_SCORE_THRESHOLD``, one worker (only ``detect`` is used)."""
    from faceledger.inference.engine import EngineOptions, FaceEngine

    return FaceEngine(
        options=EngineOptions(detect_score_threshold=MEASURE_SCORE_THRESHOLD, workers=1)
    )


def measure_lfw_face(path: Path, engine: FaceEngine) -> LfwFace | None:
    """The central face of an LFW image, or None if there is none or another face would leak.

    ``engine.detect`` runs on the whole image; the detection nearest the image centre (within
    40 px) is the face. None too when any other detection overlaps the paste region.
    """
    image = load_image(path)
    h, w = image.height_px, image.width_px
    faces = engine.detect(image)
    if len(faces) == 0:
        return None
    boxes = np.asarray(faces.boxes_px, dtype=np.float64)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    offsets = np.hypot(centres[:, 0] - w / 2.0, centres[:, 1] - h / 2.0)
    best = int(np.argmin(offsets))
    if offsets[best] > _MAX_CENTRE_OFFSET_PX:
        return None
    x1, y1, x2, y2 = (float(v) for v in boxes[best])
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    crop = _clip_box(_grow((x1, y1, x2, y2), CROP_MARGIN), w, h)
    for i in range(len(boxes)):
        if i != best and _overlap(tuple(boxes[i]), crop):
            return None
    return LfwFace(path=path, face_box_px=(x1, y1, x2, y2), crop_box_px=crop)


def make_group_photo(
    lfw_root: Path,
    n_faces: int,
    rng: np.random.Generator,
    *,
    width: int = 1920,
    height: int = 1080,
    min_face_px: float = 30,
    max_face_px: float = 120,
    engine: FaceEngine | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """A BGR ``height``×``width`` canvas with ``n_faces`` LFW faces, and their boxes (N, 4).

    ``lfw_root`` holds ``<Name>/<Name>_NNNN.jpg`` (e.g. ``lfw-devtrain/images``). Face box
    widths are uniform in [``min_face_px``, ``max_face_px``]. ``engine`` measures the LFW face
    boxes (default: :func:`make_measuring_engine`; pass one to reuse it across photos — its
    score threshold decides which second faces count as leaks). Boxes are x1, y1, x2, y2 in
    canvas pixels, widest face first. Raises InvalidParameterError when the faces do not fit
    on the canvas or there are too few usable LFW images.
    """
    if n_faces < 0:
        raise InvalidParameterError(f"n_faces must be ≥ 0, got {n_faces}")
    if not 8 <= min_face_px <= max_face_px:
        raise InvalidParameterError(
            f"need 8 ≤ min_face_px ≤ max_face_px, got {min_face_px}, {max_face_px}"
        )
    people = sorted(p for p in Path(lfw_root).iterdir() if p.is_dir())
    if len(people) < n_faces:
        raise InvalidParameterError(f"{lfw_root} has {len(people)} people, {n_faces} wanted")
    if engine is None:
        engine = make_measuring_engine()

    canvas = scene_background(rng, width, height)
    sizes = np.sort(rng.uniform(min_face_px, max_face_px, size=n_faces))[::-1]
    patches = _pick_patches(lfw_root, people, sizes, rng, engine)
    extents = [p.protect_extent_px for p in patches]
    corners = _rows_layout(rng, extents, width, height)
    if corners is None:
        raise InvalidParameterError(
            f"{n_faces} faces of {min_face_px}–{max_face_px} px do not fit on a "
            f"{width}×{height} canvas"
        )
    # Patch origins: the protected box's top-left lands on its layout corner.
    origins = [
        (round(x - p.protect_local[0]), round(y - p.protect_local[1]))
        for p, (x, y) in zip(patches, corners, strict=True)
    ]
    _paste(canvas, patches, origins, rng)
    truth = [_shift(p.face_local, ox, oy) for p, (ox, oy) in zip(patches, origins, strict=True)]
    boxes = np.asarray(truth, dtype=np.float32).reshape(-1, 4)
    return canvas, boxes


def _pick_patches(
    lfw_root: Path,
    people: list[Path],
    sizes: NDArray[np.float64],
    rng: np.random.Generator,
    engine: FaceEngine,
) -> list[_Patch]:
    """One patch per size, each of a different person in random order (people without a
    usable image are passed over)."""
    order = rng.permutation(len(people))
    patches: list[_Patch] = []
    next_person = 0
    for size in sizes:
        face: LfwFace | None = None
        while face is None:
            if next_person >= len(order):
                raise InvalidParameterError(f"too few usable LFW images in {lfw_root}")
            person = people[int(order[next_person])]
            next_person += 1
            images = sorted(person.glob("*.jpg"))
            if images:
                face = measure_lfw_face(images[int(rng.integers(len(images)))], engine)
        patches.append(_Patch.of(face, float(size)))
    return patches


def _paste(
    canvas: NDArray[np.uint8],
    patches: list[_Patch],
    origins: list[tuple[int, int]],
    rng: np.random.Generator,
) -> None:
    """Blend every patch into ``canvas`` (in place) at its origin, in two passes."""
    pixels = [p.pixels() for p in patches]
    # Pass 1: whole regions, feathered to their edges, in random order (margins overlap).
    for i in rng.permutation(len(patches)):
        patch = patches[i]
        inner = _clip_box(patch.protect_local, patch.width_px, patch.height_px)
        outer = (0, 0, patch.width_px, patch.height_px)
        _blend(
            canvas,
            pixels[i],
            _feather_mask(patch.width_px, patch.height_px, inner, outer),
            origins[i],
        )
    # Pass 2: every face again, opaque over its box and feathered out to its protected box
    # (protected boxes are disjoint), so no other region's margin covers a face.
    for i, patch in enumerate(patches):
        inner = _clip_box(patch.face_local, patch.width_px, patch.height_px)
        outer = _clip_box(patch.protect_local, patch.width_px, patch.height_px)
        _blend(
            canvas,
            pixels[i],
            _feather_mask(patch.width_px, patch.height_px, inner, outer),
            origins[i],
        )


# -- matching ------------------------------------------------------------------------------------


def iou_matrix(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4); boxes x1, y1, x2, y2."""
    a3 = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    b3 = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    iw = np.clip(np.minimum(a3[..., 2], b3[..., 2]) - np.maximum(a3[..., 0], b3[..., 0]), 0, None)
    ih = np.clip(np.minimum(a3[..., 3], b3[..., 3]) - np.maximum(a3[..., 1], b3[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a3[..., 2] - a3[..., 0]) * (a3[..., 3] - a3[..., 1])
    area_b = (b3[..., 2] - b3[..., 0]) * (b3[..., 3] - b3[..., 1])
    union = area_a + area_b - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0), np.float64)


def match_detections(
    truth: ArrayLike, found: ArrayLike, *, iou_min: float = 0.4
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Pair ground-truth boxes with detections one to one, greedily, highest IoU first.

    Returns, per ground-truth box, the index of its detection (−1 when none reaches
    ``iou_min``) and that IoU (0 when unmatched). Detections whose index does not appear are
    false detections.
    """
    truth_arr = np.asarray(truth, np.float64).reshape(-1, 4)
    found_arr = np.asarray(found, np.float64).reshape(-1, 4)
    match = np.full(len(truth_arr), -1, dtype=np.intp)
    ious = np.zeros(len(truth_arr), dtype=np.float64)
    if len(truth_arr) == 0 or len(found_arr) == 0:
        return match, ious
    iou = iou_matrix(truth_arr, found_arr)
    used = np.zeros(len(found_arr), dtype=bool)
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        t, d = divmod(int(flat), len(found_arr))
        if iou[t, d] < iou_min:
            break
        if match[t] < 0 and not used[d]:
            match[t], ious[t], used[d] = d, iou[t, d], True
    return match, ious


# -- composition ---------------------------------------------------------------------------------


Box = tuple[float, float, float, float]
_GAP_PX = 4  # minimum gap between protected face boxes in the layout


@dataclass(frozen=True)
class _Patch:
    """One LFW region resized so that its face box is ``face_width_px`` wide."""

    face: LfwFace
    width_px: int
    height_px: int
    face_local: Box  # face box in patch pixels
    protect_local: Box  # face box grown PROTECT_MARGIN, in patch pixels

    @classmethod
    def of(cls, face: LfwFace, face_width_px: float) -> _Patch:
        fx1, fy1, fx2, fy2 = face.face_box_px
        cx1, cy1, cx2, cy2 = face.crop_box_px
        scale = face_width_px / (fx2 - fx1)
        out_w = max(2, round((cx2 - cx1) * scale))
        out_h = max(2, round((cy2 - cy1) * scale))
        sx, sy = out_w / (cx2 - cx1), out_h / (cy2 - cy1)  # exact scales after rounding
        local: Box = ((fx1 - cx1) * sx, (fy1 - cy1) * sy, (fx2 - cx1) * sx, (fy2 - cy1) * sy)
        return cls(face, out_w, out_h, local, _grow(local, PROTECT_MARGIN))

    @property
    def protect_extent_px(self) -> tuple[int, int]:
        x1, y1, x2, y2 = self.protect_local
        return int(np.ceil(x2 - x1)) + 1, int(np.ceil(y2 - y1)) + 1

    def pixels(self) -> NDArray[np.float32]:
        cx1, cy1, cx2, cy2 = self.face.crop_box_px
        region = load_image(self.face.path).pixels_bgr[cy1:cy2, cx1:cx2]
        shrink = self.width_px < cx2 - cx1
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        resized = cv2.resize(region, (self.width_px, self.height_px), interpolation=interp)
        return np.asarray(resized, dtype=np.float32)


def _rows_layout(
    rng: np.random.Generator, extents: list[tuple[int, int]], width: int, height: int
) -> list[tuple[int, int]] | None:
    """Top-left corners for boxes of the given (w, h), in rows like a group photo; or None.

    Boxes (largest first) fill rows up to a fraction of the width — the smallest of 60 %, 70 %,
    … 100 % whose rows fit the height, so sparse photos get several short rows rather than one
    long one. Rows are shuffled top to bottom and the spare height is shared out at random
    between them; in a row the boxes are shuffled, spaced by random gaps and jittered
    vertically within the row. Boxes are at least ``_GAP_PX`` apart.
    """
    if any(w + _GAP_PX > width or h + _GAP_PX > height for w, h in extents):
        return None
    rows: list[list[int]] = []
    heights: list[int] = []
    for fill in (0.6, 0.7, 0.8, 0.9, 1.0):
        rows = []
        row: list[int] = []
        used = 0
        for i, (w, _) in enumerate(extents):
            if row and used + w + _GAP_PX > fill * width:
                rows.append(row)
                row, used = [], 0
            row.append(i)
            used += w + _GAP_PX
        if row:
            rows.append(row)
        heights = [max(extents[i][1] for i in r) + _GAP_PX for r in rows]
        if sum(heights) <= height:
            break
    else:
        return None

    corners: list[tuple[int, int]] = [(0, 0)] * len(extents)
    row_order = rng.permutation(len(rows))
    y_gaps = _random_split(rng, height - sum(heights), len(rows) + 1)
    y = y_gaps[0]
    for k, r in enumerate(row_order):
        members = [rows[r][j] for j in rng.permutation(len(rows[r]))]
        row_w = sum(extents[i][0] + _GAP_PX for i in members)
        x_gaps = _random_split(rng, width - row_w, len(members) + 1)
        x = x_gaps[0]
        for j, i in enumerate(members):
            w, h = extents[i]
            dy = int(rng.integers(0, heights[r] - _GAP_PX - h + 1))
            corners[i] = (x + _GAP_PX // 2, y + _GAP_PX // 2 + dy)
            x += w + _GAP_PX + x_gaps[j + 1]
        y += heights[r] + y_gaps[k + 1]
    return corners


def _random_split(rng: np.random.Generator, total: int, parts: int) -> list[int]:
    """``parts`` non-negative integers summing to at most ``total``, uniformly at random."""
    if total <= 0:
        return [0] * parts
    shares = rng.dirichlet(np.ones(parts)) * total
    return [int(v) for v in np.floor(shares)]


def _blend(
    canvas: NDArray[np.uint8],
    patch: NDArray[np.float32],
    alpha: NDArray[np.float32],
    origin: tuple[int, int],
) -> None:
    """Alpha-blend ``patch`` onto ``canvas`` (in place) at top-left ``origin``, clipped."""
    height, width = canvas.shape[:2]
    ox, oy = origin
    x1, y1 = max(0, ox), max(0, oy)
    x2, y2 = min(width, ox + patch.shape[1]), min(height, oy + patch.shape[0])
    if x1 >= x2 or y1 >= y2:
        return
    src = patch[y1 - oy : y2 - oy, x1 - ox : x2 - ox]
    a = alpha[y1 - oy : y2 - oy, x1 - ox : x2 - ox, None]
    dst = canvas[y1:y2, x1:x2].astype(np.float32)
    canvas[y1:y2, x1:x2] = np.clip(np.rint(a * src + (1.0 - a) * dst), 0, 255).astype(np.uint8)


def _feather_mask(
    w: int, h: int, inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]
) -> NDArray[np.float32]:
    """1 inside ``inner``, 0 outside ``outer``, a smoothstep between (separable in x and y)."""

    def ramp(n: int, o1: int, i1: int, i2: int, o2: int) -> NDArray[np.float32]:
        pos = np.arange(n, dtype=np.float32) + 0.5
        left = np.clip((pos - o1) / max(i1 - o1, 1), 0.0, 1.0)
        right = np.clip((o2 - pos) / max(o2 - i2, 1), 0.0, 1.0)
        t = np.minimum(left, right)
        return (t * t * (3.0 - 2.0 * t)).astype(np.float32)

    ix1, iy1, ix2, iy2 = inner
    ox1, oy1, ox2, oy2 = outer
    return np.outer(ramp(h, oy1, iy1, iy2, oy2), ramp(w, ox1, ix1, ix2, ox2)).astype(np.float32)


def scene_background(rng: np.random.Generator, width: int, height: int) -> NDArray[np.uint8]:
    """A face-free, non-uniform scene: gradients, low-frequency noise, blurred shapes, grain."""
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    gx = rng.uniform(-60, 60, size=3).astype(np.float32)
    gy = rng.uniform(-60, 60, size=3).astype(np.float32)
    img: NDArray[np.float32] = np.asarray(base + gx * (xs - 0.5) + gy * (ys - 0.5), np.float32)
    for cells, amplitude in ((4, 40.0), (12, 20.0), (40, 8.0)):
        grid = rng.normal(0.0, amplitude, size=(cells, max(2, cells * width // height), 3))
        img = img + cv2.resize(
            grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
        )
    shapes = np.zeros((height, width, 3), dtype=np.float32)
    weight = np.zeros((height, width), dtype=np.float32)
    for _ in range(int(rng.integers(15, 40))):
        w = int(rng.integers(width // 40, width // 4))
        h = int(rng.integers(height // 40, height // 3))
        x = int(rng.integers(-w // 2, width))
        y = int(rng.integers(-h // 2, height))
        colour = tuple(float(c) for c in rng.uniform(20, 235, size=3))
        cv2.rectangle(shapes, (x, y), (x + w, y + h), colour, thickness=-1)
        cv2.rectangle(weight, (x, y), (x + w, y + h), 1.0, thickness=-1)
    soft_shapes = np.asarray(cv2.GaussianBlur(shapes, (0, 0), sigmaX=6.0), np.float32)
    soft_weight = np.asarray(cv2.GaussianBlur(weight, (0, 0), sigmaX=6.0), np.float32)
    opacity = soft_weight[:, :, None] * 0.7
    img = np.asarray(img * (1.0 - opacity) + soft_shapes * opacity, np.float32)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), sigmaX=1.5), np.float32)
    img = img + rng.normal(0.0, 3.0, size=img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# -- boxes ---------------------------------------------------------------------------------------


def _grow(box: Box, factor: float) -> Box:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    hw, hh = (x2 - x1) * factor / 2.0, (y2 - y1) * factor / 2.0
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def _shift(box: Box, dx: float, dy: float) -> Box:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


def _clip_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return (
        max(0, int(np.floor(x1))),
        max(0, int(np.floor(y1))),
        min(width, int(np.ceil(x2))),
        min(height, int(np.ceil(y2))),
    )


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
