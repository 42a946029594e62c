"""Issue 20 figures for video: label detection speed, and person tracking of bodies.

1. **Label detection in stored video**: a 30 s, 640×360, 25 fps clip (two head-and-shoulders
   LFW figures walking across, a drawn stop sign) through a ``StartLabelDetection`` job run in
   this process (``Gateway.run_video_job``: sampling at two frames a second, the labels pack
   with its tiles, aggregation; the pack's first load included); figure: seconds of video per
   wall-clock second.
2. **Person tracking on the synthetic clip**: the same clip: two figures 240 px tall, A in the
   left half and B in the right half (≥ 169 px apart: the detector boxes two adjacent figures
   as one), each with its face covered (seen
   from behind) for part of its walk. ``analyse_video(mode="persons")`` with bodies (the
   labels pack's person class) and, for comparison, by faces only. Per figure, the figure's
   *index* is the person index most often found on it; a frame counts as tracked right when a
   person with that index has a box whose centre lies inside the figure. Reported: the share
   of analysed frames tracked right while the face is visible and while it is covered, and
   the number of person indexes.

Ground truth is exact (the figures are pasted). Honest limits: the covered face is a dark
oval (not a real back of the head); the figures are upper bodies on a plain backdrop.

    .venv/bin/python bench/video_bodies.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import data_dir, machine, require_lfw, write_result

FIG_HEIGHT = 240


def _figures(people: dict[str, list[Path]], seconds: float) -> list[Any]:
    from body_videos import Figure

    (a, pa), (b, pb) = list(people.items())[:2]
    third = seconds / 3
    return [
        # A: left half, walking right; face covered in the middle third
        Figure(a, pa[0], 0.0, seconds, (0, 60), (60, 60), FIG_HEIGHT, third, 2 * third),
        # B: right half, walking left; face covered in the last third
        Figure(b, pb[0], 0.0, seconds, (460, 60), (400, 60), FIG_HEIGHT, 2 * third, 1e9),
    ]


def _tracked(result: Any, figures: list[Any], fps: int) -> dict[str, Any]:
    by_ts: dict[int, list[Any]] = {}
    for p in result.persons:
        by_ts.setdefault(p.timestamp_ms, []).append(p)
    analysed = sorted({round(i * 1000 / fps) for i in range(0, int(figures[0].leave_s * fps), 2)})
    out: dict[str, Any] = {"person_indexes": result.persons_tracked}
    for fig in figures:
        w, h = fig.width_px, fig.height_px

        def on(p: Any, t_ms: int, fig: Any = fig, w: int = w, h: int = h) -> bool:
            pos = fig.position_at(t_ms / 1000)
            if pos is None:
                return False
            cx = (p.box.left + p.box.width / 2) * 640
            cy = (p.box.top + p.box.height / 2) * 360
            return pos[0] <= cx <= pos[0] + w and pos[1] <= cy <= pos[1] + h

        votes = Counter(p.index for t in analysed for p in by_ts.get(t, ()) if on(p, t))
        index = votes.most_common(1)[0][0] if votes else None
        shares = {}
        for hidden in (False, True):
            frames = [t for t in analysed if fig.face_hidden_at(t / 1000) == hidden]
            right = [
                t for t in frames if any(on(p, t) and p.index == index for p in by_ts.get(t, ()))
            ]
            shares["face_hidden" if hidden else "face_visible"] = {
                "frames": len(frames),
                "tracked_right": len(right),
                "share": round(len(right) / len(frames), 3) if frames else None,
            }
        out[fig.name] = shares
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    require_lfw()
    from faceledger.config import Settings
    from faceledger.inference.engine import FaceEngine
    from faceledger.services.gateway import Gateway, local_operator
    from faceledger.services.labels import LabelService
    from faceledger.services.video.jobs import JobRequest
    from faceledger.services.video.labels import person_detector
    from faceledger.video.stored import analyse_video
    from helpers.body_videos import make_figure_video, seen_from_behind_people
    from helpers.data import lfw_people

    root = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
    settings = Settings(data_dir=root / "data", video_dirs=[root])
    labels = LabelService(settings)
    detect = person_detector(labels)
    assert detect is not None
    engine = FaceEngine()

    def count_faces(frame: Any) -> int:
        return len(engine.detect_frame(frame, score_threshold=0.45)[0])

    people = seen_from_behind_people(
        detect, count_faces, lfw_people(data_dir(), 2, 100), 2, height_px=FIG_HEIGHT, min_score=0.3
    )
    if len(people) < 2:
        print("skipped: fewer than two LFW figures seen from behind")
        return
    figures = _figures(people, args.seconds)
    clip = root / "bodies.mp4"
    make_figure_video(clip, figures, fps=25, duration_s=args.seconds, stop_sign=(320, 200, 80))

    gate = Gateway(settings)
    try:
        caller = local_operator()
        job = gate.start_video_job(caller, JobRequest("labels", {"path": str(clip)}))
        t0 = time.perf_counter()
        gate.run_video_job(job.job_id)
        label_s = time.perf_counter() - t0
        page = gate.get_video_job(caller, "labels", job.job_id, aggregate_by="SEGMENTS")
        names = sorted({i["label"]["name"] for i in page.items})
    finally:
        gate.close()

    runs: dict[str, Any] = {}
    for name, detector in (("bodies", detect), ("faces_only", None)):
        t0 = time.perf_counter()
        result = analyse_video(str(clip), engine, mode="persons", person_detector=detector)
        wall = time.perf_counter() - t0
        runs[name] = {
            "wall_s": round(wall, 2),
            "video_s_per_wall_s": round(args.seconds / wall, 2),
            **_tracked(result, figures, 25),
        }
    payload = {
        "clip": {"seconds": args.seconds, "size": [640, 360], "fps": 25, "figures": 2},
        "label_detection": {
            "wall_s": round(label_s, 2),
            "video_s_per_wall_s": round(args.seconds / label_s, 2),
            "samples_per_s": 2,
            "labels": names,
        },
        "person_tracking": runs,
        "machine": machine(),
    }
    print(f"label detection: {payload['label_detection']}")
    for name, run in runs.items():
        print(name, run)
    print(f"load average: {machine()['load_average']}")
    write_result("video_bodies.json", payload)


if __name__ == "__main__":
    main()
