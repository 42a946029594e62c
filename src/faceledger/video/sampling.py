"""Frames of a stored video at a fixed rate of player time (label detection in video).

Every frame is decoded (inter-frame codecs need them) but only the first frame at or after
each multiple of ``interval_ms`` (counted from the first frame's timestamp) is converted to
pixels and handed on: at the default 500 ms, two frames a second, like the per-second
granularity of Rekognition's label timestamps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.video import VideoMetadata
from faceledger.video.sources import decode_frames, metadata_of, open_input, parse_source, to_bgr

DEFAULT_SAMPLE_INTERVAL_MS = 500
FrameCallback = Callable[[int, NDArray[np.uint8]], None]


class SamplingCancelled(Exception):
    """Raised by a ``cancelled`` check that says stop (the caller maps it)."""


def sample_video(
    source: str,
    on_frame: FrameCallback,
    *,
    interval_ms: int = DEFAULT_SAMPLE_INTERVAL_MS,
    cancelled: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[VideoMetadata, int]:
    """Call ``on_frame(timestamp_ms, pixels_bgr)`` for the sampled frames of the video file
    ``source`` and return its metadata (frame size upright) and the number of frames sampled.

    ``cancelled()`` is checked before each sampled frame (``SamplingCancelled`` when it says
    stop); ``progress(fraction)`` follows the player time. Unreadable input, or a video
    without a decodable frame, raises ``InvalidParameterError``.
    """
    if interval_ms < 1:
        raise InvalidParameterError("the sampling interval must be at least 1 ms")
    spec = parse_source(source)
    if spec.live:
        raise InvalidParameterError("stored-video analysis takes a file, not a live stream")
    container, stream = open_input(spec)
    sampled = 0
    size: tuple[int, int] | None = None
    try:
        meta = metadata_of(container, stream)
        next_ms: int | None = None
        for _, ts, frame in decode_frames(container, stream):
            if next_ms is not None and ts < next_ms:
                continue
            if cancelled is not None and cancelled():
                raise SamplingCancelled()
            next_ms = (ts if next_ms is None else next_ms) + interval_ms
            while next_ms <= ts:  # a gap in the video: the next multiple after this frame
                next_ms += interval_ms
            pixels = to_bgr(frame)
            size = (pixels.shape[1], pixels.shape[0])
            on_frame(ts, pixels)
            sampled += 1
            if progress is not None and meta.duration_ms > 0:
                progress(min(1.0, ts / meta.duration_ms))
    finally:
        container.close()
    if size is None:
        raise InvalidParameterError("the video holds no decodable frame")
    if size != (meta.frame_width, meta.frame_height):  # a rotated video: the upright size
        meta = replace(meta, frame_width=size[0], frame_height=size[1])
    return meta, sampled
