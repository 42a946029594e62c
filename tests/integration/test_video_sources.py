"""Frame sources: metadata, frame timestamps, containers, and clear errors for bad input."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from faceledger.domain.errors import InvalidParameterError
from faceledger.video import iter_frames, parse_source, probe
from faceledger.video.stored import analyse_video
from helpers.videos import make_video


@pytest.fixture(scope="module")
def blank_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Face-free 2 s videos (320×240, 25 fps) in every container we claim."""
    folder = tmp_path_factory.mktemp("videos")
    out = {}
    for suffix in (".mp4", ".mov", ".mkv", ".avi"):
        path = folder / f"blank{suffix}"
        make_video(path, [], width=320, height=240, fps=25, duration_s=2.0)
        out[suffix] = path
    return out


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi"])
def test_probe_reads_metadata_of_each_container(blank_videos: dict[str, Path], suffix: str) -> None:
    meta = probe(str(blank_videos[suffix]))
    assert (meta.frame_width, meta.frame_height) == (320, 240)
    assert meta.frame_rate == pytest.approx(25.0)
    assert meta.codec == ("mpeg4" if suffix == ".avi" else "h264")
    assert 1900 <= meta.duration_ms <= 2100
    assert meta.format


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_frames_have_pts_timestamps_and_bgr_pixels(
    blank_videos: dict[str, Path], suffix: str
) -> None:
    frames = list(iter_frames(str(blank_videos[suffix]), every_nth=5))
    assert [f.index for f in frames] == list(range(0, 50, 5))
    assert [f.timestamp_ms for f in frames] == [i * 40 for i in range(0, 50, 5)]
    assert frames[0].pixels_bgr.shape == (240, 320, 3)
    assert frames[0].pixels_bgr.dtype == np.uint8


def test_file_url_is_a_file(blank_videos: dict[str, Path]) -> None:
    path = blank_videos[".mkv"]
    assert probe(path.as_uri()).frame_width == 320


@pytest.mark.parametrize(
    ("spec", "kind", "url", "live"),
    [
        ("rtsp://cam.local:554/s", "network", "rtsp://cam.local:554/s", True),
        ("http://127.0.0.1:9/s.ts", "network", "http://127.0.0.1:9/s.ts", True),
        ("camera:2", "camera", "/dev/video2", True),
        ("/dev/video0", "camera", "/dev/video0", True),
        ("file:///srv/v%20a.mp4", "file", "/srv/v a.mp4", False),
        ("clips/a.mkv", "file", "clips/a.mkv", False),
    ],
)
def test_parse_source(spec: str, kind: str, url: str, live: bool) -> None:
    parsed = parse_source(spec)
    assert (parsed.kind, parsed.url, parsed.live) == (kind, url, live)


def test_rtsp_is_read_over_tcp_and_options_override() -> None:
    assert parse_source("rtsp://h/x").options["rtsp_transport"] == "tcp"
    listen = parse_source("rtsp://h/x", options={"rtsp_flags": "listen"})
    assert listen.options["rtsp_flags"] == "listen" and "timeout" not in listen.options
    assert parse_source("camera:0").format == "v4l2"


@pytest.mark.parametrize("spec", ["", "  ", "ftp://h/x.mp4", "camera:x", "s3://b/k.mp4"])
def test_bad_source_specs_are_refused(spec: str) -> None:
    with pytest.raises(InvalidParameterError):
        parse_source(spec)


def _corrupt_files(folder: Path, good: Path) -> dict[str, Path]:
    files = {
        "text": folder / "notes.mp4",
        "empty": folder / "empty.mp4",
        "random": folder / "noise.mkv",
        "truncated-mp4": folder / "cut.mp4",
        "jpeg": folder / "photo.mp4",
    }
    files["text"].write_text("this is not a video\n" * 50)
    files["empty"].write_bytes(b"")
    files["random"].write_bytes(np.random.default_rng(1).bytes(20_000))
    # an MP4 cut in half: its index (moov) is at the end, so nothing is readable
    data = good.read_bytes()
    files["truncated-mp4"].write_bytes(data[: len(data) // 2])
    files["jpeg"].write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 500)
    return files


@pytest.mark.parametrize("kind", ["text", "empty", "random", "truncated-mp4", "jpeg"])
def test_corrupt_files_give_a_clear_error(
    tmp_path: Path, blank_videos: dict[str, Path], kind: str, engine
) -> None:
    path = _corrupt_files(tmp_path, blank_videos[".mp4"])[kind]
    with pytest.raises(InvalidParameterError) as probed:
        probe(str(path))
    assert path.name in probed.value.message
    assert str(tmp_path) not in probed.value.message  # no server paths in messages
    with pytest.raises(InvalidParameterError):
        analyse_video(str(path), engine, mode="faces")


def test_missing_file_and_folder(tmp_path: Path, engine) -> None:
    with pytest.raises(InvalidParameterError, match=r"not found: nope\.mp4"):
        probe(str(tmp_path / "nope.mp4"))
    with pytest.raises(InvalidParameterError, match="not a video file"):
        analyse_video(str(tmp_path), engine, mode="persons")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.mka"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(path)],
        check=True,
    )
    with pytest.raises(InvalidParameterError, match="no video stream"):
        probe(str(path))


def test_truncated_mkv_keeps_the_frames_before_the_cut(
    tmp_path: Path, blank_videos: dict[str, Path]
) -> None:
    """Matroska is streamable: a file cut short still yields the frames it holds."""
    import av

    source = blank_videos[".mkv"]
    with av.open(str(source)) as container:
        positions = [p.pos for p in container.demux(container.streams.video[0]) if p.size]
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(source.read_bytes()[: positions[30]])  # packets 0–29 survive
    frames = list(iter_frames(str(cut)))
    assert 25 <= len(frames) < 50
    stamps = [f.timestamp_ms for f in frames]
    assert stamps == sorted(set(stamps)) and all(t % 40 == 0 for t in stamps)


def test_live_stream_is_not_a_stored_video(engine) -> None:
    with pytest.raises(InvalidParameterError, match="not a live stream"):
        analyse_video("rtsp://127.0.0.1:9/x", engine, mode="faces")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
def test_rotated_video_frames_come_upright(
    tmp_path: Path, blank_videos: dict[str, Path], engine
) -> None:
    """A phone video stored sideways with a display rotation gives upright frames."""
    rotated = tmp_path / "phone.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(blank_videos[".mp4"]), "-c", "copy",
         "-metadata:s:v", "rotate=90", str(rotated)],
        check=True,
    )  # fmt: skip
    upright = next(iter_frames(str(blank_videos[".mp4"])))
    frame = next(iter_frames(str(rotated)))
    assert frame.pixels_bgr.shape == (320, 240, 3)
    np.testing.assert_array_equal(frame.pixels_bgr, np.rot90(upright.pixels_bgr))
    result = analyse_video(str(rotated), engine, mode="faces")
    meta = result.metadata
    assert (meta.frame_width, meta.frame_height) == (240, 320)
    assert result.frames_decoded == 50


def test_stream_errors_never_show_credentials() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(InvalidParameterError) as raised:
        probe(f"rtsp://admin:s3cret@127.0.0.1:{port}/live")
    assert f"rtsp://127.0.0.1:{port}" in raised.value.message
    assert "s3cret" not in raised.value.message and "admin" not in raised.value.message
