"""Approximate search for large collections: faiss IVF + 4-bit PQ fast-scan, exact fp16 re-rank.

How a query runs: the ``nprobe`` inverted-file cells (of ``nlist`` k-means cells) closest to
the query are scanned with faiss's SIMD "fast-scan" product quantiser (``IndexIVFPQFastScan``,
``dim/2`` sub-quantisers of 4 bits: 32 bytes per 128-d face; a large scan splits one query's
cells over the OpenMP threads, a small one runs on one, see ``PARALLEL_MIN_SCAN``); the best
``rerank`` candidates are then scored exactly against float16 copies of the vectors kept here,
and the top k returned. Returned cosines are therefore exact to fp16 rounding (≈ 1e-4), not
PQ estimates, which matters because they become the calibrated Similarity. Memory:
≈ 2·dim + dim/2 + 24 bytes per face (≈ 6.3 GB for 20 M 128-d).

Why not the obvious choices (numbers in ``bench/results/vector_index.json``): face embeddings
are high-dimensional (LFW's SFace embeddings: participation ratio ≈ 96 of 128 dims) and, apart
from a person's own photos, the ten nearest faces to a probe are unrelated people at cosine
≈ 0.35–0.45 scattered all over the space. An IVF index has to scan about three quarters of
its cells to find 99 % of them at 1 M faces, so the cost of scanning decides: fp16 IVF
(``SQfp16``) scans ≈ 4× slower than PQ fast-scan, and HNSW graphs (faiss, usearch) build at
a few thousand vectors per second on two cores.

**Training.** The cells and codebooks must be learnt before vectors can be added. ``ANNIndex``
trains itself: while it has fewer than ``train_min`` vectors (``16 × nlist``) it keeps them in
an internal :class:`ExactIndex` and searches exactly; the add that reaches ``train_min`` trains
on (a sample of) everything held so far and moves it in. A collection that starts empty thus
behaves like an exact index until it is big enough. ``nlist`` comes from ``expected_size`` (or
the size at training, whichever is larger); once a collection outgrows it,
``IndexPolicy.wants_rebuild`` says so and the caller rebuilds from the store.

**Removal** really removes: the faces' PQ codes are deleted from the cells
(``remove_ids``, one pass over every cell's id list, so it costs O(size) per call rather than
per face: ≈ 5 ms for 1 to 100 faces, 22 ms for 4,096, at 1 M faces on 2 cores) and their
float16 rows are overwritten with zeros, so neither memory nor a later snapshot holds a
deleted vector. The slots themselves stay allocated (dead, id -1) until a compaction: when
more than a quarter of the slots are dead, that ``remove`` empties the cells and re-adds the
live vectors (no retraining), which takes as long as adding them did (≈ 1 min per 10 M faces
here). Snapshots written before removal erased data are erased of their dead slots on load.

File format: ``FLIVF002`` magic, u64 header length, JSON header; then either the pending
(untrained) part as an ExactIndex stream, or the faiss index, the slot→id array and the fp16
vectors in blocks (``.npy`` streams).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, BinaryIO, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

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
from faceledger.index.exact import ExactIndex

MAGIC = b"FLIVF002"
#: Training needs at least this many vectors per cell (k-means on fewer gives poor cells).
MIN_TRAIN_PER_LIST = 16
#: k-means samples at most this many vectors per cell (more costs time, not recall).
TRAIN_SAMPLE_PER_LIST = 24
#: Compact when more than this share of stored faces are tombstones.
COMPACT_DEAD_FRACTION = 0.25
#: Candidates re-ranked exactly per query (and at least 2·k).
DEFAULT_RERANK = 1000
#: A single query expected to scan fewer PQ codes than this runs on one OpenMP thread. On 2
#: cores, one query at a time (wall / CPU per query, 2 threads vs 1; same recall@10 either
#: way): 100 K faces (75 K codes scanned) 2.3 / 4.5 ms vs 2.4 / 2.5 ms, 300 K 2.7–3.3 /
#: 5.4–6.5 ms vs 3.2–3.8 / 3.4–3.7 ms, 1 M 4.3 / 8.7 ms vs 7.2 / 7.3 ms. Below this a second
#: thread buys nothing and doubles the CPU; worse, GNU OpenMP's idle thread then spins for
#: milliseconds on the core the next inference (OpenCV's own thread pool) or a concurrent
#: request needs: back-to-back 100 K-face SearchFacesByImage calls in one process were
#: 4–26 ms faster with this (busy machine, 4 paired runs).
PARALLEL_MIN_SCAN = 200_000
_BLOCK_SHIFT = 20  # fp16 rows are kept in blocks of 2^20 (no giant re-allocations)
_BLOCK = 1 << _BLOCK_SHIFT


def _faiss() -> Any:
    import faiss

    return faiss


def nlist_for(size: int, *, max_nlist: int = 4096) -> int:
    """≈ √size cells rounded to a power of two, between 16 and ``max_nlist``.

    Fewer, larger cells than the textbook 4·√N: on face embeddings a query must scan a large
    share of the cells anyway, and per-cell overhead then dominates (1 M faces: 1,024 cells
    searched 1.4× faster than 4,096 at the same recall; bench/vector_index.py).
    """
    if size <= 0:
        return 16
    raw = float(np.sqrt(size))
    return int(min(max(2 ** round(np.log2(raw)), 16), max_nlist))


def default_nprobe(nlist: int) -> int:
    """Cells scanned per query, tuned on embedding-shaped data (bench/vector_index.py)."""
    return max(1, min(nlist, (3 * nlist) // 4))


class _Fp16Rows:
    """Append-only float16 rows in fixed-size blocks; row number = slot."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.blocks: list[NDArray[np.float16]] = []
        self.rows = 0

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks)

    def append(self, vectors: VectorArray) -> int:
        """Store rows; returns the slot of the first one."""
        first = self.rows
        done = 0
        while done < len(vectors):
            block, offset = divmod(self.rows, _BLOCK)
            if block == len(self.blocks):
                self.blocks.append(np.zeros((_BLOCK, self.dim), dtype=np.float16))
            take = min(_BLOCK - offset, len(vectors) - done)
            self.blocks[block][offset : offset + take] = vectors[done : done + take]
            done += take
            self.rows += take
        return first

    def zero(self, slots: NDArray[np.int64]) -> None:
        """Overwrite these rows with zeros (removed faces must not linger in memory or files)."""
        block = slots >> _BLOCK_SHIFT
        for b in np.unique(block).tolist():
            self.blocks[b][slots[block == b] & (_BLOCK - 1)] = 0

    def gather(self, slots: NDArray[np.int64]) -> VectorArray:
        out = np.empty((len(slots), self.dim), dtype=np.float32)
        block = slots >> _BLOCK_SHIFT
        if len(self.blocks) == 1:
            out[:] = self.blocks[0][slots]
            return out
        for b in np.unique(block).tolist():
            sel = block == b
            out[sel] = self.blocks[b][slots[sel] & (_BLOCK - 1)]
        return out

    def chunks(self, step: int = _BLOCK) -> Any:
        """(first slot, fp16 rows) in order, at most ``step`` rows each."""
        for b, block in enumerate(self.blocks):
            used = min(_BLOCK, self.rows - b * _BLOCK)
            for s in range(0, used, step):
                yield b * _BLOCK + s, block[s : min(s + step, used)]


class ANNIndex:
    """IVF-PQ fast-scan candidates re-ranked exactly (faiss). See :mod:`faceledger.index.base`.

    ``nlist``: cells (default: from ``expected_size`` / the size at training, ≤ ``max_nlist``).
    ``nprobe``: cells scanned per query (default ``default_nprobe(nlist)``); ``rerank``:
    candidates scored exactly. Both may be changed at any time (``index.nprobe = 1024``):
    more is slower and closer to exact.
    """

    def __init__(
        self,
        dim: int,
        *,
        expected_size: int = 0,
        nlist: int | None = None,
        nprobe: int | None = None,
        rerank: int = DEFAULT_RERANK,
        max_nlist: int = 4096,
    ) -> None:
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be even and ≥ 2, got {dim}")
        if nlist is not None and nlist < 1:
            raise ValueError(f"nlist must be positive, got {nlist}")
        self._dim = int(dim)
        self._expected = int(expected_size)
        self._nlist_fixed = nlist
        self._max_nlist = int(max_nlist)
        self._nprobe_fixed = nprobe
        self.rerank = rerank
        self._pending: ExactIndex | None = ExactIndex(self._dim)
        self._ivf: Any = None
        self._nlist = self._target_nlist(0)
        self._trained_size = 0
        self._rows = _Fp16Rows(self._dim)
        self._slot_ids = np.zeros(0, dtype=np.int64)  # slot → id, -1 when dead
        self._id_slot = np.zeros(0, dtype=np.int64)  # id → slot, -1 when absent
        self._n = 0
        self._dead = 0

    # --- sizes and parameters ----------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        state = f"nlist={self._nlist}, nprobe={self.nprobe}" if self.is_trained else "untrained"
        return f"ANNIndex(dim={self._dim}, size={self._n}, {state}, rerank={self.rerank})"

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

    @property
    def rerank(self) -> int:
        return self._rerank

    @rerank.setter
    def rerank(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"rerank must be positive, got {value}")
        self._rerank = int(value)

    @property
    def dead_fraction(self) -> float:
        stored = self._n + self._dead
        return self._dead / stored if stored else 0.0

    def _target_nlist(self, size: int) -> int:
        if self._nlist_fixed is not None:
            return self._nlist_fixed
        return nlist_for(max(self._expected, size), max_nlist=self._max_nlist)

    def describe(self) -> dict[str, Any]:
        return {
            "type": f"faiss IVF{self._nlist},PQ{self._dim // 2}x4fs + fp16 re-rank"
            if self.is_trained
            else "untrained (exact)",
            "dim": self._dim,
            "size": self._n,
            "nlist": self._nlist,
            "nprobe": self.nprobe,
            "rerank": self.rerank,
            "trained_size": self._trained_size,
            "dead": self._dead,
        }

    # --- membership --------------------------------------------------------------------------

    def contains(self, id: int) -> bool:
        if self._pending is not None:
            return self._pending.contains(id)
        i = int(id)
        return 0 <= i < self._id_slot.size and bool(self._id_slot[i] >= 0)

    def _slots_of(self, ids: IdArray) -> tuple[IdArray, IdArray]:
        """(ids present, their slots)."""
        inside = ids[ids < self._id_slot.size]
        slots = self._id_slot[inside]
        present = slots >= 0
        return inside[present], slots[present]

    # --- mutation ----------------------------------------------------------------------------

    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        id_arr, vec = check_add(ids, vectors, self._dim)
        if id_arr.size == 0:
            return
        if self._pending is not None:
            self._pending.add(id_arr, vec)  # raises on duplicates
            self._n = len(self._pending)
            if len(self._pending) >= self.train_min:
                self._train_from_pending()
            return
        dup, _ = self._slots_of(id_arr)
        if dup.size:
            raise ValueError(f"ids already in the index: {dup[:5].tolist()}")
        self._append(id_arr, vec)

    def _append(self, ids: IdArray, vectors: VectorArray) -> None:
        first = self._rows.append(vectors)
        slots = np.arange(first, first + len(ids), dtype=np.int64)
        self._ivf.add_with_ids(vectors, slots)
        self._slot_ids = _grow(self._slot_ids, first + len(ids), -1)
        self._slot_ids[slots] = ids
        self._id_slot = _grow(self._id_slot, int(ids.max()) + 1, -1)
        self._id_slot[ids] = slots
        self._n += len(ids)

    def _new_ivf(self, nlist: int) -> Any:
        faiss = _faiss()
        quantizer = faiss.IndexFlatIP(self._dim)
        ivf = faiss.IndexIVFPQFastScan(
            quantizer, self._dim, nlist, self._dim // 2, 4, faiss.METRIC_INNER_PRODUCT
        )
        # one look-up table per query instead of one per scanned cell: with hundreds of
        # cells scanned this is the faster choice, and the exact re-rank absorbs the coarser codes
        ivf.by_residual = False
        ivf.cp.min_points_per_centroid = 1  # we sample deliberately; no warning
        ivf.cp.max_points_per_centroid = TRAIN_SAMPLE_PER_LIST
        ivf.cp.seed = 1234
        self._quantizer = quantizer  # keep the owner of the centroids alive
        return _configure(ivf)

    def _train_from_pending(self) -> None:
        assert self._pending is not None
        ids, vecs = self._pending.export()
        n = len(ids)
        nlist = min(self._target_nlist(n), max(n // MIN_TRAIN_PER_LIST, 1))
        ivf = self._new_ivf(nlist)
        sample_n = min(n, max(nlist * TRAIN_SAMPLE_PER_LIST, 65_536))
        rng = np.random.default_rng(1234)
        sample = vecs if sample_n == n else vecs[np.sort(rng.choice(n, sample_n, replace=False))]
        ivf.train(np.ascontiguousarray(sample))
        self._ivf, self._nlist, self._trained_size = ivf, nlist, n
        self._pending = None
        self._n = 0
        self._append(ids, vecs)

    def remove(self, ids: ArrayLike) -> int:
        wanted = np.unique(as_ids(ids))
        if self._pending is not None:
            removed = self._pending.remove(wanted)
            self._n = len(self._pending)
            return removed
        gone, slots = self._slots_of(wanted)
        if gone.size == 0:
            return 0
        self._erase(slots)
        self._slot_ids[slots] = -1
        self._id_slot[gone] = -1
        self._n -= gone.size
        self._dead += gone.size
        if self._dead >= 256 and self.dead_fraction > COMPACT_DEAD_FRACTION:
            self.compact()
        return int(gone.size)

    def _erase(self, slots: IdArray) -> None:
        """Delete the PQ codes of these slots from the cells and zero their float16 rows."""
        self._ivf.remove_ids(_faiss().IDSelectorBatch(np.ascontiguousarray(slots)))
        self._rows.zero(slots)

    def compact(self) -> None:
        """Reclaim dead slots: empty the cells and re-add the live vectors (no retraining).

        Dead slots hold no data any more (``remove`` erased it); this only frees their memory.
        """
        if self._ivf is None or self._dead == 0:
            return
        old_rows, old_ids = self._rows, self._slot_ids
        self._ivf.reset()
        self._rows = _Fp16Rows(self._dim)
        self._slot_ids = np.zeros(0, dtype=np.int64)
        self._id_slot = np.full_like(self._id_slot, -1)
        self._n = self._dead = 0
        for first, chunk in old_rows.chunks(1 << 18):
            ids = old_ids[first : first + len(chunk)]
            live = ids >= 0
            if live.any():
                self._append(ids[live], chunk[live].astype(np.float32))

    # --- search ------------------------------------------------------------------------------

    def search(self, queries: ArrayLike, *, k: int, min_cosine: float | None = None) -> SearchHits:
        k = check_k(k)
        q = as_vectors(queries, self._dim, name="queries")
        if self._pending is not None:
            return self._pending.search(q, k=k, min_cosine=min_cosine)
        hits = empty_hits(q.shape[0], k)
        if self._n == 0 or q.shape[0] == 0:
            return hits
        want = max(self._rerank, 2 * k)
        faiss = _faiss()
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        scanned = self._n * min(self.nprobe, self._nlist) / self._nlist
        if q.shape[0] == 1 and scanned < PARALLEL_MIN_SCAN:
            # OpenMP's thread count is a per-thread setting: this changes only the calling
            # thread's searches, and is put back for whatever it runs next
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                _, cand = self._ivf.search(q, want, params=params)
            finally:
                faiss.omp_set_num_threads(threads)
        else:
            _, cand = self._ivf.search(q, want, params=params)
        for row in range(q.shape[0]):
            slots = cand[row]
            slots = slots[slots >= 0]
            ids = self._slot_ids[slots]
            live = ids >= 0
            slots, ids = slots[live], ids[live]
            if slots.size == 0:
                continue
            scores = self._rows.gather(slots) @ q[row]
            kk = min(k, scores.size)
            top = np.argpartition(-scores, kk - 1)[:kk] if kk < scores.size else np.arange(kk)
            top = top[np.argsort(-scores[top], kind="stable")]
            hits.ids[row, :kk] = ids[top]
            hits.cosines[row, :kk] = scores[top]
        return apply_min_cosine(hits, min_cosine)

    # --- persistence -------------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        return {
            "dim": self._dim,
            "expected_size": self._expected,
            "nlist_fixed": self._nlist_fixed,
            "max_nlist": self._max_nlist,
            "nprobe_fixed": self._nprobe_fixed,
            "rerank": self._rerank,
            "trained": self.is_trained,
            "nlist": self._nlist,
            "trained_size": self._trained_size,
            "size": self._n,
            "dead": self._dead,
            "slots": self._rows.rows,
        }

    def save(self, path: Path) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                header = json.dumps(self._header()).encode()
                f.write(MAGIC + struct.pack("<Q", len(header)) + header)
                if self._pending is not None:
                    self._pending._write(f)
                    return
                faiss = _faiss()
                writer = faiss.PyCallbackIOWriter(f.write)
                faiss.write_index(self._ivf, writer)
                del writer
                np.save(f, self._slot_ids[: self._rows.rows], allow_pickle=False)
                for _, chunk in self._rows.chunks():
                    np.save(f, chunk, allow_pickle=False)

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
            rerank=h["rerank"],
            max_nlist=h["max_nlist"],
        )
        if not h["trained"]:
            index._pending = ExactIndex._read(f)
            index._n = len(index._pending)
            return index
        faiss = _faiss()
        reader = faiss.PyCallbackIOReader(f.read, 1 << 24)
        ivf = _configure(faiss.read_index(reader))
        del reader
        slots = int(h["slots"])
        slot_ids = np.load(f, allow_pickle=False)
        if ivf.d != index._dim or slot_ids.shape != (slots,):
            raise ValueError("corrupt ANNIndex file: header and contents disagree")
        while index._rows.rows < slots:
            chunk = np.load(f, allow_pickle=False)
            index._rows.append(chunk)
        live = slot_ids >= 0
        index._ivf, index._pending = ivf, None
        index._nlist, index._trained_size = int(ivf.nlist), int(h["trained_size"])
        index._slot_ids = slot_ids
        top = int(slot_ids.max()) + 1 if slots else 0
        index._id_slot = np.full(top, -1, dtype=np.int64)
        index._id_slot[slot_ids[live]] = np.flatnonzero(live)
        index._n = int(live.sum())
        index._dead = slots - index._n
        if index._n != h["size"] or ivf.ntotal not in (index._n, slots):
            raise ValueError("corrupt ANNIndex file: sizes disagree")
        if index._dead and ivf.ntotal == slots:
            # written before removal erased codes: erase the dead slots' data now
            index._erase(np.flatnonzero(~live).astype(np.int64))
        return index


def _configure(ivf: Any) -> Any:
    """Search settings that are not saved with a faiss index."""
    # implementation 15 splits one query's cells over the OpenMP threads (1.7× faster for a
    # single query on 2 cores than the default, which parallelises over queries only)
    ivf.implem = 15
    return ivf


def _grow(arr: NDArray[np.int64], size: int, fill: int) -> NDArray[np.int64]:
    """``arr`` with at least ``size`` entries (new ones = ``fill``), growing by ≥ 1.5×."""
    if size <= arr.size:
        return arr
    grown = np.full(max(size, arr.size + arr.size // 2), fill, dtype=arr.dtype)
    grown[: arr.size] = arr
    return grown


__all__ = ["ANNIndex", "default_nprobe", "nlist_for"]
