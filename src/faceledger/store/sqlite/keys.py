"""Access keys: the ``access_keys`` table of the store's SQLite file.

Each key belongs to a principal and carries that principal's roles. SigV4 is a symmetric
scheme (the server recomputes the client's HMAC), so **the secret is stored in the database,
retrievably, not as a one-way hash**. Anyone who can read ``<data_dir>/faceledger.sqlite3``
(or its ``-wal`` file, or a backup of it) can sign requests as every active key: protect the
data directory like a credentials file. This module creates the data directory 0700 and the
database file 0600, and narrows an existing database file to 0600 when it finds it readable
by others.

A revoked key stays listed (who had access, and until when) but never authenticates; its
secret is overwritten on revocation, so later copies of the file no longer hold it.

Each key may carry its own rate limit (``rate_per_second``, ``burst``); NULL means the
installation's default (``Settings.default_rate_per_second`` / ``default_burst``). Databases
created before these columns existed gain them when opened (``ALTER TABLE … ADD COLUMN``).

The table lives in the same file as collections and faces but is opened with its own
connection (one per thread, like ``SQLiteStore``), in WAL mode with ``synchronous=FULL``: a
created or revoked key is durable once the call returns.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from faceledger.store.files import create_private_file
from faceledger.store.key_tables import KeyTables
from faceledger.store.records import AccessKey
from faceledger.store.sql import Connection
from faceledger.store.sqlite.connections import SchemaStore

__all__ = ["AccessKey", "SQLiteKeyStore"]  # AccessKey as before ``store/records.py``

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_keys (
    key_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    principal TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    description TEXT NOT NULL DEFAULT '',
    rate_per_second REAL,
    burst INTEGER
);
CREATE INDEX IF NOT EXISTS access_keys_by_principal ON access_keys(principal);
CREATE TABLE IF NOT EXISTS principal_preferences (
    principal TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (principal, name)
);
CREATE TABLE IF NOT EXISTS sigv4_seen (
    key_sha256 BLOB PRIMARY KEY,
    expires_at REAL NOT NULL,
    replays INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sigv4_horizon (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    purged_before REAL NOT NULL
);
INSERT INTO sigv4_horizon (id, purged_before) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""

#: Columns added after the first release: (name, SQL type), added to older databases on open.
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (("rate_per_second", "REAL"), ("burst", "INTEGER"))


def _restrict_mode(path: Path) -> None:
    """Narrow ``path`` (and its WAL/shared-memory files) to 0600 if others may read it."""
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
        except FileNotFoundError:
            continue
        if not mode & 0o077:
            continue
        try:
            os.chmod(candidate, 0o600)
        except OSError as exc:  # not our file: say so, but do not refuse to run
            logger.warning(
                "%s holds access-key secrets but is mode %o and could not be narrowed to "
                "0600 (%s); restrict it yourself",
                candidate,
                mode,
                exc.strerror or exc,
            )


class SQLiteKeyStore(SchemaStore, KeyTables):
    """Access keys with their secrets in the store's SQLite file; safe to share by threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        create_private_file(self.path)
        _restrict_mode(self.path)
        self._sql = self._open_tables(self.path, SCHEMA)
        self._write_lock = self._connections.write_lock
        self._db = self._connections.db
        self._tx = self._connections.tx
        self._add_missing_columns()

    # -- connections ----------------------------------------------------------------------

    def _add_missing_columns(self) -> None:
        """Migrate a database made by an older version: add the columns it lacks.

        One write transaction, so two processes opening the same old file add each column once.
        """
        with self._tx() as db:
            have = {r["name"] for r in db.execute("PRAGMA table_info(access_keys)")}
            for name, sql_type in ADDED_COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE access_keys ADD COLUMN {name} {sql_type}")

    # -- KeyTables' hooks -------------------------------------------------------------------
    def _role_active(self, conn: Connection, role: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM access_keys, json_each(access_keys.roles) AS r "
            "WHERE access_keys.revoked_at IS NULL AND r.value = %s LIMIT 1",
            (role,),
        ).fetchone()
        return row is not None

    def _forget_secret(self) -> None:
        self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # nor in the WAL
