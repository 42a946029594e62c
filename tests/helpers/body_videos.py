"""Synthetic videos of people as head-and-shoulders figures (not just faces), with ground truth.

A ``Figure`` is the head-and-shoulders part of an LFW photo (``HEAD_AND_SHOULDERS``: face,
hair, neck, shoulders), pasted opaque at a height of ``height_px`` and moving in a straight line
between ``enter_s`` and ``leave_s``. Between ``hide_from_s`` and ``hide_until_s`` its face is
covered by a dark hair-coloured oval (the person seen from behind): the face detector then finds
nothing there, while the person detector still sees a person. ``make_figure_video`` encodes
H.264 over the same backdrop as ``videos.py`` (optionally with a drawn stop sign, which the
labels pack reads as Stop Sign → Road Sign → Sign → Symbol) and returns the figures.
``seen_from_behind_people`` picks LFW people whose covered figure the person detector still
finds and the face detector does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from helpers.videos import Moving, background, encode_video, paste, photo_region

HEAD_AND_SHOULDERS = (slice(40, 250), slice(50, 200))  # rows, cols of a 250×250 LFW photo
HAIR_BGR = (30, 35, 45)


@dataclass(frozen=True)
class Figure(Moving):
    """Head and shoulders, ``height_px`` tall; the face covered from ``hide_from_s`` to
    ``hide_until_s``."""

    height_px: int = 240
    hide_from_s: float = -1.0
    hide_until_s: float = -1.0

    @property
    def width_px(self) -> int:
        return round(150 * self.height_px / 210)

    def face_hidden_at(self, t_s: float) -> bool:
        return self.hide_from_s <= t_s < self.hide_until_s


def figure_pixels(photo: Path, height_px: int, *, hidden: bool) -> NDArray[np.uint8]:
    """The figure's cut-out at ``height_px``; ``hidden``: its face covered (seen from behind)."""
    import cv2

    width_px = round(150 * height_px / 210)
    cut = photo_region(photo, HEAD_AND_SHOULDERS, (width_px, height_px))
    if hidden:
        s = height_px / 210
        centre = (int(75 * s), int(80 * s))
        cv2.ellipse(cut, centre, (int(42 * s), int(58 * s)), 0, 0, 360, HAIR_BGR, -1)
    return np.ascontiguousarray(cut)


def draw_stop_sign(pixels: NDArray[np.uint8], centre: tuple[int, int], size_px: int) -> None:
    """A red octagon with a white border and STOP on a grey post (in place)."""
    import cv2

    cx, cy = centre
    r = size_px // 2
    angles = np.pi / 8 + np.arange(8) * np.pi / 4
    pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1).astype(np.int32)
    thick = max(2, size_px // 30)
    cv2.line(pixels, (cx, cy + r), (cx, pixels.shape[0] - 1), (90, 90, 90), 6)
    cv2.fillPoly(pixels, [pts], (30, 30, 200))
    cv2.polylines(pixels, [pts], True, (255, 255, 255), thick)
    origin = (cx - int(r * 0.75), cy + int(r * 0.2))
    cv2.putText(pixels, "STOP", origin, cv2.FONT_HERSHEY_SIMPLEX, size_px / 110, (255,) * 3, thick)


def seen_from_behind_people(
    detect_people: Callable[[NDArray[np.uint8]], tuple[Any, Any]],
    detect_faces: Callable[[NDArray[np.uint8]], int],
    people: dict[str, list[Path]],
    count: int,
    *,
    min_score: float = 0.4,
    height_px: int = 240,
) -> dict[str, list[Path]]:
    """The first ``count`` of ``people`` whose figure (first photo) at three places is found
    by ``detect_people`` at ≥ ``min_score`` with the face shown and with it covered, and whose
    face ``detect_faces`` (a face count) finds once when shown and never when covered."""
    base = background(640, 360)
    out: dict[str, list[Path]] = {}
    for name, photos in people.items():
        ok = True
        for x in (40, 200, 400):
            for hidden in (False, True):
                cut = figure_pixels(photos[0], height_px, hidden=hidden)
                frame = base.copy()
                frame[60 : 60 + height_px, x : x + cut.shape[1]] = cut
                _, scores = detect_people(frame)
                faces = detect_faces(frame)
                if not len(scores) or float(np.max(scores)) < min_score or faces != (not hidden):
                    ok = False
        if ok:
            out[name] = photos
        if len(out) == count:
            break
    return out


def render(
    base: NDArray[np.uint8],
    figures: tuple[Figure, ...],
    cutouts: dict[tuple[str, bool], NDArray[np.uint8]],
    t_s: float,
) -> NDArray[np.uint8]:
    frame = base.copy()
    for fig in figures:
        pos = fig.position_at(t_s)
        if pos is not None:
            paste(frame, cutouts[(fig.name, fig.face_hidden_at(t_s))], pos)
    return frame


def make_figure_video(
    path: Path,
    figures: list[Figure],
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 10,
    duration_s: float = 4.0,
    stop_sign: tuple[int, int, int] | None = None,
) -> tuple[Figure, ...]:
    """Render and encode ``figures`` (H.264 MP4) to ``path``; ``stop_sign`` (x, y, size px)
    draws a stop sign on the backdrop for the whole video."""
    cutouts = {
        (f.name, hidden): figure_pixels(f.photo, f.height_px, hidden=hidden)
        for f in figures
        for hidden in (False, True)
    }
    base = background(width, height)
    if stop_sign is not None:
        draw_stop_sign(base, (stop_sign[0], stop_sign[1]), stop_sign[2])
    pictures = (
        render(base, tuple(figures), cutouts, i / fps) for i in range(round(duration_s * fps))
    )
    encode_video(path, pictures, width=width, height=height, fps=fps, gop=2 * fps)
    return tuple(figures)
