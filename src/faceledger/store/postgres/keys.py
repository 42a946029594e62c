"""Access keys in PostgreSQL: ``PostgresKeyStore`` has ``SQLiteKeyStore``'s API and guarantees.

The ``access_keys`` table (made by the migrations) holds each key's secret retrievably, as
SigV4 requires (see ``faceledger.store.sqlite.keys``): protect the database and its backups like a
credentials file. Revoking overwrites the secret, then VACUUMs the table so the old row
version (a dead tuple that still holds the secret) is pruned from its page.

``add_unless_role_active`` takes a transaction-level advisory lock, so two servers starting at
once against one database create one first admin key, not two.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from faceledger.store import rules
from faceledger.store.postgres.pool import open_pool
from faceledger.store.records import AccessKey
from faceledger.store.rules import KEY_COLUMNS

#: Connections for key look-ups (each request authenticates with one).
POOL_SIZE = 4
#: ``pg_advisory_xact_lock`` key serialising "create a key unless one has the role".
FIRST_KEY_LOCK_ID = 0x46_4C_4B_59  # "FLKY"


def _row_to_key(row: Sequence[Any]) -> AccessKey:
    return rules.access_key(row, row[2])  # roles: jsonb, decoded by psycopg


class PostgresKeyStore:
    """Access keys with their secrets in PostgreSQL; safe to share by threads and processes."""

    def __init__(
        self, url: str, *, pool: ConnectionPool | None = None, pool_size: int = POOL_SIZE
    ) -> None:
        self.url = url
        self._owns_pool = pool is None
        self._pool = pool or open_pool(url, size=pool_size, name="faceledger-keys")

    def close(self) -> None:
        """Close the pool's connections (idempotent; a shared pool is its owner's to close)."""
        if self._owns_pool:
            self._pool.close()

    @staticmethod
    def _insert(conn: psycopg.Connection[Any], key: AccessKey, secret: str) -> None:
        conn.execute(
            "INSERT INTO access_keys (key_id, secret, principal, roles, created_at, revoked_at,"
            " description, rate_per_second, burst) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s,"
            " %s, %s)",
            rules.key_values(key, secret),
        )

    def add(self, key: AccessKey, secret: str) -> bool:
        """Insert a new key; False (nothing written) if its key id is already taken."""
        try:
            with self._pool.connection() as conn:
                self._insert(conn, key, secret)
        except pg_errors.UniqueViolation:
            return False
        return True

    def add_unless_role_active(self, role: str, key: AccessKey, secret: str) -> bool:
        """Insert ``key`` only if no active key carries ``role``, in one transaction under an
        advisory lock (one first admin key however many servers start). True if inserted."""
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (FIRST_KEY_LOCK_ID,))
            if self._role_active(conn, role):
                return False
            self._insert(conn, key, secret)
        return True

    @staticmethod
    def _role_active(conn: psycopg.Connection[Any], role: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM access_keys WHERE revoked_at IS NULL AND roles @> %s::jsonb LIMIT 1",
            (json.dumps([role]),),
        ).fetchone()
        return row is not None

    def has_active_role(self, role: str) -> bool:
        """Whether some unrevoked key carries ``role``."""
        with self._pool.connection() as conn:
            return self._role_active(conn, role)

    def get(self, key_id: str) -> tuple[AccessKey, str] | None:
        """The key and its secret (empty once revoked), or None if there is no such key."""
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {KEY_COLUMNS}, secret FROM access_keys WHERE key_id = %s", (key_id,)
            ).fetchone()
        if row is None:
            return None
        return _row_to_key(row), str(row[8])

    def list(self, *, include_revoked: bool) -> list[AccessKey]:
        """Keys in creation order (then key id); revoked ones only if asked for."""
        where = "" if include_revoked else "WHERE revoked_at IS NULL "
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM access_keys {where}"
                'ORDER BY created_at, key_id COLLATE "C"'
            ).fetchall()
        return [_row_to_key(r) for r in rows]

    def revoke(self, key_id: str, at: float) -> AccessKey | None:
        """Mark the key revoked at ``at`` (kept if already revoked) and overwrite its secret.

        Returns the key as it now stands, or None if there is no such key.
        """
        with self._pool.connection() as conn:
            cur = conn.execute(
                "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, %s), secret = '' "
                "WHERE key_id = %s",
                (at, key_id),
            )
            if cur.rowcount == 0:
                return None
        # The old row version (with the secret) is a dead tuple until VACUUM prunes it.
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute("VACUUM access_keys")
            finally:
                conn.autocommit = False
        found = self.get(key_id)
        return None if found is None else found[0]
