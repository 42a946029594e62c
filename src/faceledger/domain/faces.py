"""Images, detected faces (columnar) and comparison results.

Units are in names: ``*_px`` are pixels of the decoded, orientation-corrected image; ``cosine``
is the raw model score in [-1, 1]; ``similarity`` is the calibrated 0–100 Similarity.

Landmarks follow Rekognition's convention: five points in image coordinates, in the order of
``LANDMARK_NAMES``. ``eyeLeft`` is the eye on the left of the image (the subject's right eye).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

LANDMARK_NAMES: tuple[str, ...] = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")

FloatArray = NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Image:
    """A decoded image: BGR uint8 pixels (H×W×3), EXIF orientation already applied."""

    pixels_bgr: NDArray[np.uint8]
    format: str  # "jpeg" or "png", sniffed from the bytes
    sha256: str  # of the original encoded bytes
    size_bytes: int = 0

    @property
    def width_px(self) -> int:
        return int(self.pixels_bgr.shape[1])

    @property
    def height_px(self) -> int:
        return int(self.pixels_bgr.shape[0])


def _column(values: Any, shape_tail: tuple[int, ...], n: int, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape != (n, *shape_tail):
        raise ValueError(f"{name}: expected shape {(n, *shape_tail)}, got {arr.shape}")
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Faces:
    """N detected faces as parallel arrays (never mutated; every method returns a new object).

    boxes_px: (N, 4) x1, y1, x2, y2 · scores: (N,) detector confidence 0–1 ·
    landmarks_px: (N, 5, 2) · brightness, sharpness: (N,) 0–100 ·
    yaw_deg, pitch_deg, roll_deg: (N,) · embeddings: (N, D) L2-normalised, or None.
    """

    boxes_px: FloatArray
    scores: FloatArray
    landmarks_px: FloatArray
    brightness: FloatArray | None = None
    sharpness: FloatArray | None = None
    yaw_deg: FloatArray | None = None
    pitch_deg: FloatArray | None = None
    roll_deg: FloatArray | None = None
    embeddings: FloatArray | None = field(default=None)

    def __post_init__(self) -> None:
        n = int(np.asarray(self.scores).shape[0]) if np.ndim(self.scores) else 0
        object.__setattr__(self, "boxes_px", _column(self.boxes_px, (4,), n, "boxes_px"))
        object.__setattr__(self, "scores", _column(self.scores, (), n, "scores"))
        object.__setattr__(
            self, "landmarks_px", _column(self.landmarks_px, (5, 2), n, "landmarks_px")
        )
        for name in ("brightness", "sharpness", "yaw_deg", "pitch_deg", "roll_deg"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _column(value, (), n, name))
        if self.embeddings is not None:
            emb = np.asarray(self.embeddings, dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != n:
                raise ValueError(f"embeddings: expected ({n}, D), got {emb.shape}")
            object.__setattr__(self, "embeddings", _column(emb, (emb.shape[1],), n, "embeddings"))

    @classmethod
    def empty(cls) -> Faces:
        f32 = np.float32
        return cls(np.zeros((0, 4), f32), np.zeros((0,), f32), np.zeros((0, 5, 2), f32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, index: int | slice | NDArray[Any] | list[int]) -> Faces:
        """Select faces by position, slice, index array or boolean mask (always returns Faces)."""
        if isinstance(index, int):
            index = [index]
        kwargs: dict[str, Any] = {}
        for name in self._fields():
            value = getattr(self, name)
            kwargs[name] = None if value is None else np.asarray(value)[index]
        return Faces(**kwargs)

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return (
            "boxes_px",
            "scores",
            "landmarks_px",
            "brightness",
            "sharpness",
            "yaw_deg",
            "pitch_deg",
            "roll_deg",
            "embeddings",
        )

    @property
    def widths_px(self) -> FloatArray:
        return self.boxes_px[:, 2] - self.boxes_px[:, 0]

    @property
    def heights_px(self) -> FloatArray:
        return self.boxes_px[:, 3] - self.boxes_px[:, 1]

    @property
    def areas_px(self) -> FloatArray:
        return self.widths_px * self.heights_px

    @property
    def has_quality(self) -> bool:
        return self.brightness is not None

    def largest_first(self) -> Faces:
        """The same faces ordered by box area, largest first (Rekognition's order)."""
        return self[np.argsort(-self.areas_px, kind="stable")]

    def with_quality(
        self,
        *,
        brightness: Any,
        sharpness: Any,
        yaw_deg: Any,
        pitch_deg: Any,
        roll_deg: Any,
    ) -> Faces:
        return replace(
            self,
            brightness=brightness,
            sharpness=sharpness,
            yaw_deg=yaw_deg,
            pitch_deg=pitch_deg,
            roll_deg=roll_deg,
        )

    def with_embeddings(self, embeddings: Any) -> Faces:
        return replace(self, embeddings=embeddings)

    def to_dicts(self) -> list[dict[str, Any]]:
        """Plain JSON-ready dicts, pixel units, one per face (embeddings left out)."""
        out: list[dict[str, Any]] = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (round(float(v), 1) for v in self.boxes_px[i])
            face: dict[str, Any] = {
                "bbox_px": {
                    "left": x1,
                    "top": y1,
                    "width": round(x2 - x1, 1),
                    "height": round(y2 - y1, 1),
                },
                "confidence": round(float(self.scores[i]) * 100.0, 3),
                "landmarks_px": {
                    name: {"x": round(float(x), 1), "y": round(float(y), 1)}
                    for name, (x, y) in zip(LANDMARK_NAMES, self.landmarks_px[i], strict=True)
                },
            }
            if self.has_quality:
                assert self.brightness is not None and self.sharpness is not None
                assert self.yaw_deg is not None and self.pitch_deg is not None
                assert self.roll_deg is not None
                face["quality"] = {
                    "brightness": round(float(self.brightness[i]), 2),
                    "sharpness": round(float(self.sharpness[i]), 2),
                }
                face["pose_deg"] = {
                    "yaw": round(float(self.yaw_deg[i]), 1),
                    "pitch": round(float(self.pitch_deg[i]), 1),
                    "roll": round(float(self.roll_deg[i]), 1),
                }
            out.append(face)
        return out


@dataclass(frozen=True, eq=False)
class AnalysedImage:
    """An image's identity and size (the pixels are dropped) with its analysed faces."""

    sha256: str
    format: str
    width_px: int
    height_px: int
    size_bytes: int
    faces: Faces

    @classmethod
    def of(cls, image: Image, faces: Faces) -> AnalysedImage:
        return cls(
            image.sha256, image.format, image.width_px, image.height_px, image.size_bytes, faces
        )


@dataclass(frozen=True)
class ImageInfo:
    """What an answer says about an uploaded image: its identity, format and size (after EXIF
    orientation), without its pixels."""

    sha256: str  # of the encoded bytes
    format: str  # "jpeg" or "png"
    width_px: int
    height_px: int
    size_bytes: int

    @classmethod
    def of(cls, image: Image | AnalysedImage) -> ImageInfo:
        return cls(image.sha256, image.format, image.width_px, image.height_px, image.size_bytes)


@dataclass(frozen=True)
class FaceMatch:
    """One target face compared with the source face."""

    target_index: int  # index into the target image's Faces (largest first)
    cosine: float
    similarity: float  # calibrated, 0–100


@dataclass(frozen=True, eq=False)
class CompareResult:
    """Largest face of the source image against every face of the target image."""

    source: Faces  # exactly one face
    targets: Faces  # largest first
    matches: tuple[FaceMatch, ...]  # one per target face, same order as ``targets``
