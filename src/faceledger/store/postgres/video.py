"""Stored-video jobs and stream processors in PostgreSQL: ``SQLiteVideoStore``'s API and guarantees.

The tables come from the migrations (``0003_video``); what the store does is written once for
both backends (``store/jobs.py``).
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from faceledger.store.jobs import VideoTables
from faceledger.store.postgres.pool import PooledStore

POOL_SIZE = 4


class PostgresVideoStore(PooledStore, VideoTables):
    """Jobs and stream processors in PostgreSQL; safe to share by threads and processes
    (``pool``: ``PooledStore``)."""

    def __init__(
        self, url: str, *, pool: ConnectionPool | None = None, pool_size: int = POOL_SIZE
    ) -> None:
        super().__init__(self._use_pool(url, pool, size=pool_size, name="faceledger-video"))
