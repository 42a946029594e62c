"""The images of a labelled set (``DIR/<identity>/<images>``) and one face's embedding each,
cached."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.faces import AnalysedImage
from faceledger.evaluation.lfw import central_face
from faceledger.inference.engine import MAX_FACES_PER_IMAGE, FaceEngine
from faceledger.inference.imaging import load_image

Progress = Callable[[int, int], None]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FACE_CHOICES = ("largest", "central")


# -- the images and their embeddings --------------------------------------------------------
def list_images(data_dir: Path) -> list[str]:
    """``identity/file`` of every image one level below an identity folder, sorted.

    Hidden files and folders are skipped. Raises when the folder holds no such image.
    """
    if not data_dir.is_dir():
        raise InvalidParameterError(f"no such folder: {data_dir}")
    found = sorted(
        f"{person.name}/{image.name}"
        for person in data_dir.iterdir()
        if person.is_dir() and not person.name.startswith(".")
        for image in person.iterdir()
        if image.suffix.lower() in IMAGE_SUFFIXES and not image.name.startswith(".")
    )
    if not found:
        raise InvalidParameterError(
            f"{data_dir} holds no images laid out as <identity>/<image> "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    return found


def identity_of(relpath: str) -> str:
    """The identity an image is filed under: its folder name."""
    return relpath.split("/", 1)[0]


@dataclass(frozen=True)
class EmbeddedImages:
    """One face per image (``face``: largest or central): embedding and landmarks (zeros where
    none was found)."""

    paths: tuple[str, ...]  # identity/file
    embeddings: NDArray[np.float32]  # (n, D), L2-normalised
    found: NDArray[np.bool_]  # (n,) a face was found
    unreadable: NDArray[np.bool_]  # (n,) the file could not be read or decoded
    boxes_px: NDArray[np.float32]  # (n, 4)
    landmarks_px: NDArray[np.float32]  # (n, 5, 2)
    face_model_version: str
    face: str = "largest"

    @property
    def identities(self) -> list[str]:
        return [identity_of(p) for p in self.paths]


def cache_file(
    engine: FaceEngine,
    data_dir: Path,
    relpaths: Sequence[str],
    cache_dir: Path,
    face: str = "largest",
) -> Path:
    """Cache path keyed by the pack, its detection options, the face choice and the file list
    (names and sizes).

    Worker counts are left out of the key: they change speed, not results.
    """
    digest = hashlib.sha256()
    options = replace(engine.options, workers=1, inference_threads=0)
    digest.update(f"{engine.face_model_version}\n{options!r}\n{face}\n".encode())
    for rel in relpaths:
        digest.update(f"{rel}\t{(data_dir / rel).stat().st_size}\n".encode())
    name = f"embeddings_{engine.face_model_version}_{face}_{digest.hexdigest()[:16]}.npz"
    return cache_dir / name


def _load_cached(
    path: Path, relpaths: Sequence[str], version: str, face: str
) -> EmbeddedImages | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            if [str(p) for p in data["paths"]] != list(relpaths):
                return None
            return EmbeddedImages(
                tuple(relpaths),
                data["embeddings"],
                data["found"],
                data["unreadable"],
                data["boxes_px"],
                data["landmarks_px"],
                version,
                face,
            )
    except (OSError, KeyError, ValueError):
        return None  # a damaged or older cache is recomputed, never trusted


def _save_cache(path: Path, embedded: EmbeddedImages) -> None:
    """Write atomically (temporary file, then rename) so an interrupted run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        paths=np.array(embedded.paths),
        embeddings=embedded.embeddings,
        found=embedded.found,
        unreadable=embedded.unreadable,
        boxes_px=embedded.boxes_px,
        landmarks_px=embedded.landmarks_px,
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(buffer.getvalue())
    os.replace(tmp, path)


def choose_face(result: AnalysedImage, face: str) -> int | None:
    """Index of the face to keep: 0 (faces come largest first) or the most central one."""
    if len(result.faces) == 0:
        return None
    if face == "largest":
        return 0
    return central_face(result.faces, result.width_px, result.height_px)


def analyse_images(
    engine: FaceEngine,
    data_dir: Path,
    relpaths: Sequence[str],
    face: str = "largest",
    progress: Progress | None = None,
) -> EmbeddedImages:
    """One face of every image through ``engine.analyse_many`` (every worker process).

    ``face="largest"`` asks the engine for one face; ``"central"`` needs them all (slower).
    """
    if face not in FACE_CHOICES:
        raise InvalidParameterError(f"face must be one of {', '.join(FACE_CHOICES)}, not {face!r}")
    n = len(relpaths)
    emb = np.zeros((n, engine.embedding_size), np.float32)
    found = np.zeros(n, bool)
    unreadable = np.zeros(n, bool)
    boxes = np.zeros((n, 4), np.float32)
    landmarks = np.zeros((n, 5, 2), np.float32)
    paths = [data_dir / rel for rel in relpaths]
    max_faces = 1 if face == "largest" else MAX_FACES_PER_IMAGE
    results = engine.analyse_many(paths, loader=load_image, max_faces=max_faces)
    for i, (_, result) in enumerate(results):
        if not isinstance(result, AnalysedImage):
            unreadable[i] = True
            k = None
        else:
            k = choose_face(result, face)
        if isinstance(result, AnalysedImage) and k is not None:
            assert result.faces.embeddings is not None
            emb[i] = result.faces.embeddings[k]
            boxes[i] = result.faces.boxes_px[k]
            landmarks[i] = result.faces.landmarks_px[k]
            found[i] = True
        if progress is not None:
            progress(i + 1, n)
    return EmbeddedImages(
        tuple(relpaths), emb, found, unreadable, boxes, landmarks, engine.face_model_version, face
    )


def embed_dataset(
    engine: FaceEngine,
    data_dir: Path,
    cache_dir: Path,
    *,
    face: str = "largest",
    relpaths: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> tuple[EmbeddedImages, Path, bool]:
    """Embeddings of every image under ``data_dir``, from the cache when it matches.

    Returns (embeddings, cache path, whether the cache was reused).
    """
    relpaths = list(relpaths) if relpaths is not None else list_images(data_dir)
    path = cache_file(engine, data_dir, relpaths, cache_dir, face)
    cached = _load_cached(path, relpaths, engine.face_model_version, face)
    if cached is not None:
        return cached, path, True
    embedded = analyse_images(engine, data_dir, relpaths, face, progress)
    _save_cache(path, embedded)
    return embedded, path, False
