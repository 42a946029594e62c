"""Face quality: brightness, sharpness (0–100) and a head-pose estimate from five landmarks.

Brightness and sharpness are measured on the aligned 112×112 crop, so they describe the face,
not the photo. Pose is a geometric estimate from the landmarks (no extra model): roll is the
eye line's angle; yaw and pitch come from ``cv2.solvePnP`` of the five landmarks against a 3-D
five-point mean face (``pose_from_landmarks``; checked against faces sorted by eye in
``bench/pose_quality.py``). Sign conventions (Rekognition's): yaw > 0 when the
nose points to the image's right, pitch > 0 when the face tilts up, roll > 0 clockwise in the
image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

# Sharpness: variance of the Laplacian mapped through 100·(1 − exp(−v / _SHARPNESS_SCALE)).
_SHARPNESS_SCALE = 400.0


def brightness_sharpness(
    crops_bgr: NDArray[np.uint8],
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Per-crop brightness (mean luma of the central face region, 0–100) and sharpness (0–100)."""
    import cv2

    n = len(crops_bgr)
    brightness = np.zeros((n,), dtype=np.float32)
    sharpness = np.zeros((n,), dtype=np.float32)
    for i, crop in enumerate(crops_bgr):
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        centre = gray[h // 6 : h - h // 12, w // 6 : w - w // 6]
        brightness[i] = float(centre.mean()) / 255.0 * 100.0
        variance = float(cv2.Laplacian(centre, cv2.CV_64F).var())
        sharpness[i] = 100.0 * (1.0 - np.exp(-variance / _SHARPNESS_SCALE))
    return brightness, sharpness


def pose_from_landmarks(
    landmarks_px: NDArray[np.float32],
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """(yaw, pitch, roll) in degrees for (N, 5, 2) landmarks in LANDMARK_NAMES order.

    Yaw and pitch come from ``cv2.solvePnP`` of the five landmarks against a 3-D five-point
    mean face (``MEAN_FACE_3D``), seen by a camera about 20 inter-ocular distances away (a
    portrait at ≈ 1.3 m; the estimate depends little on that distance). Unlike the ratio of
    the nose offset to the eye distance, which saturates near ±45–90° for faces turned
    30–45° (the eye distance shrinks as the nose offset grows), the fit keeps turning angles
    apart up to about 60–70°; beyond that the five points of a profile are nearly collinear
    and the estimate flattens out. Roll is the angle of the eye line in the image.
    """
    import cv2

    pts = np.asarray(landmarks_px, dtype=np.float64).reshape(-1, 5, 2)
    n = len(pts)
    yaw = np.zeros((n,), dtype=np.float32)
    pitch = np.zeros((n,), dtype=np.float32)
    eye_vec = pts[:, 1] - pts[:, 0]
    roll = np.degrees(np.arctan2(eye_vec[:, 1], eye_vec[:, 0])).astype(np.float32)
    for i in range(n):
        yaw[i], pitch[i] = _yaw_pitch_pnp(pts[i], cv2)
    return yaw, pitch, roll


# Five-point mean face in inter-ocular units (x to the image's right, y down, z away from the
# camera; origin between the eyes), for LANDMARK_NAMES order. x and y are the symmetrised
# ARCFACE_TEMPLATE_112 (a frontal mean face). The depths are effective depths for YuNet's
# landmarks: anthropometry puts the nose tip ≈ 0.5 IOD in front of the eyes, but on turned
# faces YuNet places the nose point out towards the cheek's outline, so a 0.5 model reads
# three-quarter views as ≈ 52° on average. 0.9 (mouth corners 0.15) brings the faces sorted
# by eye as three-quarter views (≈ 25–55°) to a mean of ≈ 41°; it is the one fitted number
# (bench/pose_quality.py, bench/pose_labels.csv), and ordering is unaffected by it.
MEAN_FACE_3D: NDArray[np.float64] = np.array(
    [
        [-0.5, 0.0, 0.0],
        [0.5, 0.0, 0.0],
        [0.0, 0.571, -0.9],
        [-0.414, 1.155, -0.15],
        [0.414, 1.155, -0.15],
    ],
    dtype=np.float64,
)
# Camera distance in inter-ocular distances (focal length in face sizes).
_CAMERA_DISTANCE_IOD = 20.0


def _yaw_pitch_pnp(points_px: NDArray[np.float64], cv2: Any) -> tuple[float, float]:
    """Yaw and pitch (degrees) of one face's five landmarks; (0, 0) if they are degenerate."""
    centre = points_px.mean(axis=0)
    # face size in pixels: robust to turning (the eye distance shrinks with yaw, the eye-to-
    # mouth height with pitch)
    eye_mid = (points_px[0] + points_px[1]) / 2.0
    mouth_mid = (points_px[3] + points_px[4]) / 2.0
    size_px = max(
        float(np.linalg.norm(points_px[1] - points_px[0])),
        float(np.linalg.norm(mouth_mid - eye_mid)) / 1.155,
        1e-3,
    )
    focal_px = _CAMERA_DISTANCE_IOD * size_px
    camera = np.array([[focal_px, 0, centre[0]], [0, focal_px, centre[1]], [0, 0, 1]], np.float64)
    rvec = np.zeros((3, 1), np.float64)
    tvec = np.array([[0.0], [0.0], [_CAMERA_DISTANCE_IOD]], np.float64)
    try:
        ok, rvec, tvec = cv2.solvePnP(
            MEAN_FACE_3D,
            points_px.reshape(5, 1, 2),
            camera,
            None,
            rvec=rvec,
            tvec=tvec,
            useExtrinsicGuess=True,
            flags=cv2.SOLVEPNP_ITERATIVE,
        )
    except cv2.error:
        return 0.0, 0.0
    if not ok or not np.all(np.isfinite(rvec)):
        return 0.0, 0.0
    rotation, _ = cv2.Rodrigues(rvec)
    forward = rotation @ np.array([0.0, 0.0, -1.0])  # where the face points (towards camera)
    yaw = float(np.degrees(np.arctan2(forward[0], -forward[2])))
    pitch = float(np.degrees(np.arctan2(-forward[1], np.hypot(forward[0], forward[2]))))
    return yaw, pitch
