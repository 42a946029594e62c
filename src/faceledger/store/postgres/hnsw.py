"""Vector search in the database: pgvector's HNSW index of each collection's partition.

``PostgresStore.database_vectors()`` gives it (``FACELEDGER_VECTOR_SEARCH=database``); the
query itself is ``PostgresStore.search_vectors``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import Collection
from faceledger.index.base import SearchHits

#: HNSW search breadth when the caller gives none (pgvector's default is 40). Raised to ``k``
#: when more results are asked for; pgvector caps it at 1,000.
DEFAULT_EF_SEARCH = 200
MAX_EF_SEARCH = 1000


class HnswStore(Protocol):
    """What the search needs of ``PostgresStore`` (named here: that module imports this one)."""

    def search_vectors(
        self,
        collection_id: str,
        vectors: NDArray[np.float32],
        *,
        k: int,
        ef_search: int | None = None,
        min_cosine: float | None = None,
    ) -> SearchHits: ...

    def collection(self, collection_id: str) -> Collection: ...


class PostgresVectors:
    """The vector search of ``PostgresStore``'s collections in the database (no cache), with
    ``FACELEDGER_VECTOR_SEARCH=database``.

    Satisfies the services' ``VectorSearch`` seam, like ``CollectionIndexes`` does for the
    embedded store: every process searches the committed rows, so a face enrolled through one
    API process is found through another at once. Nothing to save or drop: the HNSW indexes
    are the database's, and the store VACUUMs after each deletion.
    """

    def __init__(self, store: HnswStore, *, ef_search: int = DEFAULT_EF_SEARCH) -> None:
        self._store = store
        self.ef_search = ef_search

    def search(
        self, collection_id: str, query: NDArray[np.float32], *, k: int, min_cosine: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        hits = self._store.search_vectors(
            collection_id, query, k=k, ef_search=self.ef_search, min_cosine=min_cosine
        )
        keep = hits.ids[0] >= 0
        return hits.ids[0][keep], hits.cosines[0][keep]

    def face_count(self, collection_id: str) -> int:
        """The collection row's maintained ``face_count`` (no scan)."""
        return self._store.collection(collection_id).face_count

    def purge_deleted(self, collection_id: str) -> None:
        """Nothing left to do: ``delete_faces`` already VACUUMed the rows and the index."""

    def drop(self, collection_id: str) -> None:
        """Nothing left to do: ``delete_collection`` dropped the collection's HNSW index."""

    def refresh_all(self) -> None:
        """Nothing to catch up with: every search reads the committed rows."""

    def save_all(self, *, only_if_changed: bool = False) -> None:
        """Nothing to save: the database is the index."""
