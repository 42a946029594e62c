"""Which backend for which size: exact below a measured size, IVF-fp16 ANN above it.

The numbers come from ``bench/vector_index.py --curve`` on this machine kind (2 cores): exact
numpy search costs one pass over N·dim float32 values per query, so its latency grows with
N·dim (128-d, p50/p95: 20 k faces 0.27/0.31 ms, 50 k 1.5/1.6 ms, 100 k 3.5/10 ms, 1 M 27/52 ms)
while the ANN index costs ≈ 0.7–1 ms at those sizes. Below ``exact_max_size`` (50 k at 128-d,
scaled by 128/dim) exact search stays within a couple of milliseconds and is exact, so there is
nothing to gain from an approximate index.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike

from faceledger.index import ann, exact
from faceledger.index.ann import ANNIndex, nlist_for
from faceledger.index.base import VectorIndex, as_ids, as_vectors, read_magic
from faceledger.index.exact import ExactIndex


@dataclass(frozen=True)
class IndexPolicy:
    """When to use exact search, how to size the ANN index, and when to rebuild.

    ``exact_max_size``: largest collection (at 128-d) served by :class:`ExactIndex`.
    ``max_nlist``: cap on IVF cells (k-means training and assignment cost grow with it).
    ``regrow_factor``: an ANN index holding this many times the vectors it was trained on
    (and whose ideal cell count has at least doubled) should be rebuilt from the store.
    """

    exact_max_size: int = 50_000
    max_nlist: int = 4096
    regrow_factor: float = 4.0

    def exact_limit(self, dim: int) -> int:
        return max(1, int(self.exact_max_size * 128 / max(dim, 1)))

    def use_ann(self, size: int, dim: int) -> bool:
        return size > self.exact_limit(dim)

    def wants_rebuild(self, index: VectorIndex) -> bool:
        """True when the index no longer suits its size (rebuild it with ``build_index``)."""
        n = len(index)
        if isinstance(index, ExactIndex):
            # hysteresis: switch once clearly past the limit, not at every crossing
            return n > 1.5 * self.exact_limit(index.dim)
        if isinstance(index, ANNIndex) and index.is_trained:
            grown = n > self.regrow_factor * max(index.trained_size, 1)
            return grown and nlist_for(n, max_nlist=self.max_nlist) >= 2 * index.nlist
        return False

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def make_index(
    dim: int, *, expected_size: int = 0, policy: IndexPolicy | None = None
) -> VectorIndex:
    """An empty index for a collection expected to hold about ``expected_size`` faces.

    Exact below the policy's limit; otherwise an :class:`ANNIndex` that searches exactly until
    it has enough vectors to train itself (see :mod:`faceledger.index.ann`).
    """
    policy = policy or IndexPolicy()
    if policy.use_ann(expected_size, dim):
        return ANNIndex(dim, expected_size=expected_size, max_nlist=policy.max_nlist)
    return ExactIndex(dim, capacity=max(1024, expected_size))


def build_index(
    ids: ArrayLike, vectors: ArrayLike, *, dim: int | None = None, policy: IndexPolicy | None = None
) -> VectorIndex:
    """An index holding these vectors, backend chosen by their number (e.g. from the store).

    ``dim`` is only needed when ``vectors`` is empty (its shape then says nothing).
    """
    id_arr = as_ids(ids)
    width = dim if dim is not None else int(getattr(vectors, "shape", (0, 0))[-1])
    vecs = as_vectors(vectors, width)
    policy = policy or IndexPolicy()
    n = len(id_arr)
    index: VectorIndex
    if policy.use_ann(n, width) and n >= ann.MIN_TRAIN_PER_LIST * 16:
        # as many cells as the size allows, so that the index trains on this very add
        nlist = min(nlist_for(n, max_nlist=policy.max_nlist), n // ann.MIN_TRAIN_PER_LIST)
        index = ANNIndex(width, expected_size=n, nlist=nlist, max_nlist=policy.max_nlist)
    else:
        index = ExactIndex(width, capacity=max(1024, n))
    index.add(id_arr, vecs)
    return index


def load_index(path: Path) -> VectorIndex:
    """Load a saved index of either backend (by the file's magic bytes)."""
    magic = read_magic(Path(path))
    if magic == exact.MAGIC:
        return ExactIndex.load(path)
    if magic == ann.MAGIC:
        return ANNIndex.load(path)
    raise ValueError(f"{path}: not a FaceLedger vector index file")
