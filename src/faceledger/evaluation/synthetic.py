"""Synthetic analysed images: faces with random unit embeddings and no pixels, for load and
crash measurements (``bench/ledger_integrity.py``) and the crash tests' enrolment workers,
which need many distinct enrolments quickly and no model."""

from __future__ import annotations

import numpy as np

from faceledger.domain.faces import AnalysedImage, Faces


def synthetic_image(rng: np.random.Generator, n_faces: int, dim: int) -> AnalysedImage:
    """A 640×480 "JPEG" with ``n_faces`` faces in a row (50 px boxes, score 0.9), each with a
    random L2-normalised ``dim``-d embedding; its SHA-256 is random too (every image new)."""
    vectors = rng.normal(size=(n_faces, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    boxes = np.array([[10 + 60 * i, 10, 60 + 60 * i, 70] for i in range(n_faces)], np.float32)
    faces = Faces(
        boxes_px=boxes,
        scores=np.full(n_faces, 0.9, np.float32),
        landmarks_px=np.zeros((n_faces, 5, 2), np.float32),
        embeddings=vectors,
    )
    return AnalysedImage(rng.bytes(32).hex(), "jpeg", 640, 480, 1000, faces)
