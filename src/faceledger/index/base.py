"""The vector index seam: one small protocol, shared validation and atomic saving.

Conventions (every backend):

* **ids** are the store's integer row ids: ``int64``, non-negative, unique within an index.
  ``-1`` is reserved as padding in search results.
* **vectors** are ``float32`` (N, dim), L2-normalised embeddings; the score is the cosine
  (inner product) in [-1, 1], never the calibrated Similarity.
* ``search`` returns ``(ids, cosines)``, both (Q, k), best first; missing results (k larger
  than the index, or below ``min_cosine``) have id ``-1`` and cosine ``-inf``.
* **Thread-safety:** any number of ``search``/``contains``/``len`` calls may run concurrently
  with each other (the heavy work releases the GIL). ``add``, ``remove`` and ``save`` mutate
  or snapshot the index and must be serialised by the caller, with no search in flight
  (a readers–writer lock in the service layer).
* ``save(path)`` is atomic: it writes a temporary file in the same folder, fsyncs it and
  ``os.replace``-s it over ``path`` (then fsyncs the folder), so a crash leaves the old file or
  the new one, never a torn one. ``load`` is a classmethod of each backend;
  :func:`faceledger.index.load_index` dispatches on the file's magic bytes.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

IdArray = NDArray[np.int64]
VectorArray = NDArray[np.float32]

#: Vectors whose norm is further than this from 1 are rejected (they are not embeddings).
NORM_TOLERANCE = 1e-2


class SearchHits(NamedTuple):
    """Search results: ``ids`` (Q, k) int64 with -1 padding, ``cosines`` (Q, k) float32 with
    -inf padding; rows sorted by decreasing cosine."""

    ids: IdArray
    cosines: VectorArray


@runtime_checkable
class VectorIndex(Protocol):
    """What the store and the services need from a vector index (see the module docstring)."""

    @property
    def dim(self) -> int:
        """Vector dimension (128 for SFace, 512 for ArcFace)."""
        ...

    def __len__(self) -> int: ...

    def contains(self, id: int) -> bool: ...

    def add(self, ids: IdArray, vectors: VectorArray) -> None:
        """Add vectors under new ids; an id already present → ValueError (nothing added)."""
        ...

    def remove(self, ids: IdArray) -> int:
        """Remove these ids; unknown ids are ignored. Returns how many were removed."""
        ...

    def search(
        self, queries: VectorArray, *, k: int, min_cosine: float | None = None
    ) -> SearchHits: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path) -> Self: ...


# --- validation shared by the backends -------------------------------------------------------


def as_ids(ids: ArrayLike) -> IdArray:
    """A 1-D int64 copy of ``ids``; rejects negatives (``-1`` is the padding value)."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids: expected a 1-D array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids: expected integers, got {arr.dtype}")
    out = arr.astype(np.int64, copy=True)
    if out.size and int(out.min()) < 0:
        raise ValueError("ids must be non-negative (-1 is reserved for padding)")
    return out


def as_vectors(vectors: ArrayLike, dim: int, *, name: str = "vectors") -> VectorArray:
    """A C-contiguous float32 (N, dim) array (not a copy when already so)."""
    arr = np.asarray(vectors)
    if arr.ndim == 1 and name == "queries":
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (N, {dim}), got {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: contain NaN or infinity")
    return out


def check_add(ids: ArrayLike, vectors: ArrayLike, dim: int) -> tuple[IdArray, VectorArray]:
    """Validate an ``add`` call: shapes, unique ids, L2-normalised vectors."""
    id_arr = as_ids(ids)
    vec = as_vectors(vectors, dim)
    if vec.shape[0] != id_arr.shape[0]:
        raise ValueError(f"{id_arr.shape[0]} ids for {vec.shape[0]} vectors")
    if id_arr.size != np.unique(id_arr).size:
        raise ValueError("ids must be unique within one add")
    if vec.shape[0]:
        norms = np.einsum("ij,ij->i", vec, vec)
        if np.abs(norms - 1.0).max() > 2 * NORM_TOLERANCE:
            raise ValueError("vectors must be L2-normalised")
    return id_arr, vec


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def empty_hits(q: int, k: int) -> SearchHits:
    return SearchHits(
        np.full((q, k), -1, dtype=np.int64), np.full((q, k), -np.inf, dtype=np.float32)
    )


def apply_min_cosine(hits: SearchHits, min_cosine: float | None) -> SearchHits:
    """Pad (id -1, cosine -inf) every hit below ``min_cosine``; rows stay sorted."""
    if min_cosine is None:
        return hits
    low = ~(hits.cosines >= np.float32(min_cosine))
    if not low.any():
        return hits
    ids, cos = hits.ids.copy(), hits.cosines.copy()
    ids[low] = -1
    cos[low] = -np.inf
    return SearchHits(ids, cos)


# --- atomic files ---------------------------------------------------------------------------


def atomic_save(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary file next to ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def read_magic(path: Path, size: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)
