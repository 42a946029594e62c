"""Frame sources through PyAV: video files, RTSP/HTTP(S)/file URLs and local cameras.

A *source spec* is a string:

* a path to a file (MP4, MOV, AVI, MKV, … anything FFmpeg demuxes) or a ``file://`` URL;
* an ``rtsp://`` URL (read over TCP), or an ``http://`` / ``https://`` URL (MPEG-TS, HLS, …);
* a local camera: ``/dev/videoN`` or ``camera:N`` (Video4Linux2).

Frames come out as ``Frame`` values: BGR uint8 pixels, the frame's index in decoding order and
its timestamp in *player time*: milliseconds from the container's presentation start, as a
video player shows it (from the presentation timestamp, so frame-accurate for files). A file
whose video starts after its container (audio first, an edit list, a stream joined late) has
a first frame later than 0. PyAV's exceptions never leave this module: a missing, unreadable or
non-video file raises ``InvalidParameterError`` with a message saying which.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.video import VideoMetadata

if TYPE_CHECKING:
    import av.container
    import av.video.frame
    import av.video.stream

_COLOUR_RANGES = {1: "LIMITED", 2: "FULL"}
# Network sources: give up on a connection that sends nothing for this long (µs for FFmpeg).
DEFAULT_NETWORK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source: what to give ``av.open`` and whether it is live."""

    url: str  # what av.open receives (a path for files and cameras)
    kind: str  # "file" | "network" | "camera"
    format: str | None = None  # forced demuxer ("v4l2" for cameras)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """Network streams and cameras are live; files are not (they end, and can be paced)."""
        return self.kind != "file"


def parse_source(spec: str, *, options: dict[str, str] | None = None) -> SourceSpec:
    """Validate a source spec (see the module docstring); ``options`` are extra FFmpeg options
    (they override the defaults, e.g. ``{"rtsp_flags": "listen"}``)."""
    text = spec.strip()
    if not text:
        raise InvalidParameterError("the video source is empty")
    extra = dict(options or {})
    scheme = urlparse(text).scheme.lower() if "://" in text else ""
    if scheme == "rtsp" or scheme == "rtsps":
        timeout = str(int(DEFAULT_NETWORK_TIMEOUT_S * 1e6))
        defaults = {"rtsp_transport": "tcp", "timeout": timeout}
        if extra.get("rtsp_flags") == "listen":
            defaults.pop("timeout")  # listen mode waits with listen_timeout instead
        return SourceSpec(text, "network", None, {**defaults, **extra})
    if scheme in ("http", "https"):
        timeout = str(int(DEFAULT_NETWORK_TIMEOUT_S * 1e6))
        return SourceSpec(text, "network", None, {"rw_timeout": timeout, **extra})
    if scheme == "file":
        return SourceSpec(unquote(urlparse(text).path), "file", None, extra)
    if scheme:
        raise InvalidParameterError(
            f"unsupported video source scheme {scheme!r}: use a file path, file://, rtsp://, "
            "http(s):// or a camera (/dev/videoN, camera:N)"
        )
    if text.startswith("camera:"):
        number = text.removeprefix("camera:")
        if not number.isdigit():
            raise InvalidParameterError(f"a camera is camera:N with N a number, got {text!r}")
        return SourceSpec(f"/dev/video{int(number)}", "camera", "v4l2", extra)
    if text.startswith("/dev/video"):
        return SourceSpec(text, "camera", "v4l2", extra)
    return SourceSpec(text, "file", None, extra)


def open_input(
    source: SourceSpec, *, timeout_s: float | None = None, low_delay: bool = False
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``source`` and its first video stream.

    ``timeout_s`` bounds opening and each read for network sources (not in RTSP listen mode,
    which waits ``listen_timeout`` seconds for a publisher instead). Files decode with
    FFmpeg's frame threads (throughput); ``low_delay`` decodes with slice threads only, as live
    readers do: frame threading holds back one frame per thread (≈ 130 ms at 15 fps on two
    cores), and a reader that decodes one stream in real time needs no more than one core.
    """
    import av

    if source.kind == "file":
        path = Path(source.url)
        if not path.exists():
            raise InvalidParameterError(f"video file not found: {path.name}")
        if not path.is_file():
            raise InvalidParameterError(f"not a video file: {path.name}")
        if path.stat().st_size == 0:
            raise InvalidParameterError(f"the video file is empty: {path.name}")
    kwargs: dict[str, Any] = {"options": source.options} if source.options else {}
    if source.format:
        kwargs["format"] = source.format
    if timeout_s is not None and source.options.get("rtsp_flags") != "listen":
        kwargs["timeout"] = timeout_s
    try:
        container = av.open(source.url, mode="r", **kwargs)
    except av.error.FFmpegError as exc:
        raise InvalidParameterError(_describe_open_error(source, exc)) from None
    except OSError as exc:  # pragma: no cover - raised by some protocols outside FFmpegError
        raise InvalidParameterError(f"cannot open {_name(source)}: {exc.strerror}") from None
    if not container.streams.video:
        container.close()
        raise InvalidParameterError(f"{_name(source)} holds no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "SLICE" if low_delay else "AUTO"
    return container, stream


def _name(source: SourceSpec) -> str:
    if source.kind == "file":
        return f"video file {Path(source.url).name}"
    if source.kind == "camera":
        return f"camera {source.url}"
    parsed = urlparse(source.url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"stream {parsed.scheme}://{parsed.hostname or ''}{port}"


def _describe_open_error(source: SourceSpec, exc: Exception) -> str:
    import av

    if isinstance(exc, av.error.InvalidDataError):
        return f"{_name(source)} is not a video FaceLedger can read (invalid or corrupt data)"
    if isinstance(exc, FileNotFoundError):
        return f"{_name(source)} not found"
    if isinstance(exc, PermissionError):
        return f"{_name(source)}: permission denied"
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return f"cannot open {_name(source)}: {reason}"


def metadata_of(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> VideoMetadata:
    """``VideoMetadata`` from an open container's first video stream."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    frame_rate = float(rate) if rate else 0.0
    duration_ms = 0
    if stream.duration is not None and stream.time_base is not None:
        duration_ms = round(float(stream.duration * stream.time_base) * 1000)
    elif container.duration is not None:
        duration_ms = round(container.duration / 1000)  # container.duration is in µs
    ctx = stream.codec_context
    return VideoMetadata(
        codec=ctx.name,
        duration_ms=max(0, duration_ms),
        frame_rate=round(frame_rate, 3),
        frame_width=int(ctx.width),
        frame_height=int(ctx.height),
        format=container.format.long_name or container.format.name,
        colour_range=_COLOUR_RANGES.get(int(getattr(ctx, "color_range", 0) or 0)),
    )


def probe(source: str) -> VideoMetadata:
    """Metadata of a video file or stream (opens it, reads the headers, closes it)."""
    container, stream = open_input(parse_source(source), timeout_s=DEFAULT_NETWORK_TIMEOUT_S)
    try:
        meta = metadata_of(container, stream)
        if meta.frame_width <= 0 or meta.frame_height <= 0:
            raise InvalidParameterError(f"{_name(parse_source(source))}: no frame size")
        return meta
    finally:
        container.close()


@dataclass(frozen=True, eq=False)
class Frame:
    """A decoded frame: BGR uint8 pixels (H×W×3), its index in decoding order (0-based),
    its timestamp in player time (ms from the container's presentation start) and the
    wall-clock time it was read."""

    index: int
    timestamp_ms: int
    pixels_bgr: NDArray[np.uint8]
    arrival_s: float


def presentation_start(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Fraction | None:
    """The container's presentation start in seconds (what a player counts from): FFmpeg's
    format start time, the earliest start of its streams; the video stream's own start when
    the container does not say."""
    if container.start_time is not None:
        return Fraction(container.start_time, 1_000_000)  # AV_TIME_BASE µs
    if stream.start_time is not None and stream.time_base is not None:
        return Fraction(stream.start_time) * stream.time_base
    return None


def frame_timestamp_ms(frame: av.video.frame.VideoFrame, start: Fraction | None) -> int | None:
    """A decoded frame's presentation time in ms from ``start`` (None when it has no pts)."""
    if frame.pts is None or frame.time_base is None:
        return None
    t = frame.pts * frame.time_base
    if start is not None:
        t -= start
    return max(0, round(float(t) * 1000))


def _one_more_bad(bad: int, max_bad: int, exc: Exception, doing: str) -> int:
    """Count one more bad packet in a row; ``InvalidParameterError`` past ``max_bad``."""
    if bad + 1 > max_bad:
        raise InvalidParameterError(
            f"the video stream is corrupt ({type(exc).__name__} while {doing})"
        ) from None
    return bad + 1


def decode_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    *,
    max_bad_packets: int = 50,
) -> Iterator[tuple[int, int, av.video.frame.VideoFrame]]:
    """``(index, timestamp_ms, frame)`` for every decodable frame of ``stream``, lazily;
    ``timestamp_ms`` is player time (``presentation_start``).

    Packets that fail to decode are skipped (a damaged stretch of a file loses its frames, not
    the whole video); more than ``max_bad_packets`` failures in a row raise
    ``InvalidParameterError``. Frames without a pts get one from the frame rate.
    """
    import av

    start = presentation_start(container, stream)
    rate = stream.average_rate or stream.guessed_rate
    index = 0
    bad = 0
    last_ms = -1
    try:
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.EOFError:
                break
            except av.error.FFmpegError as exc:
                bad = _one_more_bad(bad, max_bad_packets, exc, "reading")
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                bad = _one_more_bad(bad, max_bad_packets, exc, "decoding")
                continue
            bad = 0
            for frame in frames:
                ts = frame_timestamp_ms(frame, start)
                if ts is None:
                    ts = (
                        max(last_ms + 1, round(index * 1000 / float(rate))) if rate else last_ms + 1
                    )
                last_ms = ts
                yield index, ts, frame
                index += 1
    except av.error.FFmpegError as exc:  # pragma: no cover - defensive: demuxer failure
        raise InvalidParameterError(
            f"the video stream could not be read ({type(exc).__name__})"
        ) from None


def to_bgr(frame: av.video.frame.VideoFrame) -> NDArray[np.uint8]:
    """A PyAV frame as a BGR uint8 array (H×W×3), turned upright as the file's display
    rotation says (phones record sideways and store the rotation as metadata)."""
    pixels = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
    quarter_turns = round(int(getattr(frame, "rotation", 0) or 0) / 90) % 4
    if quarter_turns:  # counter-clockwise, like FFmpeg's autorotate
        pixels = np.ascontiguousarray(np.rot90(pixels, quarter_turns))
    return pixels


def iter_frames(source: str, *, every_nth: int = 1) -> Iterator[Frame]:
    """Frames of a file or stream in order; only every ``every_nth`` frame (by index) is
    converted and yielded (the others are decoded, which inter-frame codecs need, but not
    converted). Raises ``InvalidParameterError`` for sources that cannot be read."""
    if every_nth < 1:
        raise InvalidParameterError(f"every_nth must be at least 1, got {every_nth}")
    container, stream = open_input(parse_source(source), timeout_s=DEFAULT_NETWORK_TIMEOUT_S)
    try:
        for index, ts, frame in decode_frames(container, stream):
            if index % every_nth == 0:
                yield Frame(index, ts, to_bgr(frame), time.time())
    finally:
        container.close()
