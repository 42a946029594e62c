"""Synthetic videos of people as head-and-shoulders figures (not just faces), with ground truth.

A ``Figure`` is the head-and-shoulders part of an LFW photo (``HEAD_AND_SHOULDERS``: face,
hair, neck, shoulders), pasted opaque at a height of ``height_px`` and moving in a straight line
between ``enter_s`` and ``leave_s``. Between ``hide_from_s`` and ``hide_until_s`` its face is
covered by a dark hair-coloured oval (the person seen from behind): the face detector then finds
nothing there, while the person detector still sees a person. ``make_figure_video`` encodes
H.264 over the same backdrop as ``videos.py`` and returns the figures (the ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from videos import background

HEAD_AND_SHOULDERS = (slice(40, 250), slice(50, 200))  # rows, cols of a 250×250 LFW photo
HAIR_BGR = (30, 35, 45)


@dataclass(frozen=True)
class Figure:
    name: str
    photo: Path
    enter_s: float
    leave_s: float
    start_xy: tuple[float, float]
    end_xy: tuple[float, float]
    height_px: int = 240
    hide_from_s: float = -1.0
    hide_until_s: float = -1.0

    @property
    def width_px(self) -> int:
        return round(150 * self.height_px / 210)

    def position_at(self, t_s: float) -> tuple[int, int] | None:
        if not self.enter_s <= t_s < self.leave_s:
            return None
        f = (t_s - self.enter_s) / max(self.leave_s - self.enter_s, 1e-9)
        x = self.start_xy[0] + f * (self.end_xy[0] - self.start_xy[0])
        y = self.start_xy[1] + f * (self.end_xy[1] - self.start_xy[1])
        return round(x), round(y)

    def face_hidden_at(self, t_s: float) -> bool:
        return self.hide_from_s <= t_s < self.hide_until_s


def figure_pixels(photo: Path, height_px: int, *, hidden: bool) -> NDArray[np.uint8]:
    """The figure's cut-out at ``height_px``; ``hidden``: its face covered (seen from behind)."""
    import cv2

    tile = cv2.imread(str(photo))
    if tile is None:
        raise FileNotFoundError(photo)
    width_px = round(150 * height_px / 210)
    cut = cv2.resize(tile[HEAD_AND_SHOULDERS], (width_px, height_px), interpolation=cv2.INTER_AREA)
    if hidden:
        s = height_px / 210
        centre = (int(75 * s), int(80 * s))
        cv2.ellipse(cut, centre, (int(42 * s), int(58 * s)), 0, 0, 360, HAIR_BGR, -1)
    return np.ascontiguousarray(cut)


def render(
    base: NDArray[np.uint8],
    figures: tuple[Figure, ...],
    cutouts: dict[tuple[str, bool], NDArray[np.uint8]],
    t_s: float,
) -> NDArray[np.uint8]:
    frame = base.copy()
    h, w = frame.shape[:2]
    for fig in figures:
        pos = fig.position_at(t_s)
        if pos is None:
            continue
        x, y = pos
        cut = cutouts[(fig.name, fig.face_hidden_at(t_s))]
        x1, y1 = max(0, x), max(0, y)
        x2, y2 = min(w, x + cut.shape[1]), min(h, y + cut.shape[0])
        if x2 > x1 and y2 > y1:
            frame[y1:y2, x1:x2] = cut[y1 - y : y2 - y, x1 - x : x2 - x]
    return frame


def make_figure_video(
    path: Path,
    figures: list[Figure],
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 10,
    duration_s: float = 4.0,
) -> tuple[Figure, ...]:
    """Render and encode ``figures`` (H.264 MP4) to ``path``."""
    import av

    cutouts = {
        (f.name, hidden): figure_pixels(f.photo, f.height_px, hidden=hidden)
        for f in figures
        for hidden in (False, True)
    }
    base = background(width, height)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(2 * fps)}
        for i in range(round(duration_s * fps)):
            frame = av.VideoFrame.from_ndarray(
                render(base, tuple(figures), cutouts, i / fps), format="bgr24"
            )
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return tuple(figures)
