"""Synthetic test videos made with PyAV from LFW faces, with known ground truth.

An ``Actor`` is an LFW photo (its central face region) that enters the frame at ``enter_s``,
moves in a straight line from ``start_xy`` to ``end_xy`` (top-left corner of the pasted square,
pixels) and leaves at ``leave_s``. ``make_video`` renders the actors over a fixed textured
background and encodes H.264 (MP4/MOV/MKV) or MPEG-4 Part 2 (AVI), returning a ``GroundTruth``
that says who is on screen when and where their face is. ``cuts`` switch to another backdrop
(a hard scene cut); ``with_leading_audio`` remuxes a video so its first frame starts later
than the container (a player shows it at that time; ``GroundTruth.offset_ms``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from helpers.data import lfw_people

if TYPE_CHECKING:
    from faceledger.inference.engine import FaceEngine
    from faceledger.video.pipeline import Searcher

# The central region of a 250×250 LFW photo that holds the face (and little else).
LFW_CROP = (slice(45, 205), slice(45, 205))


@dataclass(frozen=True)
class Moving:
    """Someone (an LFW photo) on screen from ``enter_s`` to ``leave_s``, moving from
    ``start_xy`` to ``end_xy`` (top-left corner, px) in a straight line: an ``Actor`` here, a
    ``Figure`` in ``body_videos.py``."""

    name: str
    photo: Path
    enter_s: float
    leave_s: float
    start_xy: tuple[float, float]
    end_xy: tuple[float, float]

    def position_at(self, t_s: float) -> tuple[int, int] | None:
        """Top-left corner at ``t_s``, or None when off screen."""
        if not self.enter_s <= t_s < self.leave_s:
            return None
        f = (t_s - self.enter_s) / max(self.leave_s - self.enter_s, 1e-9)
        x = self.start_xy[0] + f * (self.end_xy[0] - self.start_xy[0])
        y = self.start_xy[1] + f * (self.end_xy[1] - self.start_xy[1])
        return round(x), round(y)


@dataclass(frozen=True)
class Actor(Moving):
    """A face: the photo's central square, ``size_px`` a side."""

    size_px: int = 160  # side of the pasted square


@dataclass(frozen=True)
class GroundTruth:
    path: Path
    width: int
    height: int
    fps: int
    frames: int
    actors: tuple[Actor, ...]
    offset_ms: int = 0  # player time of the first frame (the container starts earlier)
    cuts: tuple[float, ...] = ()  # seconds (video time) at which the backdrop changes

    @property
    def duration_ms(self) -> int:
        return round(self.frames * 1000 / self.fps)

    def on_screen(self, name: str, t_ms: int) -> bool:
        """Whether ``name`` is drawn at player time ``t_ms``."""
        t_s = (t_ms - self.offset_ms) / 1000
        return any(a.name == name and a.position_at(t_s) is not None for a in self.actors)

    def actor(self, name: str) -> Actor:
        return next(a for a in self.actors if a.name == name)

    def on_screen_ms(self, name: str) -> tuple[int, int]:
        """(first, last) frame timestamps (ms) at which ``name`` is drawn."""
        a = self.actor(name)
        shown = [i for i in range(self.frames) if a.position_at(i / self.fps) is not None]
        first, last = round(shown[0] * 1000 / self.fps), round(shown[-1] * 1000 / self.fps)
        return first + self.offset_ms, last + self.offset_ms

    def square_at(self, name: str, t_ms: int) -> tuple[float, float, float, float] | None:
        """The pasted square (x1, y1, x2, y2 px) of ``name`` at ``t_ms``, clipped to the frame
        (None when ``name`` is not on screen then; a name may appear several times)."""
        for a in self.actors:
            if a.name == name and (square := self._square(a, t_ms)) is not None:
                return square
        return None

    def _square(self, a: Actor, t_ms: int) -> tuple[float, float, float, float] | None:
        pos = a.position_at((t_ms - self.offset_ms) / 1000)
        if pos is None:
            return None
        x, y = pos
        return (
            max(0, x),
            max(0, y),
            min(self.width, x + a.size_px),
            min(self.height, y + a.size_px),
        )

    def who_at(self, t_ms: int, cx: float, cy: float) -> str | None:
        """The actor whose square contains the point (cx, cy) px at ``t_ms`` (topmost)."""
        for a in reversed(self.actors):
            sq = self._square(a, t_ms)
            if sq and sq[0] <= cx <= sq[2] and sq[1] <= cy <= sq[3]:
                return a.name
        return None


def background(width: int, height: int, seed: int = 7) -> NDArray[np.uint8]:
    """A fixed, smooth, face-free backdrop (gradients plus blurred noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    blurred = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(60, 160, width, dtype=np.float32)[None, :, None]
    img = 0.5 * blurred.astype(np.float32) + 0.5 * ramp
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_region(
    photo: Path, region: tuple[slice, slice], size_px: tuple[int, int]
) -> NDArray[np.uint8]:
    """``region`` (rows, cols) of the image file ``photo``, resized to ``size_px`` (w, h)."""
    import cv2

    img = cv2.imread(str(photo))
    if img is None:
        raise FileNotFoundError(photo)
    return np.asarray(cv2.resize(img[region], size_px, interpolation=cv2.INTER_AREA))


def _load_face(photo: Path, size_px: int) -> NDArray[np.uint8]:
    return photo_region(photo, LFW_CROP, (size_px, size_px))


def paste(frame: NDArray[np.uint8], cut: NDArray[np.uint8], xy: tuple[int, int]) -> None:
    """Paste ``cut`` with its top-left corner at ``xy`` (px), clipped to ``frame`` (in place)."""
    x, y = xy
    h, w = frame.shape[:2]
    x1, y1 = max(0, x), max(0, y)
    x2, y2 = min(w, x + cut.shape[1]), min(h, y + cut.shape[0])
    if x2 > x1 and y2 > y1:
        frame[y1:y2, x1:x2] = cut[y1 - y : y2 - y, x1 - x : x2 - x]


def render_frame(
    base: NDArray[np.uint8],
    actors: tuple[Actor, ...],
    faces: dict[str, NDArray[np.uint8]],
    t_s: float,
) -> NDArray[np.uint8]:
    frame = base.copy()
    for a in actors:
        pos = a.position_at(t_s)
        if pos is not None:
            paste(frame, faces[a.name], pos)
    return frame


def encode_video(
    path: Path,
    frames: Iterable[NDArray[np.uint8]],
    *,
    width: int,
    height: int,
    fps: int,
    gop: int,
) -> None:
    """Encode BGR ``frames`` to ``path``: H.264 (MP4/MOV/MKV) or MPEG-4 Part 2 (AVI) by the
    suffix, a key frame every ``gop`` frames."""
    import av

    codec = _CODECS[path.suffix.lower()]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23", "g": str(gop)}
        else:
            stream.bit_rate = 2_000_000
            stream.options = {"g": str(gop)}
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4"}


def make_video(
    path: Path,
    actors: list[Actor],
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    duration_s: float = 6.0,
    gop: int = 50,
    cuts: tuple[float, ...] = (),
) -> GroundTruth:
    """Render and encode ``actors`` to ``path`` (container and codec from the suffix); at
    each of ``cuts`` (seconds) the backdrop changes to another one (a hard scene cut)."""
    faces = {a.name: _load_face(a.photo, a.size_px) for a in actors}
    backdrops = [background(width, height, seed=7 + 5 * k) for k in range(len(cuts) + 1)]
    for k in range(1, len(backdrops), 2):  # another shot: another place, other light
        backdrops[k] = np.ascontiguousarray(255 - backdrops[k][:, ::-1])
    frames = round(duration_s * fps)
    actor_tuple = tuple(actors)
    pictures = (
        render_frame(backdrops[sum(1 for c in cuts if i / fps >= c)], actor_tuple, faces, i / fps)
        for i in range(frames)
    )
    encode_video(path, pictures, width=width, height=height, fps=fps, gop=gop)
    return GroundTruth(path, width, height, fps, frames, actor_tuple, cuts=tuple(cuts))


def with_leading_audio(truth: GroundTruth, path: Path, offset_s: float) -> GroundTruth:
    """Remux ``truth``'s video with ffmpeg into ``path`` (MP4) behind an audio track that
    starts at 0, the video delayed by ``offset_s``: the container starts at 0 and the first
    frame at ``offset_s`` (what a player shows)."""
    import dataclasses
    import subprocess

    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"sine=d={truth.duration_ms / 1000 + offset_s + 0.5}",
            "-itsoffset", str(offset_s), "-i", str(truth.path),
            "-map", "0:a", "-map", "1:v", "-c:v", "copy", "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip
    return dataclasses.replace(truth, path=path, offset_ms=round(offset_s * 1000))


def exact_searcher(engine: FaceEngine, enrolled: dict[str, Path], *, k: int = 5) -> Searcher:
    """An in-memory searcher over one enrolled photo per name (largest face), exact search.

    Face ids are ``face-<name>``, ExternalImageIds the names.
    """
    from faceledger.domain.video import Hit
    from faceledger.index.exact import ExactIndex
    from faceledger.inference.imaging import load_image

    names = list(enrolled)
    index = ExactIndex(engine.embedding_size)
    for i, name in enumerate(names):
        faces = engine.analyse(load_image(enrolled[name]), max_faces=1)
        assert faces.embeddings is not None and len(faces) == 1, name
        index.add([i], faces.embeddings)

    def search(embeddings: NDArray[np.float32]) -> list[list[Hit]]:
        found = index.search(embeddings, k=min(k, len(names)))
        sims = engine.calibration.similarity(found.cosines)
        return [
            [
                Hit(f"face-{names[int(i)]}", float(s), names[int(i)], f"image-{names[int(i)]}")
                for i, s in zip(ids, row, strict=True)
                if i >= 0
            ]
            for ids, row in zip(found.ids, sims, strict=True)
        ]

    return search


@dataclass(frozen=True)
class Scene:
    """A standard test scene: who is enrolled (with the photo enrolled) and the video."""

    truth: GroundTruth
    enrolled: dict[str, Path]  # name → enrolled photo (never the one shown in the video)
    strangers: tuple[str, ...]  # on screen, never enrolled
    absent: tuple[str, ...]  # enrolled, never on screen


def standard_scene(people: dict[str, list[Path]], path: Path, *, duration_s: float = 8.0) -> Scene:
    """640×360, 25 fps: three enrolled people and two strangers entering, moving and leaving
    without overlapping; one more enrolled person never appears. ``people`` needs ≥ 6 names
    with ≥ 2 photos each (``lfw_people(data_dir, 2, 6)``)."""
    names = list(people)
    if len(names) < 6:
        raise ValueError("standard_scene needs 6 people")
    a, b, c, d, e, f = names[:6]
    shown = {n: people[n][1] for n in names[:6]}
    actors = [
        Actor(a, shown[a], 0.4, 5.0, (20, 10), (300, 20)),  # enrolled, upper band, moving right
        Actor(b, shown[b], 2.0, 7.6, (460, 190), (220, 180)),  # enrolled, lower band, moving left
        Actor(c, shown[c], 1.0, 4.0, (480, 10), (480, 14), size_px=120),  # stranger, top right
        Actor(d, shown[d], 4.5, 7.5, (0, 190), (40, 180), size_px=150),  # stranger, lower left
        Actor(e, shown[e], 5.5, 7.6, (470, 10), (440, 20), size_px=130),  # enrolled, top right
    ]
    truth = make_video(path, actors, duration_s=duration_s)
    enrolled = {n: people[n][0] for n in (a, b, e, f)}
    return Scene(truth, enrolled, (c, d), (f,))


def single_face_people(engine: FaceEngine, data_dir: Path, count: int) -> dict[str, list[Path]]:
    """The first ``count`` LFW people with ≥ 2 photos whose second photo's central region
    (what ``Actor`` pastes) shows exactly one face, so the ground truth is one face per actor
    (some LFW photos hold a second person near the subject)."""
    base = background(640, 360)
    out: dict[str, list[Path]] = {}
    for name, photos in lfw_people(data_dir, 2, count * 4).items():
        found = []
        for xy, size in (((240, 100), 160), ((0, 190), 150), ((20, 185), 130), ((470, 10), 120)):
            actor = Actor(name, photos[1], 0.0, 1.0, xy, xy, size_px=size)
            face = {name: _load_face(photos[1], size)}
            frame = render_frame(base, (actor,), face, 0.0)
            found.append(len(engine.detect_frame(frame, score_threshold=0.3)[0]))
        if found == [1, 1, 1, 1]:
            out[name] = photos
        if len(out) == count:
            break
    return out


@dataclass(frozen=True)
class CutScene:
    """The identity scene (``cut_scene``): names by role, and who is enrolled."""

    truth: GroundTruth
    enrolled: dict[str, Path]
    strangers: tuple[str, ...]
    first: str  # enrolled; on screen 0–3 s, leaves, comes back 9–11.5 s after a cut
    stranger: str  # after the first cut, at the same place, 3–5.5 s
    successor: str  # enrolled; replaces the stranger at the same place, no cut, 5.5–8 s
    bystander: str  # enrolled; turned face, after the second cut, 8–11 s


SPOT = (240.0, 100.0)


def cut_scene(people: dict[str, list[Path]], profile: tuple[str, Path], path: Path) -> CutScene:
    """640×360, 25 fps, 12 s, built to break trackers: one place on screen shows an enrolled
    person (0–3 s), a hard cut to a stranger (3–5.5 s), an enrolled person replacing the
    stranger without a cut (5.5–8 s), a hard cut to an enrolled bystander with a turned face
    elsewhere (8–11 s), and the first person coming back to the place (9–11.5 s).
    ``profile`` is (name, photo with a turned face), enrolled with another photo."""
    names = [n for n in people if n != profile[0]]
    first, stranger, successor = names[:3]
    bystander, turned = profile
    shown = {n: people[n][1] for n in (first, stranger, successor)}
    actors = [
        Actor(first, shown[first], 0.0, 3.0, SPOT, (SPOT[0] + 20, SPOT[1])),
        Actor(stranger, shown[stranger], 3.0, 5.5, SPOT, (SPOT[0] - 10, SPOT[1] + 5)),
        Actor(successor, shown[successor], 5.5, 8.0, (SPOT[0] - 10, SPOT[1] + 5), SPOT),
        Actor(bystander, turned, 8.0, 11.0, (440, 150), (420, 160), size_px=150),
        Actor(first, people[first][-1], 9.0, 11.5, (30, 120), (SPOT[0] - 60, SPOT[1])),
    ]
    truth = make_video(path, actors, duration_s=12.0, cuts=(3.0, 8.0))
    enrolled = {first: people[first][0], successor: people[successor][0]}
    enrolled[bystander] = people[bystander][0]  # turned_face checked it matches ``turned``
    return CutScene(truth, enrolled, (stranger,), first, stranger, successor, bystander)


def turned_face(
    engine: FaceEngine, people: dict[str, list[Path]], *, min_yaw_deg: float = 15.0
) -> tuple[str, Path]:
    """The most turned (name, photo), at least ``min_yaw_deg``, that still matches another
    photo of the same person at Similarity ≥ 80 (an enrolled bystander seen turned). Yaw is
    the solvePnP estimate, which reads three-quarter views at ≈ 40° and these LFW people's
    most turned photos at ≈ 20°."""
    from faceledger.inference.imaging import load_image

    best: tuple[float, str, Path] | None = None
    for name, photos in people.items():
        if len(photos) < 3:
            continue
        for photo in photos[1:]:
            faces = engine.analyse(load_image(photo), max_faces=1)
            if len(faces) != 1 or faces.yaw_deg is None:
                continue
            yaw = abs(float(faces.yaw_deg[0]))
            if yaw < min_yaw_deg or (best is not None and yaw <= best[0]):
                continue
            other = engine.analyse(load_image(photos[0]), max_faces=1)
            assert faces.embeddings is not None
            if other.embeddings is None or len(other) != 1:
                continue
            if float(engine.similarity(faces.embeddings[0], other.embeddings[0])) >= 80:
                best = (yaw, name, photo)
    if best is None:
        raise LookupError("no turned face that still matches")
    return best[1], best[2]
