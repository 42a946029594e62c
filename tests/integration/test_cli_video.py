"""`faceledger video …` and `faceledger stream …` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from helpers.cli import run, script
from helpers.data import lfw_people
from helpers.ledger import ledgered


def test_video_search_and_stream_watch(tmp_path: Path, data_dir: Path) -> None:
    from helpers.videos import Actor, make_video

    (name, photos), (stranger, others) = list(lfw_people(data_dir, 2, 2).items())
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = videos / "door.mp4"
    make_video(
        clip,
        [
            Actor(name, photos[0], 0.2, 3.0, (40, 60), (200, 90)),
            Actor(stranger, others[0], 1.0, 3.8, (400, 120), (330, 60)),
        ],
        duration_s=4,
    )
    assert run("collections", "create", "door", cwd=tmp_path).returncode == 0
    assert run("collections", "policy", "door", "--floor", "80", cwd=tmp_path).returncode == 0
    enrol = tmp_path / "enrol"
    enrol.mkdir()
    (enrol / "wanted.jpg").write_bytes(photos[1].read_bytes())
    assert run("index", str(enrol), "--collection", "door", cwd=tmp_path).returncode == 0

    found = run(
        "video", "search", str(clip), "--collection", "door", "--purpose", "test", "--case", "C1",
        cwd=tmp_path,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    lines = [x for x in found.stdout.splitlines() if x.startswith("person ")]
    assert len(lines) == 1 and "wanted.jpg" in lines[0], found.stdout
    assert "not an identification" in found.stdout
    persons = run("video", "persons", str(clip), cwd=tmp_path)
    assert persons.returncode == 0, persons.stderr
    assert len([x for x in persons.stdout.splitlines() if x.startswith("person ")]) == 2
    missing = run("video", "faces", str(tmp_path / "nope.mp4"), cwd=tmp_path)
    assert missing.returncode != 0 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr

    env = {"FACELEDGER_VIDEO_DIRS": str(videos)}
    created = run(
        "stream", "create", "door-cam", "--source", f"file://{clip}", "--collection", "door",
        "--jsonl", "door", cwd=tmp_path, **env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"] == "STOPPED"
    listed = json.loads(run("stream", "list", cwd=tmp_path, **env).stdout)
    assert [p["name"] for p in listed] == ["door-cam"]
    watched = run(
        "stream", "watch", "door-cam", "--purpose", "test", "--case", "C1", cwd=tmp_path, **env
    )
    assert watched.returncode == 0, watched.stderr
    events = [json.loads(x) for x in watched.stdout.splitlines()]
    assert events and {e["external_image_id"] for e in events} == {"wanted.jpg"}
    described = json.loads(run("stream", "describe", "door-cam", cwd=tmp_path).stdout)
    assert described["status"] == "STOPPED"
    assert run("stream", "delete", "door-cam", cwd=tmp_path).returncode == 0

    ops = [r.operation for r in ledgered(tmp_path / "data")]
    for op in ("StartFaceSearch", "FaceSearchJob", "StartPersonTracking", "StartStreamProcessor"):
        assert op in ops, op
    matches = ledgered(tmp_path / "data", operation="StreamFaceMatch")
    assert len(matches) == len(events) and all(m.purpose == "test" for m in matches)


def popen(*args: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    environ = {**os.environ, "FACELEDGER_DATA_DIR": str(cwd / "data"), **env}
    return subprocess.Popen(
        [script(), *args], cwd=cwd, env=environ, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stream_watch_stops_on_sigterm_and_sigint_on_the_record(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """systemd and container runtimes send SIGTERM; a terminal sends SIGINT: both stop a
    foreground watch the same way, with the stop ledgered and the processor STOPPED."""
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = videos / "long.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "60",
         "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    env = {"FACELEDGER_VIDEO_DIRS": str(videos)}
    assert run("collections", "create", "door", cwd=tmp_path).returncode == 0
    created = run(
        "stream", "create", "cam", "--source", str(clip), "--collection", "door",
        cwd=tmp_path, **env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    watch = popen(
        "stream", "watch", "cam", "--purpose", "test", "--case", "C9", cwd=tmp_path, **env
    )
    try:
        assert watch.stderr is not None
        line = watch.stderr.readline()
        while line and "watching" not in line:
            line = watch.stderr.readline()
        assert "watching" in line
        watch.send_signal(signum)
        _, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert "stopping" in err and "Traceback" not in err
    described = json.loads(run("stream", "describe", "cam", cwd=tmp_path).stdout)
    assert described["status"] == "STOPPED"
    stops = ledgered(tmp_path / "data", operation="StopStreamProcessor")
    assert [(s.outcome, s.purpose, s.case_reference) for s in stops] == [("ok", "test", "C9")]
