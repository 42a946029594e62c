"""Live sources: RTSP pushed by a local ffmpeg, an HTTP stream killed and restarted, files
read as a camera would deliver them, and the latest-frame queue."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faceledger.domain.video import MatchEvent, StreamState, StreamStatus
from faceledger.video import LatestFrameReader, LiveProcessor, ReaderOptions, parse_source
from helpers.videos import Scene, exact_searcher, make_video, single_face_people, standard_scene

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def ffmpeg(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def blank_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A face-free 4 s clip, keyframe every 0.5 s (a reconnecting reader restarts fast)."""
    path = tmp_path_factory.mktemp("live") / "blank.mp4"
    make_video(path, [], width=320, height=240, fps=25, duration_s=4.0, gop=12)
    return path


@pytest.fixture(scope="module")
def scene(data_dir: Path, tmp_path_factory: pytest.TempPathFactory, engine) -> Scene:
    people = single_face_people(engine, data_dir, 6)
    return standard_scene(people, tmp_path_factory.mktemp("live-scene") / "scene.mp4")


@pytest.fixture
def processors() -> Iterator[list[LiveProcessor]]:
    started: list[LiveProcessor] = []
    yield started
    for p in started:
        p.stop(timeout_s=5)


def _check_events(events: list[MatchEvent], scene: Scene, source_id: str) -> None:
    names = sorted(e.external_image_id or "" for e in events)
    assert names == sorted(n for n in scene.enrolled if n not in scene.absent)
    for e in events:
        assert e.source_id == source_id
        assert e.emitted_s >= e.frame_arrival_s > 0
        assert e.first_timestamp_ms <= e.frame_timestamp_ms
        assert e.best_shot_jpeg[:2] == b"\xff\xd8"


@pytest.mark.lfw
@needs_ffmpeg
def test_rtsp_stream_pushed_by_ffmpeg_gives_events_for_enrolled_people_only(
    scene: Scene, engine, processors: list[LiveProcessor]
) -> None:
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/cam"
    events: list[MatchEvent] = []
    processor = LiveProcessor(
        url,
        engine,
        searcher=exact_searcher(engine, scene.enrolled),
        on_event=events.append,
        source_id="gate-3",
        source_options={"rtsp_flags": "listen", "listen_timeout": "20"},
        reader_options=ReaderOptions(max_reconnect_attempts=0),
    )
    processors.append(processor)
    processor.start()
    time.sleep(0.3)  # let the listener bind before ffmpeg connects
    pusher = ffmpeg(
        "-re", "-i", str(scene.truth.path), "-c", "copy",
        "-f", "rtsp", "-rtsp_transport", "tcp", url,
    )  # fmt: skip
    try:
        wait_for(lambda: processor.status().state == StreamState.RUNNING, "RUNNING")
        wait_for(lambda: pusher.poll() is not None, "the end of the clip", timeout_s=60)
        wait_for(lambda: not processor.running, "the processor to finish", timeout_s=30)
    finally:
        stop_process(pusher)
    status = processor.status()
    assert status.frames_read >= 0.9 * scene.truth.frames
    assert status.frames_analysed >= 0.8 * scene.truth.frames / 2  # ≤ 12.5 analysed per s
    assert status.events == len(events)
    _check_events(events, scene, "gate-3")


@pytest.mark.lfw
def test_a_file_read_as_a_live_source_gives_the_same_events(
    scene: Scene, engine, processors: list[LiveProcessor]
) -> None:
    events: list[MatchEvent] = []
    processor = LiveProcessor(
        scene.truth.path.as_uri(),
        engine,
        searcher=exact_searcher(engine, scene.enrolled),
        on_event=events.append,
        source_id="file-cam",
    )
    processors.append(processor)
    processor.start()
    wait_for(lambda: not processor.running, "the end of the file", timeout_s=60)
    status = processor.status()
    assert (status.state, status.message) == (StreamState.STOPPED, "end of file")
    _check_events(events, scene, "file-cam")


@needs_ffmpeg
def test_reader_reconnects_after_the_stream_is_killed(blank_clip: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/s.ts"

    def serve() -> subprocess.Popen[bytes]:
        return ffmpeg(
            "-re", "-stream_loop", "-1", "-i", str(blank_clip), "-c", "copy",
            "-f", "mpegts", "-listen", "1", url,
        )  # fmt: skip

    server = serve()
    reader = LatestFrameReader(
        parse_source(url),
        options=ReaderOptions(backoff_initial_s=0.2, backoff_max_s=1.0, timeout_s=5),
    )
    states: list[StreamStatus] = []
    try:
        reader.start()
        wait_for(lambda: reader.status().frames_read >= 25, "frames from the first server")
        assert reader.status().state == StreamState.RUNNING
        assert reader.get(timeout_s=5) is not None
        stop_process(server)  # the stream drops mid-way

        def reconnecting() -> bool:
            states.append(reader.status())
            return states[-1].state == StreamState.RECONNECTING

        wait_for(reconnecting, "RECONNECTING")
        dropped_at = reader.status()
        assert dropped_at.reconnects >= 1
        server = serve()
        wait_for(
            lambda: (
                reader.status().state == StreamState.RUNNING
                and reader.status().frames_read >= dropped_at.frames_read + 25
            ),
            "frames from the restarted server",
        )
        frame = reader.get(timeout_s=5)
        assert frame is not None and frame.pixels_bgr.shape == (240, 320, 3)
        # timestamps never go back across the reconnect
        assert frame.timestamp_ms >= 1000
    finally:
        reader.stop(timeout_s=5)
        stop_process(server)
    assert reader.status().state == StreamState.STOPPED


def test_unreachable_source_fails_after_its_attempts() -> None:
    url = f"http://127.0.0.1:{free_port()}/nothing.ts"  # nobody listens
    reader = LatestFrameReader(
        parse_source(url),
        options=ReaderOptions(backoff_initial_s=0.05, max_reconnect_attempts=2, timeout_s=2),
    )
    reader.start()
    try:
        wait_for(lambda: reader.status().state == StreamState.FAILED, "FAILED")
    finally:
        reader.stop()
    status = reader.status()
    assert "gave up after 2 attempts" in status.message
    assert "127.0.0.1" in status.message and status.reconnects == 2


def test_latest_frame_queue_drops_stale_frames(blank_clip: Path) -> None:
    """A consumer slower than the source gets the newest frame; the others are dropped."""
    reader = LatestFrameReader(parse_source(str(blank_clip)), options=ReaderOptions())
    reader.start()
    taken = []
    try:
        while (frame := reader.get(timeout_s=5)) is not None:
            taken.append(frame.index)
            time.sleep(0.2)  # a slow consumer: ≈ 5 frames/s against 25 delivered
    finally:
        reader.stop()
    status = reader.status()
    assert status.frames_read == 100
    assert status.frames_dropped == 100 - len(taken)
    assert len(taken) < 50
    assert taken == sorted(taken) and max(b - a for a, b in itertools.pairwise(taken)) > 1
    assert (status.state, status.message) == (StreamState.STOPPED, "end of file")
