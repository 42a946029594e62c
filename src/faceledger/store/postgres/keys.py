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

from psycopg_pool import ConnectionPool

from faceledger.store.key_tables import KeyTables
from faceledger.store.postgres.pool import PooledStore
from faceledger.store.sql import Connection

#: Connections for key look-ups (each request authenticates with one).
POOL_SIZE = 4
#: ``pg_advisory_xact_lock`` key serialising "create a key unless one has the role".
FIRST_KEY_LOCK_ID = 0x46_4C_4B_59  # "FLKY"


class PostgresKeyStore(PooledStore, KeyTables):
    """Access keys with their secrets in PostgreSQL; safe to share by threads and processes."""

    def __init__(
        self, url: str, *, pool: ConnectionPool | None = None, pool_size: int = POOL_SIZE
    ) -> None:
        self.url = url
        self._sql = self._use_pool(url, pool, size=pool_size, name="faceledger-keys")

    # -- KeyTables' hooks -------------------------------------------------------------------
    ROLES_PARAM = "%s::jsonb"
    KEY_ORDER = 'key_id COLLATE "C"'

    def _role_active(self, conn: Connection, role: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM access_keys WHERE revoked_at IS NULL AND roles @> %s::jsonb LIMIT 1",
            (json.dumps([role]),),
        ).fetchone()
        return row is not None

    def _lock_first_key(self, conn: Connection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (FIRST_KEY_LOCK_ID,))

    def _forget_secret(self) -> None:
        """VACUUM: the old row version (with the secret) is a dead tuple until it is pruned."""
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute("VACUUM access_keys")
            finally:
                conn.autocommit = False
