"""Approximate search for large collections: faiss IVF with fp16 storage, inner product.

Why this index (measured in ``bench/vector_index.py``, summarised in the README): an inverted
file (IVF) of ``nlist`` k-means cells with vectors stored as float16 (``IndexIVFScalarQuantizer``,
``QT_fp16``, 2 bytes per dimension, not residual-encoded) trains in seconds on a sample, adds
tens of thousands of vectors per second on two cores, supports removal, and holds 20 M 128-d
faces in ≈ 5.3 GB. A query scores the ``nprobe`` cells whose centroids are closest to it.
HNSW graphs (faiss or usearch) search fast but build an order of magnitude slower on two cores
and cost more memory per vector.

**Training.** An IVF index must learn its cells before it can hold vectors. ``ANNIndex`` trains
itself on the vectors it is given: while it has fewer than ``train_min`` vectors (``16 × nlist``)
it keeps them in an internal :class:`ExactIndex` and searches exactly; the add that reaches
``train_min`` trains the cells on (a sample of) everything held so far and moves it into the
IVF. A collection that starts empty therefore behaves exactly like an exact index until it is
big enough, with no caller involvement. ``nlist`` is chosen from ``expected_size`` (or from the
size at training time, whichever is larger) by the :class:`~faceledger.index.IndexPolicy`; when
a collection outgrows the cells it was trained for, ``IndexPolicy.wants_rebuild`` says so and
the caller rebuilds from the store.

File format: ``FLIVF001`` magic, u64 header length, a JSON header, then (when trained) the faiss
index, then the pending (untrained) part as an ExactIndex stream. Scores are inner products of
the float32 query with the float16-rounded vectors: within ≈ 1e-3 of the exact cosine.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, BinaryIO, Self

import numpy as np
from numpy.typing import ArrayLike

from faceledger.index.base import (
    IdArray,
    SearchHits,
    apply_min_cosine,
    as_ids,
    as_vectors,
    atomic_save,
    check_add,
    check_k,
    empty_hits,
)
from faceledger.index.exact import ExactIndex

MAGIC = b"FLIVF001"
#: Training needs at least this many vectors per cell (k-means on fewer gives poor cells).
MIN_TRAIN_PER_LIST = 16
#: k-means samples at most this many vectors per cell (more costs time, not recall).
TRAIN_SAMPLE_PER_LIST = 24
STORAGES = ("fp16", "int8")


def _faiss() -> Any:
    import faiss

    return faiss


def nlist_for(size: int, *, max_nlist: int = 4096) -> int:
    """≈ 4·√size cells rounded to a power of two, between 16 and ``max_nlist``."""
    if size <= 0:
        return 16
    raw = 4.0 * float(np.sqrt(size))
    return int(min(max(2 ** round(np.log2(raw)), 16), max_nlist))


class ANNIndex:
    """IVF + fp16 approximate cosine search (faiss). See :mod:`faceledger.index.base`.

    ``nlist``: number of cells (default: from ``expected_size`` / the size at training).
    ``nprobe``: cells scanned per query (default: ``default_nprobe(nlist)``); more is slower
    and more exact. It may be changed at any time (``index.nprobe = 64``).
    """

    def __init__(
        self,
        dim: int,
        *,
        expected_size: int = 0,
        nlist: int | None = None,
        nprobe: int | None = None,
        max_nlist: int = 4096,
        storage: str = "fp16",
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        if nlist is not None and nlist < 1:
            raise ValueError(f"nlist must be positive, got {nlist}")
        self._dim = int(dim)
        self._expected = int(expected_size)
        self._nlist_fixed = nlist
        self._max_nlist = int(max_nlist)
        self._storage = storage
        self._nprobe_fixed = nprobe
        self._pending: ExactIndex | None = ExactIndex(self._dim)
        self._ivf: Any = None
        self._nlist = self._target_nlist(0)
        self._trained_size = 0
        self._present = np.zeros(0, dtype=np.bool_)
        self._n = 0

    # --- sizes and parameters ----------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        state = f"nlist={self._nlist}, nprobe={self.nprobe}" if self.is_trained else "untrained"
        return f"ANNIndex(dim={self._dim}, size={self._n}, {state}, storage={self._storage})"

    @property
    def is_trained(self) -> bool:
        return self._ivf is not None

    @property
    def nlist(self) -> int:
        return self._nlist

    @property
    def trained_size(self) -> int:
        """How many vectors the cells were trained for (0 while untrained)."""
        return self._trained_size

    @property
    def train_min(self) -> int:
        """Vectors needed before the index trains itself (until then it searches exactly)."""
        return MIN_TRAIN_PER_LIST * self._target_nlist(0)

    @property
    def nprobe(self) -> int:
        if self._nprobe_fixed is not None:
            return min(self._nprobe_fixed, self._nlist)
        return default_nprobe(self._nlist)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"nprobe must be positive, got {value}")
        self._nprobe_fixed = int(value)

    def _target_nlist(self, size: int) -> int:
        if self._nlist_fixed is not None:
            return self._nlist_fixed
        return nlist_for(max(self._expected, size), max_nlist=self._max_nlist)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "faiss IndexIVFScalarQuantizer" if self.is_trained else "untrained (exact)",
            "storage": self._storage,
            "dim": self._dim,
            "size": self._n,
            "nlist": self._nlist,
            "nprobe": self.nprobe,
            "trained_size": self._trained_size,
        }

    # --- membership --------------------------------------------------------------------------

    def contains(self, id: int) -> bool:
        i = int(id)
        return 0 <= i < self._present.size and bool(self._present[i])

    def _mark(self, ids: IdArray, value: bool) -> None:
        if ids.size == 0:
            return
        top = int(ids.max()) + 1
        if top > self._present.size:
            grown = np.zeros(max(top, self._present.size + self._present.size // 2), np.bool_)
            grown[: self._present.size] = self._present
            self._present = grown
        self._present[ids] = value

    def _present_of(self, ids: IdArray) -> IdArray:
        inside = ids[ids < self._present.size]
        return inside[self._present[inside]]

    # --- mutation ----------------------------------------------------------------------------

    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        id_arr, vec = check_add(ids, vectors, self._dim)
        dup = self._present_of(id_arr)
        if dup.size:
            raise ValueError(f"ids already in the index: {dup[:5].tolist()}")
        if id_arr.size == 0:
            return
        if self._pending is not None:
            self._pending.add(id_arr, vec)
            if len(self._pending) >= self.train_min:
                self._train_from_pending()
        else:
            self._ivf.add_with_ids(vec, id_arr)
        self._mark(id_arr, True)
        self._n += int(id_arr.size)

    def _train_from_pending(self) -> None:
        assert self._pending is not None
        faiss = _faiss()
        ids, vecs = self._pending.export()
        n = len(ids)
        nlist = min(self._target_nlist(n), max(n // MIN_TRAIN_PER_LIST, 1))
        quantizer = faiss.IndexFlatIP(self._dim)
        qtype = {
            "fp16": faiss.ScalarQuantizer.QT_fp16,
            "int8": faiss.ScalarQuantizer.QT_8bit,
        }[self._storage]
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, self._dim, nlist, qtype, faiss.METRIC_INNER_PRODUCT, False
        )
        ivf.cp.min_points_per_centroid = 1  # we sample deliberately; no warning
        ivf.cp.max_points_per_centroid = TRAIN_SAMPLE_PER_LIST
        ivf.cp.seed = 1234
        sample_n = min(n, nlist * TRAIN_SAMPLE_PER_LIST)
        rng = np.random.default_rng(1234)
        sample = vecs if sample_n == n else vecs[np.sort(rng.choice(n, sample_n, replace=False))]
        ivf.train(np.ascontiguousarray(sample))
        ivf.add_with_ids(vecs, ids)
        self._ivf, self._nlist, self._trained_size = ivf, nlist, n
        self._quantizer = quantizer  # keep the owner of the centroids alive
        self._pending = None

    def remove(self, ids: ArrayLike) -> int:
        gone = self._present_of(np.unique(as_ids(ids)))
        if gone.size == 0:
            return 0
        if self._pending is not None:
            removed = self._pending.remove(gone)
        else:
            removed = int(self._ivf.remove_ids(_faiss().IDSelectorBatch(gone)))
        self._mark(gone, False)
        self._n -= removed
        return removed

    # --- search ------------------------------------------------------------------------------

    def search(
        self, queries: ArrayLike, *, k: int, min_cosine: float | None = None
    ) -> SearchHits:
        k = check_k(k)
        q = as_vectors(queries, self._dim, name="queries")
        if self._pending is not None:
            return self._pending.search(q, k=k, min_cosine=min_cosine)
        if self._n == 0 or q.shape[0] == 0:
            return empty_hits(q.shape[0], k)
        params = _faiss().SearchParametersIVF(nprobe=self.nprobe)
        cos, ids = self._ivf.search(q, k, params=params)
        ids = ids.astype(np.int64, copy=False)
        cos = cos.astype(np.float32, copy=False)
        cos[ids < 0] = -np.inf
        return apply_min_cosine(SearchHits(ids, cos), min_cosine)

    # --- persistence -------------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        return {
            "dim": self._dim,
            "expected_size": self._expected,
            "nlist_fixed": self._nlist_fixed,
            "max_nlist": self._max_nlist,
            "nprobe_fixed": self._nprobe_fixed,
            "storage": self._storage,
            "trained": self.is_trained,
            "nlist": self._nlist,
            "trained_size": self._trained_size,
            "size": self._n,
        }

    def save(self, path: Path) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                header = json.dumps(self._header()).encode()
                f.write(MAGIC + struct.pack("<Q", len(header)) + header)
                if self._ivf is not None:
                    faiss = _faiss()
                    writer = faiss.PyCallbackIOWriter(f.write)
                    faiss.write_index(self._ivf, writer)
                    del writer
                else:
                    assert self._pending is not None
                    self._pending._write(f)

        atomic_save(Path(path), write)

    @classmethod
    def load(cls, path: Path) -> Self:
        with open(path, "rb") as f:
            return cls._read(f)

    @classmethod
    def _read(cls, f: BinaryIO) -> Self:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError("not an ANNIndex file")
        (length,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(length))
        index = cls(
            h["dim"],
            expected_size=h["expected_size"],
            nlist=h["nlist_fixed"],
            nprobe=h["nprobe_fixed"],
            max_nlist=h["max_nlist"],
            storage=h["storage"],
        )
        if h["trained"]:
            faiss = _faiss()
            reader = faiss.PyCallbackIOReader(f.read, 1 << 24)
            ivf = faiss.read_index(reader)
            del reader
            if ivf.d != index._dim or ivf.ntotal != h["size"]:
                raise ValueError("corrupt ANNIndex file: header and index disagree")
            index._ivf, index._pending = ivf, None
            index._nlist, index._trained_size = int(ivf.nlist), int(h["trained_size"])
            index._n = int(ivf.ntotal)
            index._mark(_stored_ids(ivf), True)
        else:
            pending = ExactIndex._read(f)
            index._pending = pending
            ids, _ = pending.export()
            index._mark(ids, True)
            index._n = len(pending)
        return index


def default_nprobe(nlist: int) -> int:
    """Cells scanned per query: tuned on embedding-shaped data (bench/vector_index.py)."""
    return max(1, min(nlist, max(8, nlist // 64)))


def _stored_ids(ivf: Any) -> IdArray:
    """Every id held by an IVF index (read from its inverted lists)."""
    faiss = _faiss()
    invlists = ivf.invlists
    parts = []
    for lst in range(ivf.nlist):
        size = invlists.list_size(lst)
        if size:
            ptr = invlists.get_ids(lst)
            parts.append(faiss.rev_swig_ptr(ptr, size).astype(np.int64, copy=True))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


__all__ = ["ANNIndex", "default_nprobe", "nlist_for"]

