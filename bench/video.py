"""Stored-video figure: a 1280×720, 25 fps, 2-minute video with 10 people (LFW faces).

Issue 6's goal: processed ≥ 2× faster than real time on this 2-core machine with detection on
at least every other frame; ≥ 95 % of enrolled people on screen ≥ 2 s found; 0 match events
for people never enrolled. Issue 15's: 0 results labelled with a person outside the frames
where that person is on screen (± one analysed frame), on a video that holds what broke the
tracker — hard scene cuts every 8–16 s where the person in a lane is replaced by another at
the same place, an enrolled bystander with a turned face right after some cuts, people
leaving and coming back, and a first frame at 1.0 s of player time (the container starts with
audio; the video is remuxed behind a 1 s lead).

The video (cached under .cache/) is rendered from LFW photos by ``tests/videos.py``: four
horizontal lanes, each showing one person at a time who walks across for 1–12 s, with gaps;
10 people (6 enrolled with a *different* photo, 4 never enrolled), each appearing several
times. Ground truth is exact (who is drawn where at every frame).

Measured: wall time of ``analyse_video(mode="search")`` against the video's duration, and
where the time goes (decode, detect, embed+search) from timers around the engine; recall per
appearance (an enrolled person's appearance of ≥ 2 s is *found* when a match for that person
lies inside that appearance) and per person; wrong matches (a match whose box is on someone
else, including every match on a never-enrolled person).

``--sweep`` measures the first-match rule instead (issue 15): the live pipeline (every other
frame) over the same video for several re-embedding intervals of unmatched tracks, reporting
video time from a person's appearance to their match event (p50/p95) and wrong-person events.

    .venv/bin/python bench/video.py [--seconds 120] [--every 2] [--detect-side 640] [--sweep]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import CACHE, machine, require_lfw, write_result

WIDTH, HEIGHT, FPS = 1280, 720, 25
LANES = 4
SQUARE = 170  # pasted LFW square; the face inside is ≈ 100 px wide


def schedule(people: dict[str, list[Path]], seconds: float, seed: int = 6) -> list[Any]:
    """Appearances per lane, never the same person in two lanes at once."""
    from helpers.videos import Actor

    rng = random.Random(seed)
    names = list(people)
    busy: dict[str, list[tuple[float, float]]] = defaultdict(list)
    actors = []
    for lane in range(LANES):
        y = 10 + lane * (HEIGHT - SQUARE - 20) / (LANES - 1)
        t = rng.uniform(0, 2)
        while t < seconds - 1:
            duration = min(rng.choice([1.2, 1.6, 3, 5, 8, 12]), seconds - t)
            end = t + duration
            free = [n for n in names if all(end + 0.5 < a or t - 0.5 > b for a, b in busy[n])]
            if free:
                name = rng.choice(free)
                busy[name].append((t, end))
                shown = people[name][1 + len(busy[name]) % (len(people[name]) - 1)]
                x0 = rng.uniform(0, WIDTH - SQUARE)
                x1 = min(max(0, x0 + rng.uniform(-150, 150) * duration), WIDTH - SQUARE)
                dy = rng.uniform(-8, 8)
                actors.append(Actor(name, shown, t, end, (x0, y), (x1, y + dy), SQUARE))
            t = end + rng.uniform(0.3, 4)
    return actors


def cut_schedule(
    people: dict[str, list[Path]],
    seconds: float,
    bystander: tuple[str, Path] | None,
    seed: int = 6,
) -> tuple[list[Any], list[float]]:
    """``schedule`` with hard scene cuts every 8–16 s: an appearance spanning a cut ends there
    and a different person (free then) continues from the same place; after every other cut
    the first lane's new person is ``bystander`` (name, turned-face photo) when free."""
    from helpers.videos import Actor

    rng = random.Random(seed + 1)
    actors = schedule(people, seconds, seed)
    cuts: list[float] = []
    t = rng.uniform(8, 14)
    while t < seconds - 4:
        cuts.append(round(t, 2))
        t += rng.uniform(8, 16)
    for k, cut in enumerate(cuts):
        out = []
        for a in actors:
            if not a.enter_s < cut < a.leave_s - 0.3:
                out.append(a)
                continue
            f = (cut - a.enter_s) / (a.leave_s - a.enter_s)
            at = (
                a.start_xy[0] + f * (a.end_xy[0] - a.start_xy[0]),
                a.start_xy[1] + f * (a.end_xy[1] - a.start_xy[1]),
            )

            others = [o for o in out + actors if o is not a]
            out.append(Actor(a.name, a.photo, a.enter_s, cut, a.start_xy, at, a.size_px))
            if bystander is not None and k % 2 == 0 and _free(bystander[0], cut, a.leave_s, others):
                name, photo = bystander
            else:
                candidates = [n for n in people if n != a.name and _free(n, cut, a.leave_s, others)]
                if not candidates:
                    continue
                name = rng.choice(candidates)
                photo = people[name][1 + rng.randrange(len(people[name]) - 1)]
            out.append(Actor(name, photo, cut, a.leave_s, at, a.end_xy, a.size_px))
        actors = out
    return actors, cuts


def _free(name: str, lo: float, hi: float, others: list[Any]) -> bool:
    """Whether ``name`` appears in none of ``others`` during [lo, hi] (± 0.5 s)."""
    return all(o.name != name or hi + 0.5 < o.enter_s or lo - 0.5 > o.leave_s for o in others)


def wrong_labels(truth: Any, result: Any, frame_ms: int) -> int:
    """Results labelled with a person who is not at the box's centre at that time ± one
    analysed frame (``frame_ms``)."""
    wrong = 0
    for entry in result.matches:
        cx = (entry.box.left + entry.box.width / 2) * truth.width
        cy = (entry.box.top + entry.box.height / 2) * truth.height
        near = {truth.who_at(entry.timestamp_ms + d, cx, cy) for d in (-frame_ms, 0, frame_ms)}
        wrong += sum(1 for hit in entry.matches if hit.external_image_id not in near)
    return wrong


def still_similarity(engine: Any, enrolled_photo: Path, shown_photo: Path) -> float:
    """Similarity of the two LFW photos themselves (what a photo search would give)."""
    from faceledger.inference.imaging import load_image

    a = engine.analyse(load_image(enrolled_photo), max_faces=1).embeddings
    b = engine.analyse(load_image(shown_photo), max_faces=1).embeddings
    return float(engine.similarity(a[0], b[0]))


def appearances_found(
    truth: Any, result: Any, enrolled: set[str], still: dict[Path, float]
) -> dict[str, Any]:
    by_name: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    wrong_tracks: set[int] = set()
    stranger_tracks: set[int] = set()
    for entry in result.matches:
        cx = (entry.box.left + entry.box.width / 2) * truth.width
        cy = (entry.box.top + entry.box.height / 2) * truth.height
        who = truth.who_at(entry.timestamp_ms, cx, cy)
        for hit in entry.matches:
            if hit.external_image_id != who:
                wrong_tracks.add(entry.index)
                if who not in enrolled:
                    stranger_tracks.add(entry.index)
            else:
                by_name[who].append((entry.timestamp_ms, cx, cy))
    long_total = long_found = 0
    matchable_total = matchable_found = 0
    short_total = short_found = 0
    people_long: dict[str, bool] = {}
    for actor in truth.actors:
        if actor.name not in enrolled:
            continue
        start_ms = truth.offset_ms + actor.enter_s * 1000
        end_ms = truth.offset_ms + actor.leave_s * 1000
        found = any(start_ms <= t < end_ms for t, _, _ in by_name[actor.name])
        if end_ms - start_ms >= 2000:
            long_total += 1
            long_found += found
            if still[actor.photo] >= 80:
                matchable_total += 1
                matchable_found += found
            people_long[actor.name] = people_long.get(actor.name, False) or found
        else:
            short_total += 1
            short_found += found
    return {
        "enrolled_appearances_ge_2s": long_total,
        "enrolled_appearances_ge_2s_found": long_found,
        "recall_appearances_ge_2s": round(long_found / max(long_total, 1), 4),
        # appearances whose shown photo matches the enrolled one as a still (Similarity ≥ 80):
        # what the video pipeline finds of what the recogniser can find
        "matchable_appearances_ge_2s": matchable_total,
        "matchable_appearances_ge_2s_found": matchable_found,
        "recall_matchable_appearances_ge_2s": round(matchable_found / max(matchable_total, 1), 4),
        "enrolled_people_on_screen_ge_2s": len(people_long),
        "enrolled_people_found": sum(people_long.values()),
        "recall_people": round(sum(people_long.values()) / max(len(people_long), 1), 4),
        "short_appearances_lt_2s": short_total,
        "short_appearances_found": short_found,
        "tracks_with_wrong_match": len(wrong_tracks),
        "match_events_for_never_enrolled": len(stranger_tracks),
    }


class TimedEngine:
    """The engine with timers around the two calls the pipeline makes."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.options = engine.options
        self.calibration = engine.calibration
        self.detect_s = 0.0
        self.embed_s = 0.0
        self.embeddings = 0

    def detect_frame(self, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.engine.detect_frame(*args, **kwargs)
        finally:
            self.detect_s += time.perf_counter() - t

    def embed_crops(self, crops: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.engine.embed_crops(crops)
        finally:
            self.embed_s += time.perf_counter() - t
            self.embeddings += len(crops)


LEAD_S = 1.0  # the container starts this long before the first frame (player time)


def build(args: Any, engine: Any) -> tuple[Any, dict[str, list[Path]], set[str]]:
    """The bench video (cached), its people and the enrolled names."""
    from _common import data_dir
    from helpers.videos import (
        GroundTruth,
        make_video,
        single_face_people,
        turned_face,
        with_leading_audio,
    )

    people = {n: p for n, p in single_face_people(engine, data_dir(), 30).items() if len(p) >= 3}
    names = list(people)[:10]
    people = {n: people[n] for n in names}
    bystander = turned_face(engine, people)
    enrolled = set(names[:6]) | {bystander[0]}
    actors, cuts = cut_schedule(people, args.seconds, bystander)
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = f"video_bench_{WIDTH}x{HEIGHT}_{FPS}_{int(args.seconds)}s_v2"
    path = CACHE / f"{stem}_lead.mp4"
    frames = round(args.seconds * FPS)
    if path.exists():
        truth = GroundTruth(
            path, WIDTH, HEIGHT, FPS, frames, tuple(actors), round(LEAD_S * 1000), tuple(cuts)
        )
        print(f"video: cached {path.name}")
    else:
        t = time.perf_counter()
        plain = make_video(
            CACHE / f"{stem}.mp4", actors, width=WIDTH, height=HEIGHT, fps=FPS,
            duration_s=args.seconds, cuts=tuple(cuts),
        )  # fmt: skip
        truth = with_leading_audio(plain, path, LEAD_S)
        print(f"video: rendered {path.name} in {time.perf_counter() - t:.1f} s")
    return truth, people, enrolled


def sweep(args: Any, engine: Any, truth: Any, searcher: Any, enrolled: set[str]) -> None:
    """First-match rule: video time from appearance to event, per re-embedding interval."""
    from faceledger.video import FramePipeline, PipelineOptions, iter_frames

    limit_ms = truth.offset_ms + args.sweep_seconds * 1000
    rows = []
    for interval_ms in (1000, 500, 250, 80):
        options = PipelineOptions(first_match_interval_ms=interval_ms)
        events: list[Any] = []
        pipeline = FramePipeline(engine, searcher=searcher, options=options, on_event=events.append)
        for frame in iter_frames(str(truth.path), every_nth=args.every):
            if frame.timestamp_ms > limit_ms:
                break
            pipeline.process(frame.pixels_bgr, frame.timestamp_ms, frame.arrival_s)
        delays, wrong = [], 0
        for e in events:
            cx = (e.box.left + e.box.width / 2) * truth.width
            cy = (e.box.top + e.box.height / 2) * truth.height
            who = truth.who_at(e.best_shot_timestamp_ms, cx, cy)  # the box is the best shot's
            if who != e.external_image_id:
                wrong += 1
                continue
            t_s = (e.frame_timestamp_ms - truth.offset_ms) / 1000
            actor = next(a for a in truth.actors if a.name == who and a.enter_s <= t_s < a.leave_s)
            delays.append(e.frame_timestamp_ms - truth.offset_ms - actor.enter_s * 1000)
        row = {
            "first_match_interval_ms": interval_ms,
            "events": len(events),
            "wrong_person_events": wrong,
            "appearance_to_event_video_ms_p50": round(percentile(delays, 0.5)) if delays else None,
            "appearance_to_event_video_ms_p95": round(percentile(delays, 0.95)) if delays else None,
            "embeddings": pipeline.embeddings,
            "splits": pipeline.splits,
        }
        print(row)
        rows.append(row)
    write_result(
        "video_rule.json",
        {
            "video_seconds": args.sweep_seconds,
            "rows": rows,
            "machine": machine(),
            "command": "python bench/video.py " + " ".join(sys.argv[1:]),
        },
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--every", type=int, default=2, help="detect every Nth frame")
    parser.add_argument("--detect-side", type=int, default=640)
    parser.add_argument("--sweep", action="store_true", help="measure the first-match rule")
    parser.add_argument("--sweep-seconds", type=float, default=60.0)
    args = parser.parse_args()
    require_lfw()
    from faceledger.inference.engine import FaceEngine
    from faceledger.video import PipelineOptions, analyse_video
    from faceledger.video.sources import decode_frames, open_input, parse_source, to_bgr
    from helpers.videos import exact_searcher

    engine = FaceEngine()
    engine.load()
    truth, people, enrolled = build(args, engine)
    searcher = exact_searcher(engine, {n: people[n][0] for n in enrolled})
    if args.sweep:
        sweep(args, engine, truth, searcher, enrolled)
        return
    path = truth.path

    # decode alone (every frame decoded, every Nth converted), for the breakdown
    t = time.perf_counter()
    container, stream = open_input(parse_source(str(path)))
    with container:
        for index, _, frame in decode_frames(container, stream):
            if index % args.every == 0:
                to_bgr(frame)
    decode_s = time.perf_counter() - t

    timed = TimedEngine(engine)
    options = dataclasses.replace(
        PipelineOptions.stored(),
        detect_every_n_frames=args.every,
        detect_long_side_px=args.detect_side,
    )
    load0 = os.getloadavg()
    t = time.perf_counter()
    cpu0 = time.process_time()
    result = analyse_video(
        str(path),
        timed,
        mode="search",
        searcher=searcher,
        options=options,  # type: ignore[arg-type]
    )
    wall_s = time.perf_counter() - t
    cpu_s = time.process_time() - cpu0
    load1 = os.getloadavg()
    duration_s = result.metadata.duration_ms / 1000
    still = {
        a.photo: still_similarity(engine, people[a.name][0], a.photo)
        for a in truth.actors
        if a.name in enrolled
    }
    quality = appearances_found(truth, result, enrolled, still)
    frame_ms = round(1000 * args.every / FPS)
    quality["results_labelled_outside_their_frames"] = wrong_labels(truth, result, frame_ms)
    quality["results"] = len(result.matches)
    first_ms = min((m.timestamp_ms for m in result.matches), default=None)
    payload = {
        "video": {
            "width": WIDTH,
            "height": HEIGHT,
            "fps": FPS,
            "seconds": duration_s,
            "people": len(people),
            "enrolled": len(enrolled),
            "appearances": len(truth.actors),
            "scene_cuts": len(truth.cuts),
            "first_frame_player_ms": truth.offset_ms,
            "codec": result.metadata.codec,
        },
        "options": {"detect_every_n_frames": args.every, "detect_long_side_px": args.detect_side},
        "wall_s": round(wall_s, 2),
        "speed_x_realtime": round(duration_s / wall_s, 2),
        # CPU seconds the analysis used (all threads): on a machine shared with other work,
        # video seconds per CPU second × 2 cores is the speed the two cores would give alone
        "cpu_s": round(cpu_s, 2),
        "speed_x_realtime_per_2_cores_of_cpu": round(duration_s / (cpu_s / 2), 2),
        "load_average_before_after": [round(load0[0], 2), round(load1[0], 2)],
        "frames_decoded": result.frames_decoded,
        "frames_analysed": result.frames_analysed,
        "detections_per_s": round(result.frames_analysed / wall_s, 1),
        "persons_tracked": result.persons_tracked,
        "embeddings": timed.embeddings,
        "first_result_ms": first_ms,
        "breakdown_s": {
            "decode_alone_single_thread": round(decode_s, 2),
            "detect_in_pipeline": round(timed.detect_s, 2),
            "embed_in_pipeline": round(timed.embed_s, 2),
        },
        **quality,
        "goals": {
            "speed_x_realtime_ge_2": duration_s / wall_s >= 2,
            "recall_appearances_ge_2s_ge_0.95": quality["recall_appearances_ge_2s"] >= 0.95,
            "no_events_for_never_enrolled": quality["match_events_for_never_enrolled"] == 0,
            "no_result_outside_its_person": quality["results_labelled_outside_their_frames"] == 0,
        },
        "machine": machine(),
        "command": "python bench/video.py " + " ".join(sys.argv[1:]),
    }
    for key in (
        "wall_s",
        "speed_x_realtime",
        "cpu_s",
        "speed_x_realtime_per_2_cores_of_cpu",
        "load_average_before_after",
        "detections_per_s",
        "breakdown_s",
        "first_result_ms",
    ):
        print(f"{key}: {payload[key]}")
    for key, value in quality.items():
        print(f"{key}: {value}")
    write_result("video.json", payload)


if __name__ == "__main__":
    main()
