"""The probe photo on the search page: its detected faces, a preview, a chosen face's crop.

SearchFacesByImage searches the largest face of an image (Rekognition's rule, and the
gateway's only search-by-image verb). To search another face of a group photo, the web app
searches a crop around the chosen face instead: the face's box grown by ``CROP_MARGIN`` on
every side (the detector needs context), other detected faces inside the crop painted grey
(so the chosen face is the only one left to find), and the crop enlarged to at least
``MIN_CROP_SIDE_PX`` when it is small. The crop keeps the uploaded photo's SHA-256, so the
ledger records the photo the officer submitted (the DetectFaces record made for the choice
carries the same digest). The largest face (face 1) is searched in the whole photo.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import cv2
import numpy as np

from faceledger.domain.collections import BoundingBox
from faceledger.domain.faces import Faces, Image

CROP_MARGIN = 0.6  # of the face's larger side, on each side
MIN_CROP_SIDE_PX = 200
PREVIEW_MAX_SIDE_PX = 960
PREVIEW_JPEG_QUALITY = 85
GREY = 128


@dataclass(frozen=True)
class Box:
    """A face's box in pixels of the orientation-corrected photo."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


@dataclass(frozen=True)
class Crop:
    """Where a crop came from: its top-left corner in the photo and its enlargement."""

    image: Image
    left_px: int
    top_px: int
    scale: float

    def to_photo(self, box: BoundingBox) -> Box:
        """A ratio box measured on the crop, in pixels of the photo."""
        w, h = self.image.width_px, self.image.height_px
        return Box(
            self.left_px + box.left * w / self.scale,
            self.top_px + box.top * h / self.scale,
            box.width * w / self.scale,
            box.height * h / self.scale,
        )


def face_boxes(faces: Faces) -> list[Box]:
    """The detected faces' boxes, in their order (largest first from the detector)."""
    return [
        Box(float(x1), float(y1), float(x2 - x1), float(y2 - y1))
        for x1, y1, x2, y2 in faces.boxes_px
    ]


def ratio_to_photo(box: BoundingBox, image: Image) -> Box:
    return Box(
        box.left * image.width_px,
        box.top * image.height_px,
        box.width * image.width_px,
        box.height * image.height_px,
    )


def crop_around(image: Image, boxes: list[Box], index: int) -> Crop:
    """The crop to search for face ``index`` (see the module's docstring)."""
    face = boxes[index]
    h, w = image.height_px, image.width_px
    grow = CROP_MARGIN * max(face.width, face.height)
    x1, y1 = max(0, int(face.left - grow)), max(0, int(face.top - grow))
    x2, y2 = min(w, int(np.ceil(face.right + grow))), min(h, int(np.ceil(face.bottom + grow)))
    pixels = image.pixels_bgr[y1:y2, x1:x2].copy()
    for i, other in enumerate(boxes):
        if i == index:
            continue
        ox1, oy1 = max(x1, int(other.left)), max(y1, int(other.top))
        ox2, oy2 = min(x2, int(np.ceil(other.right))), min(y2, int(np.ceil(other.bottom)))
        if ox1 < ox2 and oy1 < oy2:
            pixels[oy1 - y1 : oy2 - y1, ox1 - x1 : ox2 - x1] = GREY
    # A neighbour's box may overlap the chosen face: put the chosen face back whole.
    fx1, fy1 = max(x1, int(face.left)), max(y1, int(face.top))
    fx2, fy2 = min(x2, int(np.ceil(face.right))), min(y2, int(np.ceil(face.bottom)))
    pixels[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1] = image.pixels_bgr[fy1:fy2, fx1:fx2]
    scale = 1.0
    shorter = min(pixels.shape[0], pixels.shape[1])
    if shorter < MIN_CROP_SIDE_PX:
        scale = MIN_CROP_SIDE_PX / shorter
        size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
        pixels = np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC), np.uint8)
    crop = Image(np.ascontiguousarray(pixels), image.format, image.sha256, image.size_bytes)
    return Crop(crop, x1, y1, scale)


def preview_data_url(image: Image) -> str:
    """A JPEG ``data:`` URL of the photo, at most ``PREVIEW_MAX_SIDE_PX`` on its longer side
    (boxes stay in photo pixels: the page's SVG scales the preview to the photo's size)."""
    pixels = image.pixels_bgr
    longer = max(image.width_px, image.height_px)
    if longer > PREVIEW_MAX_SIDE_PX:
        scale = PREVIEW_MAX_SIDE_PX / longer
        size = (max(1, round(image.width_px * scale)), max(1, round(image.height_px * scale)))
        pixels = np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_JPEG_QUALITY])
    if not ok:
        raise RuntimeError("could not encode the preview")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
