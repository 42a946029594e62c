"""One vector index per collection, kept in step with the store (either backend).

The store is the source of truth, and keeps a change log: a sequence number per added or deleted
face, per collection. Each collection's index lives in memory; a snapshot on disk
(``<data_dir>/indexes/<collection>.index`` plus ``.json`` with the store's change sequence it
reflects; ``snapshot_stem`` shortens long ids) makes start-up fast: on first use the snapshot is
loaded and the store's changes since its sequence are replayed; without a usable snapshot the
index is rebuilt from the store. A crash can therefore lose no acknowledged write: the snapshot
is only a cache. Before each search the changes since the index's sequence are replayed, so with
PostgreSQL, where every API process keeps its own indexes, each process sees every other's
committed writes at once.

Deletion is final here too: after faces are deleted from the store, ``purge_deleted`` takes
them out of the in-memory index at once (both backends erase the vectors, not only their ids)
and removes the collection's snapshot, which still holds them; the next save writes a clean one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import ResourceNotFoundError
from faceledger.index import IndexPolicy, VectorIndex, load_index, make_index
from faceledger.store.base import FaceStore
from faceledger.store.records import FaceChanges


class VectorSearch(Protocol):
    """The vector search of a store's collections, as the collection and user verbs use it.

    ``CollectionIndexes`` (an in-memory index per collection, over either store) and
    ``PostgresVectors`` (HNSW search in the database) satisfy it.
    """

    def search(
        self, collection_id: str, query: NDArray[np.float32], *, k: int, min_cosine: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Up to ``k`` (row ids, cosines) best first, cosines below ``min_cosine`` left out."""
        ...

    def face_count(self, collection_id: str) -> int:
        """Faces a search of the collection compares against (cheap: no table scan)."""
        ...

    def purge_deleted(self, collection_id: str) -> None:
        """Erase every copy of the store's deleted faces' vectors (after a deletion)."""
        ...

    def drop(self, collection_id: str) -> None:
        """Forget a deleted collection."""
        ...

    def refresh_all(self) -> None:
        """Catch up with writes made through other processes (in maintenance)."""
        ...

    def save_all(self, *, only_if_changed: bool = False) -> None:
        """Persist whatever cache the search keeps (on close and in maintenance)."""
        ...


def collection_vectors(
    store: FaceStore, folder: Path, *, in_database: bool = False
) -> VectorSearch:
    """The vector search for ``store``: an in-memory index per collection, cached in
    ``folder`` and kept current from the store's change log, for either backend; or, with
    ``in_database`` (PostgreSQL only), pgvector's HNSW search in the database."""
    if in_database:
        vectors = store.database_vectors()
        if vectors is None:
            raise ValueError("vector search in the database needs the PostgreSQL store")
        return vectors
    return CollectionIndexes(store, folder)


@dataclass(frozen=True)
class _Entry:
    index: VectorIndex
    seq: int  # the store's change sequence number the index reflects
    generation: int  # of the collection it was built for


MAX_PLAIN_STEM = 128  # a file name is at most 255 bytes; ids may be 255 characters long


def snapshot_stem(collection_id: str) -> str:
    """The snapshot files' name for a collection: its id, or for a long id its first 64
    characters and a SHA-256 digest (``~`` never occurs in a collection id)."""
    if len(collection_id) <= MAX_PLAIN_STEM:
        return collection_id
    digest = hashlib.sha256(collection_id.encode()).hexdigest()[:32]
    return f"{collection_id[:64]}~{digest}"


class CollectionIndexes:
    """In-memory indexes over either store; see the module docstring.

    With PostgreSQL every API process keeps its own (a cache of the shared database): each
    search first replays the changes committed since its index's sequence number, by any
    process, so a face enrolled through one replica is found through every other at once, and a
    deleted one is gone from every replica's index on that replica's next search of the
    collection (or its next maintenance pass, ``refresh_all``).
    """

    def __init__(self, store: FaceStore, folder: Path) -> None:
        self._store = store
        self._folder = folder
        self._indexes: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._policy = IndexPolicy()

    def _paths(self, collection_id: str) -> tuple[Path, Path]:
        stem = snapshot_stem(collection_id)
        return self._folder / f"{stem}.index", self._folder / f"{stem}.json"

    def get(self, collection_id: str) -> VectorIndex:
        """The collection's index, current with every committed write."""
        with self._lock:
            entry = self._indexes.get(collection_id)
            if entry is None:
                entry = self._open(collection_id)
            changes = self._store.changes_since(collection_id, entry.seq)
            if changes.generation != entry.generation or changes.last < entry.seq:
                # the collection was deleted and created again (by another process), or the
                # database was restored from a backup older than the index
                self._unlink(collection_id)
                entry = self._rebuild(collection_id)
                changes = self._store.changes_since(collection_id, entry.seq)
            entry = self._apply(collection_id, entry, changes)
            if self._policy.wants_rebuild(entry.index):
                # outgrew its backend (exact → ANN, or an ANN trained on far fewer vectors)
                entry = self._rebuild(collection_id)
                entry = self._apply(
                    collection_id, entry, self._store.changes_since(collection_id, entry.seq)
                )
            self._indexes[collection_id] = entry
            return entry.index

    def _apply(self, collection_id: str, entry: _Entry, changes: FaceChanges) -> _Entry:
        index = entry.index
        if len(changes.deleted):
            index.remove(changes.deleted)
            # the snapshot on disk still holds them: gone now, rewritten clean by the next save
            self._unlink(collection_id)
        if len(changes.ids):
            index.remove(changes.ids)  # a rebuild's scan may already hold some of them
            index.add(changes.ids, changes.vectors)
        return _Entry(index, changes.last, entry.generation)

    def _open(self, collection_id: str) -> _Entry:
        index_path, meta_path = self._paths(collection_id)
        position = self._store.change_position(collection_id)
        dim = self._store.embedding_dim(collection_id)
        if index_path.is_file() and meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                index = load_index(index_path)
                seq, generation = int(meta["seq"]), int(meta.get("generation", -1))
                if index.dim == dim and generation == position.generation and seq <= position.seq:
                    return _Entry(index, seq, generation)
            except (OSError, ValueError, KeyError, RuntimeError):
                pass  # stale or damaged snapshot: rebuild below
        return self._rebuild(collection_id)

    def _rebuild(self, collection_id: str) -> _Entry:
        position = self._store.change_position(collection_id)
        dim = self._store.embedding_dim(collection_id)
        count = self._store.collection(collection_id).face_count
        index = make_index(dim, expected_size=count, policy=self._policy)
        for ids, vecs in self._store.all_embeddings(collection_id):
            index.add(ids, vecs)
        # Writes that landed during the scan are replayed by get() from ``position.seq`` on.
        return _Entry(index, position.seq, position.generation)

    def size(self, collection_id: str) -> int | None:
        """Vectors in the collection's index in memory (None if it is not loaded); no I/O."""
        entry = self._indexes.get(collection_id)
        return len(entry.index) if entry is not None else None

    def search(
        self, collection_id: str, query: NDArray[np.float32], *, k: int, min_cosine: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        index = self.get(collection_id)
        ids, cosines = index.search(query.reshape(1, -1), k=k, min_cosine=min_cosine)
        keep = ids[0] >= 0
        return ids[0][keep], cosines[0][keep]

    def face_count(self, collection_id: str) -> int:
        return len(self.get(collection_id))

    def save(self, collection_id: str, *, only_if_changed: bool = False) -> None:
        """Write the collection's snapshot (atomically); called on close and periodically.

        ``only_if_changed`` skips a collection whose snapshot on disk already reflects the
        index (a 20 M-face snapshot is gigabytes; periodic saves must not rewrite it idly).
        """
        with self._lock:
            entry = self._indexes.get(collection_id)
            if entry is None:
                return
            index_path, meta_path = self._paths(collection_id)
            if only_if_changed and meta_path.is_file() and index_path.is_file():
                try:
                    if int(json.loads(meta_path.read_text())["seq"]) == entry.seq:
                        return
                except (OSError, ValueError, KeyError):
                    pass
            self._folder.mkdir(parents=True, exist_ok=True)
            entry.index.save(index_path)
            tmp = meta_path.with_suffix(".json.tmp")
            meta = {"seq": entry.seq, "generation": entry.generation, "count": len(entry.index)}
            tmp.write_text(json.dumps(meta))
            os.replace(tmp, meta_path)

    def purge_deleted(self, collection_id: str) -> None:
        """Erase the store's deleted faces from the index now and remove the snapshot files.

        Called after DeleteFaces (and any other deletion of faces), once the store has
        committed: ``get`` applies the deletions to the in-memory index (whose backends
        overwrite the removed vectors), and the on-disk snapshot, which still holds the deleted
        vectors, is unlinked. It is only a cache: the next ``save`` (on close, or periodically)
        writes a clean one from memory.

        Cost: if the index was not in memory, ``get`` loads it first (reading the snapshot, or
        rebuilding from the store, as the next search would anyway). Until the next save there
        is no snapshot, so a restart in between rebuilds the index from the store instead of
        loading it: every vector is read and re-added (tens of seconds per million faces; an
        ANN index also retrains), paid by the first search after the restart.
        """
        with self._lock:
            self.get(collection_id)
            self._unlink(collection_id)

    def refresh_all(self) -> None:
        """Bring every index in memory up to date with the store (each server's maintenance
        pass): deletions made through another process leave this one's memory and snapshots
        even if nobody searches the collection here; collections deleted elsewhere are
        forgotten."""
        for collection_id in list(self._indexes):
            try:
                self.get(collection_id)
            except ResourceNotFoundError:
                self.drop(collection_id)

    def save_all(self, *, only_if_changed: bool = False) -> None:
        for collection_id in list(self._indexes):
            self.save(collection_id, only_if_changed=only_if_changed)

    def drop(self, collection_id: str) -> None:
        """Forget a deleted collection and remove its snapshot files."""
        with self._lock:
            self._indexes.pop(collection_id, None)
            self._unlink(collection_id)

    def _unlink(self, collection_id: str) -> None:
        for path in self._paths(collection_id):
            path.unlink(missing_ok=True)
