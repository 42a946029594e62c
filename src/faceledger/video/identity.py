"""Keeping a track to one person: scene cuts, crop changes and identities by embedding.

Three cheap tests and one registry, used by ``FramePipeline``:

* ``SceneCutDetector`` — a hard cut changes most of the picture between two analysed frames:
  the mean absolute difference of two 32×18 grey thumbnails (0–1) above ``cut_difference``
  starts every track anew. Measured on the test videos of ``tests/videos.py``: within a
  shot, faces moving, appearing and leaving change the thumbnail by less than 0.05; a cut to
  another (low-contrast, synthetic) backdrop by 0.10–0.11; real cuts to another scene change
  more. A false cut only restarts tracks (a new person index is not given: the registry gives
  the person's index back), so the bound leans low (0.07).
* ``crop_signature`` / ``signature_correlation`` — a face's aligned 112×112 crop as a 16×16
  zero-mean unit vector; the correlation of a track's consecutive crops stays high for one
  person and drops when another person takes the place. A drop below
  ``PipelineOptions.suspect_correlation`` makes the pipeline embed that frame's face at once, so
  a change of person is checked where it happens; it also locates the split point when an
  embedding disagrees.
* ``PersonRegistry`` — person indexes for PersonTracking and match events: a new track part
  takes the index of an earlier person not on screen whose embeddings agree with its own
  (cosine at or above the ``same_person`` bound of the reappearance test), else a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

THUMB_SIZE = (32, 18)  # scene-cut thumbnail (width, height)
SIGNATURE_SIDE = 16


def thumbnail(pixels_bgr: NDArray[np.uint8]) -> NDArray[np.float32]:
    """A 32×18 grey thumbnail of a frame, 0–1."""
    import cv2

    grey = cv2.cvtColor(pixels_bgr, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.float32) / 255.0


@dataclass
class SceneCutDetector:
    """Says whether an analysed frame starts a new shot (see the module docstring)."""

    cut_difference: float = 0.07
    _previous: NDArray[np.float32] | None = None
    last_difference: float = 0.0

    def is_cut(self, pixels_bgr: NDArray[np.uint8]) -> bool:
        thumb = thumbnail(pixels_bgr)
        previous, self._previous = self._previous, thumb
        if previous is None or previous.shape != thumb.shape:
            self.last_difference = 0.0
            return False
        self.last_difference = float(np.mean(np.abs(thumb - previous)))
        return self.last_difference > self.cut_difference


def crop_signature(crop_bgr: NDArray[np.uint8]) -> NDArray[np.float32]:
    """An aligned face crop as a 16×16 grey, zero-mean, unit-norm vector."""
    import cv2

    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (SIGNATURE_SIDE, SIGNATURE_SIDE), interpolation=cv2.INTER_AREA)
    v = np.asarray(small, np.float32).reshape(-1)
    v -= v.mean()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-6 else v


def signature_correlation(a: NDArray[np.float32] | None, b: NDArray[np.float32]) -> float:
    """Correlation (−1…1) of two crop signatures; 1.0 when there is no previous one."""
    if a is None:
        return 1.0
    return float(np.dot(a, b))


@dataclass
class Identity:
    """A running mean of unit embeddings."""

    total: NDArray[np.float64] | None = None
    count: int = 0

    def add(self, embedding: NDArray[np.floating]) -> None:
        e = np.asarray(embedding, np.float64)
        self.total = e.copy() if self.total is None else self.total + e
        self.count += 1

    def cosine(self, embedding: NDArray[np.floating]) -> float | None:
        """Cosine between ``embedding`` and the mean direction (None before any)."""
        if self.total is None:
            return None
        norm = float(np.linalg.norm(self.total))
        if norm <= 1e-9:
            return None
        e = np.asarray(embedding, np.float64)
        return float(np.dot(self.total / norm, e) / max(float(np.linalg.norm(e)), 1e-9))


@dataclass
class PersonRegistry:
    """Person indexes by identity (see the module docstring); ``same_person_cosine`` is the
    reappearance bound."""

    same_person_cosine: float
    _people: dict[int, Identity] = field(default_factory=dict)
    _next: int = 0

    @property
    def count(self) -> int:
        return self._next

    def new(self) -> int:
        index = self._next
        self._next += 1
        self._people[index] = Identity()
        return index

    def resolve(self, index: int, embedding: NDArray[np.floating], busy: set[int]) -> int:
        """The person index a track part holding ``index`` should carry after its first
        embedding: the most similar earlier person not in ``busy`` (on screen now) at or above
        the bound, else ``index``. The embedding joins that person's identity."""
        best, best_cos = index, self.same_person_cosine
        for other, identity in self._people.items():
            if other == index or other in busy or identity.count == 0:
                continue
            cos = identity.cosine(embedding)
            if cos is not None and cos >= best_cos:
                best, best_cos = other, cos
        self._people.setdefault(best, Identity()).add(embedding)
        if best != index and index in self._people and self._people[index].count == 0:
            del self._people[index]
        return best

    def add(self, index: int, embedding: NDArray[np.floating]) -> None:
        self._people.setdefault(index, Identity()).add(embedding)
