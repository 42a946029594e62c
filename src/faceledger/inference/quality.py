"""Face quality: brightness, sharpness (0–100) and a head-pose estimate from five landmarks.

Brightness and sharpness are measured on the aligned 112×112 crop, so they describe the face,
not the photo. Pose is a geometric estimate from the landmarks (no extra model): roll is exact
for the eye line; yaw and pitch come from where the nose sits between the eyes and the mouth,
good to roughly ±10–15° for moderate poses. Sign conventions (Rekognition's): yaw > 0 when the
nose points to the image's right, pitch > 0 when the face tilts up, roll > 0 clockwise in the
image.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Fraction of the eye-to-mouth distance at which the nose tip sits on a frontal face
# (from the ARCFACE_TEMPLATE_112 geometry).
_FRONTAL_NOSE_T = (71.7366 - 51.5989) / (92.2848 - 51.5989)
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
    """(yaw, pitch, roll) in degrees for (N, 5, 2) landmarks in LANDMARK_NAMES order."""
    pts = np.asarray(landmarks_px, dtype=np.float64).reshape(-1, 5, 2)
    eye_l, eye_r, nose, mouth_l, mouth_r = (pts[:, k] for k in range(5))
    eye_vec = eye_r - eye_l
    roll = np.degrees(np.arctan2(eye_vec[:, 1], eye_vec[:, 0]))
    # Undo roll so that the eye line is horizontal, then measure in face coordinates.
    theta = -np.radians(roll)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    eye_mid = (eye_l + eye_r) / 2.0
    mouth_mid = (mouth_l + mouth_r) / 2.0

    def rotate(p: NDArray[np.float64]) -> NDArray[np.float64]:
        d = p - eye_mid
        return np.stack([d[:, 0] * cos_t - d[:, 1] * sin_t, d[:, 0] * sin_t + d[:, 1] * cos_t], 1)

    nose_r, mouth_r_ = rotate(nose), rotate(mouth_mid)
    eye_dist = np.maximum(np.linalg.norm(eye_vec, axis=1), 1e-6)
    # Yaw: the nose tip (≈ 0.6 inter-ocular distances in front of the eye plane) moves sideways.
    yaw = np.degrees(np.arcsin(np.clip(nose_r[:, 0] / (0.6 * eye_dist), -1.0, 1.0)))
    # Pitch: the nose moves between the eye line and the mouth line.
    span = np.maximum(mouth_r_[:, 1], 1e-6)
    t = nose_r[:, 1] / span
    pitch = np.degrees(np.arcsin(np.clip((_FRONTAL_NOSE_T - t) * 1.6, -1.0, 1.0)))
    return yaw.astype(np.float32), pitch.astype(np.float32), roll.astype(np.float32)
