"""Face crops in the embedded store: the ``face_crops`` table of the store's SQLite file.

Each row holds one face's crop as ``nonce || ciphertext`` (sealed by the services with the
crop key, which never comes here). ``SQLiteStore`` writes a crop in the transaction that adds
its face and deletes it in the transaction that deletes the face or its collection (the
statements below; the foreign key's ``ON DELETE CASCADE`` also covers any other deletion of a
face row). Deletion is final as for faces: ``secure_delete`` overwrites the row, and the
store's WAL checkpoint after every deletion (``SQLiteStore.scrub_wal``) truncates the WAL.

``SQLiteCropStore`` reads them (``CropStore`` in ``store/base.py``).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from faceledger.store.sqlite.connections import SchemaStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS face_crops (
    face_id TEXT PRIMARY KEY REFERENCES faces(face_id) ON DELETE CASCADE,
    collection_id TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS face_crops_by_collection ON face_crops(collection_id);
"""


def insert_crop(db: sqlite3.Connection, collection_id: str, face_id: str, sealed: bytes) -> None:
    """Store a face's sealed crop (inside the caller's write transaction)."""
    db.execute(
        "INSERT INTO face_crops (face_id, collection_id, sealed, created_at) VALUES (?, ?, ?, ?)",
        (face_id, collection_id, sealed, time.time()),
    )


def delete_crop(db: sqlite3.Connection, face_id: str) -> None:
    """Delete a face's crop, if it has one (inside the caller's write transaction)."""
    db.execute("DELETE FROM face_crops WHERE face_id = ?", (face_id,))


def delete_collection_crops(db: sqlite3.Connection, collection_id: str) -> None:
    """Delete every crop of a collection (inside the caller's write transaction)."""
    db.execute("DELETE FROM face_crops WHERE collection_id = ?", (collection_id,))


class SQLiteCropStore(SchemaStore):
    """Reads sealed face crops from the store's SQLite file; safe to share by threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._open_tables(self.path, SCHEMA)

    def crop(self, collection_id: str, face_id: str) -> bytes | None:
        """The sealed crop of the collection's face, or None when it has none."""
        row = (
            self._connections.db()
            .execute(
                "SELECT sealed FROM face_crops WHERE collection_id = ? AND face_id = ?",
                (collection_id, face_id),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def has_crops(self) -> bool:
        """Whether any collection holds a crop (then the crop key must be at hand)."""
        row = self._connections.db().execute("SELECT 1 FROM face_crops LIMIT 1").fetchone()
        return row is not None
