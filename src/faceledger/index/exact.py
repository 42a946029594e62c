"""Exact (brute-force) search in numpy: the oracle in tests and the backend for small collections.

Vectors are kept as float32 in one growable matrix; a query is one BLAS matrix product over all
rows plus an ``argpartition`` top-k, so results are exact. float32 rather than float16: numpy has
no fp16 BLAS, and converting on every query costs more than the memory saved at the sizes this
backend serves (see ``IndexPolicy`` for the switch to ANN). Removal swaps the last row into the
hole, so the matrix stays dense and no compaction is needed, and zeroes the freed last row, so
a removed vector does not linger in memory.

File format: ``FLEXACT1`` magic, then two ``.npy`` arrays (ids int64, vectors float32).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Self

import numpy as np
from numpy.typing import ArrayLike

from faceledger.index.base import (
    IdArray,
    SearchHits,
    VectorArray,
    apply_min_cosine,
    as_ids,
    as_vectors,
    atomic_save,
    check_add,
    check_k,
    empty_hits,
)

MAGIC = b"FLEXACT1"


class ExactIndex:
    """Brute-force cosine search over float32 vectors. See :mod:`faceledger.index.base`."""

    def __init__(self, dim: int, *, capacity: int = 1024) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = int(dim)
        self._vectors = np.zeros((max(capacity, 1), self._dim), dtype=np.float32)
        self._ids = np.zeros(max(capacity, 1), dtype=np.int64)
        self._n = 0
        self._pos: dict[int, int] = {}

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"ExactIndex(dim={self._dim}, size={self._n})"

    def contains(self, id: int) -> bool:
        return int(id) in self._pos

    @property
    def nbytes(self) -> int:
        """Bytes held by the vector matrix and ids (capacity included)."""
        return int(self._vectors.nbytes + self._ids.nbytes)

    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        id_arr, vec = check_add(ids, vectors, self._dim)
        dup = [int(i) for i in id_arr if int(i) in self._pos]
        if dup:
            raise ValueError(f"ids already in the index: {dup[:5]}")
        need = self._n + id_arr.size
        if need > self._ids.size:
            cap = max(need, 2 * self._ids.size)
            grown = np.zeros((cap, self._dim), dtype=np.float32)
            grown[: self._n] = self._vectors[: self._n]
            gids = np.zeros(cap, dtype=np.int64)
            gids[: self._n] = self._ids[: self._n]
            self._vectors, self._ids = grown, gids
        self._vectors[self._n : need] = vec
        self._ids[self._n : need] = id_arr
        for offset, i in enumerate(id_arr.tolist()):
            self._pos[i] = self._n + offset
        self._n = need

    def remove(self, ids: ArrayLike) -> int:
        removed = 0
        for i in np.unique(as_ids(ids)).tolist():
            pos = self._pos.pop(i, None)
            if pos is None:
                continue
            last = self._n - 1
            if pos != last:
                moved = int(self._ids[last])
                self._vectors[pos] = self._vectors[last]
                self._ids[pos] = moved
                self._pos[moved] = pos
            # the freed row (the removed vector, or the moved copy) must not linger in memory
            self._vectors[last] = 0.0
            self._ids[last] = 0
            self._n = last
            removed += 1
        return removed

    def search(self, queries: ArrayLike, *, k: int, min_cosine: float | None = None) -> SearchHits:
        k = check_k(k)
        q = as_vectors(queries, self._dim, name="queries")
        hits = empty_hits(q.shape[0], k)
        n = self._n
        if n == 0 or q.shape[0] == 0:
            return hits
        scores = q @ self._vectors[:n].T  # (Q, n) cosines
        kk = min(k, n)
        if kk < n:
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        else:
            top = np.broadcast_to(np.arange(n), (q.shape[0], n))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        best = np.take_along_axis(top, order, axis=1)
        hits.ids[:, :kk] = self._ids[:n][best]
        hits.cosines[:, :kk] = np.take_along_axis(top_scores, order, axis=1)
        return apply_min_cosine(hits, min_cosine)

    def export(self) -> tuple[IdArray, VectorArray]:
        """Copies of all (ids, vectors), e.g. to build an ANN index when the collection grows."""
        return self._ids[: self._n].copy(), self._vectors[: self._n].copy()

    # --- persistence -------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                self._write(f)

        atomic_save(Path(path), write)

    def _write(self, f: BinaryIO) -> None:
        f.write(MAGIC)
        np.save(f, self._ids[: self._n], allow_pickle=False)
        np.save(f, self._vectors[: self._n], allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> Self:
        with open(path, "rb") as f:
            return cls._read(f)

    @classmethod
    def _read(cls, f: BinaryIO) -> Self:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError("not an ExactIndex file")
        ids = np.load(f, allow_pickle=False)
        vectors = np.load(f, allow_pickle=False)
        if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise ValueError("corrupt ExactIndex file")
        index = cls(int(vectors.shape[1]), capacity=max(int(ids.shape[0]), 1))
        index._vectors[: ids.shape[0]] = vectors
        index._ids[: ids.shape[0]] = ids
        index._n = int(ids.shape[0])
        index._pos = {i: p for p, i in enumerate(ids.tolist())}
        if len(index._pos) != index._n:
            raise ValueError("corrupt ExactIndex file: duplicate ids")
        return index
