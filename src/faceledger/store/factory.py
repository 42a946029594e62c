"""The one place that picks the store backend from ``Settings``.

``FACELEDGER_DATABASE_URL`` unset: the embedded SQLite file in ``data_dir`` (tables made on
open). Set (``postgresql://…``): PostgreSQL, whose schema must be at this release's head
revision (``faceledger db upgrade``); opening refuses an older or empty database with
``SchemaNotCurrentError``, before anything is read or written.

``open_stores`` opens all three stores of a process at once (``services/container.py``): on
PostgreSQL after one schema check, over one connection pool they share (the ledger joins it).
``open_store`` / ``open_key_store`` / ``open_video_store`` open one alone (each with its own
check and pool: tools and tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psycopg_pool import ConnectionPool

from faceledger.config import Settings
from faceledger.store.base import CropStore, FaceStore, KeyStore, LeadStore, VideoStore
from faceledger.store.migrations import require_head
from faceledger.store.postgres.crops import PostgresCropStore
from faceledger.store.postgres.faces import PostgresStore
from faceledger.store.postgres.keys import PostgresKeyStore
from faceledger.store.postgres.leads import PostgresLeadStore
from faceledger.store.postgres.pool import open_pool
from faceledger.store.postgres.video import PostgresVideoStore
from faceledger.store.sqlite.crops import SQLiteCropStore
from faceledger.store.sqlite.faces import SQLiteStore
from faceledger.store.sqlite.keys import SQLiteKeyStore
from faceledger.store.sqlite.leads import SQLiteLeadStore
from faceledger.store.sqlite.video import SQLiteVideoStore

#: The file of the embedded backend, in ``Settings.data_dir``.
SQLITE_FILE = "faceledger.sqlite3"

#: Connections in the pool a process's stores and ledger share on PostgreSQL (they had 8 + 4 +
#: 4 + the ledger's 2 in pools of their own); PostgreSQL's default ``max_connections`` is 100.
SHARED_POOL_SIZE = 16
#: Connections kept open when idle (one each, as the separate pools and the ledger's writer
#: had, so a ledger append rarely waits for a new connection).
SHARED_POOL_MIN = 4


@dataclass(frozen=True)
class Stores:
    """A process's stores, opened together; ``pool`` is the one they share on PostgreSQL (None
    on SQLite), for the ledger to join."""

    faces: FaceStore
    keys: KeyStore
    video: VideoStore
    leads: LeadStore
    crops: CropStore
    pool: ConnectionPool | None = None

    def close(self) -> None:
        """Close each store, then the shared pool (idempotent)."""
        self.leads.close()
        self.crops.close()
        self.video.close()
        self.keys.close()
        self.faces.close()
        if self.pool is not None:
            self.pool.close()


def open_stores(settings: Settings) -> Stores:
    """The face, key, video, lead and crop stores of ``settings``: on PostgreSQL one schema
    check and one pool for all; on SQLite the one file."""
    url = settings.database_url
    if not url:
        path = _sqlite_file(settings)
        faces = SQLiteStore(path)  # first: it makes the tables the crop store refers to
        return Stores(
            faces,
            SQLiteKeyStore(path),
            SQLiteVideoStore(path),
            SQLiteLeadStore(path),
            SQLiteCropStore(path),
        )
    require_head(url)
    pool = open_pool(url, size=SHARED_POOL_SIZE, name="faceledger", min_size=SHARED_POOL_MIN)
    return Stores(
        PostgresStore(url, pool=pool),
        PostgresKeyStore(url, pool=pool),
        PostgresVideoStore(url, pool=pool),
        PostgresLeadStore(url, pool=pool),
        PostgresCropStore(url, pool=pool),
        pool,
    )


def _checked_url(settings: Settings) -> str | None:
    """``database_url`` once its schema is at head (``SchemaNotCurrentError`` otherwise), or
    None when it is unset (SQLite: the file ``_sqlite_file(settings)``)."""
    if settings.database_url:
        require_head(settings.database_url)
        return settings.database_url
    return None


def _sqlite_file(settings: Settings) -> Path:
    """The embedded backend's file: ``<data_dir>/faceledger.sqlite3``."""
    return settings.data_dir / SQLITE_FILE


def open_store(settings: Settings) -> FaceStore:
    """Collections, faces and users: PostgreSQL when ``database_url`` is set, else SQLite."""
    if url := _checked_url(settings):
        return PostgresStore(url)
    return SQLiteStore(_sqlite_file(settings))


def open_key_store(settings: Settings) -> KeyStore:
    """Access keys, in the same database as ``open_store``'s."""
    if url := _checked_url(settings):
        return PostgresKeyStore(url)
    return SQLiteKeyStore(_sqlite_file(settings))


def open_video_store(settings: Settings) -> VideoStore:
    """Stored-video jobs and stream processors, in the same database as ``open_store``'s."""
    if url := _checked_url(settings):
        return PostgresVideoStore(url)
    return SQLiteVideoStore(_sqlite_file(settings))


def open_lead_store(settings: Settings) -> LeadStore:
    """Leads and decisions, in the same database as ``open_store``'s."""
    if url := _checked_url(settings):
        return PostgresLeadStore(url)
    return SQLiteLeadStore(_sqlite_file(settings))
