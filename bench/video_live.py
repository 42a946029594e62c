"""Live figure: 4 concurrent 1280×720 15 fps streams on 2 cores for 10 minutes.

Issue 6's goal: frame-to-event latency p95 ≤ 1 s, and no growth in memory over 10 minutes.

Each stream is a real network stream: a local ``ffmpeg`` serves a looped 60 s clip (LFW
people walking across, as in ``bench/video.py``: some enrolled, some not) as MPEG-TS over HTTP
on loopback (``-re``: at its frame rate, as a camera would), and a ``LiveProcessor`` reads it
(latest-frame queue, detection at most ``max_detect_fps`` a second, tracking, search against the
enrolled photos). Latency is measured per match event: from the wall-clock time the matched
frame was read from the stream to the event (``MatchEvent.emitted_s - frame_arrival_s``).
Memory is the process's RSS, sampled every 10 s; growth is the mean of the last two minutes
minus the mean of minutes 2–4 (after warm-up).

    .venv/bin/python bench/video_live.py [--streams 4] [--minutes 10] [--fps 15]
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import CACHE, machine, require_lfw, write_result
from video import HEIGHT, WIDTH, schedule

CLIP_S = 60.0


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(clip: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
         "-c", "copy", "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/s.ts"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args()
    require_lfw()
    from _common import data_dir
    from faceledger.inference.engine import FaceEngine
    from faceledger.process import limit_malloc_arenas
    from faceledger.video.live import LiveProcessor

    arenas_capped = limit_malloc_arenas()  # as `faceledger serve` does
    from videos import exact_searcher, make_video, single_face_people

    engine = FaceEngine()
    engine.load()
    people = {n: p for n, p in single_face_people(engine, data_dir(), 30).items() if len(p) >= 3}
    names = list(people)[:10]
    people = {n: people[n] for n in names}
    enrolled = set(names[:6])
    searcher = exact_searcher(engine, {n: people[n][0] for n in enrolled})
    CACHE.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(args.streams):  # a different walk on each camera
        path = CACHE / f"video_live_{WIDTH}x{HEIGHT}_{args.fps}_{int(CLIP_S)}s_{i}_v1.mp4"
        if not path.exists():
            actors = schedule(people, CLIP_S, seed=100 + i)
            make_video(path, actors, width=WIDTH, height=HEIGHT, fps=args.fps, duration_s=CLIP_S)
        clips.append(path)

    events: list[tuple[int, float, str]] = []  # (stream, latency_s, external id)
    lock = threading.Lock()

    def on_event(stream: int) -> Any:
        def record(event: Any) -> None:
            with lock:
                events.append(
                    (stream, event.emitted_s - event.frame_arrival_s, event.external_image_id)
                )

        return record

    servers = []
    processors = []
    try:
        for i, clip in enumerate(clips):
            port = free_port()
            servers.append(serve(clip, port))
            time.sleep(0.3)
            live = LiveProcessor(
                f"http://127.0.0.1:{port}/s.ts",
                engine,
                searcher=searcher,
                on_event=on_event(i),
                source_id=f"cam{i}",
            )
            processors.append(live)
        t0 = time.monotonic()
        cpu0 = time.process_time()
        for live in processors:
            live.start()
        samples: list[tuple[float, float]] = []
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            samples.append((time.monotonic() - t0, rss_mb()))
            time.sleep(10)
        wall_s = time.monotonic() - t0
        cpu_s = time.process_time() - cpu0
        statuses = [live.status() for live in processors]
    finally:
        for live in processors:
            live.stop()
        for server in servers:
            server.kill()
            server.wait(10)

    latencies = [lat for _, lat, _ in events]
    strangers = [e for e in events if e[2] not in enrolled]
    warm = [m for t, m in samples if 120 <= t < 240] or [samples[0][1]]
    last = [m for t, m in samples if t >= wall_s - 120] or [samples[-1][1]]
    growth = statistics.mean(last) - statistics.mean(warm)
    payload = {
        "streams": args.streams,
        "width": WIDTH,
        "height": HEIGHT,
        "fps": args.fps,
        "minutes": round(wall_s / 60, 2),
        "malloc_arenas_capped": arenas_capped,
        "match_events": len(events),
        "events_per_stream": [sum(1 for s, _, _ in events if s == i) for i in range(args.streams)],
        "latency_s": {
            "p50": round(percentile(latencies, 0.5), 3) if latencies else None,
            "p95": round(percentile(latencies, 0.95), 3) if latencies else None,
            "max": round(max(latencies), 3) if latencies else None,
        },
        "match_events_for_never_enrolled": len(strangers),
        "frames": [
            {
                "read": s.frames_read,
                "dropped": s.frames_dropped,
                "analysed": s.frames_analysed,
                "reconnects": s.reconnects,
                "state": str(s.state),
            }
            for s in statuses
        ],
        "analysed_per_s_per_stream": [round(s.frames_analysed / wall_s, 2) for s in statuses],
        "cpu_s": round(cpu_s, 1),
        "rss_mb": {
            "minutes_2_to_4_mean": round(statistics.mean(warm), 1),
            "last_2_minutes_mean": round(statistics.mean(last), 1),
            "growth": round(growth, 1),
            "samples": [[round(t), round(m, 1)] for t, m in samples],
        },
        "goals": {
            "latency_p95_le_1s": bool(latencies) and percentile(latencies, 0.95) <= 1.0,
            "no_memory_growth": growth <= 0.05 * statistics.mean(warm),
        },
        "machine": machine(),
        "command": "python bench/video_live.py " + " ".join(sys.argv[1:]),
    }
    for key in ("match_events", "latency_s", "match_events_for_never_enrolled", "frames"):
        print(f"{key}: {payload[key]}")
    print(f"analysed/s per stream: {payload['analysed_per_s_per_stream']}")
    rss = payload["rss_mb"]
    print(f"rss: {rss['minutes_2_to_4_mean']} → {rss['last_2_minutes_mean']} MB")
    write_result("video_live.json", payload)


if __name__ == "__main__":
    main()
