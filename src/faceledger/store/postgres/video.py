"""Stored-video jobs and stream processors in PostgreSQL: ``SQLiteVideoStore``'s API and guarantees.

The tables come from the migrations (``0003_video``); what the store does is written once for
both backends (``store/jobs.py``).
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from faceledger.store.jobs import VideoTables
from faceledger.store.postgres.pool import PostgresSql, open_pool

POOL_SIZE = 4


class PostgresVideoStore(VideoTables):
    """Jobs and stream processors in PostgreSQL; safe to share by threads and processes.

    ``pool``: a pool shared with the process's other stores (not closed by ``close``);
    without one the store opens its own of ``pool_size`` connections to ``url``.
    """

    def __init__(
        self, url: str, *, pool: ConnectionPool | None = None, pool_size: int = POOL_SIZE
    ) -> None:
        self._owns_pool = pool is None
        self._pool = pool or open_pool(url, size=pool_size, name="faceledger-video")
        super().__init__(PostgresSql(self._pool))

    def close(self) -> None:
        if self._owns_pool:
            self._pool.close()
