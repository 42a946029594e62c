"""Face crops in PostgreSQL: the ``face_crops`` table (migration ``0008_face_crops``).

Each row holds one face's crop as ``nonce || ciphertext`` (``sealed``, stored out of line
without compression: ciphertext does not compress). ``PostgresStore`` writes a crop in the
transaction that adds its face and deletes it in the transaction that deletes the face (then
VACUUMs ``face_crops`` with the face's partition); a deleted collection's crops go with its
row (``ON DELETE CASCADE``), also VACUUMed. As for embeddings, VACUUM prunes the dead rows but
does not zero the free space; ``faceledger db vacuum --full`` rewrites the table.

``PostgresCropStore`` reads them (``CropStore`` in ``store/base.py``).
"""

from __future__ import annotations

import time
from typing import Any

from psycopg_pool import ConnectionPool

from faceledger.store.postgres.pool import PooledStore

#: Connections for crop reads (a reviewer's page shows a few).
POOL_SIZE = 2

INSERT_CROP = (
    "INSERT INTO face_crops (collection_pk, face_id, sealed, created_at) VALUES (%s, %s, %s, %s)"
)
DELETE_CROPS = "DELETE FROM face_crops WHERE collection_pk = %s AND face_id = ANY(%s)"


def crop_values(collection_pk: int, face_id: str, sealed: bytes) -> tuple[Any, ...]:
    """The parameters of ``INSERT_CROP``."""
    return (collection_pk, face_id, sealed, time.time())


class PostgresCropStore(PooledStore):
    """Reads sealed face crops from PostgreSQL; safe to share by threads and processes."""

    def __init__(
        self, url: str, *, pool: ConnectionPool | None = None, pool_size: int = POOL_SIZE
    ) -> None:
        self.url = url
        self._use_pool(url, pool, size=pool_size, name="faceledger-crops")

    def crop(self, collection_id: str, face_id: str) -> bytes | None:
        """The sealed crop of the collection's face, or None when it has none."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT k.sealed FROM face_crops k JOIN collections c "
                "ON c.collection_pk = k.collection_pk "
                "WHERE c.collection_id = %s AND k.face_id = %s",
                (collection_id, face_id),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def has_crops(self) -> bool:
        """Whether any collection holds a crop (then the crop key must be at hand)."""
        with self._pool.connection() as conn:
            return conn.execute("SELECT 1 FROM face_crops LIMIT 1").fetchone() is not None
