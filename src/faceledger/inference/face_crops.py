"""A small JPEG of one face, for a reviewer to look at (``keep_face_crops``, docs/REVIEW.md).

The face box widened by a margin on every side (25 % of its width and height), clipped to the
image, scaled down so its longer side is at most 160 px (never up), encoded at JPEG quality
85: about 5–8 KB. Nothing else of the photo is kept.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceledger.domain.faces import Image

CROP_MARGIN = 0.25  # of the box's width (left and right) and height (top and bottom)
CROP_MAX_SIDE_PX = 160
CROP_JPEG_QUALITY = 85


def face_crop_jpeg(
    image: Image,
    box_px: NDArray[np.floating] | tuple[float, float, float, float],
    *,
    margin: float = CROP_MARGIN,
    max_side_px: int = CROP_MAX_SIDE_PX,
    quality: int = CROP_JPEG_QUALITY,
) -> bytes:
    """The JPEG bytes of the face in ``box_px`` (x1, y1, x2, y2 in pixels) of ``image``."""
    x1, y1, x2, y2 = (float(v) for v in box_px)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = image.pixels_bgr.shape[:2]
    left, top = max(0, int(np.floor(x1 - dx))), max(0, int(np.floor(y1 - dy)))
    right, bottom = min(width, int(np.ceil(x2 + dx))), min(height, int(np.ceil(y2 + dy)))
    if right <= left or bottom <= top:  # a box outside the image: keep its nearest pixel
        left, top = min(max(0, left), width - 1), min(max(0, top), height - 1)
        right, bottom = left + 1, top + 1
    crop: NDArray[np.uint8] = image.pixels_bgr[top:bottom, left:right]
    return _shrunk_jpeg(crop, max_side_px, quality)


def shrink_crop_jpeg(
    jpeg: bytes, *, max_side_px: int = CROP_MAX_SIDE_PX, quality: int = CROP_JPEG_QUALITY
) -> bytes:
    """A face crop that is already a JPEG (a stream's best shot: the face box with a margin)
    re-encoded like a kept crop: at most ``max_side_px`` on its longer side, JPEG
    ``quality``. ``ValueError`` when ``jpeg`` does not decode."""
    pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None or pixels.size == 0:
        raise ValueError("the face crop is not a decodable image")
    crop = np.asarray(pixels, np.uint8)
    return _shrunk_jpeg(crop, max_side_px, quality)


def _shrunk_jpeg(crop: NDArray[np.uint8], max_side_px: int, quality: int) -> bytes:
    """``crop`` at most ``max_side_px`` on its longer side, as JPEG ``quality``."""
    longer = max(crop.shape[0], crop.shape[1])
    if longer > max_side_px:
        scale = max_side_px / longer
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV encodes any non-empty BGR array
        raise ValueError("the face crop could not be encoded as JPEG")
    return encoded.tobytes()
