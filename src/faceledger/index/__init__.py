"""Layer 3: vector indexes behind one small protocol (:class:`VectorIndex`).

* :class:`ExactIndex` — numpy brute force, exact; the test oracle and the backend for small
  collections.
* :class:`ANNIndex` — faiss IVF with fp16 storage for large collections (millions of faces).
* :func:`make_index` / :func:`build_index` pick the backend by size (:class:`IndexPolicy`);
  :func:`load_index` reloads either from disk.

Conventions (ids, cosines, -1 padding, thread-safety, atomic saves) are in
:mod:`faceledger.index.base`. Nothing is imported from faiss until an ANN index is used.
"""

from faceledger.index.ann import ANNIndex
from faceledger.index.auto import IndexPolicy, build_index, load_index, make_index
from faceledger.index.base import SearchHits, VectorIndex
from faceledger.index.exact import ExactIndex

__all__ = [
    "ANNIndex",
    "ExactIndex",
    "IndexPolicy",
    "SearchHits",
    "VectorIndex",
    "build_index",
    "load_index",
    "make_index",
]
