"""Whole-image properties for DetectLabels' ``IMAGE_PROPERTIES`` feature (no model).

- Brightness: mean luma, 0–100.
- Sharpness: variance of the Laplacian of the luma (image scaled to at most 512 px), mapped to
  0–100 by ``100·(1 − exp(−v / 400))`` like the face quality scores.
- Contrast: standard deviation of the luma as a share of its largest possible value (127.5), 0–100.
- Dominant colours: k-means (k = the colours asked for) on a 64×64 thumbnail in RGB; each
  centre is named by the nearest CSS colour and the nearest of Rekognition's simplified
  colours (Euclidean in RGB); ``PixelPercent`` is the share of thumbnail pixels in its cluster.
  Deterministic (fixed seed), most frequent first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.labels import DominantColour, ImageProperties, ImageQuality

_SHARPNESS_SCALE = 400.0
_ANALYSIS_SIDE_PX = 512
_THUMB_PX = 64

# Rekognition's simplified colour names with a representative RGB.
SIMPLIFIED: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 30),
    "pink": (240, 150, 180),
    "orange": (240, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 160, 60),
    "teal": (0, 128, 128),
    "blue": (40, 70, 200),
    "purple": (128, 50, 160),
    "brown": (120, 75, 40),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "black": (15, 15, 15),
}
# A subset of CSS named colours, enough to name any colour to within a few shades.
CSS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "dimgray": (105, 105, 105), "gray": (128, 128, 128),
    "darkgray": (169, 169, 169), "silver": (192, 192, 192), "lightgray": (211, 211, 211),
    "gainsboro": (220, 220, 220), "whitesmoke": (245, 245, 245), "white": (255, 255, 255),
    "maroon": (128, 0, 0), "darkred": (139, 0, 0), "red": (255, 0, 0),
    "firebrick": (178, 34, 34), "brown": (165, 42, 42), "sienna": (160, 82, 45),
    "chocolate": (210, 105, 30), "peru": (205, 133, 63), "tan": (210, 180, 140),
    "wheat": (245, 222, 179), "beige": (245, 245, 220), "orange": (255, 165, 0),
    "darkorange": (255, 140, 0), "coral": (255, 127, 80), "salmon": (250, 128, 114),
    "gold": (255, 215, 0), "yellow": (255, 255, 0), "khaki": (240, 230, 140),
    "olive": (128, 128, 0), "darkolivegreen": (85, 107, 47), "green": (0, 128, 0),
    "darkgreen": (0, 100, 0), "forestgreen": (34, 139, 34), "lime": (0, 255, 0),
    "lightgreen": (144, 238, 144), "teal": (0, 128, 128), "cyan": (0, 255, 255),
    "turquoise": (64, 224, 208), "skyblue": (135, 206, 235), "steelblue": (70, 130, 180),
    "navy": (0, 0, 128), "darkblue": (0, 0, 139), "blue": (0, 0, 255),
    "royalblue": (65, 105, 225), "slategray": (112, 128, 144), "purple": (128, 0, 128),
    "indigo": (75, 0, 130), "violet": (238, 130, 238), "magenta": (255, 0, 255),
    "pink": (255, 192, 203), "hotpink": (255, 105, 180), "lavender": (230, 230, 250),
}  # fmt: skip


def _nearest(rgb: NDArray[np.float64], palette: dict[str, tuple[int, int, int]]) -> str:
    names = list(palette)
    colours = np.asarray([palette[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((colours - rgb) ** 2).sum(axis=1)))]


def image_quality(pixels_bgr: NDArray[np.uint8]) -> ImageQuality:
    import cv2

    h, w = pixels_bgr.shape[:2]
    scale = min(1.0, _ANALYSIS_SIDE_PX / max(h, w))
    small: NDArray[Any] = pixels_bgr
    if scale < 1.0:
        small = cv2.resize(
            pixels_bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
    luma = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    variance = float(cv2.Laplacian(luma, cv2.CV_64F).var())
    return ImageQuality(
        brightness=round(float(luma.mean()) / 255.0 * 100.0, 4),
        sharpness=round(100.0 * (1.0 - float(np.exp(-variance / _SHARPNESS_SCALE))), 4),
        contrast=round(min(100.0, float(luma.std()) / 127.5 * 100.0), 4),
    )


def dominant_colours(pixels_bgr: NDArray[np.uint8], count: int) -> tuple[DominantColour, ...]:
    """Up to ``count`` dominant colours, most frequent first (fewer when the image has fewer)."""
    import cv2

    if count <= 0:
        return ()
    thumb = cv2.resize(pixels_bgr, (_THUMB_PX, _THUMB_PX), interpolation=cv2.INTER_AREA)
    rgb = thumb[:, :, ::-1].reshape(-1, 3).astype(np.float32)
    distinct = len(np.unique(rgb, axis=0))
    k = max(1, min(count, distinct))
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, labels, centres = cv2.kmeans(rgb, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=k)
    out = []
    for i in np.argsort(-counts, kind="stable"):
        if counts[i] == 0:
            continue
        r, g, b = (round(float(v)) for v in np.clip(centres[i], 0, 255))
        centre = np.asarray([r, g, b], dtype=np.float64)
        out.append(
            DominantColour(
                red=r,
                green=g,
                blue=b,
                hex_code=f"#{r:02x}{g:02x}{b:02x}",
                css_colour=_nearest(centre, CSS),
                simplified_colour=_nearest(centre, SIMPLIFIED),
                pixel_pct=round(100.0 * float(counts[i]) / len(rgb), 4),
            )
        )
    return tuple(out)


def image_properties(pixels_bgr: NDArray[np.uint8], max_colours: int) -> ImageProperties:
    return ImageProperties(image_quality(pixels_bgr), dominant_colours(pixels_bgr, max_colours))
