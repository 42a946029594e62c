"""The one place that picks the store backend from ``Settings``.

``FACELEDGER_DATABASE_URL`` unset: the embedded SQLite file in ``data_dir`` (tables made on
open). Set (``postgresql://…``): PostgreSQL, whose schema must be at this release's head
revision (``faceledger db upgrade``); opening refuses an older or empty database with
``SchemaNotCurrentError``, before anything is read or written.
"""

from __future__ import annotations

from typing import TypeAlias

from faceledger.config import Settings
from faceledger.store.migrations import require_head
from faceledger.store.postgres.faces import PostgresStore
from faceledger.store.postgres.keys import PostgresKeyStore
from faceledger.store.postgres.video import PostgresVideoStore
from faceledger.store.sqlite.faces import SQLiteStore
from faceledger.store.sqlite.keys import SQLiteKeyStore
from faceledger.store.sqlite.video import SQLiteVideoStore

#: The file of the embedded backend, in ``Settings.data_dir``.
SQLITE_FILE = "faceledger.sqlite3"

Store: TypeAlias = SQLiteStore | PostgresStore
AnyKeyStore: TypeAlias = SQLiteKeyStore | PostgresKeyStore
AnyVideoStore: TypeAlias = SQLiteVideoStore | PostgresVideoStore


def open_store(settings: Settings) -> Store:
    """Collections, faces and users: PostgreSQL when ``database_url`` is set, else SQLite."""
    if settings.database_url:
        require_head(settings.database_url)
        return PostgresStore(settings.database_url)
    return SQLiteStore(settings.data_dir / SQLITE_FILE)


def open_key_store(settings: Settings) -> AnyKeyStore:
    """Access keys, in the same database as ``open_store``'s."""
    if settings.database_url:
        require_head(settings.database_url)
        return PostgresKeyStore(settings.database_url)
    return SQLiteKeyStore(settings.data_dir / SQLITE_FILE)


def open_video_store(settings: Settings) -> AnyVideoStore:
    """Stored-video jobs and stream processors, in the same database as ``open_store``'s."""
    if settings.database_url:
        require_head(settings.database_url)
        return PostgresVideoStore(settings.database_url)
    return SQLiteVideoStore(settings.data_dir / SQLITE_FILE)
