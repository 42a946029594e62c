"""Five-point similarity alignment to the 112×112 ArcFace template."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.faces import Faces

# The standard 112×112 ArcFace / SFace template, in LANDMARK_NAMES order (pixels).
ARCFACE_TEMPLATE_112: NDArray[np.float32] = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(src: NDArray[np.float32], dst: NDArray[np.float32]) -> NDArray[np.float64]:
    """Least-squares rotation + uniform scale + translation mapping ``src`` onto ``dst``.

    Umeyama (1991) without reflection; returns a 2×3 matrix for ``cv2.warpAffine``.
    """
    src64 = np.asarray(src, dtype=np.float64)
    dst64 = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src64.mean(axis=0), dst64.mean(axis=0)
    src_c, dst_c = src64 - src_mean, dst64 - dst_mean
    cov = dst_c.T @ src_c / len(src64)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src64)
    scale = float((s * d).sum() / var_src) if var_src > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_faces(
    pixels_bgr: NDArray[np.uint8], faces: Faces, *, size_px: int = 112
) -> NDArray[np.uint8]:
    """Aligned crops (N, size, size, 3) BGR uint8, one per face, in the order of ``faces``."""
    import cv2

    template = ARCFACE_TEMPLATE_112 * (size_px / 112.0)
    crops = np.zeros((len(faces), size_px, size_px, 3), dtype=np.uint8)
    for i in range(len(faces)):
        matrix = similarity_transform(faces.landmarks_px[i], template)
        crops[i] = cv2.warpAffine(
            pixels_bgr, matrix, (size_px, size_px), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)
        )
    return crops
